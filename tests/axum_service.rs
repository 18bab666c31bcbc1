//! Starts the service of `examples/axum.rs` and drives it over HTTP: the `Cache-Status`
//! header follows hits, misses and a write in the cache's `Transaction`; `/stats` is JSON
//! with per-function counters; `/metrics` is Prometheus text. Once with the in-memory
//! cache, once through Redis (`REDIS_URL`) from the settings' `redis_url`.

#[allow(dead_code, unused_imports)]
#[path = "../examples/axum.rs"]
mod service;

use std::time::Duration;

use cache_runtime::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange on a new connection: status, headers (lower-case names), body.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the service answers")
        .expect("read");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The read after a write ran its query: `fwd=stale` when the old entry was found and
/// refused, `fwd=miss` when the invalidation had already deleted it.
fn assert_forwarded(headers: &[(String, String)]) {
    let status = header(headers, "cache-status");
    assert!(
        matches!(
            status,
            Some("sqlx-cache; fwd=stale" | "sqlx-cache; fwd=miss")
        ),
        "{status:?}"
    );
}

async fn start(settings: Settings) -> (std::net::SocketAddr, cache_suite::TempDb) {
    let db = cache_suite::TempDb::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("address");
    let path = db.path().to_owned();
    tokio::spawn(async move {
        if let Err(e) = service::serve(listener, settings, &path).await {
            panic!("the service stopped: {e}");
        }
    });
    (addr, db)
}

async fn drive(addr: std::net::SocketAddr) {
    // A read by id: a miss, then a hit.
    let (status, headers, body) = request(addr, "GET", "/authors/1", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "cache-status"),
        Some("sqlx-cache; fwd=miss")
    );
    let author: service::Author = serde_json::from_str(&body).expect("an author");
    assert_eq!((author.name.as_str(), author.posts), ("Ada", 0));
    let (_, headers, _) = request(addr, "GET", "/authors/1", None).await;
    assert_eq!(header(&headers, "cache-status"), Some("sqlx-cache; hit"));

    // A filter struct as the key: another filter, another entry.
    let (_, headers, body) = request(addr, "GET", "/authors?city=London", None).await;
    assert_eq!(
        header(&headers, "cache-status"),
        Some("sqlx-cache; fwd=miss")
    );
    assert!(body.contains("Ada") && !body.contains("Grace"), "{body}");
    let (_, headers, _) = request(addr, "GET", "/authors?city=London", None).await;
    assert_eq!(header(&headers, "cache-status"), Some("sqlx-cache; hit"));
    let (_, headers, body) = request(addr, "GET", "/authors?city=Austin", None).await;
    assert_eq!(
        header(&headers, "cache-status"),
        Some("sqlx-cache; fwd=miss")
    );
    assert!(body.contains("Edsger"), "{body}");

    // The join, cached.
    let (_, _, body) = request(addr, "GET", "/feed", None).await;
    assert_eq!(body, "[]");
    let (_, headers, _) = request(addr, "GET", "/feed", None).await;
    assert_eq!(header(&headers, "cache-status"), Some("sqlx-cache; hit"));

    // A write in the cache's transaction: both tables invalidated after COMMIT.
    let (status, _, body) = request(
        addr,
        "POST",
        "/authors/1/posts",
        Some(r#"{"title":"Notes on the Analytical Engine"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, headers, body) = request(addr, "GET", "/authors/1", None).await;
    assert_forwarded(&headers);
    let author: service::Author = serde_json::from_str(&body).expect("an author");
    assert_eq!(author.posts, 1, "the write is seen");
    let (_, headers, body) = request(addr, "GET", "/feed", None).await;
    assert_forwarded(&headers);
    assert!(
        body.contains("Analytical Engine") && body.contains("Ada"),
        "{body}"
    );
    // A rolled-back write (no such author) invalidates nothing.
    let (status, _, _) = request(addr, "POST", "/authors/99/posts", Some(r#"{"title":"x"}"#)).await;
    assert_eq!(status, 404);
    let (_, headers, _) = request(addr, "GET", "/feed", None).await;
    assert_eq!(header(&headers, "cache-status"), Some("sqlx-cache; hit"));

    // `/stats`: totals and per-function counters.
    let (status, headers, body) = request(addr, "GET", "/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-status"),
        None,
        "no cached read, no header"
    );
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        stats["totals"]["hits"].as_u64().expect("hits") >= 4,
        "{stats}"
    );
    let functions = stats["functions"].as_array().expect("functions");
    let author = functions
        .iter()
        .find(|f| {
            f["function"]
                .as_str()
                .is_some_and(|n| n.ends_with("Repo::author"))
        })
        .unwrap_or_else(|| panic!("Repo::author in {stats}"));
    assert_eq!(
        (author["hits"].as_u64(), author["misses"].as_u64()),
        (Some(1), Some(2))
    );

    // `/metrics`: Prometheus text with the documented names.
    let (status, _, body) = request(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    for name in [
        "sqlx_cache_hits_total",
        "sqlx_cache_calls_total",
        "sqlx_cache_load_duration_seconds",
        "sqlx_cache_invalidations_total",
        "sqlx_cache_lease_waits_total",
        "sqlx_cache_entries",
    ] {
        assert!(body.contains(name), "{name} in\n{body}");
    }
    assert!(body.contains(r#"outcome="hit""#), "{body}");
    assert!(body.contains(r#"table="authors""#), "{body}");
}

/// Both runs in one test: the Prometheus recorder and invalidation are process-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_service_serves_and_reports_its_cache() {
    let memory = Settings {
        namespace: format!("axum-{}", cache_suite::unique_suffix()),
        ..Settings::default()
    };
    let (addr, _db) = start(memory).await;
    drive(addr).await;

    let Some(url) = cache_suite::database_url("REDIS_URL") else {
        return;
    };
    let shared = Settings {
        namespace: format!("axum-{}", cache_suite::unique_suffix()),
        redis_url: Some(url),
        ..Settings::default()
    };
    let (addr, _db) = start(shared).await;
    drive(addr).await;
}
