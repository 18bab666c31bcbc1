// A write through a plain `sqlx::Transaction` cannot be invalidated after its COMMIT:
// invalidating when the function returns would come first. Take the cache's Transaction.
use cache_runtime::invalidates;
use sqlx::Sqlite;

#[invalidates(tables = ["users"])]
async fn rename(tx: &mut sqlx::Transaction<'_, Sqlite>, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET name = 'x' WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn main() {}
