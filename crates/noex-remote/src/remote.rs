//! `Remote`: the node's distribution layer. It is what a runtime's operations on pids of other nodes go through
//! (see `route.rs`), what handles the process frames other nodes send (see `inbound.rs`), and the API for what
//! only makes sense across nodes: spawning a behaviour on another node, calling a process by its name there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use noex_cluster::{Cluster, FrameKind, NodeId, SendError};
use noex_core::{
    CallError, Callee, Encodable, EncodedMessage, EncodedReply, GenServer, NodeName, Pid, Runtime, ServerRef, Target,
    Unanswered, WeakRuntime,
};
use noex_proto::{Cast, Frame, SpawnRequest};
use noex_registry::GlobalRegistry;
use rustc_hash::FxBuildHasher;
use tokio::sync::oneshot;

use crate::bonds::{Incoming, Links, Outgoing};
use crate::pending::{Pending, Waiter};
use crate::{Behaviours, SpawnError, SpawnOptions};

/// One node's distribution layer. Cheap to clone.
///
/// Once started, every [`ServerRef`](noex_core::ServerRef), monitor, link and exit signal of the node's runtime
/// reaches processes of other nodes too.
#[derive(Clone)]
pub struct Remote {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) local: NodeName,
    /// This node's "no process" pid (id 0), the sender of requests that come from no process.
    pub(crate) node_pid: Pid,
    pub(crate) cluster: Cluster,
    pub(crate) runtime: WeakRuntime,
    pub(crate) registry: GlobalRegistry,
    pub(crate) tasks: tokio::runtime::Handle,
    pub(crate) pending: Pending,
    /// Send handles by node: a lookup without the cluster's lock on the hot path.
    senders: DashMap<NodeName, noex_cluster::NodeSender, FxBuildHasher>,
    pub(crate) outgoing: Outgoing,
    pub(crate) incoming: Incoming,
    pub(crate) links: Links,
    /// Spawns with bonds done here for other nodes, to be undone properly if their requester gives up.
    pub(crate) abandonable: crate::abandon::Abandonable,
    pub(crate) behaviours: Behaviours,
    pub(crate) dropped_casts: AtomicU64,
    /// Spawns and stops other nodes asked for that are in progress here (see `limits.rs`).
    pub(crate) inflight: crate::limits::InFlight,
    /// The nodes connected now. A `Link` or `Monitor` from any other node is stale (it was still being handled
    /// when its connection was reported down): applying it would create a link or monitor that nothing settles.
    pub(crate) live: std::sync::RwLock<std::collections::HashSet<NodeName>>,
}

/// Counters for tests and observers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Calls, stops and spawns waiting for another node's answer.
    pub pending: usize,
    /// Monitors local processes hold on processes of other nodes.
    pub outgoing_monitors: usize,
    /// Monitors processes of other nodes hold on local processes.
    pub incoming_monitors: usize,
    /// Links between local processes and processes of other nodes.
    pub links: usize,
    /// Fire-and-forget casts that could not be sent to a connected node because they exceed the frame limit;
    /// each one is logged. (Flow control never drops a cast: see `ServerRef::cast_await` and `try_cast`.)
    pub dropped_casts: u64,
}

impl Remote {
    /// Starts the distribution layer of the node made of `runtime`, `cluster` and `registry`, and installs it
    /// into the runtime. The runtime's node name and creation must be the cluster's.
    ///
    /// # Panics
    /// If the runtime is not the cluster's node, or already has a distribution layer: both are wiring mistakes.
    pub fn start(runtime: &Runtime, cluster: &Cluster, registry: &GlobalRegistry) -> Remote {
        let local = cluster.local().node_name();
        assert!(
            *runtime.node() == local && runtime.creation() == cluster.creation(),
            "the runtime must be the cluster's node ({local}, creation {})",
            cluster.creation()
        );
        let inner = Arc::new(Inner {
            node_pid: Pid::new(local.clone(), cluster.creation(), 0),
            local,
            cluster: cluster.clone(),
            runtime: runtime.downgrade(),
            registry: registry.clone(),
            tasks: tokio::runtime::Handle::current(),
            pending: Pending::new(cluster.creation()),
            senders: DashMap::with_hasher(FxBuildHasher),
            outgoing: Outgoing::default(),
            incoming: Incoming::default(),
            links: Links::default(),
            abandonable: Default::default(),
            behaviours: Behaviours::default(),
            dropped_casts: AtomicU64::new(0),
            inflight: crate::limits::InFlight::default(),
            live: std::sync::RwLock::new(cluster.connected().iter().map(NodeId::node_name).collect()),
        });
        assert!(
            runtime.set_distribution(Arc::new(crate::route::Route(inner.clone()))),
            "the runtime already has a distribution layer"
        );
        let frames = crate::inbound::ProcessFrames { inner: inner.clone(), runtime: runtime.clone() };
        cluster.set_handler(FrameKind::Process, frames);
        // Asked before taking the lock: the cluster calls `node_up` (which takes it) under its own lock.
        let connected: Vec<NodeName> = cluster.connected().iter().map(NodeId::node_name).collect();
        inner.live.write().unwrap_or_else(|p| p.into_inner()).extend(connected);
        Remote { inner }
    }

    /// The behaviours other nodes may spawn here.
    pub fn behaviours(&self) -> &Behaviours {
        &self.inner.behaviours
    }

    /// Starts the behaviour registered as `behaviour` on `node` (which may be this node), and returns the new
    /// process's pid; [`Runtime::remote_ref`] makes a typed reference of it.
    pub async fn spawn(&self, behaviour: &str, node: &NodeId, options: SpawnOptions) -> Result<Pid, SpawnError> {
        let timeout = options.timeout;
        let bonds = options.bonds();
        let request = SpawnRequest {
            spawn_id: 0,
            behaviour: behaviour.to_owned(),
            init_args: options.init_args,
            name: options.name,
            registration: options.registration,
            timeout,
            from: self.inner.node_pid.clone(),
            bonds,
        };
        if *node == *self.inner.cluster.local() {
            return self.spawn_here(request).await;
        }
        let name = node.node_name();
        let (reply, answer) = oneshot::channel();
        let spawn_id = self.inner.pending.insert(&name, Waiter::Spawn(reply, timeout));
        // If this future is dropped or times out, the request is forgotten; a late success is then killed.
        let guard = self.inner.pending.guard(spawn_id);
        if let Err(error) = self.inner.send(&name, Frame::SpawnRequest(SpawnRequest { spawn_id, ..request })) {
            return Err(match error {
                SendError::TooLarge { len, limit } => {
                    SpawnError::BadArguments(format!("{len} bytes exceed the frame limit of {limit}"))
                }
                _ => SpawnError::NoConnection,
            });
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(answered) => {
                // Answered (or failed by `node_down`): the entry is already gone. On a timeout the guard forgets
                // it, so a late answer finds nothing and its process is stopped.
                guard.disarm();
                answered.unwrap_or(Err(SpawnError::NoConnection))
            }
            Err(_) => Err(SpawnError::Timeout(timeout)),
        }
    }

    /// [`spawn`](Self::spawn) that returns a typed reference to the new process. `S` is the caller's claim about
    /// the behaviour's server type (nodes do not exchange types): a wrong one answers calls with `Decode` errors.
    pub async fn spawn_ref<S>(
        &self,
        behaviour: &str,
        node: &NodeId,
        options: SpawnOptions,
    ) -> Result<ServerRef<S>, SpawnError>
    where
        S: GenServer,
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
    {
        let pid = self.spawn(behaviour, node, options).await?;
        let runtime = self.inner.runtime.upgrade().ok_or(SpawnError::NoConnection)?;
        Ok(runtime.remote_ref(&pid))
    }

    /// A spawn on this node: run as its own task, so that a process that finishes starting after the caller
    /// gave up is killed rather than left behind.
    async fn spawn_here(&self, request: SpawnRequest) -> Result<Pid, SpawnError> {
        // Numbered as a remote one is: a supervised child's id is made from it.
        let request = SpawnRequest { spawn_id: self.inner.pending.next_id(), ..request };
        let timeout = request.timeout;
        let (reply, answer) = oneshot::channel();
        let inner = self.inner.clone();
        self.inner.tasks.spawn(async move {
            let result = crate::inbound::spawn_local(&inner, request).await;
            if let Err(Ok(pid)) = reply.send(result) {
                if let Some(runtime) = inner.runtime.upgrade() {
                    inner.abandonable.abandon(&runtime, &inner.links, &pid);
                }
            }
        });
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result.map_err(|failure| SpawnError::from_failure(failure, timeout)),
            Ok(Err(_)) => Err(SpawnError::InitFailed("the spawning task ended".into())),
            Err(_) => Err(SpawnError::Timeout(timeout)),
        }
    }

    /// Calls the process registered as `name` on `node` (which may be this node). `C` and `R` are the server's
    /// `Call` and `Reply` types.
    pub async fn call_named<C: Encodable, R: Encodable>(
        &self,
        node: &NodeId,
        name: &str,
        msg: &C,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let (reply, answer) = noex_core::CallReply::channel();
        let node_name = node.node_name();
        let callee = Callee::Name { name: name.to_owned(), node: node_name.clone() };
        let mut pending = None;
        if *node == *self.inner.cluster.local() {
            let runtime = self.inner.runtime.upgrade().ok_or_else(|| CallError::NoProc(callee.clone()))?;
            let sink = Box::new(LocalReply(reply));
            let message = EncodedMessage::Call { payload: msg.encode_wire(), reply: sink };
            runtime.deliver_encoded(Target::Name(name), message).map_err(|error| match error {
                noex_core::DeliverError::Decode(message) => CallError::Decode(message),
                noex_core::DeliverError::NotEncodable => CallError::NotEncodable,
                _ => CallError::NoProc(callee.clone()),
            })?;
        } else {
            let call_id = self.inner.pending.insert(&node_name, Waiter::Call(reply, callee.clone()));
            let call = noex_proto::Call {
                call_id,
                target: noex_proto::Target::Name(name.to_owned()),
                from: self.inner.node_pid.clone(),
                payload: msg.encode_wire(),
                timeout,
            };
            pending = Some(self.inner.pending.guard(call_id));
            if let Err(error) = self.inner.send(&node_name, Frame::Call(call)) {
                return Err(crate::route::call_send_error(error, &node_name));
            }
        }
        let result = tokio::time::timeout(timeout, answer).await;
        if let (Ok(_), Some(guard)) = (&result, pending) {
            guard.disarm();
        }
        match result {
            Ok(Ok(Ok(bytes))) => R::decode_wire(bytes).map_err(CallError::Decode),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(CallError::NoConnection(node_name)),
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    /// Casts to the process registered as `name` on `node` (which may be this node). Dropped if there is no
    /// such process, as any cast.
    pub fn cast_named<M: Encodable>(&self, node: &NodeId, name: &str, msg: &M) {
        if *node == *self.inner.cluster.local() {
            if let Some(runtime) = self.inner.runtime.upgrade() {
                let _ = runtime.deliver_encoded(
                    Target::Name(name),
                    EncodedMessage::Cast { payload: msg.encode_wire(), receipt: None },
                );
            }
            return;
        }
        let cast = Cast {
            target: noex_proto::Target::Name(name.to_owned()),
            from: self.inner.node_pid.clone(),
            payload: msg.encode_wire(),
        };
        self.inner.send_cast(&node.node_name(), Frame::Cast(cast));
    }

    /// The global registry this layer registers globally spawned processes in.
    pub fn registry(&self) -> &GlobalRegistry {
        &self.inner.registry
    }

    /// Counters: what is pending, monitored and linked across nodes right now.
    pub fn stats(&self) -> RemoteStats {
        RemoteStats {
            pending: self.inner.pending.len(),
            outgoing_monitors: self.inner.outgoing.len(),
            incoming_monitors: self.inner.incoming.len(),
            links: self.inner.links.len(),
            dropped_casts: self.inner.dropped_casts.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("node", &self.inner.local).field("stats", &self.stats()).finish()
    }
}

/// The reply of a by-name call to a process of this node.
struct LocalReply(noex_core::CallReply);

impl EncodedReply for LocalReply {
    fn reply(self: Box<Self>, result: Result<Bytes, Unanswered>) {
        self.0.send(result.map_err(CallError::from));
    }
}

impl Inner {
    /// Queues `frame` for `node`, a signal or a request: never refused for want of room while the node is
    /// connected (see `NodeSender::send`).
    pub(crate) fn send(&self, node: &NodeName, frame: Frame) -> Result<(), SendError> {
        self.with_sender(node, |sender| sender.send(frame))
    }

    /// Sends a fire-and-forget cast: it spends the cast window but does not wait for it. Dropped only if the node
    /// is not connected (debug log) or the cast is over the frame limit (counted, and logged).
    pub(crate) fn send_cast(&self, node: &NodeName, frame: Frame) {
        if let Err(error) = self.send(node, frame) {
            self.cast_dropped(node, &error);
        }
    }

    /// A cast that could not be sent: dropped quietly if its node is gone (as a cast to a dead process is),
    /// counted and logged if it is over the frame limit.
    pub(crate) fn cast_dropped(&self, node: &NodeName, error: &SendError) {
        match error {
            SendError::NotConnected(_) => tracing::debug!(%node, "cast to a node that is not connected dropped"),
            error => {
                self.dropped_casts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%node, %error, "cast dropped");
            }
        }
    }

    /// Sends a signal (Down, Exit, Demonitor, Unlink...). It can only fail if the node is not connected (its
    /// loss settles what the signal was about on both sides) or is being dropped as overloaded: logged at debug.
    pub(crate) fn send_signal(&self, node: &NodeName, frame: Frame) {
        if let Err(error) = self.send(node, frame) {
            tracing::debug!(%node, %error, "signal not sent: the connection is gone");
        }
    }

    /// A cast to a pid, its payload written straight into the connection's buffer; `mode` says what happens when
    /// the cast window to the node is spent.
    pub(crate) fn send_cast_to(
        &self,
        target: &Pid,
        payload: &dyn noex_core::WirePayload,
        mode: noex_cluster::CastMode,
    ) -> Result<(), SendError> {
        let cast = noex_cluster::CastFrame { target, from: &self.node_pid, payload };
        self.with_sender(target.node(), |sender| sender.send_cast(&cast, mode))
    }

    /// The current send handle of `node`, owned (for a wait).
    pub(crate) fn sender(&self, node: &NodeName) -> Result<noex_cluster::NodeSender, SendError> {
        self.with_sender(node, |sender| Ok(sender.clone()))
    }

    /// Runs `op` with `node`'s cached send handle, refreshing the handle once if it is stale.
    fn with_sender<T>(
        &self,
        node: &NodeName,
        op: impl FnOnce(&noex_cluster::NodeSender) -> Result<T, SendError>,
    ) -> Result<T, SendError> {
        if let Some(sender) = self.senders.get(node) {
            if !sender.is_closed() {
                return op(&sender);
            }
            // Stale: its connection is gone (the node may have reconnected since); take the current one.
            drop(sender);
            self.senders.remove(node);
        }
        let id: NodeId = node.as_str().parse().map_err(|_| SendError::NotConnected(self.cluster.local().clone()))?;
        let sender = self.cluster.sender(&id).ok_or(SendError::NotConnected(id))?;
        let result = op(&sender);
        if !sender.is_closed() {
            self.senders.insert(node.clone(), sender);
        }
        result
    }

    /// Forgets the cached send handle of a node whose connection changed.
    pub(crate) fn forget_sender(&self, node: &NodeName) {
        self.senders.remove(node);
    }
}
