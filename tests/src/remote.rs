//! In-process nodes with the whole distribution stack (runtime, cluster, registry, remote), and waits for
//! conditions that no event announces.

use std::future::Future;
use std::time::Duration;

use noex_cluster::NodeId;
use noex_remote::Node;

use crate::cluster::{DEADLINE, config};
use crate::servers::register_behaviours;

/// Starts a full test node seeded with `seeds`, with the test behaviours registered.
pub async fn full_node(name: &str, seeds: &[&NodeId]) -> Node {
    let mut config = config(name);
    config.seeds = seeds.iter().map(|seed| seed.to_string()).collect();
    full_node_with(config).await
}

/// Starts a full test node from `config` (start from [`config`](crate::cluster::config)), with the test
/// behaviours registered.
pub async fn full_node_with(config: noex_cluster::ClusterConfig) -> Node {
    let node = Node::start(config).await.expect("test node starts");
    register_behaviours(node.remote().behaviours());
    node
}

/// Starts a full test node seeded with `seeds` that other nodes reach only through a proxy in front of it
/// (advertised in its id), to pause, cut or slow.
pub async fn full_node_behind_proxy(name: &str, seeds: &[&NodeId]) -> (Node, crate::proxy::Proxy) {
    let proxy = crate::proxy::Proxy::start().await;
    let config = noex_cluster::ClusterConfig {
        port: proxy.address().port(),
        bind: Some("127.0.0.1:0".parse().expect("a socket address")),
        seeds: seeds.iter().map(|seed| seed.to_string()).collect(),
        ..config(name)
    };
    let node = full_node_with(config).await;
    proxy.set_target(node.cluster().listening_address());
    (node, proxy)
}

/// Starts `count` full nodes named `n1`.. that form one mesh, and waits until each sees all the others.
pub async fn mesh(count: usize) -> Vec<Node> {
    let first = full_node("n1", &[]).await;
    let seed = first.id().clone();
    let mut nodes = vec![first];
    for i in 2..=count {
        nodes.push(full_node(&format!("n{i}"), &[&seed]).await);
    }
    for node in &nodes {
        crate::cluster::wait_connected(node.cluster(), count - 1).await;
    }
    nodes
}

/// Re-checks `condition` every few milliseconds until it holds, failing the test after [`DEADLINE`]. For state
/// that changes without an event to await (another node's bookkeeping, say).
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `future`, failing the test after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Shows the libraries' logs on stderr when `NOEX_TEST_LOG` holds a filter (`noex_dist_supervisor=debug`, say):
/// call it first in a test to see why it failed. Once per test binary; later calls do nothing.
pub fn log() {
    if let Ok(filter) = std::env::var("NOEX_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
