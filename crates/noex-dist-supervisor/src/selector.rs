//! Node selectors: where a child goes, among this node and the connected ones (minus a node being failed over).

use std::sync::Arc;

use noex_cluster::NodeId;

/// A user's placement function: given the candidate nodes (this node first) and the child's id, the node to use.
pub type PlaceFn = Arc<dyn Fn(&[NodeId], &str) -> Option<NodeId> + Send + Sync>;

/// Where a child is started (and restarted). Candidates are this node and every connected node, minus a node
/// being failed over; with none left, the start fails with `NoAvailableNode`.
#[derive(Clone)]
pub enum NodeSelector {
    /// This node, unless it is excluded; then the first connected node (by id).
    LocalFirst,
    /// Each placement on the next candidate in id order, by this supervisor's own counter.
    RoundRobin,
    /// The candidate with the fewest user processes, as the nodes' observer services count them, when the spec
    /// has an [`observer`](crate::DistSupervisorSpec::observer) and every candidate answers; otherwise the
    /// candidate running the fewest of this supervisor's children. Ties: this node, then by id.
    LeastLoaded,
    /// A candidate at random.
    Random,
    /// This node only.
    Node(NodeId),
    /// The user's choice.
    Custom(PlaceFn),
}

impl std::fmt::Debug for NodeSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeSelector::LocalFirst => f.write_str("LocalFirst"),
            NodeSelector::RoundRobin => f.write_str("RoundRobin"),
            NodeSelector::LeastLoaded => f.write_str("LeastLoaded"),
            NodeSelector::Random => f.write_str("Random"),
            NodeSelector::Node(node) => write!(f, "Node({node})"),
            NodeSelector::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What a selector sees: the candidates (this node first, then the others by id), and each one's load.
pub(crate) struct Candidates<'a> {
    pub(crate) nodes: &'a [NodeId],
    pub(crate) load: &'a dyn Fn(&NodeId) -> usize,
}

impl NodeSelector {
    /// The node for `child`; `next` is the supervisor's round-robin counter.
    pub(crate) fn choose(&self, candidates: &Candidates<'_>, child: &str, next: &mut usize) -> Option<NodeId> {
        let nodes = candidates.nodes;
        match self {
            NodeSelector::LocalFirst => nodes.first().cloned(),
            NodeSelector::RoundRobin => {
                if nodes.is_empty() {
                    return None;
                }
                let mut sorted = nodes.to_vec();
                sorted.sort_by_key(|node| node.to_string());
                let node = sorted[*next % sorted.len()].clone();
                *next = next.wrapping_add(1);
                Some(node)
            }
            NodeSelector::LeastLoaded => nodes.iter().min_by_key(|node| (candidates.load)(node)).cloned(),
            NodeSelector::Random => {
                let pick = getrandom::u64().unwrap_or(0) as usize;
                nodes.get(pick % nodes.len().max(1)).cloned()
            }
            NodeSelector::Node(wanted) => nodes.iter().find(|node| *node == wanted).cloned(),
            NodeSelector::Custom(place) => place(nodes, child).filter(|node| nodes.contains(node)),
        }
    }
}
