//! Big meshes in one process: how long until every node sees every other, how many file descriptors a node
//! holds, and what an idle mesh costs in CPU (heartbeats and failure detection).

use std::time::{Duration, Instant};

use noex_cluster::{Cluster, ClusterEvent};

use crate::cluster_cases::config;

/// The nodes of `mesh_128`; `NOEX_BENCH_MESH_NODES` overrides it (to see where a mesh stops forming).
const MESH_NODES: usize = 128;

/// How long the idle CPU of a formed mesh is measured: a few heartbeat intervals (2 s by default).
const IDLE_WINDOW: Duration = Duration::from_secs(8);

/// How long a mesh may take to form before the case reports it incomplete.
const FORM_DEADLINE: Duration = Duration::from_secs(60);

/// How each node is seeded.
#[derive(Clone, Copy)]
enum Seeding {
    /// Each node is seeded with the one started before it.
    Chain,
    /// Every node is seeded with the first one.
    Star,
}

/// `mesh_128`: 128 nodes in one process, chain then star seeding, with the default heartbeat interval
/// (`NOEX_BENCH_HEARTBEAT_MS` overrides it, to see what heartbeats cost; the failure timeout is then 5 intervals). Raises the process's soft limit on open files
/// to its hard limit first (a full mesh of n nodes in one process holds n * (n - 1) sockets), and says so.
pub(crate) async fn mesh_128() -> String {
    let nodes = std::env::var("NOEX_BENCH_MESH_NODES").ok().and_then(|n| n.parse().ok()).unwrap_or(MESH_NODES);
    let limit = noex_cluster::raise_fd_limit().map_or_else(|e| format!("unraised({e})"), |n| n.to_string());
    let chain = mesh(nodes, Seeding::Chain).await;
    let star = mesh(nodes, Seeding::Star).await;
    format!("case=mesh_128 nodes={nodes} fd_limit={limit}\n  seeding=chain {chain}\n  seeding=star {star}")
}

/// Starts `count` nodes, waits for the full mesh, measures it idle, and stops it; the figures as `key=value`.
async fn mesh(count: usize, seeding: Seeding) -> String {
    let fds_before = open_fds();
    let (started, cpu_before) = (Instant::now(), cpu_time());
    let mut nodes: Vec<Cluster> = Vec::with_capacity(count);
    let mut watchers = Vec::with_capacity(count);
    for i in 0..count {
        let seed = match seeding {
            Seeding::Chain => nodes.last(),
            Seeding::Star => nodes.first(),
        };
        let seeds = seed.map(|seed: &Cluster| vec![seed.local().to_string()]).unwrap_or_default();
        let mut config = config(&format!("n{i}"), seeds);
        if let Some(interval) = heartbeat_override() {
            config.heartbeat_interval = interval;
            config.failure_timeout = interval * 5;
        }
        let node = Cluster::start(config).await.expect("node starts");
        watchers.push(tokio::spawn(watch(node.clone(), count - 1)));
        nodes.push(node);
    }
    let mut downs = 0;
    let mut formed = true;
    for watcher in watchers {
        let (complete, down) = watcher.await.expect("watcher");
        formed &= complete;
        downs += down;
    }
    let took = started.elapsed();
    let formation_cpu = cpu_time().saturating_sub(cpu_before);
    let fds = open_fds().saturating_sub(fds_before);
    let links: usize = nodes.iter().map(|node| node.connections().len()).sum();
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = (cpu_time().saturating_sub(cpu)).as_secs_f64() / wall.elapsed().as_secs_f64();
    for node in &nodes {
        node.shutdown().await;
    }
    let full = if formed { format!("{:.0}", took.as_secs_f64() * 1e3) } else { "incomplete".into() };
    format!(
        "full_mesh_ms={full} cpu_ms={} links={links} (want {}) node_downs={downs} fds_per_node={:.1} idle_cpu_pct={:.1}",
        formation_cpu.as_millis(),
        count * (count - 1),
        fds as f64 / count as f64,
        idle * 100.0,
    )
}

fn heartbeat_override() -> Option<Duration> {
    std::env::var("NOEX_BENCH_HEARTBEAT_MS").ok()?.parse().ok().map(Duration::from_millis)
}

/// Waits until `node` is connected to `peers` others; whether it got there, and how many `NodeDown`s it saw.
async fn watch(node: Cluster, peers: usize) -> (bool, usize) {
    let mut events = node.events();
    let mut downs = 0;
    let deadline = tokio::time::Instant::now() + FORM_DEADLINE;
    while node.node_count() < peers {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return (false, downs),
            Ok(Ok(ClusterEvent::NodeDown { .. })) => downs += 1,
            Ok(_) => {}
        }
    }
    (true, downs)
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// User plus system CPU time of this process so far (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and stime are the
    // 12th and 13th, in clock ticks of 1/100 s (USER_HZ, fixed for /proc).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
