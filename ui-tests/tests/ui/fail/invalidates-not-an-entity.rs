use cache_runtime::invalidates;

struct Audit;

#[invalidates(Audit)]
async fn write(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
