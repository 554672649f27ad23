//! Cluster snapshots: how long one takes across 3 and across 16 nodes in one process, each node running the
//! seed's processes (a supervisor and three workers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use noex_core::{ChildSpec, StartOptions, Strategy, Supervisor, SupervisorSpec};
use noex_observer::{ClusterObserver, LocalObserver, SnapshotOptions, SnapshotQuery};
use noex_remote::Node;

use crate::cases::{Echo, resident_bytes};
use crate::cluster_cases::tcp_ping_pong;
use crate::remote_cases::config;
use crate::report::{Figures, latency_line};

const SNAPSHOTS: usize = 2_000;

pub(crate) async fn cluster_snapshot(nodes: usize) -> String {
    let cluster = observed_cluster(nodes).await;
    let observer = &cluster[0].1;
    let fresh = SnapshotOptions::fresh(Duration::from_secs(5));
    for _ in 0..SNAPSHOTS / 10 {
        observer.cluster_snapshot_with(fresh).await;
    }
    let mut samples = Vec::with_capacity(SNAPSHOTS);
    for _ in 0..SNAPSHOTS {
        let start = Instant::now();
        let snapshot = observer.cluster_snapshot_with(fresh).await;
        samples.push(start.elapsed());
        assert_eq!(snapshot.aggregated.connected_nodes, nodes as u64, "every node answers");
    }
    let ours = Figures::from_latencies(samples);
    // The baseline: one raw TCP round trip carrying a node's snapshot (the least a remote answer can cost).
    let size = cluster[0].1.local().snapshot(SnapshotQuery::default()).encoded_len();
    for (node, _) in &cluster {
        node.shutdown(Duration::from_secs(1)).await;
    }
    let base = tcp_ping_pong(size).await;
    let case = format!("cluster_snapshot_{nodes}");
    format!("{} nodes={nodes} reply_bytes={size}", latency_line(&case, SNAPSHOTS, &ours, &base))
}

/// Nodes and user processes per node of `cluster_snapshot_32x10k`.
const BIG_NODES: usize = 32;
const BIG_PROCESSES: usize = 10_000;
/// Timed cluster snapshots (each takes every node's snapshot, so a few are enough).
const BIG_RUNS: usize = 7;

/// `cluster_snapshot_32x10k`: 32 nodes in one process, 10k user processes each (the seed's supervisor and
/// workers, the rest standalone servers); the time of a fresh cluster snapshot (p50 and max over a few) and the
/// resident memory the first one adds (its temporary allocations, as far as the allocator keeps them resident),
/// and the CPU time a snapshot costs the whole process (every node's walk, the frames, the wake-ups).
/// The baseline is the same cluster snapshot with 4 processes per node: the cost of the nodes, not of their
/// processes.
pub(crate) async fn cluster_snapshot_32x10k() -> String {
    let cluster = observed_cluster(BIG_NODES).await;
    let observer = &cluster[0].1;
    let fresh = SnapshotOptions::fresh(Duration::from_secs(30));
    let base = timed_snapshots(observer, fresh, 4).await;
    let mut keep = Vec::with_capacity(BIG_NODES * BIG_PROCESSES);
    for (node, _) in &cluster {
        for _ in 4..BIG_PROCESSES {
            keep.push(node.runtime().start(Echo(0)).await.expect("server starts"));
        }
    }
    let expected = (BIG_NODES * BIG_PROCESSES) as u64;
    // The first snapshot over the big nodes, alone, for the memory it adds.
    let (peak, stop) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicBool::new(false)));
    let before = resident_bytes();
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let first = Instant::now();
    let snapshot = observer.cluster_snapshot_with(fresh).await;
    let first = first.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let added_mb = (peak.load(Ordering::Relaxed) - before).max(0) as f64 / 1e6;
    let totals = snapshot.aggregated;
    // CPU time as well as wall time: on a shared machine the wall time mostly says how busy the others are.
    let cpu_before = cpu_ns();
    let ours = timed_snapshots(observer, fresh, BIG_PROCESSES).await;
    let cpu_ms = cpu_ns().saturating_sub(cpu_before) as f64 / BIG_RUNS as f64 / 1e6;
    let ok = totals.processes == expected && totals.connected_nodes == BIG_NODES as u64;
    drop(keep);
    for (node, _) in &cluster {
        node.shutdown(Duration::from_secs(5)).await;
    }
    format!(
        "case=cluster_snapshot_{BIG_NODES}x10k n={BIG_RUNS} p50_ms={:.1} max_ms={:.1} cpu_ms={cpu_ms:.1} first_ms={:.1} first_rss_added_mb={added_mb:.0} base_p50_ms={:.1} base_max_ms={:.1} ratio={:.2} processes={}/{expected} exact={ok}",
        ms(ours.0),
        ms(ours.1),
        ms(first),
        ms(base.0),
        ms(base.1),
        ours.0.as_secs_f64() / base.0.as_secs_f64(),
        totals.processes,
    )
}

/// `nodes` nodes in one process, meshed, each with its observer and the seed's supervisor and three workers.
async fn observed_cluster(nodes: usize) -> Vec<(Node, ClusterObserver)> {
    let mut cluster: Vec<(Node, ClusterObserver)> = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let seeds: Vec<_> = cluster.first().map(|(first, _)| first.id().clone()).into_iter().collect();
        let node = Node::bind(config(&format!("n{i}"), &seeds.iter().collect::<Vec<_>>())).await.expect("node");
        let observer = ClusterObserver::start(LocalObserver::new(node.runtime()), node.cluster());
        node.open();
        let spec = (1..=3).fold(SupervisorSpec::new(Strategy::OneForOne), |spec, w| {
            spec.child(ChildSpec::worker(format!("worker-{w}"), || Echo(0)))
        });
        Supervisor::start(node.runtime(), spec, StartOptions::default()).await.expect("supervisor");
        cluster.push((node, observer));
    }
    for (node, _) in &cluster {
        let mut events = node.cluster().events();
        while node.cluster().connected().len() < nodes - 1 {
            let _ = tokio::time::timeout(Duration::from_secs(60), events.recv()).await.expect("mesh forms");
        }
    }
    cluster
}

/// The p50 and max of `BIG_RUNS` fresh cluster snapshots, each checked to hold every node's processes.
async fn timed_snapshots(observer: &ClusterObserver, fresh: SnapshotOptions, per_node: usize) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(BIG_RUNS);
    for _ in 0..BIG_RUNS {
        let start = Instant::now();
        let snapshot = observer.cluster_snapshot_with(fresh).await;
        samples.push(start.elapsed());
        assert_eq!(snapshot.aggregated.connected_nodes, BIG_NODES as u64, "every node answers");
        assert_eq!(snapshot.aggregated.processes, (BIG_NODES * per_node) as u64, "exact totals");
    }
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time used by all of this process's threads so far, in nanoseconds (from the scheduler's statistics).
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
