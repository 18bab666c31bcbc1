//! The Redis backend against real servers: the backend conformance suite, app instances
//! sharing entries and invalidations over one SQLite database (two caches with their own
//! connections in one process, and two OS processes), corrupt entries, and outages of a
//! `redis-server` each outage test starts on a free port of its own.
//!
//! The shared server comes from `REDIS_URL` (e.g. `redis://127.0.0.1:6379`). Without it the
//! tests print `skipped: REDIS_URL not set` and pass, except under `CI=true`, where that
//! fails them; a server that is set but unreachable always fails them. Every test uses its
//! own namespace and deletes its keys at the end, so concurrent runs never interfere. The
//! outage tests also need `redis-server` on the `PATH`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::backend::{Backend, SharedBackend, conformance};
use cache_runtime::{Cache, KeyScope, Settings, Ttl, cached, invalidates};
use cache_suite::{TempDb, database_url, in_ci, unique_suffix};
use sqlx::SqlitePool;

const REDIS_URL: &str = "REDIS_URL";

// ----- helpers -----

async fn connect(url: &str) -> RedisBackend {
    RedisBackend::connect(url, RedisOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{REDIS_URL} is set but {url} cannot be reached: {e}"))
}

fn namespace(test: &str) -> String {
    format!("cache-suite-{test}-{}", unique_suffix())
}

fn settings(namespace: &str) -> Settings {
    Settings {
        namespace: namespace.to_owned(),
        ..Settings::default()
    }
}

/// Deletes every key of the namespace (entries, versions, tracking sets).
async fn clean_up(url: &str, namespace: &str) {
    if let Ok(backend) = RedisBackend::connect(url, RedisOptions::default()).await {
        let _ = backend.clear_prefix(&format!("{namespace}:")).await;
    }
}

/// A pool on the database file: every app instance opens its own.
async fn open(path: &Path) -> SqlitePool {
    cache_suite::open_sqlite(path, 2).await
}

/// A fresh database file with the `users` table, and a pool on it.
async fn users_db() -> (TempDb, SqlitePool) {
    let db = TempDb::new();
    let pool = open(db.path()).await;
    create_schema(&pool).await;
    (db, pool)
}

async fn create_schema(pool: &SqlitePool) {
    for sql in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace')",
    ] {
        sqlx::query(sql).execute(pool).await.expect("schema");
    }
}

#[cached(table = "users", ttl = true)]
async fn user_name(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[invalidates(tables = ["users"])]
async fn rename(cache: &Cache, pool: &SqlitePool, id: i64, name: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

async fn name_of(cache: &Cache, pool: &SqlitePool) -> String {
    user_name(cache, pool, 1)
        .await
        .expect("the query succeeds")
        .expect("user 1 exists")
}

// ----- conformance -----

#[tokio::test]
async fn redis_backend_passes_the_conformance_suite() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(url) = database_url(REDIS_URL) else {
        return;
    };
    let ns = namespace("conformance");
    conformance::run_shared(&ns, || connect(&url)).await;
    clean_up(&url, &ns).await;
}

// ----- app instances sharing one Redis -----

/// Invariant 1 across instances: two caches with their own connections (as two app
/// processes have) over one Redis and one database. A write through A makes B's cached read
/// stale at once.
#[tokio::test]
async fn a_write_through_one_instance_invalidates_reads_on_another() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(url) = database_url(REDIS_URL) else {
        return;
    };
    let ns = namespace("instances");
    let (db, pool_a) = users_db().await;
    let pool_b = open(db.path()).await;
    let a = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();
    let b = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();

    assert_eq!(name_of(&b, &pool_b).await, "ada");
    assert_eq!(name_of(&b, &pool_b).await, "ada");
    assert_eq!(b.stats().hits, 1, "B caches its read");
    assert_eq!(name_of(&a, &pool_a).await, "ada");
    assert_eq!(
        (a.stats().hits, a.stats().loads),
        (1, 0),
        "A is served B's entry"
    );

    assert_eq!(rename(&a, &pool_a, 1, "lovelace").await.unwrap(), 1);
    assert_eq!(
        name_of(&b, &pool_b).await,
        "lovelace",
        "B must not serve its entry from before A's write"
    );
    assert_eq!(name_of(&a, &pool_a).await, "lovelace");
    for cache in [&a, &b] {
        let stats = cache.stats();
        assert_eq!(
            (stats.backend_errors, stats.decode_errors),
            (0, 0),
            "{stats:?}"
        );
    }
    clean_up(&url, &ns).await;
}

/// The read-time check, against Redis: an entry tagged before a write is a miss even when
/// its bytes arrive after the write (a late write that skipped the store-time check).
#[tokio::test]
async fn an_entry_tagged_before_a_write_is_a_miss_whenever_it_arrives() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(url) = database_url(REDIS_URL) else {
        return;
    };
    let ns = namespace("late-entry");
    let (_db, pool) = users_db().await;
    let raw = connect(&url).await;
    let a = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();
    let b = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();

    let (name, key) = name_by_id(&b, &pool).await;
    assert_eq!(name, "ada");
    let old = raw.get(&key).await.unwrap().expect("B stored its read");
    rename(&a, &pool, 1, "lovelace").await.unwrap();
    raw.set(&key, old, None).await.unwrap();
    assert_eq!(name_by_id(&b, &pool).await.0, "lovelace");
    assert_eq!(b.stats().stale, 1);
    clean_up(&url, &ns).await;
}

/// Corrupt or foreign bytes under a real entry key are a miss, counted, and replaced.
#[tokio::test]
async fn garbage_under_an_entry_key_is_a_miss_and_is_replaced() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(url) = database_url(REDIS_URL) else {
        return;
    };
    let ns = namespace("garbage");
    let (_db, pool) = users_db().await;
    let raw = connect(&url).await;
    let cache = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();

    let (name, key) = name_by_id(&cache, &pool).await;
    assert_eq!(name, "ada");
    raw.set(&key, b"\xc1 certainly not msgpack".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(name_by_id(&cache, &pool).await.0, "ada");
    assert_eq!(cache.stats().decode_errors, 1);
    let replaced = raw.get(&key).await.unwrap().expect("a fresh entry");
    assert!(!replaced.starts_with(b"\xc1"), "the garbage was replaced");
    assert_eq!(name_by_id(&cache, &pool).await.0, "ada");
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.loads, stats.backend_errors),
        (1, 2, 0),
        "{stats:?}"
    );
    clean_up(&url, &ns).await;
}

static NAME_BY_ID: KeyScope = KeyScope::new("tests::redis::name_by_id");

/// `user_name` written out with `Cache::get_or_load`, so the test knows the entry's key.
async fn name_by_id(cache: &Cache, pool: &SqlitePool) -> (String, String) {
    let key = cache.key(&NAME_BY_ID, &1_i64).expect("an i64 key");
    let name = cache
        .get_or_load(key, &["users"], Ttl::Forever, || async {
            sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = 1")
                .fetch_one(pool)
                .await
        })
        .await
        .expect("the query succeeds");
    (name, format!("{}:{key}", cache.settings().namespace))
}

// ----- two OS processes -----

/// Set in the environment of the app instances `two_processes_share_entries_and_invalidations`
/// spawns: `{redis url}\t{database path}\t{namespace}`.
const INSTANCE_ENV: &str = "CACHE_SUITE_REDIS_INSTANCE";

/// Not a test of its own: the body of an app instance that
/// `two_processes_share_entries_and_invalidations` runs in a process of its own (this test
/// binary again, with `CACHE_SUITE_REDIS_INSTANCE` set). Without that variable it returns at
/// once. It answers commands on stdin (`read`, `rename NAME`) with `@@ ...` lines.
#[test]
fn redis_instance_process() {
    let Ok(spec) = std::env::var(INSTANCE_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\t').collect();
    let [url, path, ns] = parts[..] else {
        panic!("{INSTANCE_ENV} must be `url<TAB>database<TAB>namespace`, got {spec:?}");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (cache, pool) = rt.block_on(async {
        let cache = Cache::with_shared_backend(settings(ns), connect(url).await).unwrap();
        (cache, open(Path::new(path)).await)
    });
    println!("@@ ready");
    for line in std::io::stdin().lines() {
        let line = line.expect("stdin");
        let reply = rt.block_on(async {
            match line.split_once(' ').unwrap_or((line.as_str(), "")) {
                ("read", _) => {
                    let name = name_of(&cache, &pool).await;
                    let stats = cache.stats();
                    format!("{name} hits={} loads={}", stats.hits, stats.loads)
                }
                ("rename", name) => {
                    rename(&cache, &pool, 1, name).await.expect("UPDATE");
                    "renamed".to_owned()
                }
                (other, _) => panic!("unknown command {other:?}"),
            }
        });
        println!("@@ {reply}");
        std::io::stdout().flush().expect("stdout");
    }
}

/// An app instance in its own OS process, driven line by line.
struct Instance {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: std::sync::mpsc::Receiver<String>,
}

impl Instance {
    fn spawn(url: &str, db: &Path, ns: &str) -> Instance {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([
                "redis_instance_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INSTANCE_ENV, format!("{url}\t{}\t{ns}", db.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the test binary as an app instance");
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest prints `test redis_instance_process ... ` before the first reply,
                // on the same line.
                if let Some(at) = line.find("@@ ")
                    && tx.send(line[at + 3..].to_owned()).is_err()
                {
                    return;
                }
            }
        });
        let mut instance = Instance {
            stdin: child.stdin.take(),
            child,
            replies,
        };
        assert_eq!(instance.reply(), "ready");
        instance
    }

    fn reply(&mut self) -> String {
        self.replies
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("the app instance did not answer: {e}"))
    }

    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write to the app instance");
        stdin.flush().expect("flush");
        self.reply()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        drop(self.stdin.take()); // ends its command loop
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Invariant 1 across OS processes: two app instances, each a process with its own cache
/// and connections, over one Redis and one SQLite file.
#[test]
fn two_processes_share_entries_and_invalidations() {
    let Some(url) = database_url(REDIS_URL) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let ns = namespace("processes");
    let db = TempDb::new();
    rt.block_on(async { create_schema(&open(db.path()).await).await });

    let mut a = Instance::spawn(&url, db.path(), &ns);
    let mut b = Instance::spawn(&url, db.path(), &ns);
    assert_eq!(b.ask("read"), "ada hits=0 loads=1");
    assert_eq!(b.ask("read"), "ada hits=1 loads=1", "B caches its read");
    assert_eq!(
        a.ask("read"),
        "ada hits=1 loads=0",
        "A (another process) is served B's entry"
    );
    assert_eq!(a.ask("rename lovelace"), "renamed");
    assert_eq!(
        b.ask("read"),
        "lovelace hits=1 loads=2",
        "B must not serve its entry from before A's write"
    );
    assert_eq!(b.ask("read"), "lovelace hits=2 loads=2");
    drop((a, b));
    rt.block_on(clean_up(&url, &ns));
}

// ----- outages of a server of our own -----

/// A `redis-server` on a free port, in a directory of its own; killed and deleted on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// A running server, or `None` (after printing why) when `redis-server` is missing
    /// outside CI.
    fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(!in_ci(), "redis-server is not on the PATH, and CI=true");
            println!("skipped: redis-server not on the PATH");
            return None;
        }
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("cache_suite_redis_{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("a directory for the server");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.launch();
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port (again), loading `dump.rdb` from its directory if an
    /// earlier `shutdown_save` left one, and waits until it answers `PING`.
    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Kills the server (SIGKILL): its data is gone, as after a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Saves the data to `dump.rdb` and stops, so `launch` brings it back.
    fn shutdown_save(&mut self) {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        stream.write_all(b"SHUTDOWN SAVE\r\n").expect("SHUTDOWN");
        if let Some(mut child) = self.child.take() {
            child.wait().expect("redis-server exits");
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads until the cache serves a hit again, returning how long that took.
async fn until_hits_resume(cache: &Cache, pool: &SqlitePool, expected: &str) -> Duration {
    let start = Instant::now();
    let hits = cache.stats().hits;
    loop {
        assert_eq!(name_of(cache, pool).await, expected);
        if cache.stats().hits > hits {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no hit within 10 s of Redis coming back: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Invariant 3: with Redis killed, every call still succeeds (running the query), quickly,
/// and counts the fault; writes still invalidate; once Redis is back on the same port the
/// cache recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_every_call_succeeds_and_hits_resume_after_a_restart() {
    let _alone = cache_suite::one_at_a_time().await;
    if database_url(REDIS_URL).is_none() {
        return;
    }
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let ns = namespace("outage");
    let (_db, pool) = users_db().await;
    let backend = RedisBackend::connect(&server.url(), RedisOptions::default())
        .await
        .expect("our redis-server answers");
    let cache = Cache::with_shared_backend(settings(&ns), backend).unwrap();
    for _ in 0..5 {
        assert_eq!(name_of(&cache, &pool).await, "ada");
    }
    assert_eq!(cache.stats().hits, 4);

    server.kill();
    let before = cache.stats();
    let (mut slowest, mut total, mut calls) = (Duration::ZERO, Duration::ZERO, 0_u32);
    let mut expected = "ada".to_owned();
    for i in 0..40 {
        let start = Instant::now();
        if i % 10 == 5 {
            expected = format!("name {i}");
            assert_eq!(rename(&cache, &pool, 1, &expected).await.unwrap(), 1);
        } else {
            assert_eq!(
                name_of(&cache, &pool).await,
                expected,
                "with Redis down a read runs the query and sees the latest write"
            );
        }
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "a call took {took:?} with Redis down"
        );
        slowest = slowest.max(took);
        total += took;
        calls += 1;
    }
    let down = cache.stats();
    assert!(
        down.backend_errors > before.backend_errors,
        "the outage is counted: {down:?}"
    );
    assert_eq!(
        down.hits, before.hits,
        "nothing is served while Redis is down"
    );

    server.launch();
    let recovered = until_hits_resume(&cache, &pool, &expected).await;
    println!(
        "outage: {calls} calls with Redis killed: slowest {slowest:?}, mean {:?}, {} backend \
         errors; first hit {recovered:?} after the restart",
        total / calls,
        down.backend_errors - before.backend_errors
    );
    drop(server);
}

/// Invariant 3 with a server that hangs instead of refusing (SIGSTOP): every call is
/// bounded by the timeout, and hits resume when it wakes (SIGCONT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_each_call_at_most_about_the_timeout() {
    let _alone = cache_suite::one_at_a_time().await;
    if database_url(REDIS_URL).is_none() {
        return;
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ns = namespace("hung");
    let (_db, pool) = users_db().await;
    let options = RedisOptions::default().timeout(Duration::from_millis(250));
    let backend = RedisBackend::connect(&server.url(), options)
        .await
        .expect("our redis-server answers");
    let cache = Cache::with_shared_backend(settings(&ns), backend).unwrap();
    assert_eq!(name_of(&cache, &pool).await, "ada");
    assert_eq!(name_of(&cache, &pool).await, "ada");

    server.signal("STOP");
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        assert_eq!(name_of(&cache, &pool).await, "ada");
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "a call took {took:?} with Redis hung (timeout 250 ms)"
        );
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let errors = cache.stats().backend_errors;
    assert!(errors > 0, "the hang is counted");
    server.signal("CONT");
    let recovered = until_hits_resume(&cache, &pool, "ada").await;
    println!(
        "hung Redis: 20 calls, slowest {slowest:?}, {errors} backend errors; first hit \
         {recovered:?} after it woke"
    );
}

/// An invalidation whose bump fails (Redis down while the write commits) is not lost: the
/// writing instance serves nothing from Redis until it has delivered it, and delivers it
/// before its first operation once Redis is back, after which the other instances see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_made_while_redis_is_down_reaches_other_instances_when_it_is_back() {
    let _alone = cache_suite::one_at_a_time().await;
    if database_url(REDIS_URL).is_none() {
        return;
    }
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let ns = namespace("missed-bump");
    let (db, pool_a) = users_db().await;
    let pool_b = open(db.path()).await;
    let url = server.url();
    let a = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();
    let b = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();
    assert_eq!(name_of(&b, &pool_b).await, "ada");
    assert_eq!(name_of(&a, &pool_a).await, "ada");

    // Redis goes down (keeping its data, as a restart with persistence does); A writes.
    server.shutdown_save();
    assert_eq!(rename(&a, &pool_a, 1, "lovelace").await.unwrap(), 1);
    assert!(a.stats().backend_errors > 0, "the failed bump is counted");
    assert_eq!(name_of(&a, &pool_a).await, "lovelace");

    // Back with the data of before the write: B's entry and the old version. The server's
    // new run id makes every entry from before stale, for B as for A, and A delivers its
    // bump in the background.
    server.launch();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            name_of(&b, &pool_b).await,
            "lovelace",
            "B never serves the old entry"
        );
        assert_eq!(name_of(&a, &pool_a).await, "lovelace");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.stats().hits > 1, "B serves hits again: {:?}", b.stats());
    drop(server);
}

/// Foreign values under the version and tracking keys (a string where a sorted set belongs,
/// text where a number belongs) are replaced, not errors: reads stay correct and caching
/// resumes.
#[tokio::test]
async fn foreign_values_under_version_and_tracking_keys_are_replaced() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(url) = database_url(REDIS_URL) else {
        return;
    };
    let ns = namespace("foreign");
    let (_db, pool) = users_db().await;
    let raw = connect(&url).await;
    let cache = Cache::with_shared_backend(settings(&ns), connect(&url).await).unwrap();
    raw.set(&format!("{{{ns}}}:v"), b"not a hash".to_vec(), None)
        .await
        .unwrap();
    raw.set(
        &format!("{{{ns}:k:users}}"),
        b"not a sorted set".to_vec(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(name_of(&cache, &pool).await, "ada");
    assert_eq!(name_of(&cache, &pool).await, "ada");
    assert_eq!(raw.tracked(&ns, "users").await.unwrap(), 1);
    rename(&cache, &pool, 1, "lovelace").await.unwrap();
    assert_eq!(name_of(&cache, &pool).await, "lovelace");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HSET")
        .arg(format!("{{{ns}}}:v"))
        .arg("users")
        .arg("99999999999999999999999")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    rename(&cache, &pool, 1, "ada").await.unwrap();
    assert_eq!(name_of(&cache, &pool).await, "ada");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.backend_errors), (1, 0), "{stats:?}");
    clean_up(&url, &ns).await;
}
