// Handles are recognised by type, not by name: a user's own `Transaction` (a value, not a
// database handle) is keyed like any other argument, so it must be `Serialize`.
use cache_runtime::cached;

struct Transaction {
    account: i64,
}

#[cached(table = "accounts")]
async fn balance(tx: &Transaction) -> Option<i64> {
    Some(tx.account)
}

fn main() {}
