// The RealWorld profile read: four tables, `follow` forgotten. A write to `follow` would
// leave the cached `following` flag stale, so it does not compile.
use cache_runtime::cached;

#[cached(ttl = "60s", tables = ["profile", "users", "article"])]
async fn profile(viewer: i64, username: String) -> Result<Vec<String>, ()> {
    let _ = sqlx::raw_sql(
        "SELECT u.username, u.bio, u.image,
                EXISTS (SELECT 1 FROM follow f WHERE f.followed_user_id = u.user_id
                                                AND f.following_user_id = $1) AS following,
                (SELECT count(*) FROM article a WHERE a.user_id = u.user_id) AS articles
         FROM users u JOIN profile p ON p.user_id = u.user_id
         WHERE u.username = $2",
    );
    let _ = (viewer, username);
    Ok(Vec::new())
}

fn main() {}
