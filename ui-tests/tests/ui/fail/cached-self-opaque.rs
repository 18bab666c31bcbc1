// `self.tenant()` may read any field of `self`: #[cached] cannot see what to key, and asks.
use cache_runtime::cached;

struct Repo {
    tenant: i64,
}

impl Repo {
    fn tenant(&self) -> i64 {
        self.tenant
    }

    #[cached(table = "users")]
    async fn count(&self) -> Option<i64> {
        Some(self.tenant() * 10)
    }

    #[cached(table = "users")]
    async fn passed_on(&self) -> Option<i64> {
        Some(helper(self))
    }
}

fn helper(repo: &Repo) -> i64 {
    repo.tenant
}

fn main() {}
