use cache_runtime::cached;

#[cached(table = "users")]
async fn touch(id: i64) {
    let _ = id;
}

fn main() {}
