//! The multi-process freshness checker: one writer process and several reader processes
//! share one SQLite database and one Redis (a private `redis-server`, or a Cluster), each
//! with a cache of its own over the Redis backend.
//!
//! The writer increments a counter through an `#[invalidates]` function and, once the call
//! has returned, publishes the value it wrote. A reader notes the latest published value,
//! then reads the counter through a `#[cached(ttl = true)]` function: a result below the
//! noted value is a **stale read** (a read that started after a write completed and did not
//! see it). A call that returns an error is a **failed call**. Both must be 0 under every
//! fault a scenario injects while the processes run.
//!
//! The children are this test binary run again with `CHECKER_ROLE` set (see
//! [`checker_child`]); faults are driven by the test that spawned them, through the server
//! processes, raw Redis commands and a [`Proxy`] in front of the server.

// Two test crates include this module, and each uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::{Cache, Settings, cached, invalidates};
use cache_suite::{TempDb, in_ci, unique_suffix};
use sqlx::SqlitePool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLE: &str = "CHECKER_ROLE";

// ----- the children -----

/// The counter, read under one of [`KEYS`] keys (`slot` is part of the key): a fault must
/// not be healed by one key being read again during it.
#[cached(table = "counter", ttl = true)]
pub async fn counter(cache: &Cache, pool: &SqlitePool, slot: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT n FROM counter WHERE id = 1 AND ? >= 0")
        .bind(slot)
        .fetch_one(pool)
        .await
}

/// Readers read one of [`HOT`] keys every other read (hits), and otherwise one of [`COLD`]
/// keys at random: most of those are not read again while a fault lasts, so a stale entry
/// left on one is not overwritten by a reload before it is served.
const HOT: u64 = 4;
/// The end of a run in which readers count their hits apart: hits must have resumed
/// after every fault.
const LATE: Duration = Duration::from_millis(700);
const COLD: u64 = 256;

/// The key of a reader's `ops`-th read.
fn slot(ops: u64, random: &mut u64) -> i64 {
    // xorshift64
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    let slot = if ops.is_multiple_of(2) {
        ops / 2 % HOT
    } else {
        HOT + *random % COLD
    };
    i64::try_from(slot).unwrap_or(0)
}

#[invalidates(tables = ["counter"])]
pub async fn increment(cache: &Cache, pool: &SqlitePool) -> sqlx::Result<i64> {
    sqlx::query_scalar("UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING n")
        .fetch_one(pool)
        .await
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for checker children"))
}

fn env_ms(name: &str) -> Duration {
    Duration::from_millis(env(name).parse().expect("a number of milliseconds"))
}

/// The latest value the writer published, 0 before the first.
fn published(mark: &Path) -> i64 {
    std::fs::read_to_string(mark)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch: the one clock the processes share.
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn publish(mark: &Path, n: i64) {
    let tmp = mark.with_extension("tmp");
    std::fs::write(&tmp, n.to_string()).expect("write the mark");
    std::fs::rename(&tmp, mark).expect("publish the mark");
}

/// A checker process: does nothing unless `CHECKER_ROLE` is set (as it is for the children
/// the scenarios spawn).
#[test]
fn checker_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let line = rt.block_on(async {
        let options = RedisOptions::default().timeout(env_ms("CHECKER_TIMEOUT_MS"));
        let url = env("CHECKER_URL");
        let backend = if std::env::var("CHECKER_CLUSTER").is_ok() {
            let nodes: Vec<&str> = url.split(',').collect();
            RedisBackend::connect_cluster(&nodes, options)
                .await
                .expect("the Cluster answers")
        } else {
            RedisBackend::connect_lazy(&url, options)
                .await
                .expect("a valid URL")
        };
        let settings = Settings {
            namespace: env("CHECKER_NS"),
            near_cache: std::env::var("CHECKER_NEAR").is_ok(),
            ..Settings::default()
        };
        // The window measurement: the writer writes every 1 ms and notes when each write
        // returned; readers read one key as fast as they can and note when they first saw
        // each value.
        let window = std::env::var("CHECKER_WINDOW").is_ok();
        let mut times: Vec<(i64, u128)> = Vec::new();
        let mut seen = 0_i64;
        let cache = Cache::with_shared_backend(settings, backend).expect("valid settings");
        let pool = cache_suite::open_sqlite(Path::new(&env("CHECKER_DB")), 2).await;
        let mark = PathBuf::from(env("CHECKER_MARK"));
        let run_for = env_ms("CHECKER_MS");
        let idle_after = env_ms("CHECKER_IDLE_AFTER_MS");
        // `CHECKER_WRITE_AT_MS`: write only at these times (ms from the start), if set.
        let mut plan: Vec<Duration> = std::env::var("CHECKER_WRITE_AT_MS")
            .ok()
            .map(|list| {
                list.split(',')
                    .map(|ms| Duration::from_millis(ms.parse().expect("milliseconds")))
                    .rev()
                    .collect()
            })
            .unwrap_or_default();
        let planned = !plan.is_empty();
        let start = Instant::now();
        let (mut ops, mut stale, mut failed) = (0_u64, 0_u64, 0_u64);
        let mut random = u64::from(std::process::id()) | 1;
        let mut late_hits = 0_u64;
        while start.elapsed() < run_for {
            if role == "writer" {
                let due = if planned {
                    plan.last().is_some_and(|at| start.elapsed() >= *at) && plan.pop().is_some()
                } else {
                    start.elapsed() < idle_after
                };
                if due {
                    match increment(&cache, &pool).await {
                        Ok(n) => {
                            publish(&mark, n);
                            if window {
                                times.push((n, now_ns()));
                            }
                        }
                        Err(e) => {
                            eprintln!("writer: {e}");
                            failed += 1;
                        }
                    }
                    ops += 1;
                }
                let pause = if window { 1 } else { 100 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            } else {
                let floor = published(&mark);
                let late = start.elapsed() + LATE > run_for;
                let hits = cache.stats().hits;
                let key = if window { 0 } else { slot(ops, &mut random) };
                let read = counter(&cache, &pool, key).await;
                if let (true, Ok(n)) = (window, &read)
                    && *n > seen
                {
                    let at = now_ns();
                    times.extend((seen + 1..=*n).map(|i| (i, at)));
                    seen = *n;
                }
                match read {
                    Ok(n) if n < floor => stale += 1,
                    Ok(_) => {
                        if late && cache.stats().hits > hits {
                            late_hits += 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("reader: {e}");
                        failed += 1;
                    }
                }
                ops += 1;
                if window {
                    // Let the push subscription (on this runtime) run between reads.
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        if window {
            let lines: String = times.iter().map(|(n, at)| format!("{n} {at}\n")).collect();
            let file = mark.with_extension(format!("{role}-{}", std::process::id()));
            std::fs::write(file, lines).expect("write the times");
        }
        let stats = cache.stats();
        format!(
            "CHECKER role={role} ops={ops} stale={stale} failed={failed} hits={} \
             late_hits={late_hits} backend_errors={}",
            stats.hits, stats.backend_errors
        )
    });
    println!("{line}");
}

// ----- the scenario side -----

/// What one scenario's processes did, summed over the readers (and the writer's calls).
#[derive(Debug, Default)]
pub struct Report {
    pub ops: u64,
    pub stale: u64,
    pub failed: u64,
    pub reader_hits: u64,
    /// Reader hits in the last [`LATE`] of the run, after the fault.
    pub late_hits: u64,
    pub backend_errors: u64,
}

/// A SQLite database with the counter at 0, and a pool on it.
pub async fn counter_db() -> (TempDb, SqlitePool) {
    let db = TempDb::new();
    let pool = cache_suite::open_sqlite(db.path(), 2).await;
    for sql in [
        "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
        "INSERT INTO counter (id, n) VALUES (1, 0)",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("schema");
    }
    (db, pool)
}

/// One writer and `readers` readers running for `run_for`, over Redis at `url` (several
/// comma-separated nodes with `cluster`).
pub struct Run {
    /// The namespace the processes share.
    pub namespace: String,
    children: Vec<Child>,
    _db: TempDb,
    mark: PathBuf,
}

pub struct RunConfig<'a> {
    pub url: &'a str,
    pub cluster: bool,
    pub readers: usize,
    pub run_for: Duration,
    /// The writer stops writing after this long (it stays alive, idle).
    pub idle_after: Option<Duration>,
    /// The writer writes only at these times, if not empty.
    pub write_at: &'a [Duration],
    pub timeout: Duration,
    /// The caches are near caches (`Settings::near_cache`).
    pub near: bool,
    /// Measure the window (see [`Run::finish_window`]) instead of the usual mix.
    pub window: bool,
}

impl Run {
    pub async fn start(config: RunConfig<'_>) -> Run {
        let (db, pool) = counter_db().await;
        pool.close().await;
        let mark = db.path().with_extension("mark");
        let ns = format!("checker-{}", unique_suffix());
        let exe = std::env::current_exe().expect("the test binary's path");
        let ms = |d: Duration| d.as_millis().to_string();
        let children = std::iter::once("writer")
            .chain(std::iter::repeat_n("reader", config.readers))
            .map(|role| {
                let mut cmd = Command::new(&exe);
                cmd.args([
                    "checker::checker_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE, role)
                .env("CHECKER_URL", config.url)
                .env("CHECKER_DB", db.path())
                .env("CHECKER_NS", &ns)
                .env("CHECKER_MARK", &mark)
                .env("CHECKER_MS", ms(config.run_for))
                .env(
                    "CHECKER_IDLE_AFTER_MS",
                    ms(config.idle_after.unwrap_or(config.run_for)),
                )
                .env("CHECKER_TIMEOUT_MS", ms(config.timeout))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
                if config.cluster {
                    cmd.env("CHECKER_CLUSTER", "1");
                }
                if config.near {
                    cmd.env("CHECKER_NEAR", "1");
                }
                if config.window {
                    cmd.env("CHECKER_WINDOW", "1");
                }
                if !config.write_at.is_empty() {
                    let plan: Vec<String> = config.write_at.iter().map(|d| ms(*d)).collect();
                    cmd.env("CHECKER_WRITE_AT_MS", plan.join(","));
                }
                cmd.spawn().expect("spawn a checker child")
            })
            .collect();
        Run {
            namespace: ns,
            children,
            _db: db,
            mark,
        }
    }

    /// [`Run::finish`] for a run with `window`, and for each write the writer completed
    /// (but the last 100 ms of them, which a reader may not have read again), how long
    /// after it returned the slowest reader first read its value: the longest another
    /// instance may have served the value before it. `None` for a write some reader never
    /// saw.
    pub fn finish_window(self, scenario: &str) -> (Report, Vec<Option<Duration>>) {
        let (mark, dir) = (self.mark.clone(), self.mark.parent().map(Path::to_owned));
        let report = self.finish(scenario);
        let stem = mark
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a mark name")
            .to_owned();
        let mut writes = Vec::new();
        let mut readers: Vec<std::collections::HashMap<i64, u128>> = Vec::new();
        for entry in std::fs::read_dir(dir.expect("a directory")).expect("list the times") {
            let path = entry.expect("an entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let Some(rest) = name.strip_prefix(&format!("{stem}.")) else {
                continue;
            };
            let times: Vec<(i64, u128)> = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let (n, at) = l.split_once(' ')?;
                    Some((n.parse().ok()?, at.parse().ok()?))
                })
                .collect();
            if rest.starts_with("writer-") {
                writes = times;
            } else if rest.starts_with("reader-") {
                readers.push(times.into_iter().collect());
            } else {
                continue;
            }
            let _ = std::fs::remove_file(&path);
        }
        let last = writes.iter().map(|(_, at)| *at).max().unwrap_or(0);
        let windows = writes
            .iter()
            .filter(|(_, at)| *at + 100_000_000 < last)
            .map(|(n, at)| {
                let mut worst = Duration::ZERO;
                for reader in &readers {
                    let seen = reader.get(n)?;
                    let late = seen.saturating_sub(*at);
                    worst = worst.max(Duration::from_nanos(
                        u64::try_from(late).unwrap_or(u64::MAX),
                    ));
                }
                Some(worst)
            })
            .collect();
        (report, windows)
    }

    /// Waits for every child and sums what they report; prints one line for `scenario`.
    pub fn finish(self, scenario: &str) -> Report {
        let mut report = Report::default();
        for mut child in self.children {
            let stdout = child.stdout.take().expect("piped stdout");
            // Read to the end: a child writing into a closed pipe would fail.
            let lines: Vec<String> = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect();
            let line = lines
                .iter()
                .find_map(|l| l.find("CHECKER ").map(|at| l[at..].to_owned()))
                .unwrap_or_else(|| panic!("{scenario}: a checker child reported nothing"));
            child.wait().expect("the child exits");
            let field = |name: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} in {line:?}"))
            };
            report.ops += field("ops");
            report.stale += field("stale");
            report.failed += field("failed");
            report.backend_errors += field("backend_errors");
            if line.contains("role=reader") {
                report.reader_hits += field("hits");
                report.late_hits += field("late_hits");
            }
        }
        let _ = std::fs::remove_file(&self.mark);
        println!(
            "checker {scenario:<28} operations {:>6}  stale reads {}  failed calls {}  \
             (reader hits {}, {} in the last 0.7 s; backend errors {})",
            report.ops,
            report.stale,
            report.failed,
            report.reader_hits,
            report.late_hits,
            report.backend_errors
        );
        report
    }
}

/// Asserts the checker's promise for `scenario`, and that hits resumed after the fault.
pub fn assert_fresh(scenario: &str, report: &Report) {
    assert_fresh_while_failing_closed(scenario, report);
    assert!(
        report.late_hits > 0,
        "{scenario}: hits must resume after the fault: {report:?}"
    );
}

/// Asserts the checker's promise for `scenario`, where the fault lasts to the end and the
/// backend may fail closed (serve no hit) while it does.
pub fn assert_fresh_while_failing_closed(scenario: &str, report: &Report) {
    assert_eq!(report.stale, 0, "{scenario}: stale reads: {report:?}");
    assert_eq!(report.failed, 0, "{scenario}: failed calls: {report:?}");
    assert!(
        report.reader_hits > 100,
        "{scenario}: the readers must be served from Redis for the check to mean anything: \
         {report:?}"
    );
}

// ----- servers -----

/// Whether `redis-server` can be run; outside CI, prints why a test skips.
pub fn redis_server_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found || !in_ci(),
        "redis-server is not on the PATH, and CI=true"
    );
    if !found {
        println!("skipped: redis-server not on the PATH");
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` of the test's own on a free port, in a directory of its own (where
/// `SAVE` writes `dump.rdb`, which a restart loads); killed and deleted on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("cache_suite_checker_{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("a directory for the server");
        let mut server = Server {
            child: None,
            port: free_port(),
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), loading `dump.rdb` if there is one.
    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for_ping(self.port);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// SIGKILL: whatever was not saved is lost, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        connection(&self.url()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Waits until the server on `port` answers `PING` (10 s at most).
pub fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_ping(port) {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

// ----- a TCP proxy that adds delay, cuts connections and fails over -----

/// A TCP proxy on a loopback port in front of a Redis server: it can add a constant delay
/// each way, cut every connection and refuse new ones (an outage), and point at another
/// server (a failover behind one address, as a Sentinel-aware proxy or a DNS name gives).
pub struct Proxy {
    pub port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    target: AtomicU16,
    delay_ms: AtomicU64,
    down: AtomicBool,
    /// Bumped to cut every open connection.
    cuts: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(ProxyState {
            target: AtomicU16::new(target),
            delay_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
            cuts: tokio::sync::watch::Sender::new(0),
        });
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    if state.down.load(Ordering::SeqCst) {
                        return;
                    }
                    let target = state.target.load(Ordering::SeqCst);
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    // Without it, Nagle's algorithm and delayed ACKs add 40 ms a round trip.
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let generation = *state.cuts.borrow();
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(
                        pump(cr, sw, Arc::clone(&state), generation),
                        pump(sr, cw, Arc::clone(&state), generation),
                    );
                });
            }
        });
        Proxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn delay(&self, each_way: Duration) {
        let ms = u64::try_from(each_way.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Cuts every connection; with `down`, refuses new ones until `up`.
    pub fn cut(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
        self.state.cuts.send_modify(|g| *g += 1);
    }

    pub fn up(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Points new connections at `port` and cuts the open ones.
    pub fn retarget(&self, port: u16) {
        self.state.target.store(port, Ordering::SeqCst);
        self.cut(false);
    }
}

/// Copies one direction, each chunk delayed by the proxy's delay from when it was read (a
/// constant delay keeps the order), until either side closes or the proxy cuts.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<ProxyState>,
    generation: u64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut cut_reader = state.cuts.subscribe();
    let mut cut_writer = state.cuts.subscribe();
    let reader = async move {
        let mut buf = vec![0_u8; 64 << 10];
        loop {
            tokio::select! {
                read = from.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                },
                () = cut(&mut cut_reader, generation) => return,
            }
        }
    };
    let writer = async move {
        loop {
            tokio::select! {
                next = rx.recv() => {
                    let Some((read_at, chunk)) = next else { return };
                    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
                    if !delay.is_zero() {
                        tokio::time::sleep_until((read_at + delay).into()).await;
                    }
                    let cut = *state.cuts.borrow() != generation;
                    if cut || to.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                () = cut(&mut cut_writer, generation) => return,
            }
        }
    };
    tokio::join!(reader, writer);
}

/// Returns once the proxy's cut generation is no longer `generation`.
async fn cut(cuts: &mut tokio::sync::watch::Receiver<u64>, generation: u64) {
    while *cuts.borrow_and_update() == generation {
        if cuts.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
