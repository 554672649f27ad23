//! `Cluster`: one node's membership. It owns the listener, the connections, the dialing with backoff, and
//! the event stream. Connections are read and written on the application's runtime, next to the processes that
//! use them; heartbeats and failure detection run on a dedicated thread, so busy processes cannot starve them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use noex_proto::{Frame, Member, NodeId};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::connect;
use crate::connection::Connection;
use crate::event::{ClusterEvent, DownReason, NodeInfo, NodeStatus};
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
    /// Bounds the handshakes in progress, in all and per source address, so unauthenticated clients cannot
    /// exhaust the node (see `slots.rs`).
    pub(crate) handshakes: Arc<crate::slots::Slots>,
    /// Sockets the operating system refused (accepts and dials): the back-off and its figures.
    pub(crate) exhaustion: Mutex<crate::exhaustion::Exhaustion>,
}

/// How long a leaving node waits for its goodbyes (and what was queued before them) to be written.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(crate) struct State {
    pub(crate) peers: HashMap<NodeId, Link>,
    pub(crate) known: HashMap<NodeId, Known>,
    /// Nodes with a dial loop running, each with what wakes its loop when the node comes up. Per loop, not the
    /// event stream: a node with n dial loops waiting would wake all n at each of its n `NodeUp`s.
    pub(crate) dialing: HashMap<NodeId, Arc<tokio::sync::Notify>>,
    /// Nodes with a connection attempt (TCP connect or handshake) in flight, for the simultaneous-dial rule.
    pub(crate) attempting: HashSet<NodeId>,
    /// Inbound handshakes in progress, by the node their `Hello` names (see `admission::InboundHandshake`).
    pub(crate) inbound: HashMap<NodeId, usize>,
    pub(crate) next_connection: u64,
    pub(crate) stopping: bool,
}

/// What a node remembers of another it has been connected to.
pub(crate) struct Known {
    pub(crate) creation: u32,
    pub(crate) status: NodeStatus,
    /// When the status last changed: a node disconnected for `forget_after` is forgotten.
    pub(crate) since: Instant,
    /// This incarnation said goodbye: it is not redialed, and gossip about it is ignored.
    pub(crate) left: bool,
}

impl Known {
    pub(crate) fn new(creation: u32, status: NodeStatus) -> Self {
        Known { creation, status, since: Instant::now(), left: false }
    }
}

pub(crate) struct Link {
    pub(crate) creation: u32,
    pub(crate) connection: Arc<Connection>,
    pub(crate) established: std::time::Instant,
    /// Who opened this connection; decides which of two connections survives.
    pub(crate) dialer: NodeId,
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) close: CancellationToken,
    /// Cancelled to make the writer send `Goodbye` (past the queue limit, so a full queue cannot hold it back).
    pub(crate) leave: CancellationToken,
    pub(crate) writer: Option<tokio::task::JoinHandle<()>>,
}

impl State {
    /// Whether to start a dial loop for `node` (and if so, marks it as dialed): not this node, not while
    /// stopping, connected or dialed already, nor an incarnation that said goodbye (`creation` is that of a node
    /// learned from a peer; a new one is dialed). Returns what wakes the new dial loop when the node comes up.
    fn should_dial(
        &mut self,
        local: &NodeId,
        node: &NodeId,
        creation: Option<u32>,
    ) -> Option<Arc<tokio::sync::Notify>> {
        if node == local || self.stopping || self.peers.contains_key(node) || self.dialing.contains_key(node) {
            return None;
        }
        if let Some(known) = self.known.get_mut(node).filter(|known| known.left) {
            match creation {
                Some(creation) if creation != known.creation => known.left = false,
                _ => return None,
            }
        }
        let up = Arc::new(tokio::sync::Notify::new());
        self.dialing.insert(node.clone(), up.clone());
        Some(up)
    }
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
        let inner = Arc::new(Inner {
            local,
            listening,
            creation,
            settings,
            tasks: tokio::runtime::Handle::current(),
            state: Mutex::default(),
            events,
            handlers: RwLock::new([None, None, None, None]),
            handlers_version: AtomicU64::new(0),
            leaving: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            accepting: Mutex::new(None),
            parked: Mutex::new(Some(listener)),
            handshakes: Arc::default(),
            exhaustion: Mutex::default(),
        });
        crate::liveness::register(&inner)?;
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

    /// Every node this one has known, with its status (this node excluded). A node disconnected for
    /// `forget_after` (see [`ClusterConfig`]) is no longer listed.
    pub fn nodes(&self) -> Vec<(NodeInfo, NodeStatus)> {
        let state = self.inner.lock();
        let mut nodes: Vec<_> = state
            .known
            .iter()
            .map(|(node, known)| (NodeInfo { node: node.clone(), creation: known.creation }, known.status))
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

    /// Resolves once `node` is connected: at once if it is, else at its `NodeUp`; false if this node stops first.
    /// Wrap it in a timeout to bound the wait (the node is dialed meanwhile only if it is a seed or a peer knows
    /// it).
    pub async fn connected_to(&self, node: &NodeId) -> bool {
        // Subscribed before looking, so that a NodeUp in between is not missed.
        let mut events = self.events();
        loop {
            if self.is_connected(node) {
                return true;
            }
            let event = tokio::select! {
                () = self.inner.leaving.cancelled() => return false,
                event = events.recv() => event,
            };
            match event {
                Ok(ClusterEvent::NodeUp(info)) if info.node == *node => return true,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
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

    /// How often the operating system refused this node a socket (out of file descriptors): each episode is
    /// also logged once, as a warning, and once more when it ends.
    pub fn socket_exhaustion(&self) -> crate::SocketExhaustion {
        crate::exhaustion::lock(&self.inner.exhaustion).figures(Instant::now())
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
                state.known.insert(node, Known::new(link.creation, NodeStatus::Disconnected));
            }
        }
        // No frame will come any more; dropping the handlers also breaks the cycles they may form with the
        // layers that own this cluster.
        *self.handlers.write().unwrap_or_else(|p| p.into_inner()) = [None, None, None, None];
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
    pub(crate) fn each_handler(&self, mut f: impl FnMut(&dyn FrameHandler)) {
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
            Frame::GroupsSync(_) => FrameKind::Groups,
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

    /// Starts a dial loop for `node` unless it is this node, connected, already being dialed, said goodbye, or
    /// we are stopping.
    pub(crate) fn dial(self: &Arc<Self>, node: NodeId) {
        let dial = self.lock().should_dial(&self.local, &node, None);
        if let Some(up) = dial {
            self.tasks.spawn(connect::dial_loop(self.clone(), node, up));
        }
    }

    /// A peer told us whom it is connected to: dials those we are not connected to, except incarnations that
    /// said goodbye to us (the peer may not have heard it yet). One lock for the whole list: in a mesh of n
    /// nodes, every node hears n lists of n members while it forms.
    pub(crate) fn learned(self: &Arc<Self>, members: Vec<Member>) {
        let to_dial: Vec<_> = {
            let mut state = self.lock();
            members
                .into_iter()
                .filter_map(|member| {
                    let up = state.should_dial(&self.local, &member.node, Some(member.creation))?;
                    Some((member.node, up))
                })
                .collect()
        };
        for (node, up) in to_dial {
            self.tasks.spawn(connect::dial_loop(self.clone(), node, up));
        }
    }

    /// Forgets nodes disconnected for longer than `forget_after` that nobody dials any more (from the liveness
    /// thread), so that what a node remembers of others stays bounded.
    pub(crate) fn forget_departed(&self) {
        let forget_after = self.settings.config.forget_after;
        let mut state = self.lock();
        let State { known, dialing, .. } = &mut *state;
        known.retain(|node, known| {
            known.status == NodeStatus::Connected || known.since.elapsed() < forget_after || dialing.contains_key(node)
        });
    }
}

/// A connection's figures: its reader's and its sending side's.
fn stats_of(connection: &Connection, outbound: &Outbound) -> crate::ConnectionStats {
    let mut stats = outbound.stats();
    stats.frames_in = connection.frames_in.load(Ordering::Relaxed);
    stats.bytes_in = connection.bytes_in.load(Ordering::Relaxed);
    stats
}
