//! Fixtures for the distributed supervisor's tests: specs of test counters, a selector that prefers one node, and
//! three nodes of which two sit behind proxies (to cut one off).

use std::sync::Arc;
use std::time::Duration;

use noex_cluster::NodeId;
use noex_dist_supervisor::{DistChildSpec, DistSupervisorSpec, NodeSelector, Strategy};
use noex_remote::Node;

use crate::proxy::Proxy;

/// `count` children `c0`.. of the test `counter` behaviour.
pub fn counters(count: usize) -> Vec<DistChildSpec> {
    (0..count).map(|i| DistChildSpec::new(format!("c{i}"), "counter")).collect()
}

/// A spec with room for restarts (10 in 5 s).
pub fn spec(strategy: Strategy, selector: NodeSelector, children: Vec<DistChildSpec>) -> DistSupervisorSpec {
    let mut spec = DistSupervisorSpec::new(strategy).selector(selector).intensity(10, Duration::from_secs(5));
    spec.children = children;
    spec
}

/// Places on `first` while it is a candidate, else on `then`.
pub fn prefer(first: &NodeId, then: &NodeId) -> NodeSelector {
    let (first, then) = (first.clone(), then.clone());
    NodeSelector::Custom(Arc::new(move |nodes: &[NodeId], _: &str| {
        nodes.iter().find(|node| **node == first).or_else(|| nodes.iter().find(|node| **node == then)).cloned()
    }))
}

/// Three connected nodes a, b, c; a and b behind proxies (pausing both cuts b off from a).
pub async fn three_with_two_behind_proxies() -> (Node, Proxy, Node, Proxy, Node) {
    let (b, b_proxy) = crate::remote::full_node_behind_proxy("b", &[]).await;
    let (a, a_proxy) = crate::remote::full_node_behind_proxy("a", &[b.id()]).await;
    let c = crate::remote::full_node("c", &[b.id()]).await;
    for node in [&a, &b, &c] {
        crate::cluster::wait_connected(node.cluster(), 2).await;
    }
    (a, a_proxy, b, b_proxy, c)
}
