use cache_runtime::cached;

// Three misspelled keys: all three are reported in one build.
#[cached(tll = "60s", table = "users", tabels = ["a"], skipp(x))]
async fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
