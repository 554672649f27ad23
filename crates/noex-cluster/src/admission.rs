//! Admission: which connections a node keeps. The simultaneous-dial rule (the connection dialed by the smaller
//! node id survives, settled during the handshake so that at most one is ever registered), registering an
//! authenticated connection (replacing an older one of the same node), and losing one.

use std::sync::Arc;

use noex_proto::{Frame, FrameCodec, Member, NodeId, RejectReason};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Inner, Known, Link, State};
use crate::connection::{self, Connection};
use crate::event::{ClusterEvent, DownReason, NodeInfo, NodeStatus};
use crate::handshake::Peer;
use crate::outbound::Outbound;

/// Which end of a new connection this node is, for [`Inner::register`].
pub(crate) enum End {
    /// We dialed: the peer has registered the connection already (that is what its `Welcome` said).
    Dialer,
    /// We accepted: `welcome` completes the peer's handshake, and is sent only if we keep the connection.
    /// (Boxed: a `Frame` is large, and this enum is moved around while the handshake completes.)
    Acceptor { welcome: Box<Frame> },
}

/// What a dial loop may do next (see [`Inner::begin_attempt`]).
pub(crate) enum Attempt {
    /// The attempt is started (the node is in `attempting`).
    Started,
    /// The node is connected; the dial loop is over (the node is no longer in `dialing`).
    Connected,
    /// The node is dialing us: wait for that handshake to end.
    Deferred,
    /// The node said goodbye: the dial loop is over (the node is no longer in `dialing`).
    Left,
}

/// Marks an inbound handshake from one node as in progress, from the admitted `Hello` until the handshake has
/// ended in any way (a guard, so that a failure or timeout cannot leave the mark behind and block our own dials
/// to that node).
pub(crate) struct InboundHandshake<'a> {
    inner: &'a Inner,
    node: NodeId,
}

impl Drop for InboundHandshake<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        if let Some(count) = state.inbound.get_mut(&self.node) {
            *count -= 1;
            if *count == 0 {
                state.inbound.remove(&self.node);
            }
        }
    }
}

impl Inner {
    /// Registers an authenticated connection; false if it is refused (the caller drops it).
    ///
    /// The simultaneous-dial rule has been applied before: a dial does not start while the peer's dial to us is
    /// in its handshake, and an inbound `Hello` is refused while our own dial to that (larger) peer is in flight.
    /// The acceptor registers before it sends `Welcome`, and the dialer registers only once it has `Welcome`,
    /// so the acceptor decides alone: whatever the dialer registers, its peer has registered too. Hence a
    /// replaced connection is never half of a simultaneous dial, but a connection the peer has given up on.
    pub(crate) fn register(self: &Arc<Self>, peer: Peer, end: End, framed: Framed<TcpStream, FrameCodec>) -> bool {
        let mut state = self.lock();
        let (dialer, welcome) = match end {
            End::Dialer => (self.local.clone(), None),
            End::Acceptor { welcome } => (peer.node.clone(), Some(*welcome)),
        };
        if state.stopping {
            // Authenticated while we are leaving: complete the handshake and say goodbye, so that the peer does
            // not take it for a crash (and does not redial).
            self.refuse(framed, welcome.into_iter().chain([Frame::Goodbye]).collect());
            return false;
        }
        if welcome.is_some() && self.ours_prevails(&state, &peer) {
            self.refuse(framed, vec![Frame::Reject(RejectReason::Duplicate)]);
            return false;
        }
        if let Some(old) = state.peers.remove(&peer.node) {
            // The peer restarted, or redialed because it lost the old connection (which may still look alive
            // here): that one is dead at the other end, so the layers above must fail what they tied to it.
            old.outbound.close();
            old.close.cancel();
            let node = NodeInfo { node: peer.node.clone(), creation: old.creation };
            self.each_handler(|handler| handler.node_down(&node, DownReason::ConnectionClosed));
            tracing::info!(%node.node, "node reconnected or restarted; old connection down");
            let _ = self.events.send(ClusterEvent::NodeDown { node, reason: DownReason::ConnectionClosed });
        }
        state.next_connection += 1;
        let id = state.next_connection;
        let close = CancellationToken::new();
        let leave = CancellationToken::new();
        let info = NodeInfo { node: peer.node.clone(), creation: peer.creation };
        let config = &self.settings.config;
        let mut parts = framed.into_parts();
        parts.codec.set_limit(config.max_frame);
        let (read_half, write_half) = parts.io.into_split();
        let incoming = connection::Incoming { socket: read_half, codec: parts.codec, buffer: parts.read_buf };
        let window = config.cast_window as u64;
        let limits =
            crate::outbound::Limits { max_frame: config.max_frame, hard: config.outbound_buffer, cast_window: window };
        let outbound = Arc::new(Outbound::new(
            crate::outbound::WriteSocket::new(write_half),
            limits,
            close.clone(),
            peer.node.clone(),
        ));
        let credit = Arc::new(crate::credit::InboundCredit::new(Arc::downgrade(&outbound), window));
        let connection = Arc::new(Connection::new(id, info.clone(), close.clone(), leave.clone(), credit));
        if let Some(welcome) = welcome {
            // First on the wire: nothing may reach the dialer before its handshake is over.
            let _ = outbound.send(welcome);
        }
        // Our cast window, before any cast: the peer grants credit in steps that fit the smaller window.
        let _ = outbound.send(Frame::CastCredit { consumed: 0, window });
        // Tell the new peer whom we know, so that it meshes with them too.
        let members: Vec<Member> =
            state.peers.iter().map(|(node, link)| Member { node: node.clone(), creation: link.creation }).collect();
        let _ = outbound.send(Frame::Members(members));
        // Before the reader starts: layers hear of the node before any of its frames.
        self.each_handler(|handler| handler.node_up(&info));
        let writer = connection::spawn(self, connection.clone(), incoming, outbound.clone());

        state.peers.insert(
            peer.node.clone(),
            Link {
                creation: peer.creation,
                connection,
                established: std::time::Instant::now(),
                dialer,
                outbound,
                close,
                leave,
                writer: Some(writer),
            },
        );
        state.known.insert(peer.node.clone(), Known::new(peer.creation, NodeStatus::Connected));
        if let Some(up) = state.dialing.get(&peer.node) {
            up.notify_one(); // a dial loop waiting for this node to come up (kept as a permit if not waiting yet)
        }
        tracing::info!(node = %peer.node, "node up");
        let _ = self.events.send(ClusterEvent::NodeUp(info));
        true
    }

    /// Sends `frames` on a connection that is not registered, then drops it.
    fn refuse(&self, mut framed: Framed<TcpStream, FrameCodec>, frames: Vec<Frame>) {
        self.tasks.spawn(async move {
            use futures_util::SinkExt;
            for frame in frames {
                let _ = framed.send(frame).await;
            }
        });
    }

    /// A connection's reader ended. Reports the node down if this was its current connection, and redials it
    /// unless it said goodbye.
    pub(crate) fn connection_lost(self: &Arc<Self>, connection: &Connection, reason: DownReason) {
        let node = &connection.peer.node;
        {
            let mut state = self.lock();
            if state.peers.get(node).is_none_or(|link| link.connection.id != connection.id) {
                return; // replaced by a newer connection
            }
            if let Some(link) = state.peers.remove(node) {
                link.outbound.close(); // senders holding a handle learn at once that the node is gone
            }
            let mut known = Known::new(connection.peer.creation, NodeStatus::Disconnected);
            known.left = reason == DownReason::GracefulShutdown;
            state.known.insert(node.clone(), known);
            self.each_handler(|handler| handler.node_down(&connection.peer, reason));
            if state.stopping {
                return; // this node is leaving: it reports nothing about its peers (as `stop` does)
            }
            tracing::info!(%node, %reason, "node down");
            let _ = self.events.send(ClusterEvent::NodeDown { node: connection.peer.clone(), reason });
            if reason == DownReason::GracefulShutdown {
                return;
            }
        }
        self.dial(node.clone());
    }

    /// Whether `peer`, having presented a valid `Hello`, may go on with its handshake. While it does, our own
    /// dials to it wait (see [`begin_attempt`](Self::begin_attempt)).
    pub(crate) fn admit(&self, peer: &Peer) -> Result<InboundHandshake<'_>, RejectReason> {
        let mut state = self.lock();
        if state.stopping {
            return Err(RejectReason::NotAllowed);
        }
        if self.ours_prevails(&state, peer) {
            return Err(RejectReason::Duplicate);
        }
        *state.inbound.entry(peer.node.clone()).or_default() += 1;
        Ok(InboundHandshake { inner: self, node: peer.node.clone() })
    }

    /// Whether a connection dialed by `peer` must give way to ours, in flight or just made: of two connections
    /// dialed at once, the one the smaller node dialed survives. (Ours is "just made" while younger than the
    /// handshake timeout: a peer redialing that soon is taken to be racing, not reconnecting; if it did lose
    /// the connection, we see it close, or accept the peer's redial once the connection is older.)
    fn ours_prevails(&self, state: &State, peer: &Peer) -> bool {
        self.local < peer.node
            && (state.attempting.contains(&peer.node)
                || state.peers.get(&peer.node).is_some_and(|link| {
                    link.dialer == self.local
                        && link.creation == peer.creation
                        && link.established.elapsed() < self.settings.config.handshake_timeout
                }))
    }

    /// Decides, atomically with [`admit`](Self::admit), whether a dial loop may start an attempt to `node`. It
    /// may not while `node` is connected, nor while `node`'s own dial to us is in its handshake (unless
    /// `impatient`): then at most one of two simultaneous dials ever completes, and the layers above never see
    /// a connection swapped during mesh formation.
    pub(crate) fn begin_attempt(&self, node: &NodeId, impatient: bool) -> Attempt {
        let mut state = self.lock();
        if state.peers.contains_key(node) {
            // Under the same lock as the check: a `connection_lost` from now on starts a new dial loop.
            state.dialing.remove(node);
            return Attempt::Connected;
        }
        if state.known.get(node).is_some_and(|known| known.left) {
            state.dialing.remove(node);
            return Attempt::Left;
        }
        if state.inbound.contains_key(node) && !impatient {
            return Attempt::Deferred;
        }
        state.attempting.insert(node.clone());
        Attempt::Started
    }
}
