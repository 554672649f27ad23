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
#[non_exhaustive]
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
    /// A node we dial refused this one, or is not the node we meant: said once per cause, while the dialing goes
    /// on (with backoff). The usual mistakes: cookies that differ, a seed given under the wrong name.
    DialRefused {
        /// The node dialed.
        node: NodeId,
        /// Why it refused, as far as this side can tell.
        refusal: Refusal,
    },
}

/// Why a node refused our dial.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// It did not let us in, or could not prove it shares our cookie: the cookies most likely differ. (It does
    /// not say why, on purpose: a stranger learns nothing.)
    NotAllowed,
    /// Another node answers at that address.
    WrongNode {
        /// The node that answered.
        found: String,
    },
    /// It speaks another protocol version.
    Version(u32),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAllowed => f.write_str("it refused this node (do both nodes have the same cookie?)"),
            Refusal::WrongNode { found } => write!(f, "{found} answers at that address (is the name right?)"),
            Refusal::Version(version) => write!(f, "it speaks protocol version {version}, not ours"),
        }
    }
}

/// Whether a known node is currently connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Connected and authenticated.
    Connected,
    /// Known, but not connected (it left or was lost; it is being redialed unless it left gracefully).
    Disconnected,
}
