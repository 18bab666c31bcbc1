use cache_runtime::cached;

struct Filter {
    name: String,
}

#[cached(table = "users", key = filter)]
async fn search(filter: &Filter) -> Result<String, ()> {
    Ok(filter.name.clone())
}

fn main() {}
