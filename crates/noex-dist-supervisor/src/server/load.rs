//! `LeastLoaded`'s figure: each candidate node's user processes, from the observer services of the nodes (the
//! spec's [`observer`](crate::DistSupervisorSpec::observer)), taken at most once per observer cache period and
//! corrected by the children this supervisor placed or lost there since. Without an observer, or when a candidate
//! did not answer (no observer service, a timeout), every candidate counts this supervisor's own children
//! instead: figures of one kind only, never a mix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use noex_cluster::NodeId;
use noex_observer::{ClusterSnapshot, SnapshotOptions, SnapshotQuery};

use super::DistSupervisorServer;

/// How long a placement waits for a node's figures (a node that does not answer makes the figures fall back).
const LOAD_QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// The nodes' figures as last observed, and this supervisor's children on each node then.
pub(super) struct Observed {
    snapshot: Arc<ClusterSnapshot>,
    baseline: HashMap<NodeId, usize>,
}

impl DistSupervisorServer {
    /// Takes the nodes' figures again if the observer has newer ones (its cache keeps them 2 s).
    pub(super) async fn refresh_load(&mut self) {
        let Some(observer) = self.spec.observer.clone() else { return };
        let options = SnapshotOptions { use_cache: true, timeout: LOAD_QUERY_TIMEOUT, query: SnapshotQuery::totals() };
        let snapshot = observer.cluster_snapshot_with(options).await;
        if self.observed.as_ref().is_some_and(|observed| Arc::ptr_eq(&observed.snapshot, &snapshot)) {
            return;
        }
        let baseline = snapshot.nodes.iter().map(|n| (n.node.clone(), self.children_on(&n.node))).collect();
        self.observed = Some(Observed { snapshot, baseline });
    }

    /// This supervisor's running children on `node`.
    pub(super) fn children_on(&self, node: &NodeId) -> usize {
        self.children.iter().filter(|c| c.running.as_ref().is_some_and(|r| r.node == *node)).count()
    }

    /// The load of each of `nodes`, all of one kind (see the module docs).
    pub(super) fn loads(&self, nodes: &[NodeId]) -> HashMap<NodeId, usize> {
        let own = |node: &NodeId| self.children_on(node);
        loads(nodes, self.observed.as_ref(), own)
    }
}

fn loads(nodes: &[NodeId], observed: Option<&Observed>, own: impl Fn(&NodeId) -> usize) -> HashMap<NodeId, usize> {
    let observed_load = |node: &NodeId| {
        let observed = observed?;
        let seen = observed.snapshot.nodes.iter().find(|n| n.node == *node)?.snapshot.as_ref()?.process_count;
        let then = observed.baseline.get(node).copied().unwrap_or(0) as i64;
        let now = own(node) as i64;
        Some((seen as i64 + now - then).max(0) as usize)
    };
    let observed: Option<HashMap<NodeId, usize>> =
        nodes.iter().map(|node| observed_load(node).map(|load| (node.clone(), load))).collect();
    observed.unwrap_or_else(|| nodes.iter().map(|node| (node.clone(), own(node))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_observer::{Aggregated, ObservedNode, ObservedStatus};

    fn node(name: &str) -> NodeId {
        format!("{name}@127.0.0.1:1").parse().unwrap()
    }

    fn observed(figures: &[(&NodeId, Option<u64>)], baseline: &[(&NodeId, usize)]) -> Observed {
        let nodes = figures
            .iter()
            .map(|(node, count)| {
                let snapshot = count.map(|count| {
                    let mut snapshot =
                        noex_observer::LocalObserver::new(&noex_core::Runtime::new()).snapshot(SnapshotQuery::totals());
                    snapshot.process_count = count;
                    snapshot
                });
                let status = if snapshot.is_some() { ObservedStatus::Connected } else { ObservedStatus::Timeout };
                ObservedNode { node: (*node).clone(), local: false, status, snapshot, error: None }
            })
            .collect();
        let snapshot = Arc::new(ClusterSnapshot {
            timestamp: std::time::SystemTime::now(),
            local: figures[0].0.clone(),
            nodes,
            aggregated: Aggregated::default(),
        });
        Observed { snapshot, baseline: baseline.iter().map(|(n, c)| ((*n).clone(), *c)).collect() }
    }

    #[tokio::test]
    async fn observed_figures_are_corrected_by_own_placements_since() {
        let (a, b) = (node("a"), node("b"));
        let observed = observed(&[(&a, Some(20)), (&b, Some(3))], &[(&a, 2), (&b, 0)]);
        // Since: one of ours left a, four were placed on b.
        let own = |n: &NodeId| if *n == a { 1 } else { 4 };
        let loads = loads(&[a.clone(), b.clone()], Some(&observed), own);
        assert_eq!((loads[&a], loads[&b]), (19, 7));
    }

    #[tokio::test]
    async fn a_node_without_figures_makes_every_node_count_own_children() {
        let (a, b) = (node("a"), node("b"));
        let observed = observed(&[(&a, Some(20)), (&b, None)], &[]);
        let own = |n: &NodeId| if *n == a { 5 } else { 1 };
        let loads = loads(&[a.clone(), b.clone()], Some(&observed), own);
        assert_eq!((loads[&a], loads[&b]), (5, 1));
        let unknown = node("c");
        assert_eq!(
            super::loads(std::slice::from_ref(&unknown), Some(&observed), |_| 2)[&unknown],
            2,
            "not observed at all"
        );
        assert_eq!(super::loads(std::slice::from_ref(&a), None, |_| 3)[&a], 3, "no observer");
    }
}
