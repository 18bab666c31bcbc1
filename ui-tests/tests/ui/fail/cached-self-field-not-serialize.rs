// A field of `self` the body reads is keyed, so it must be `Serialize`.
use cache_runtime::cached;

struct Config {
    region: String,
}

struct Repo {
    config: Config,
}

impl Repo {
    #[cached(table = "users")]
    async fn region(&self) -> Option<String> {
        Some(self.config.region.clone() + &self.config_name())
    }

    fn config_name(&self) -> String {
        String::new()
    }

    #[cached(table = "users", skip(self))]
    async fn ok(&self) -> Option<String> {
        Some(self.config_name())
    }

    #[cached(table = "users")]
    async fn whole(&self) -> Option<usize> {
        Some(std::mem::size_of_val(&self.config))
    }
}

fn main() {}
