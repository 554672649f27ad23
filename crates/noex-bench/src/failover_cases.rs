//! The failover case: a distributed supervisor's children on four nodes, one node crashes, and the time until each
//! of its children runs again elsewhere.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use noex_cluster::ClusterEvent;
use noex_dist_supervisor::{DistChildSpec, DistEvent, DistSupervisor, DistSupervisorSpec, NodeSelector, Strategy};
use noex_remote::Node;

use crate::cases::Echo;
use crate::remote_cases::config;

const NODES: usize = 4;
const CHILDREN: usize = 1000;
const RUNS: usize = 3;

/// One run: the milliseconds from the supervisor node's `NodeDown` (and from the crash) until the last affected
/// child runs elsewhere, how many were affected, and how many children ran twice afterwards.
async fn run_once() -> (f64, f64, usize, usize) {
    let first = Node::start(config("f1", &[])).await.expect("node");
    let mut nodes = vec![first];
    for i in 2..=NODES {
        let seed = nodes[0].id().clone();
        nodes.push(Node::start(config(&format!("f{i}"), &[&seed])).await.expect("node"));
    }
    for node in &nodes {
        node.remote().behaviours().register("echo", |(): ()| Ok(Echo(0)));
        while node.cluster().node_count() < NODES - 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut spec = DistSupervisorSpec::new(Strategy::OneForOne).selector(NodeSelector::RoundRobin);
    spec.children = (0..CHILDREN).map(|i| DistChildSpec::new(format!("c{i}"), "echo")).collect();
    let supervisor = DistSupervisor::start(&nodes[0], spec).await.expect("supervisor");
    let mut events = supervisor.events();
    let mut cluster = nodes[0].cluster().events();

    let crashed = Instant::now();
    nodes[1].crash().await;
    let down_at = loop {
        if let Ok(ClusterEvent::NodeDown { .. }) = cluster.recv().await {
            break Instant::now();
        }
    };
    let mut affected = usize::MAX;
    let mut moved: HashMap<String, usize> = HashMap::new();
    while moved.len() < affected {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Ok(DistEvent::NodeFailureDetected { affected: children, .. })) => affected = children.len(),
            Ok(Ok(DistEvent::ChildMigrated { id, .. })) => *moved.entry(id.to_string()).or_default() += 1,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("events lost: {error}"),
            Err(_) => panic!("failover did not finish within 30 s"),
        }
    }
    let done = Instant::now();
    let stats = supervisor.stats().await.expect("stats");
    let running: usize = stats.children_by_node.values().sum();
    let duplicates = moved.values().filter(|&&n| n > 1).count() + running.saturating_sub(CHILDREN);
    for node in &nodes {
        node.shutdown(Duration::from_secs(1)).await;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(done.duration_since(down_at)), ms(done.duration_since(crashed)), affected, duplicates)
}

pub(crate) async fn failover() -> String {
    let mut after_down = Vec::new();
    let mut after_crash = Vec::new();
    let (mut affected, mut duplicates) = (0, 0);
    for _ in 0..RUNS {
        let (down, crash, hit, dup) = run_once().await;
        after_down.push(down);
        after_crash.push(crash);
        affected = hit;
        duplicates += dup;
    }
    after_down.sort_by(f64::total_cmp);
    after_crash.sort_by(f64::total_cmp);
    format!(
        "case=failover nodes={NODES} children={CHILDREN} affected={affected} failover_ms_p50={:.1} failover_ms_max={:.1} \
         from_crash_ms_p50={:.1} runs={RUNS} duplicates={duplicates}",
        after_down[RUNS / 2],
        after_down[RUNS - 1],
        after_crash[RUNS / 2],
    )
}
