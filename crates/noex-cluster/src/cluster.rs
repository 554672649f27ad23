//! `Cluster`: one node's membership. It owns the listener, the connections, the dialing with backoff, and
//! the event stream. Connections are read and written on the application's runtime, next to the processes that
//! use them; heartbeats and failure detection run on a dedicated thread, so busy processes cannot starve them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use noex_proto::{Frame, FrameCodec, Member, NodeId, RejectReason};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::connect;
use crate::connection::{self, Connection};
use crate::event::{ClusterEvent, DownReason, NodeInfo, NodeStatus};
use crate::handshake::Peer;
use crate::outbound::Outbound;
use crate::routing::{FrameHandler, FrameKind, HandlerCache, Handlers, NodeSender, SendError, send_error};
use crate::{ClusterConfig, StartError};

/// One node's view of the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) local: NodeId,
    listening: std::net::SocketAddr,
    pub(crate) creation: u32,
    pub(crate) settings: crate::Settings,
    /// The application's runtime: accept loop, handshakes, dial loops, connection readers and writers.
    pub(crate) tasks: tokio::runtime::Handle,
    state: Mutex<State>,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    handlers: RwLock<Handlers>,
    /// Bumped after every change of `handlers`, so that readers refresh their copies (see [`HandlerCache`]).
    handlers_version: AtomicU64,
    /// Cancelled when the node starts leaving: dial loops stop, no connection is registered any more.
    pub(crate) leaving: CancellationToken,
    /// Cancelled to stop the liveness thread and the accept loop.
    pub(crate) shutdown: CancellationToken,
    /// The accept loop, which owns the listener: awaited on stop so that the port is free when stop returns.
    accepting: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The listener of a cluster bound but not yet opened (see [`Cluster::bind`]).
    parked: Mutex<Option<TcpListener>>,
    /// Bounds the handshakes in progress, so unauthenticated clients cannot exhaust the node.
    pub(crate) handshakes: Arc<tokio::sync::Semaphore>,
}

/// How long a leaving node waits for its goodbyes (and what was queued before them) to be written.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

/// The most handshakes a node runs at once; more connections are closed at once.
const MAX_PENDING_HANDSHAKES: usize = 256;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) peers: HashMap<NodeId, Link>,
    known: HashMap<NodeId, (u32, NodeStatus)>,
    /// Nodes with a dial loop running.
    pub(crate) dialing: HashSet<NodeId>,
    /// Nodes with a connection attempt (TCP connect or handshake) in flight, for the simultaneous-dial rule.
    pub(crate) attempting: HashSet<NodeId>,
    /// Inbound handshakes in progress, by the node their `Hello` names (see [`InboundHandshake`]).
    inbound: HashMap<NodeId, usize>,
    next_connection: u64,
    stopping: bool,
}

/// Which end of a new connection this node is, for [`Inner::register`].
pub(crate) enum End {
    /// We dialed: the peer has registered the connection already (that is what its `Welcome` said).
    Dialer,
    /// We accepted: `welcome` completes the peer's handshake, and is sent only if we keep the connection.
    Acceptor { welcome: Frame },
}

/// What a dial loop may do next (see [`Inner::begin_attempt`]).
pub(crate) enum Attempt {
    /// The attempt is started (the node is in `attempting`).
    Started,
    /// The node is connected; the dial loop is over (the node is no longer in `dialing`).
    Connected,
    /// The node is dialing us: wait for that handshake to end.
    Deferred,
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

pub(crate) struct Link {
    creation: u32,
    pub(crate) connection: Arc<Connection>,
    established: std::time::Instant,
    /// Who opened this connection; decides which of two connections survives.
    dialer: NodeId,
    pub(crate) outbound: Arc<Outbound>,
    close: CancellationToken,
    /// Cancelled to make the writer send `Goodbye` (past the queue limit, so a full queue cannot hold it back).
    leave: CancellationToken,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// Validates `config`, binds the listener, and starts dialing the seeds. Returns once the node accepts
    /// connections; seeds that are unreachable are retried in the background with backoff.
    pub async fn start(config: ClusterConfig) -> Result<Cluster, StartError> {
        let cluster = Self::bind(config).await?;
        cluster.open();
        Ok(cluster)
    }

    /// Like [`start`](Self::start), but the node neither accepts nor dials until [`open`](Self::open): the
    /// layers above can install their frame handlers first (they need the node's id and creation to be built),
    /// so that no peer's frame arrives before there is a handler for it. Peers that dial meanwhile wait in the
    /// listen backlog.
    pub async fn bind(config: ClusterConfig) -> Result<Cluster, StartError> {
        let settings = config.validate()?;
        let listener = TcpListener::bind(settings.bind_address())
            .await
            .map_err(|e| StartError::Bind(settings.bind_address(), e.to_string()))?;
        let listening = listener.local_addr().map_err(|e| StartError::Io(e.to_string()))?;
        let local = settings.node_id(listening.port());
        let mut creation = 0;
        while creation == 0 {
            creation = getrandom::u32().map_err(|e| StartError::Io(e.to_string()))?;
        }
        let (events, _) = broadcast::channel(1024);
        let (liveness_runtime, liveness_done) = crate::liveness::liveness_runtime()?;
        let inner = Arc::new(Inner {
            local,
            listening,
            creation,
            settings,
            tasks: tokio::runtime::Handle::current(),
            state: Mutex::default(),
            events,
            handlers: RwLock::new([None, None, None]),
            handlers_version: AtomicU64::new(0),
            leaving: CancellationToken::new(),
            shutdown: liveness_done,
            accepting: Mutex::new(None),
            parked: Mutex::new(Some(listener)),
            handshakes: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES)),
        });
        liveness_runtime.spawn(crate::liveness::liveness(Arc::downgrade(&inner)));
        tracing::info!(node = %inner.local, creation, "cluster node bound");
        Ok(Cluster { inner })
    }

    /// Starts accepting connections and dialing the seeds of a cluster made by [`bind`](Self::bind). Does
    /// nothing if it is already open or stopping.
    pub fn open(&self) {
        let inner = &self.inner;
        // Held until the accept loop's handle is stored: a concurrent stop, which takes this lock first, then
        // either finds the listener still parked or finds the loop to wait for.
        let mut parked = inner.parked.lock().unwrap_or_else(|p| p.into_inner());
        let Some(listener) = parked.take() else { return };
        if inner.leaving.is_cancelled() || inner.lock().stopping {
            return;
        }
        let accepting = inner.tasks.spawn(connect::accept_loop(inner.clone(), listener));
        *inner.accepting.lock().unwrap_or_else(|p| p.into_inner()) = Some(accepting);
        drop(parked);
        tracing::info!(node = %inner.local, "cluster node open");
        for seed in inner.settings.seeds().to_vec() {
            inner.dial(seed);
        }
    }

    /// This node's id.
    pub fn local(&self) -> &NodeId {
        &self.inner.local
    }

    /// The address the listener is bound to (what the node id advertises may differ, see `ClusterConfig::bind`).
    pub fn listening_address(&self) -> std::net::SocketAddr {
        self.inner.listening
    }

    /// This node's incarnation (random, non-zero, new at every start).
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// A subscription to nodes coming up and going down, from now on.
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.inner.events.subscribe()
    }

    /// Every node this one has known, with its status (this node excluded).
    pub fn nodes(&self) -> Vec<(NodeInfo, NodeStatus)> {
        let state = self.inner.lock();
        let mut nodes: Vec<_> = state
            .known
            .iter()
            .map(|(node, (creation, status))| (NodeInfo { node: node.clone(), creation: *creation }, *status))
            .collect();
        nodes.sort_by(|a, b| a.0.node.cmp(&b.0.node));
        nodes
    }

    /// The connected nodes (this node excluded).
    pub fn connected(&self) -> Vec<NodeId> {
        let mut nodes: Vec<_> = self.inner.lock().peers.keys().cloned().collect();
        nodes.sort();
        nodes
    }

    /// How many nodes are connected (this node excluded).
    pub fn node_count(&self) -> usize {
        self.inner.lock().peers.len()
    }

    /// Whether `node` is connected.
    pub fn is_connected(&self, node: &NodeId) -> bool {
        self.inner.lock().peers.contains_key(node)
    }

    /// Queues `frame` for `node`. Frames to one node are delivered in the order queued. Never waits: a full
    /// queue is an error, and the frame is not sent.
    pub fn send(&self, node: &NodeId, frame: Frame) -> Result<(), SendError> {
        // Not through `sender`, which would clone the node id for every frame.
        let outbound = self.inner.lock().peers.get(node).map(|link| link.outbound.clone());
        let outbound = outbound.ok_or_else(|| SendError::NotConnected(node.clone()))?;
        outbound.send(frame).map_err(|refused| send_error(refused, node))
    }

    /// A handle for sending to `node` over its current connection without looking it up each time (the hot
    /// path for layers that send many frames). It fails with `NotConnected` once that connection is gone, even if
    /// the node has reconnected since: take a new handle then.
    pub fn sender(&self, node: &NodeId) -> Option<NodeSender> {
        let outbound = self.inner.lock().peers.get(node).map(|link| link.outbound.clone())?;
        Some(NodeSender { node: node.clone(), outbound })
    }

    /// The figures of the current connection to `node` (traffic, queued bytes, flow control), if connected.
    pub fn connection_stats(&self, node: &NodeId) -> Option<crate::ConnectionStats> {
        let link = self.inner.lock().peers.get(node).map(|link| (link.connection.clone(), link.outbound.clone()));
        link.map(|(connection, outbound)| stats_of(&connection, &outbound))
    }

    /// The figures of every current connection, by node.
    pub fn connections(&self) -> Vec<(NodeId, crate::ConnectionStats)> {
        let links: Vec<_> = self
            .inner
            .lock()
            .peers
            .iter()
            .map(|(node, link)| (node.clone(), link.connection.clone(), link.outbound.clone()))
            .collect();
        let mut stats: Vec<_> =
            links.into_iter().map(|(node, connection, outbound)| (node, stats_of(&connection, &outbound))).collect();
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        stats
    }

    /// Routes incoming frames of `kind` to `handler` (replacing any previous one). Frames of a kind with no
    /// handler are dropped with a debug log. The handlers are dropped when the cluster stops.
    pub fn set_handler(&self, kind: FrameKind, handler: impl FrameHandler) {
        self.inner.handlers.write().unwrap_or_else(|p| p.into_inner())[kind as usize] = Some(Arc::new(handler));
        self.inner.handlers_version.fetch_add(1, Ordering::Release);
    }

    /// Leaves the cluster: says goodbye to every peer (they report `graceful_shutdown`), closes the connections
    /// and stops the liveness thread. What was queued before the goodbye is written before it. Waits at most
    /// half a second for the goodbyes to be written (a peer that does not read by then is dropped).
    pub async fn shutdown(&self) {
        self.inner.leaving.cancel();
        let writers: Vec<_> = {
            let mut state = self.inner.lock();
            state.stopping = true;
            state
                .peers
                .values_mut()
                .filter_map(|link| {
                    link.leave.cancel();
                    link.writer.take()
                })
                .collect()
        };
        let _ = tokio::time::timeout(GOODBYE_WAIT, futures_util::future::join_all(writers)).await;
        self.inner.stop();
        self.inner.stopped().await;
    }

    /// Drops every connection without saying goodbye, as a crash would: peers report this node down with
    /// `connection_closed`. Returns once the listening port is free. For tests and fault drills.
    pub async fn crash(&self) {
        self.inner.leaving.cancel();
        self.inner.stop();
        self.inner.stopped().await;
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("local", &self.inner.local).field("creation", &self.inner.creation).finish()
    }
}

impl Inner {
    /// Closes every connection, stops the liveness thread and the accept loop, and forgets the peers.
    fn stop(&self) {
        {
            let mut state = self.lock();
            state.stopping = true;
            for (node, link) in state.peers.drain().collect::<Vec<_>>() {
                link.outbound.close();
                link.close.cancel();
                let info = NodeInfo { node: node.clone(), creation: link.creation };
                self.each_handler(|handler| handler.node_down(&info, DownReason::ConnectionClosed));
                state.known.insert(node, (link.creation, NodeStatus::Disconnected));
            }
        }
        // No frame will come any more; dropping the handlers also breaks the cycles they may form with the
        // layers that own this cluster.
        *self.handlers.write().unwrap_or_else(|p| p.into_inner()) = [None, None, None];
        self.handlers_version.fetch_add(1, Ordering::Release);
        self.shutdown.cancel();
    }

    /// Waits for the accept loop (stopped by `stop`) to end and release the listener.
    async fn stopped(&self) {
        // Never opened: its listener is dropped here. Taken before `accepting`, under the lock `open` holds.
        let parked = self.parked.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(parked);
        let accepting = self.accepting.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(accepting) = accepting {
            let _ = accepting.await;
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `f` once for every distinct installed handler.
    fn each_handler(&self, mut f: impl FnMut(&dyn FrameHandler)) {
        let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        let mut seen: Vec<*const ()> = Vec::new();
        for handler in handlers.iter().flatten() {
            let address = Arc::as_ptr(handler) as *const ();
            if !seen.contains(&address) {
                seen.push(address);
                f(handler.as_ref());
            }
        }
    }

    /// A cast to a pid, viewed in the read buffer, for the process layer; hands the receipt back if that layer
    /// does not take casts this way (the caller then decodes the frame in full).
    pub(crate) fn dispatch_cast_view(
        &self,
        cache: &mut HandlerCache,
        from: &NodeId,
        cast: &noex_proto::CastView<'_>,
        receipt: noex_core::Receipt,
    ) -> Result<(), noex_core::Receipt> {
        self.refresh(cache);
        match &cache.handlers[FrameKind::Process as usize] {
            Some(handler) => handler.handle_cast_view(from, cast, receipt),
            None => Err(receipt),
        }
    }

    /// Refreshes a reader's copy of the handlers if they changed.
    fn refresh(&self, cache: &mut HandlerCache) {
        let version = self.handlers_version.load(Ordering::Acquire);
        if cache.version != Some(version) {
            cache.handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner()).clone();
            cache.version = Some(version);
        }
    }

    pub(crate) fn dispatch(
        &self,
        cache: &mut HandlerCache,
        from: &NodeId,
        frame: Frame,
        receipt: Option<noex_core::Receipt>,
    ) {
        let kind = match &frame {
            Frame::RegistrySync(_) => FrameKind::Registry,
            Frame::ObserverQuery { .. } | Frame::ObserverReply { .. } => FrameKind::Observer,
            _ => FrameKind::Process,
        };
        // Copied out, not called under the lock: a handler may take the membership lock (to send), while the
        // membership callbacks take this lock under that one. Copied once per change, not per frame.
        self.refresh(cache);
        match (&cache.handlers[kind as usize], receipt) {
            (Some(handler), Some(receipt)) => handler.handle_cast(from, frame, receipt),
            (Some(handler), None) => handler.handle(from, frame),
            (None, _) => tracing::debug!(%from, ?kind, "no handler; frame dropped"),
        }
    }

    /// Starts a dial loop for `node` unless it is this node, connected, already being dialed, or we are stopping.
    pub(crate) fn dial(self: &Arc<Self>, node: NodeId) {
        {
            let mut state = self.lock();
            if node == self.local
                || state.stopping
                || state.peers.contains_key(&node)
                || !state.dialing.insert(node.clone())
            {
                return;
            }
        }
        self.tasks.spawn(connect::dial_loop(self.clone(), node));
    }

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
            End::Acceptor { welcome } => (peer.node.clone(), Some(welcome)),
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
        let limits = crate::outbound::Limits {
            max_frame: config.max_frame,
            hard: config.outbound_buffer,
            cast_window: config.cast_window as u64,
        };
        let outbound = Arc::new(Outbound::new(write_half, limits, close.clone(), peer.node.clone()));
        let window = config.cast_window as u64;
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
        state.known.insert(peer.node.clone(), (peer.creation, NodeStatus::Connected));
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
            state.known.insert(node.clone(), (connection.peer.creation, NodeStatus::Disconnected));
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
        if state.inbound.contains_key(node) && !impatient {
            return Attempt::Deferred;
        }
        state.attempting.insert(node.clone());
        Attempt::Started
    }
}

/// A connection's figures: its reader's and its sending side's.
fn stats_of(connection: &Connection, outbound: &Outbound) -> crate::ConnectionStats {
    let mut stats = outbound.stats();
    stats.frames_in = connection.frames_in.load(Ordering::Relaxed);
    stats.bytes_in = connection.bytes_in.load(Ordering::Relaxed);
    stats
}
