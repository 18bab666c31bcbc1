//! The Redis backend on a real Redis Cluster the test starts: 3 masters and 3 replicas of
//! `redis-server --cluster-enabled yes` on loopback ports, slots assigned by
//! `redis-cli --cluster create`. It runs the backend conformance suite, two caches sharing
//! entries and invalidations, a near cache fed by the Cluster's pushes (and its window,
//! measured with two processes), and the multi-process freshness checker
//! (`tests/checker`) through the failover of the master that holds the namespace's
//! versions.
//!
//! Needs `redis-server` and `redis-cli` on the `PATH` and `REDIS_URL` set (the switch every
//! Redis test uses); without them it skips, except under `CI=true`.

mod checker;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::backend::conformance;
use cache_runtime::{Cache, Settings};
use checker::{Run, RunConfig, Server, assert_fresh, counter, counter_db, increment};

/// Six nodes, three of them masters with a replica each; killed on drop.
struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        if cache_suite::database_url("REDIS_URL").is_none() || !checker::redis_server_available() {
            return None;
        }
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                Server::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica fails over however long ago it heard from its master: the
                    // scenario is a replica that missed the last writes.
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Cluster { nodes };
        cluster.wait_until_ok();
        Some(cluster)
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// Waits until every node says `cluster_state:ok` and every replica is in sync with
    /// its master (20 s at most).
    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ask = |port: u16, what: &[&str]| {
            let out = Command::new("redis-cli")
                .arg("-p")
                .arg(port.to_string())
                .args(what)
                .output()
                .expect("run redis-cli");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for node in &self.nodes {
            loop {
                let replication = ask(node.port, &["INFO", "replication"]);
                let synced = !replication.contains("role:slave")
                    || replication.contains("master_link_status:up");
                if synced && ask(node.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the Cluster is not ok after 20 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The node that is master of the slot `key` hashes to.
    fn master_of(&self, key: &str) -> usize {
        let port = self.nodes[0].port.to_string();
        let slot: u16 = String::from_utf8_lossy(
            &Command::new("redis-cli")
                .args(["-p", &port, "CLUSTER", "KEYSLOT", key])
                .output()
                .expect("run redis-cli")
                .stdout,
        )
        .trim()
        .parse()
        .expect("a slot");
        let nodes = Command::new("redis-cli")
            .args(["-p", &port, "CLUSTER", "NODES"])
            .output()
            .expect("run redis-cli");
        let nodes = String::from_utf8_lossy(&nodes.stdout);
        let owner = nodes
            .lines()
            .find(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(2).is_some_and(|f| f.contains("master"))
                    && fields[8..].iter().any(|range| {
                        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                        matches!((lo.parse::<u16>(), hi.parse::<u16>()),
                            (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
                    })
            })
            .expect("a master owns every slot");
        let port: u16 = owner
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.split('@').next()?.rsplit_once(':')?.1.parse().ok())
            .expect("the owner's port");
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("one of ours")
    }
}

async fn connect(urls: &[String]) -> RedisBackend {
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisBackend::connect_cluster(&nodes, RedisOptions::default())
        .await
        .expect("the Cluster answers")
}

/// One Cluster for the three checks (starting one takes seconds): the conformance suite,
/// two caches, then the failover, which changes the Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let urls = cluster.urls();

    // The conformance suite, every rule of a shared backend.
    let ns = conformance::unique_namespace("cluster-conformance");
    conformance::run_shared(&ns, || connect(&urls)).await;

    // Two caches with their own connections, as two app instances.
    let settings = Settings {
        namespace: conformance::unique_namespace("cluster-two"),
        ..Settings::default()
    };
    let a = Cache::with_shared_backend(settings.clone(), connect(&urls).await).unwrap();
    let b = Cache::with_shared_backend(settings, connect(&urls).await).unwrap();
    let (_db, pool) = counter_db().await;
    assert_eq!(counter(&a, &pool, 7).await.unwrap(), 0);
    assert_eq!(counter(&b, &pool, 7).await.unwrap(), 0);
    assert_eq!(b.stats().hits, 1, "B is served A's entry");
    assert_eq!(increment(&a, &pool).await.unwrap(), 1);
    assert_eq!(
        counter(&b, &pool, 7).await.unwrap(),
        1,
        "A's write reached B"
    );
    assert_eq!(counter(&a, &pool, 7).await.unwrap(), 1);
    assert_eq!(a.stats().hits, 1, "A is served B's new entry");

    // A near cache: in-process copies, invalidated by what any node publishes (the
    // subscription is on one node, the versions hash on whichever master owns its slot).
    let near_settings = Settings {
        namespace: conformance::unique_namespace("cluster-near"),
        near_cache: true,
        ..Settings::default()
    };
    let near = Cache::with_shared_backend(near_settings.clone(), connect(&urls).await)
        .expect("a near cache on a Cluster");
    let other = Cache::with_shared_backend(
        Settings {
            near_cache: false,
            ..near_settings.clone()
        },
        connect(&urls).await,
    )
    .expect("a strict cache");
    let (_near_db, near_pool) = counter_db().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while near.entry_count() != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the near cache never copied an entry"
        );
        counter(&near, &near_pool, 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another instance's write, as another process makes it: the database, then a bump
    // through its own backend (no in-process registry involved).
    sqlx::query("UPDATE counter SET n = 5 WHERE id = 1")
        .execute(&near_pool)
        .await
        .unwrap();
    let foreign = connect(&urls).await;
    cache_runtime::backend::SharedBackend::bump(&foreign, &near_settings.namespace, &["counter"])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while counter(&near, &near_pool, 1).await.unwrap() != 5 {
        assert!(
            Instant::now() < deadline,
            "the Cluster's push never reached the near cache"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop((near, other));

    // The near cache's window on the Cluster layout, two processes.
    let joined = urls.join(",");
    let run = Run::start(RunConfig {
        url: &joined,
        cluster: true,
        readers: 1,
        run_for: Duration::from_secs(5),
        idle_after: None,
        write_at: &[],
        timeout: Duration::from_millis(250),
        near: true,
        window: true,
    })
    .await;
    let (report, windows) = run.finish_window("Cluster near window");
    let seen: Vec<Duration> = windows.iter().flatten().copied().collect();
    assert_eq!(seen.len(), windows.len(), "writes the reader never saw");
    assert!(seen.len() > 500, "only {} writes", seen.len());
    let max = seen.iter().max().copied().unwrap_or_default();
    let mut sorted = seen.clone();
    sorted.sort();
    println!(
        "Cluster near cache: {} writes; first read by the other process p50 {:?}, p99 {:?}, \
         max {max:?} after each returned; {} stale reads in {} reads",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 99 / 100],
        report.stale,
        report.ops
    );
    assert!(max < Duration::from_secs(1));
    assert_eq!(report.failed, 0);

    // The checker while the master holding the namespace's versions fails over to its
    // replica (which may have missed the last writes: replication is asynchronous).
    let run = Run::start(RunConfig {
        url: &joined,
        cluster: true,
        readers: 2,
        run_for: Duration::from_secs(7),
        idle_after: None,
        write_at: &[],
        timeout: Duration::from_millis(250),
        near: false,
        window: false,
    })
    .await;
    let versions_master = cluster.master_of(&format!("{{{}}}:v", run.namespace));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.nodes[versions_master].kill();
    let report = run.finish("Cluster master failover");
    assert_fresh("Cluster master failover", &report);
}
