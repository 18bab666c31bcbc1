use cache_runtime::cached;

struct Filter {
    name: String,
}

#[cached(table = "users")]
async fn search(limit: u32, filter: &Filter) -> Result<Vec<String>, ()> {
    Ok(vec![filter.name.clone(); limit as usize])
}

fn main() {}
