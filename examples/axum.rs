//! A small axum service with the cache in front of its reads: authors and their posts.
//!
//! ```text
//! cargo run --example axum                       # in-memory cache, SQLite in a temp file
//! APP_CACHE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example axum   # shared through Redis
//! ```
//!
//! - Configuration from the environment alone: `Settings::from_env("APP_CACHE_")`, and
//!   `cache_redis::open` picks Redis when `APP_CACHE_REDIS_URL` is set.
//! - A repository with `&self` methods (`#[cache_impl(cache = &self.cache)]`): a read by
//!   id, a search keyed by a filter struct, a feed that joins two tables (its tables are
//!   read from the SQL).
//! - A write that touches both tables inside the cache's `Transaction`: they are
//!   invalidated after `COMMIT`, never before.
//! - A `Cache-Status` header on every response (`observe` around each request), `/stats`
//!   as JSON, `/metrics` for Prometheus (the `metrics` feature and
//!   `metrics-exporter-prometheus`).
//!
//! `tests/axum_service.rs` starts this service and drives it over HTTP.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cache_runtime::{Cache, CacheEntity, Settings, Transaction, cache_impl, cached, invalidates};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, CacheEntity)]
#[cache(table = "authors", ttl = "5m")]
pub struct Author {
    pub id: i64,
    pub name: String,
    pub city: String,
    pub posts: i64,
}

/// A search: every field is part of the key, by name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuthorFilter {
    pub city: Option<String>,
    pub min_posts: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeedFilter {
    pub city: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    pub post: i64,
    pub title: String,
    pub author: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewPost {
    pub title: String,
}

/// The repository: a pool and the cache, shared by every request.
#[derive(Clone)]
pub struct Repo {
    pool: SqlitePool,
    cache: Cache,
}

type Row = (i64, String, String, i64);

fn author((id, name, city, posts): Row) -> Author {
    Author {
        id,
        name,
        city,
        posts,
    }
}

#[cache_impl(cache = &self.cache)]
impl Repo {
    /// Keyed by `id`; tables and TTL from `Author`.
    #[cached]
    pub async fn author(&self, id: i64) -> sqlx::Result<Option<Author>> {
        let row: Option<Row> =
            sqlx::query_as("SELECT id, name, city, posts FROM authors WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(author))
    }

    /// Keyed by the whole filter.
    #[cached(ttl = "60s")]
    pub async fn search(&self, filter: &AuthorFilter) -> sqlx::Result<Vec<Author>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, city, posts FROM authors \
             WHERE (?1 IS NULL OR city = ?1) AND posts >= COALESCE(?2, 0) ORDER BY id",
        )
        .bind(&filter.city)
        .bind(filter.min_posts)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(author).collect())
    }

    /// A join: `posts` and `authors` are read from the SQL, so a write to either makes it
    /// stale.
    #[cached(ttl = "30s")]
    pub async fn feed(&self, filter: &FeedFilter) -> sqlx::Result<Vec<FeedItem>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT posts.id, posts.title, authors.name FROM posts \
             JOIN authors ON authors.id = posts.author_id \
             WHERE (?1 IS NULL OR authors.city = ?1) ORDER BY posts.id DESC LIMIT ?2",
        )
        .bind(&filter.city)
        .bind(filter.limit.unwrap_or(20).clamp(1, 100))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(post, title, author)| FeedItem {
                post,
                title,
                author,
            })
            .collect())
    }

    /// Adds a post and counts it on its author, in one transaction: both tables are
    /// invalidated once `COMMIT` has returned.
    pub async fn publish(&self, author: i64, post: &NewPost) -> sqlx::Result<Option<i64>> {
        let mut tx = self.cache.begin(&self.pool).await?;
        if count_post(&mut tx, author).await? == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id = insert_post(&mut tx, author, &post.title).await?;
        tx.commit().await?;
        Ok(Some(id))
    }
}

/// Tables from the SQL (`authors`), registered on the transaction.
#[invalidates]
async fn count_post(tx: &mut Transaction<'_, Sqlite>, author: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE authors SET posts = posts + 1 WHERE id = ?")
        .bind(author)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

#[invalidates]
async fn insert_post(
    tx: &mut Transaction<'_, Sqlite>,
    author: i64,
    title: &str,
) -> sqlx::Result<i64> {
    let done = sqlx::query("INSERT INTO posts (author_id, title) VALUES (?, ?)")
        .bind(author)
        .bind(title)
        .execute(&mut **tx)
        .await?;
    Ok(done.last_insert_rowid())
}

// ----- HTTP -----

#[derive(Clone)]
pub struct App {
    repo: Repo,
    metrics: PrometheusHandle,
}

/// Errors become a 500 with the message, logged; the cache never adds one of its own.
struct Failure(sqlx::Error);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0.to_string()).into_response()
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure(e)
    }
}

async fn get_author(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<Author>, Response> {
    match app.repo.author(id).await {
        Ok(Some(author)) => Ok(Json(author)),
        Ok(None) => Err(StatusCode::NOT_FOUND.into_response()),
        Err(e) => Err(Failure(e).into_response()),
    }
}

async fn search(
    State(app): State<App>,
    Query(filter): Query<AuthorFilter>,
) -> Result<Json<Vec<Author>>, Failure> {
    Ok(Json(app.repo.search(&filter).await?))
}

async fn feed(
    State(app): State<App>,
    Query(filter): Query<FeedFilter>,
) -> Result<Json<Vec<FeedItem>>, Failure> {
    Ok(Json(app.repo.feed(&filter).await?))
}

async fn publish(
    State(app): State<App>,
    Path(author): Path<i64>,
    Json(post): Json<NewPost>,
) -> Result<Response, Failure> {
    Ok(match app.repo.publish(author, &post).await? {
        Some(id) => (StatusCode::CREATED, Json(id)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

/// Totals and per-function counters, as JSON.
async fn stats(State(app): State<App>) -> Json<serde_json::Value> {
    let cache = &app.repo.cache;
    Json(serde_json::json!({
        "totals": cache.stats(),
        "functions": cache.function_stats(),
    }))
}

/// Prometheus text: the cache's counters are copied into the recorder, then rendered.
async fn metrics(State(app): State<App>) -> String {
    app.repo.cache.publish_metrics();
    app.metrics.render()
}

/// Every response says how its reads were served: `Cache-Status: sqlx-cache; hit` when
/// all of them were hits, `fwd=miss`, `fwd=stale` or `fwd=bypass` otherwise.
async fn cache_status(request: Request, next: Next) -> Response {
    let (mut response, served) = cache_runtime::observe(next.run(request)).await;
    if served.calls() > 0
        && let Ok(value) = HeaderValue::from_str(&served.cache_status("sqlx-cache"))
    {
        response.headers_mut().insert("cache-status", value);
    }
    response
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/authors", get(search))
        .route("/authors/{id}", get(get_author))
        .route("/authors/{id}/posts", post(publish))
        .route("/feed", get(feed))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(cache_status))
        .with_state(app)
}

/// The process's Prometheus recorder (installed once).
fn prometheus() -> Result<PrometheusHandle, Box<dyn std::error::Error + Send + Sync>> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new().install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The database file (`APP_DATABASE`, else one in the temporary directory), with its
/// schema and a few rows.
pub async fn database(path: &std::path::Path) -> sqlx::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    for statement in [
        "CREATE TABLE IF NOT EXISTS authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         city TEXT NOT NULL, posts INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, \
         author_id INTEGER NOT NULL REFERENCES authors(id), title TEXT NOT NULL)",
        "INSERT OR IGNORE INTO authors (id, name, city) VALUES \
         (1, 'Ada', 'London'), (2, 'Grace', 'New York'), (3, 'Edsger', 'Austin')",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    Ok(pool)
}

/// Serves on `listener` until the process ends: the cache from `settings`
/// (`cache_redis::open`: Redis when `redis_url` is set), the database at `database`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Settings,
    database_path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cache = cache_redis::open(settings).await?;
    let pool = database(database_path).await?;
    let app = App {
        repo: Repo { pool, cache },
        metrics: prometheus()?,
    };
    axum::serve(listener, router(app)).await?;
    Ok(())
}

#[allow(dead_code)] // the integration test includes this file and calls `serve` itself
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let settings = Settings::from_env("APP_CACHE_")?;
    let database = std::env::var_os("APP_DATABASE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sqlx-cache-axum-example.db"));
    let addr: SocketAddr = std::env::var("APP_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // Not the URL: it may hold a password.
    let cache = if settings.redis_url.is_some() {
        "Redis, from APP_CACHE_REDIS_URL"
    } else {
        "in memory"
    };
    println!(
        "listening on http://{addr} (cache: {cache}; database: {})",
        database.display()
    );
    println!(
        "try: curl -i http://{addr}/authors/1  (twice: the second has Cache-Status: sqlx-cache; hit)"
    );
    serve(listener, settings, &database).await
}
