use cache_runtime::cached;

struct Report {
    total: i64,
}

#[cached(table = "users")]
async fn report(id: i64) -> Result<Report, ()> {
    Ok(Report { total: id })
}

fn main() {}
