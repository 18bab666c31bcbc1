// A write whose SQL writes a table it does not declare; and one whose SQL is built at run
// time with no tables declared.
use cache_runtime::invalidates;

#[invalidates(tables = ["users"])]
async fn publish(id: i64) -> Result<u64, ()> {
    let _ = sqlx::raw_sql(
        "UPDATE users SET posts = posts + 1 WHERE id = $1;
         INSERT INTO posts (author_id) VALUES ($1)",
    );
    let _ = id;
    Ok(1)
}

#[invalidates]
async fn purge(table: &str) -> Result<u64, ()> {
    let sql = format!("DELETE FROM {table}");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    Ok(1)
}

fn main() {}
