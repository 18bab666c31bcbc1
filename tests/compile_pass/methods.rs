// `&self` and `&mut self` methods, a cache taken from `self`, inherent and trait impls.
use cache_runtime::{Cache, Settings, cached, invalidates};

struct Repo {
    cache: Cache,
    prefix: String,
}

impl Repo {
    #[cached(table = "methods_items", cache = &self.cache)]
    pub async fn get(&self, id: i64) -> Result<String, std::io::Error> {
        Ok(format!("{}{id}", self.prefix))
    }

    #[cached(table = "methods_items")]
    async fn get_global(&self, id: i64) -> Option<String> {
        Some(format!("{}{id}", self.prefix))
    }

    #[invalidates(tables = ["methods_items"], cache = &self.cache)]
    async fn set_prefix(&mut self, prefix: &str) -> Result<(), std::io::Error> {
        self.prefix = prefix.to_owned();
        Ok(())
    }
}

trait Lookup {
    async fn lookup(&self, id: u32) -> Vec<u32>;
}

impl Lookup for Repo {
    #[cached(table = "methods_items", ttl = "1s")]
    async fn lookup(&self, id: u32) -> Vec<u32> {
        vec![id; self.prefix.len()]
    }
}

#[tokio::test]
async fn compiles_and_runs() {
    let mut repo = Repo {
        cache: Cache::new(Settings::default()).unwrap(),
        prefix: "a".into(),
    };
    assert_eq!(repo.get(1).await.unwrap(), "a1");
    assert_eq!(repo.get_global(1).await.as_deref(), Some("a1"));
    repo.set_prefix("b").await.unwrap();
    assert_eq!(repo.get(1).await.unwrap(), "b1");
    assert_eq!(repo.lookup(3).await, vec![3]);
}
