use cache_runtime::cached;

#[cached(table = "users", self_key = 1)]
async fn free(id: i64) -> Option<i64> {
    Some(id)
}

#[cached(table = "users", skip(self))]
async fn free_skip(id: i64) -> Option<i64> {
    Some(id)
}

fn main() {}
