//! Routing between the cluster and the layers above: the frame handlers each layer installs, by kind of traffic,
//! and the send handles (`NodeSender`) they send through.

use std::sync::Arc;

use noex_proto::{Frame, NodeId};

use crate::event::{DownReason, NodeInfo};
pub use crate::outbound::{CastFrame, CastMode};
use crate::outbound::{Outbound, Refused};

/// Receives the frames of one kind that arrive from other nodes (process traffic, registry, observer), and the
/// membership changes that frame those frames.
///
/// `handle` is called on the connection's reader task, in arrival order per peer: it must not block (hand the
/// frame on). `node_up` and `node_down` are called synchronously, under the cluster's membership lock, so that
/// every layer sees them in order with the frames: `node_up` before the first frame of the new connection,
/// `node_down` when the connection is no longer current (and for every peer when this node stops). They must be
/// quick, and must not call back into the [`Cluster`](crate::Cluster) (that would deadlock): queue work for a task instead.
pub trait FrameHandler: Send + Sync + 'static {
    /// One frame from `from`.
    fn handle(&self, from: &NodeId, frame: Frame);

    /// A cast from `from`, with the receipt that gives its cost back to the sender's cast window once dropped:
    /// keep it with the message until the message is consumed. The default consumes it at once.
    fn handle_cast(&self, from: &NodeId, frame: Frame, receipt: noex_core::Receipt) {
        self.handle(from, frame);
        drop(receipt);
    }

    /// A cast to a pid, viewed where it lies in the read buffer (the hot path: nothing is decoded or built for
    /// it yet). Take it, keeping the receipt with the message, or hand the receipt back (the default) to receive
    /// the cast decoded, through [`handle_cast`](Self::handle_cast).
    fn handle_cast_view(
        &self,
        from: &NodeId,
        cast: &noex_proto::CastView<'_>,
        receipt: noex_core::Receipt,
    ) -> Result<(), noex_core::Receipt> {
        let _ = (from, cast);
        Err(receipt)
    }

    /// `node` is connected (again); frames from it follow.
    fn node_up(&self, node: &NodeInfo) {
        let _ = node;
    }

    /// `node` is no longer connected: fail what waits for it. Frames it sent before may still be dispatched.
    fn node_down(&self, node: &NodeInfo, reason: DownReason) {
        let _ = (node, reason);
    }
}

impl<F: Fn(&NodeId, Frame) + Send + Sync + 'static> FrameHandler for F {
    fn handle(&self, from: &NodeId, frame: Frame) {
        self(from, frame)
    }
}

/// The kinds of traffic a layer above can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Calls, casts, replies, spawns, monitors and links.
    Process = 0,
    /// Global registry sync.
    Registry = 1,
    /// Observer queries and replies.
    Observer = 2,
    /// Process group memberships (all scopes of a node share one handler).
    Groups = 3,
}

/// Why a frame could not be queued for a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The node is not connected.
    #[error("node {0} is not connected")]
    NotConnected(NodeId),
    /// The cast window to the node is spent (its processes have not consumed the casts already sent); the cast
    /// was not queued. Only a cast that may be refused ([`CastMode::IfRoom`], [`CastMode::BeforeWait`]) gets this.
    #[error("the cast window to {0} is full")]
    QueueFull(NodeId),
    /// The frame is larger than the frame limit; it was not sent.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The frame's encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Sends to one node over one connection; see [`Cluster::sender`](crate::Cluster::sender). Cheap to clone.
#[derive(Clone)]
pub struct NodeSender {
    pub(crate) node: NodeId,
    pub(crate) outbound: Arc<Outbound>,
}

impl NodeSender {
    /// The node this handle sends to.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Queues `frame`, in order with everything else sent to this node; never waits, and never refuses a frame
    /// for want of room: signals (and fire-and-forget casts, which still spend the cast window) always go, up to
    /// the hard bound, past which the connection is closed and the node reported down as `overloaded`.
    pub fn send(&self, frame: Frame) -> Result<(), SendError> {
        self.outbound.send(frame).map_err(|refused| send_error(refused, &self.node))
    }

    /// Queues a cast to a pid, its payload encoded straight into the connection's buffer (the hot path: no frame
    /// and no payload buffer are built); `mode` says what happens when the cast window is spent.
    pub fn send_cast(&self, cast: &CastFrame<'_>, mode: CastMode) -> Result<(), SendError> {
        self.outbound.send_cast(cast, mode).map_err(|refused| send_error(refused, &self.node))
    }

    /// Resolves once the cast window has room (at once if it has), or with `NotConnected` once this handle's
    /// connection is gone. Cancel safe.
    pub async fn cast_room(&self) -> Result<(), SendError> {
        self.outbound.cast_room().await.map_err(|refused| send_error(refused, &self.node))
    }

    /// Whether this handle's connection is gone (take a new handle from [`Cluster::sender`](crate::Cluster::sender)).
    pub fn is_closed(&self) -> bool {
        self.outbound.is_closed()
    }

    /// Closes this connection because the peer asked more of this node than it bounds (a layer above found it
    /// flooding): the node is reported down as `overloaded`, and everything tied to it is settled, as for a peer
    /// that does not read what it is sent.
    pub fn close_overloaded(&self) {
        self.outbound.close_overloaded();
    }
}

impl std::fmt::Debug for NodeSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeSender({})", self.node)
    }
}

pub(crate) fn send_error(refused: Refused, node: &NodeId) -> SendError {
    match refused {
        Refused::Full => SendError::QueueFull(node.clone()),
        Refused::Closed => SendError::NotConnected(node.clone()),
        Refused::TooLarge { len, limit } => SendError::TooLarge { len, limit },
    }
}

pub(crate) type Handlers = [Option<Arc<dyn FrameHandler>>; 4];

/// A connection reader's copy of the frame handlers, refreshed when they change: a frame costs one atomic load
/// instead of a lock and a reference count.
#[derive(Default)]
pub(crate) struct HandlerCache {
    pub(crate) version: Option<u64>,
    pub(crate) handlers: Handlers,
}
