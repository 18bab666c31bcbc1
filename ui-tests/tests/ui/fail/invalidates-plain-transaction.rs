// A write through a plain `sqlx::Transaction` cannot be invalidated after its COMMIT:
// invalidating when the function returns would come first. Take the cache's Transaction.
use cache_runtime::invalidates;

#[invalidates(tables = ["users"])]
async fn rename<DB: sqlx::Database>(tx: &mut sqlx::Transaction<'_, DB>, id: i64) -> sqlx::Result<()> {
    let _ = (tx, id); // an UPDATE through `&mut **tx`, in real code
    Ok(())
}

fn main() {}
