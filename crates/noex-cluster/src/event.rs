//! What the cluster tells the layers above: nodes coming up and going down.

use std::fmt;

use noex_proto::NodeId;

/// A node as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node.
    pub node: NodeId,
    /// Its incarnation.
    pub creation: u32,
}

/// Why a node went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownReason {
    /// Its connection closed or failed.
    ConnectionClosed,
    /// It was silent for longer than the failure timeout.
    HeartbeatTimeout,
    /// It said goodbye before leaving.
    GracefulShutdown,
    /// It did not keep up: more bytes waited for it than the hard bound (`ClusterConfig::outbound_buffer`),
    /// so this node closed the connection rather than drop anything or grow without bound.
    Overloaded,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownReason::ConnectionClosed => "connection_closed",
            DownReason::HeartbeatTimeout => "heartbeat_timeout",
            DownReason::GracefulShutdown => "graceful_shutdown",
            DownReason::Overloaded => "overloaded",
        })
    }
}

/// A change in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node is connected and authenticated (again, after a loss or a restart).
    NodeUp(NodeInfo),
    /// A node is no longer connected.
    NodeDown {
        /// The node (and the incarnation that went down).
        node: NodeInfo,
        /// Why.
        reason: DownReason,
    },
}

/// Whether a known node is currently connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Connected and authenticated.
    Connected,
    /// Known, but not connected (it left or was lost; it is being redialed unless it left gracefully).
    Disconnected,
}
