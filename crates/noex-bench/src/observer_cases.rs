//! Cluster snapshots: how long one takes across 3 and across 16 nodes in one process, each node running the
//! seed's processes (a supervisor and three workers).

use std::time::{Duration, Instant};

use noex_core::{ChildSpec, StartOptions, Strategy, Supervisor, SupervisorSpec};
use noex_observer::{ClusterObserver, LocalObserver, SnapshotOptions};
use noex_remote::Node;

use crate::cases::Echo;
use crate::cluster_cases::tcp_ping_pong;
use crate::remote_cases::config;
use crate::report::{Figures, latency_line};

const SNAPSHOTS: usize = 2_000;

pub(crate) async fn cluster_snapshot(nodes: usize) -> String {
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
            let _ = tokio::time::timeout(Duration::from_secs(30), events.recv()).await.expect("mesh forms");
        }
    }
    let observer = &cluster[0].1;
    let fresh = SnapshotOptions { use_cache: false, timeout: Duration::from_secs(5) };
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
    let size = cluster[0].1.local().snapshot().encoded_len();
    for (node, _) in &cluster {
        node.shutdown(Duration::from_secs(1)).await;
    }
    let base = tcp_ping_pong(size).await;
    let case = format!("cluster_snapshot_{nodes}");
    format!("{} nodes={nodes} reply_bytes={size}", latency_line(&case, SNAPSHOTS, &ours, &base))
}
