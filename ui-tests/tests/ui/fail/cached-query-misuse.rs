// `cached_query!` misuse: not a fetch, a write, an undeclared table, an unknown key.
use cache_runtime::cached_query;

fn main() {
    let _ = cached_query!(ttl = "60s", sqlx::raw_sql("SELECT 1").execute(&pool));
    let _ = cached_query!(
        sqlx::query_scalar::<_, i64>("UPDATE users SET n = n + 1 RETURNING n").fetch_one(&pool)
    );
    let _ = cached_query!(
        tables = ["users"],
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users JOIN posts USING (id)")
            .fetch_one(&pool)
    );
    let _ = cached_query!(
        tll = "60s",
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users").fetch_one(&pool)
    );
}
