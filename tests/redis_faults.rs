//! The Redis backend under the faults real deployments have, checked by the multi-process
//! freshness checker (`tests/checker`): one writer and two reader processes over a private
//! `redis-server` each scenario starts, with a SQLite database. Every scenario injects its
//! fault while the processes run and requires 0 stale reads and 0 failed calls, with the
//! readers served from Redis before and after the fault.
//!
//! Each scenario prints one line (`cargo test --test redis_faults -- --nocapture`):
//! operations, stale reads, failed calls. They need `redis-server` on the `PATH` and
//! `REDIS_URL` set (the switch every Redis test uses); without either they skip, except
//! under `CI=true`.

mod checker;

use std::time::Duration;

use checker::{
    Proxy, Run, RunConfig, Server, assert_fresh, assert_fresh_while_failing_closed,
    redis_server_available,
};
use tokio::time::sleep;

/// How long each scenario's processes run, and when the fault comes.
const RUN_FOR: Duration = Duration::from_millis(4500);
const FAULT_AT: Duration = Duration::from_millis(1500);
const TIMEOUT: Duration = Duration::from_millis(250);

/// One scenario at a time (they share the machine's cores and time), and only when the
/// Redis tests are enabled.
async fn begin() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    let alone = cache_suite::one_at_a_time().await;
    (cache_suite::database_url("REDIS_URL").is_some() && redis_server_available()).then_some(alone)
}

fn config(url: &str) -> RunConfig<'_> {
    RunConfig {
        url,
        cluster: false,
        readers: 2,
        run_for: RUN_FOR,
        idle_after: None,
        write_at: &[],
        timeout: TIMEOUT,
        near: false,
        window: false,
    }
}

/// The writer writes until 200 ms after the fault starts, then stays idle: nothing but the
/// backend can then heal state a fault rolled back.
fn idle_after_fault(url: &str) -> RunConfig<'_> {
    RunConfig {
        idle_after: Some(FAULT_AT + Duration::from_millis(200)),
        ..config(url)
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
    }
}

async fn cmd(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `SAVE`, more writes, `kill -9`, a restart from the snapshot: the server comes back with
/// the versions and entries of before those writes, which its new run id makes stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_a_snapshot() {
    let Some(_alone) = begin().await else {
        return;
    };
    let mut server = Server::start(&["--dbfilename", "dump.rdb"]);
    let url = server.url();
    let run = Run::start(idle_after_fault(&url)).await;
    sleep(FAULT_AT).await;
    cmd(&mut server.conn().await, &["SAVE"]).await;
    sleep(Duration::from_millis(300)).await;
    server.kill();
    server.launch();
    let report = run.finish("restart from a snapshot");
    assert_fresh("restart from a snapshot", &report);
}

/// The same with an append-only file that misses the last writes (a copy taken before
/// them: a backup, or what a machine crash leaves of an `everysec` file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_an_append_only_file() {
    let Some(_alone) = begin().await else {
        return;
    };
    let mut server = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = server.url();
    let run = Run::start(idle_after_fault(&url)).await;
    sleep(FAULT_AT).await;
    let aof = server.dir().join("appendonlydir");
    let backup = server.dir().join("backup");
    copy_dir(&aof, &backup);
    sleep(Duration::from_millis(300)).await;
    server.kill();
    std::fs::remove_dir_all(&aof).expect("remove the AOF");
    std::fs::rename(&backup, &aof).expect("restore the older AOF");
    server.launch();
    let report = run.finish("restart from an AOF");
    assert_fresh("restart from an AOF", &report);
}

/// A replica stops following its master (so it misses the writes after), the master dies,
/// and the replica is promoted behind the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_replica_that_missed_the_last_writes() {
    let Some(_alone) = begin().await else {
        return;
    };
    let mut master = Server::start(&[]);
    let replica = Server::start(&[]);
    let mut replica_conn = replica.conn().await;
    let port = master.port.to_string();
    cmd(&mut replica_conn, &["REPLICAOF", "127.0.0.1", &port]).await;
    let proxy = Proxy::start(master.port).await;
    let url = proxy.url();
    let run = Run::start(idle_after_fault(&url)).await;
    sleep(FAULT_AT).await;
    cmd(&mut replica_conn, &["REPLICAOF", "NO", "ONE"]).await;
    sleep(Duration::from_millis(300)).await;
    master.kill();
    proxy.retarget(replica.port);
    let report = run.finish("failover to a lagging replica");
    assert_fresh("failover to a lagging replica", &report);
}

/// Fills memory up to `maxmemory` under `policy`, then keeps writing junk so that the
/// server stays full (and, under an evicting policy, keeps evicting).
async fn fill_memory(server: &Server, policy: &str, volatile: bool, until: Duration) {
    let mut conn = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    let limit = (used + (512 << 10)).to_string();
    cmd(&mut conn, &["CONFIG", "SET", "maxmemory-policy", policy]).await;
    cmd(&mut conn, &["CONFIG", "SET", "maxmemory", &limit]).await;
    let junk = vec![b'x'; 4096];
    let start = std::time::Instant::now();
    let mut i = 0_u64;
    while start.elapsed() < until {
        let mut set = redis::cmd("SET");
        set.arg(format!("junk:{i}")).arg(&junk);
        if volatile {
            set.arg("EX").arg(3600);
        }
        // Refused once memory is full under noeviction: that is the point.
        let _ = set.query_async::<redis::Value>(&mut conn).await;
        i += 1;
        if i.is_multiple_of(64) {
            sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A run whose server reaches `maxmemory` under `policy` at the fault and stays full to
/// the end (`volatile`: the filler keys have a TTL, so they are what the policy evicts).
async fn full_memory(policy: &str, volatile: bool) -> checker::Report {
    let server = Server::start(&[]);
    let url = server.url();
    let run = Run::start(config(&url)).await;
    sleep(FAULT_AT).await;
    fill_memory(&server, policy, volatile, RUN_FOR - FAULT_AT).await;
    run.finish(&format!("full memory, {policy}"))
}

/// `maxmemory` reached under `noeviction`, to the end of the run: every write the cache
/// sends is refused, and invalidations still take effect (a version Redis will not
/// increment is deleted, and cannot be recreated: reads of that table are misses until
/// memory frees).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_memory_under_noeviction() {
    let Some(_alone) = begin().await else {
        return;
    };
    let report = full_memory("noeviction", false).await;
    assert_fresh_while_failing_closed("full memory, noeviction", &report);
}

/// Full memory under `allkeys-lru`: any key may be evicted, versions and epoch included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_memory_under_allkeys_lru() {
    let Some(_alone) = begin().await else {
        return;
    };
    let report = full_memory("allkeys-lru", false).await;
    assert_fresh("full memory, allkeys-lru", &report);
}

/// Full memory under `volatile-lru`: keys with a TTL are evicted, the rest is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_memory_under_volatile_lru() {
    let Some(_alone) = begin().await else {
        return;
    };
    let report = full_memory("volatile-lru", true).await;
    assert_fresh("full memory, volatile-lru", &report);
}

/// A network outage of 1.5 s (every connection cut, new ones refused; the server keeps its
/// data). The writer is quiet for a while before it (the readers fill their keys), writes
/// once during it, then stays idle: its undelivered invalidation must land in the
/// background, and no reader may serve the old entries meanwhile or after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_an_idle_writer() {
    let Some(_alone) = begin().await else {
        return;
    };
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port).await;
    let url = proxy.url();
    let plan: Vec<Duration> = [200, 400, 600, 800, 1800]
        .into_iter()
        .map(Duration::from_millis)
        .collect();
    let run = Run::start(RunConfig {
        run_for: RUN_FOR + Duration::from_secs(1),
        write_at: &plan,
        ..config(&url)
    })
    .await;
    sleep(FAULT_AT).await;
    proxy.cut(true);
    sleep(Duration::from_millis(1500)).await;
    proxy.up();
    let report = run.finish("outage, idle writer");
    assert_fresh("outage, idle writer", &report);
}

/// `FLUSHALL` while the processes run: versions and epoch are gone with the entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall() {
    let Some(_alone) = begin().await else {
        return;
    };
    let server = Server::start(&[]);
    let url = server.url();
    let run = Run::start(config(&url)).await;
    sleep(FAULT_AT).await;
    let mut conn = server.conn().await;
    for _ in 0..3 {
        cmd(&mut conn, &["FLUSHALL"]).await;
        sleep(Duration::from_millis(400)).await;
    }
    let report = run.finish("FLUSHALL");
    assert_fresh("FLUSHALL", &report);
}

/// The server frozen (SIGSTOP) for 2 s, then resumed: every operation meanwhile times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_for_two_seconds() {
    let Some(_alone) = begin().await else {
        return;
    };
    let server = Server::start(&[]);
    let url = server.url();
    let run = Run::start(RunConfig {
        run_for: RUN_FOR + Duration::from_millis(1500),
        ..config(&url)
    })
    .await;
    sleep(FAULT_AT).await;
    server.signal("STOP");
    sleep(Duration::from_secs(2)).await;
    server.signal("CONT");
    let report = run.finish("SIGSTOP for 2 s");
    assert_fresh("SIGSTOP for 2 s", &report);
}

/// A round trip close to the timeout (a proxy adding 124 ms each way, against 250 ms):
/// some operations time out, some just make it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_close_to_the_timeout() {
    let Some(_alone) = begin().await else {
        return;
    };
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port).await;
    let url = proxy.url();
    // A second more after the fault than the other scenarios: recovery (the backoff, then
    // the writers' next delivery) took up to 1.4 s here, close to the 0.7 s of late hits.
    let run = Run::start(RunConfig {
        run_for: RUN_FOR + Duration::from_secs(1),
        ..config(&url)
    })
    .await;
    sleep(FAULT_AT).await;
    proxy.delay(Duration::from_millis(124));
    sleep(Duration::from_millis(1500)).await;
    proxy.delay(Duration::ZERO);
    let report = run.finish("latency close to the timeout");
    assert_fresh("latency close to the timeout", &report);
}

/// An app instance started after a restart from a snapshot has seen no failure, so it
/// waits for no grace: only the epoch check keeps it from serving the entries the snapshot
/// brought back, which a write after the snapshot had invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_after_a_rollback_serves_nothing_from_before() {
    use cache_redis::{RedisBackend, RedisOptions};
    use cache_runtime::{Cache, KeyScope, Settings, Ttl};

    let Some(_alone) = begin().await else {
        return;
    };
    let mut server = Server::start(&["--dbfilename", "dump.rdb"]);
    let url = server.url();
    let settings = Settings {
        namespace: format!("rollback-{}", cache_suite::unique_suffix()),
        ..Settings::default()
    };
    let instance = |settings: Settings| {
        let url = url.clone();
        async move {
            let backend = RedisBackend::connect(&url, RedisOptions::default())
                .await
                .expect("Redis answers");
            Cache::with_shared_backend(settings, backend).expect("valid settings")
        }
    };
    static SCOPE: KeyScope = KeyScope::new("rollback");
    let read = |cache: Cache, value: u32| async move {
        let key = cache.key(&SCOPE, &"the key").expect("a key");
        let load = move || async move { Ok::<_, std::convert::Infallible>(value) };
        cache
            .get_or_load(key, &["t"], Ttl::Forever, load)
            .await
            .expect("infallible")
    };

    let before = instance(settings.clone()).await;
    assert_eq!(read(before.clone(), 1).await, 1, "loads and stores 1");
    assert_eq!(read(before.clone(), 99).await, 1, "a hit");
    cmd(&mut server.conn().await, &["SAVE"]).await;
    before.invalidate(&["t"]).await; // a write after the snapshot, delivered
    assert_eq!(read(before.clone(), 2).await, 2, "the write made 1 stale");
    server.kill();
    server.launch();

    let after = instance(settings).await;
    assert_eq!(
        read(after.clone(), 3).await,
        3,
        "the snapshot's entry (1) is stale: the server restarted, and its versions with it"
    );
    assert_eq!(read(after, 99).await, 3, "and caching resumes");
}

/// A value over `max_entry_bytes` is not sent (counted in `oversized`), and one slow
/// operation on a large value (here a 48 MiB `SET` against a 20 ms timeout) fails alone:
/// it travels on the bulk connection and never puts the backend in backoff, so other reads
/// keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_values_are_bounded_and_a_slow_one_fails_alone() {
    use cache_redis::{RedisBackend, RedisOptions};
    use cache_runtime::backend::Backend;
    use cache_runtime::{Cache, KeyScope, Settings, Ttl};

    let Some(_alone) = begin().await else {
        return;
    };
    let server = Server::start(&[]);
    let url = server.url();

    // The size bound.
    static SCOPE: KeyScope = KeyScope::new("big");
    let settings = Settings {
        namespace: format!("big-{}", cache_suite::unique_suffix()),
        max_entry_bytes: 1024,
        ..Settings::default()
    };
    let backend = RedisBackend::connect(&url, RedisOptions::default())
        .await
        .expect("Redis answers");
    let cache = Cache::with_shared_backend(settings, backend).expect("valid settings");
    for round in 0..2 {
        let key = cache.key(&SCOPE, &1_u8).expect("a key");
        let load = || async { Ok::<_, std::convert::Infallible>(vec![7_u8; 4096]) };
        let value = cache.get_or_load(key, &["t"], Ttl::Forever, load).await;
        assert_eq!(value.expect("infallible").len(), 4096, "round {round}");
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.oversized, stats.loads, stats.hits),
        (2, 2, 0),
        "{stats:?}"
    );

    // One slow operation.
    let options = RedisOptions::default().timeout(Duration::from_millis(20));
    let raw = RedisBackend::connect(&url, options)
        .await
        .expect("Redis answers");
    raw.set("small", b"v".to_vec(), None).await.expect("SET");
    let huge = raw.set("huge", vec![0_u8; 48 << 20], None);
    let reads = async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(200) {
            let small = raw.get("small").await;
            assert_eq!(
                small.expect("not backing off, not held up").as_deref(),
                Some(&b"v"[..])
            );
        }
    };
    let (slow, ()) = tokio::join!(huge, reads);
    assert!(slow.is_err(), "48 MiB within 20 ms: make the value larger");
}
