// `self.tenant()` may read any field of `self` (and so may formatting `self`, or passing it
// on): #[cached] cannot see what to key, and asks.
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

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tenant_{}", self.tenant)
    }
}

impl Repo {
    #[cached(table = "users")]
    async fn schema(&self) -> Option<String> {
        Some(format!("SELECT name FROM {self}.users"))
    }
}

fn helper(repo: &Repo) -> i64 {
    repo.tenant
}

fn main() {}
