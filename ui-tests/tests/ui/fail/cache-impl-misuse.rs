use cache_runtime::cache_impl;

struct Repo;

#[cache_impl]
impl Repo {}

#[cache_impl(cache = &self.cache, cahce = 1)]
impl Repo {}

#[cache_impl(cache = &self.cache)]
fn not_an_impl() {}

fn main() {}
