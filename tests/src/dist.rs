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

/// Waits until the replicas of supervision `name` agree: every node sees all of them in the group, and exactly one
/// runs the supervisor (at start, a replica that has not yet seen one sorting first may briefly own it, then hands
/// over). Returns that supervisor.
pub async fn one_owner(
    name: &str,
    nodes: &[&Node],
    replicas: &[&noex_dist_supervisor::ReplicaRef],
) -> noex_dist_supervisor::DistSupervisorRef {
    let group = format!("dsup:{name}");
    crate::remote::within("the replicas to agree on one owner", async {
        loop {
            let seen = nodes.iter().all(|node| node.groups().members(&group).len() == replicas.len());
            let owners: Vec<_> = replicas.iter().filter_map(|replica| replica.supervisor()).collect();
            if seen && owners.len() == 1 {
                return owners.into_iter().next().expect("one");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Waits until every child of `owner` (of supervision `name`) runs, under its name in every node's registry: no
/// start or name conflict left to settle. Returns the children; on a timeout, the failure says what differed.
pub async fn settled(
    owner: &noex_dist_supervisor::DistSupervisorRef,
    name: &str,
    nodes: &[&Node],
) -> Vec<noex_dist_supervisor::DistChildInfo> {
    let deadline = tokio::time::Instant::now() + crate::cluster::DEADLINE;
    loop {
        let children = owner.which_children().await.unwrap_or_default();
        let differs: Vec<String> = children
            .iter()
            .filter_map(|child| {
                let global = format!("dsup:{name}:{}", child.id);
                let seen: Vec<_> = nodes.iter().map(|node| node.registry().whereis(&global)).collect();
                let same = child.pid.is_some() && seen.iter().all(|pid| *pid == child.pid);
                (!same).then(|| format!("{}: supervised {:?}, registered {seen:?}", child.id, child.pid))
            })
            .collect();
        if !children.is_empty() && differs.is_empty() {
            return children;
        }
        assert!(tokio::time::Instant::now() < deadline, "the children did not settle: {differs:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `supervisor`'s children until `done` holds.
pub async fn children_until(
    supervisor: &noex_dist_supervisor::DistSupervisorRef,
    done: impl Fn(&[noex_dist_supervisor::DistChildInfo]) -> bool,
) {
    crate::remote::within("the children to settle", async {
        loop {
            if let Ok(children) = supervisor.which_children().await
                && done(&children)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Crashes `node` (its processes end, its peers see it go).
pub async fn crash(node: &Node) {
    node.crash().await;
    node.runtime().shutdown(Duration::from_secs(1)).await;
}

/// The link between two nodes behind proxies: [`cut`](Self::cut) pauses both proxies (whoever dialed whom, the
/// nodes no longer hear each other), [`heal`](Self::heal) resumes them.
pub struct Link(Proxy, Proxy);

impl Link {
    /// Cuts the two nodes apart.
    pub fn cut(&self) {
        self.0.pause();
        self.1.pause();
    }

    /// Joins them again.
    pub fn heal(&self) {
        self.0.resume();
        self.1.resume();
    }
}

/// Two connected nodes `a` and `b` behind proxies, each running a replica of `named()` (the same named spec),
/// settled on one owner (a's: its id sorts first). Returns the nodes, their replicas and the link between them.
pub async fn two_replicas_behind_proxies(
    named: impl Fn() -> DistSupervisorSpec,
) -> (Node, Node, noex_dist_supervisor::ReplicaRef, noex_dist_supervisor::ReplicaRef, Link) {
    let (b, b_proxy) = crate::remote::full_node_behind_proxy("b", &[]).await;
    let (a, a_proxy) = crate::remote::full_node_behind_proxy("a", &[b.id()]).await;
    crate::cluster::wait_connected(a.cluster(), 1).await;
    let spec = named();
    let name = spec.name.clone().expect("a named supervision");
    let on_a = noex_dist_supervisor::DistSupervisor::start_replica(&a, spec).await.expect("a's replica");
    let on_b = noex_dist_supervisor::DistSupervisor::start_replica(&b, named()).await.expect("b's replica");
    one_owner(&name, &[&a, &b], &[&on_a, &on_b]).await;
    (a, b, on_a, on_b, Link(a_proxy, b_proxy))
}
