//! Process identity: which node a process lives on, which incarnation of that node, and its number there.

use std::fmt;
use std::sync::Arc;

/// The name of the node a process lives on, as the cluster layer spells it (`name@host:port`).
///
/// A runtime that is not part of a cluster uses [`NodeName::local`] (`nonode@nohost`, as Erlang does).
/// Cloning is cheap (a shared string); comparison is by content.
#[derive(Clone, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// The node name of a runtime that belongs to no cluster.
    pub const LOCAL: &'static str = "nonode@nohost";

    /// Wraps a node name. The cluster layer validates the `name@host:port` grammar; this crate treats it as opaque.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        NodeName(name.into())
    }

    /// `nonode@nohost`.
    pub fn local() -> Self {
        NodeName::new(Self::LOCAL)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for NodeName {
    fn eq(&self, other: &Self) -> bool {
        // Pids of one node share the same allocation, so the pointer test answers almost every comparison.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for NodeName {}

impl std::hash::Hash for NodeName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A process identifier: node, node incarnation (`creation`) and a number unique within that incarnation.
///
/// A restarted node gets a new creation number, so a pid of the old incarnation never names a process of the new
/// one. The triple is all a later layer needs to route a message to a process on another node.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    node: NodeName,
    creation: u32,
    id: u64,
}

impl Pid {
    /// Builds a pid. Runtimes mint pids for their own processes; other layers use this to name remote ones.
    pub fn new(node: NodeName, creation: u32, id: u64) -> Self {
        Pid { node, creation, id }
    }

    /// The node the process lives on.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The incarnation of that node.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The process number within that incarnation.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}@{}>", self.id, self.creation, self.node)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Identifies one monitor; it comes back in the [`ProcessDown`](crate::ProcessDown) the monitor delivers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MonitorRef {
    node: NodeName,
    id: u64,
}

impl MonitorRef {
    pub(crate) fn new(node: NodeName, id: u64) -> Self {
        MonitorRef { node, id }
    }

    /// The node that created the monitor.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The monitor's number on that node.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}@{}>", self.id, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_compare_by_node_content_creation_and_id() {
        let a = Pid::new(NodeName::new("a@h:1"), 1, 7);
        let same = Pid::new(NodeName::new(String::from("a@h:1")), 1, 7);
        assert_eq!(a, same);
        assert_ne!(a, Pid::new(NodeName::new("a@h:1"), 2, 7), "another incarnation is another process");
        assert_ne!(a, Pid::new(NodeName::new("b@h:1"), 1, 7));
        assert_eq!(a.to_string(), "<7.1@a@h:1>");
    }
}
