//! The inbound half: process frames from other nodes, and what a node going down means for the requests,
//! monitors and links that involve it.
//!
//! Every frame is checked against the connection it came on: a pid that claims to belong to another node than
//! the sender is refused (logged), so a peer cannot act in another node's name.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use noex_cluster::{DownReason, FrameHandler, NodeId, NodeInfo};
use noex_core::{
    DeliverError, EncodedMessage, EncodedReply, ExitReason, MonitorRef, NodeName, Pid, Runtime, Unanswered,
};
use noex_proto::{CallFailure, Down, Exit, Frame, Registration, Reply, SpawnFailure, SpawnReply, SpawnRequest, Target};

use crate::SpawnError;
use crate::pending::{Waiter, answer};
use crate::remote::Inner;

/// The cluster's handler for process frames. It holds the layer and the runtime strongly (no upgrade per
/// frame); the cycle this makes through the cluster is broken when the cluster stops, which drops its handlers.
pub(crate) struct ProcessFrames {
    pub(crate) inner: Arc<Inner>,
    pub(crate) runtime: Runtime,
}

impl FrameHandler for ProcessFrames {
    fn handle(&self, from: &NodeId, frame: Frame) {
        self.inner.receive(&self.runtime, from, frame, None);
    }

    fn handle_cast(&self, from: &NodeId, frame: Frame, receipt: noex_core::Receipt) {
        self.inner.receive(&self.runtime, from, frame, Some(receipt));
    }

    /// The hot path of a cast to a pid: the same checks as `receive` makes of a decoded `Cast` (its sender is of
    /// the peer's node; its target is of this node and incarnation), on the bytes as they lie.
    fn handle_cast_view(
        &self,
        from: &NodeId,
        cast: &noex_proto::CastView<'_>,
        receipt: noex_core::Receipt,
    ) -> Result<(), noex_core::Receipt> {
        if cast.from.node != from.as_str().as_bytes() {
            // The full decoder names the offending pid in its log line.
            return Err(receipt);
        }
        if cast.target.node != self.inner.local.as_str().as_bytes() {
            tracing::debug!(%from, "remote cast to a process of another node not delivered");
            return Ok(());
        }
        let delivered =
            self.runtime.deliver_cast_slice(cast.target.creation, cast.target.id, cast.payload, Some(receipt));
        if let Err(error) = delivered {
            tracing::debug!(%from, %error, "remote cast not delivered");
        }
        Ok(())
    }

    fn node_up(&self, node: &NodeInfo) {
        let name = node.node.node_name();
        self.inner.forget_sender(&name);
        self.inner.live.write().unwrap_or_else(|p| p.into_inner()).insert(name);
    }

    fn node_down(&self, node: &NodeInfo, reason: DownReason) {
        tracing::debug!(node = %node.node, %reason, "failing what waits for the node");
        self.inner.node_down(&node.node.node_name());
    }
}

fn call_failure(error: DeliverError) -> CallFailure {
    match error {
        DeliverError::NoProc => CallFailure::NoProc,
        DeliverError::NotEncodable => CallFailure::NotEncodable,
        DeliverError::Decode(message) => CallFailure::Decode(message),
        _ => CallFailure::NoProc,
    }
}

/// Sends a local server's encoded reply back to the calling node.
struct ReplySink {
    inner: Arc<Inner>,
    node: NodeName,
    call_id: u64,
}

impl EncodedReply for ReplySink {
    fn reply(self: Box<Self>, result: Result<Bytes, Unanswered>) {
        let result = result.map_err(|unanswered| match unanswered {
            Unanswered::Exited(reason) => CallFailure::Exited(reason),
            _ => CallFailure::ReplyDropped,
        });
        let reply = Reply { call_id: self.call_id, result };
        match self.inner.send(&self.node, Frame::Reply(reply)) {
            Ok(()) => {}
            Err(noex_cluster::SendError::TooLarge { len, limit }) => {
                // The caller gets a typed error now rather than a timeout.
                let message = format!("the reply ({len} bytes) exceeds the frame limit of {limit} bytes");
                let reply = Reply { call_id: self.call_id, result: Err(CallFailure::Decode(message)) };
                self.inner.send_signal(&self.node, Frame::Reply(reply));
            }
            Err(error @ noex_cluster::SendError::NotConnected(_)) => {
                tracing::debug!(node = %self.node, %error, "reply not sent: the caller's node is gone");
            }
            Err(error) => tracing::warn!(node = %self.node, %error, "reply not sent"),
        }
    }
}

impl Inner {
    /// `receipt` comes with a cast and goes into the mailbox with it (flow control: see noex-cluster).
    fn receive(self: &Arc<Self>, runtime: &Runtime, from: &NodeId, frame: Frame, receipt: Option<noex_core::Receipt>) {
        // Every pid a peer names as its own must be of its own node.
        let own = |pid: &Pid| {
            let ok = pid.node().as_str() == from.as_str();
            if !ok {
                tracing::warn!(%from, %pid, "frame names a process of another node as its sender; dropped");
            }
            ok
        };
        match frame {
            Frame::Call(call) if own(&call.from) => {
                let sink = ReplySink { inner: self.clone(), node: call.from.node().clone(), call_id: call.call_id };
                let message = EncodedMessage::Call { payload: call.payload, reply: Box::new(sink) };
                if let Err(error) = runtime.deliver_encoded(local_target(&call.target), message) {
                    let reply = Reply { call_id: call.call_id, result: Err(call_failure(error)) };
                    self.send_signal(call.from.node(), Frame::Reply(reply));
                }
            }
            Frame::Cast(cast) if own(&cast.from) => {
                let message = EncodedMessage::Cast { payload: cast.payload, receipt };
                if let Err(error) = runtime.deliver_encoded(local_target(&cast.target), message) {
                    tracing::debug!(%from, %error, "remote cast not delivered");
                }
            }
            Frame::Reply(reply) => match self.pending.take(reply.call_id, from.as_str()) {
                Some(waiter) => answer(waiter, reply.result),
                None => tracing::trace!(%from, call_id = reply.call_id, "late reply dropped"),
            },
            Frame::SpawnRequest(request) if own(&request.from) => {
                let Some(slot) = self.admit_request(request.from.node()) else { return };
                let inner = self.clone();
                self.tasks.spawn(async move {
                    let _slot = slot;
                    let node = request.from.node().clone();
                    let spawn_id = request.spawn_id;
                    let result = spawn_local(&inner, request).await;
                    let reply = SpawnReply { spawn_id, result: result.clone() };
                    if inner.send(&node, Frame::SpawnReply(reply)).is_err() {
                        // The requester is gone: the new process would be an orphan.
                        if let (Ok(pid), Some(runtime)) = (result, inner.runtime.upgrade()) {
                            inner.abandonable.abandon(&runtime, &inner.links, &pid);
                        }
                    }
                });
            }
            Frame::SpawnReply(reply) => match self.pending.take(reply.spawn_id, from.as_str()) {
                Some(Waiter::Spawn(waiter, timeout)) => {
                    let result = reply.result.map_err(|failure| SpawnError::from_failure(failure, timeout));
                    if let Err(Ok(pid)) = waiter.send(result) {
                        // The requester stopped waiting just now: stop what was started for it.
                        self.send_signal(pid.node(), exit_frame(&self.node_pid, &pid, ExitReason::Killed, false));
                    }
                }
                Some(other) => answer(other, Err(CallFailure::NoProc)),
                None => {
                    // The requester gave up: stop what was started for it.
                    if let Ok(pid) = reply.result {
                        if own(&pid) {
                            tracing::debug!(%pid, "late spawn reply; stopping the orphan");
                            self.send_signal(pid.node(), exit_frame(&self.node_pid, &pid, ExitReason::Killed, false));
                        }
                    }
                }
            },
            Frame::Monitor(request) if own(&request.watcher) => {
                let monitor = MonitorRef::new(request.watcher.node().clone(), request.monitor_id);
                let target = match &request.target {
                    Target::Pid(pid) => pid.clone(),
                    // An unknown name is reported (`noproc`) as this node's "no process" pid.
                    Target::Name(name) => runtime.whereis(name).unwrap_or_else(|| self.node_pid.clone()),
                };
                // Recorded under the liveness lock (never held while sending: `node_down` takes it under the
                // cluster's lock, and sending takes that lock).
                if self
                    .while_live(request.watcher.node(), || self.incoming.insert(monitor.clone(), target.clone()))
                    .is_none()
                {
                    return tracing::debug!(%from, "monitor request from a connection already down; dropped");
                }
                let inner = Arc::downgrade(self);
                let watcher = request.watcher;
                let node = watcher.node().clone();
                runtime.monitor_from_remote(&target, monitor.clone(), move |down| {
                    let Some(inner) = inner.upgrade() else { return };
                    inner.incoming.remove(&down.monitor);
                    let frame = Frame::Down(Down {
                        monitor_id: down.monitor.id(),
                        watcher: watcher.clone(),
                        pid: down.pid,
                        reason: down.reason,
                    });
                    inner.send_signal(watcher.node(), frame);
                });
                // The node may have gone down while the monitor was being installed: undo it then.
                if self.while_live(&node, || ()).is_none() && self.incoming.remove(&monitor).is_some() {
                    runtime.demonitor_from_remote(&target, &monitor);
                }
            }
            Frame::Demonitor(request) if own(&request.watcher) => {
                let monitor = MonitorRef::new(request.watcher.node().clone(), request.monitor_id);
                if let Some(target) = self.incoming.remove(&monitor) {
                    runtime.demonitor_from_remote(&target, &monitor);
                }
            }
            Frame::Down(down) if own(&down.pid) && down.watcher == self.node_pid => {
                if let Some(watcher) = self.outgoing.take(down.monitor_id, from.as_str()) {
                    watcher.deliver(down.reason);
                }
            }
            Frame::Link(link) if own(&link.from) => {
                let linked = self.while_live(link.from.node(), || {
                    // Recorded first: if the process ends right after linking, its exit finds (and clears) it.
                    self.links.insert(&link.to, &link.from);
                    let linked = runtime.link_from_remote(&link.to, link.from.clone());
                    if !linked {
                        self.links.remove(&link.to, &link.from);
                    }
                    linked
                });
                match linked {
                    None => tracing::debug!(%from, "link request from a connection already down; dropped"),
                    Some(true) => {}
                    Some(false) => {
                        self.send_signal(link.from.node(), exit_frame(&link.to, &link.from, ExitReason::NoProc, true));
                    }
                }
            }
            Frame::Unlink(link) if own(&link.from) => {
                self.links.remove(&link.to, &link.from);
                runtime.unlink_from_remote(&link.to, &link.from);
            }
            // A requester's late answer to a spawn it gave up on: undone the way it was made.
            Frame::Exit(exit)
                if own(&exit.from)
                    && crate::abandon::Abandonable::is_abandon(&exit.from, &exit.reason, exit.linked)
                    && self.abandonable.knows(&exit.to) =>
            {
                self.abandonable.abandon(runtime, &self.links, &exit.to);
            }
            Frame::Exit(exit) if own(&exit.from) => {
                if exit.linked {
                    self.links.remove(&exit.to, &exit.from);
                }
                runtime.exit_from_remote(&exit.to, exit.from, exit.reason, exit.linked);
            }
            Frame::Stop(stop) if own(&stop.from) => {
                let Some(slot) = self.admit_request(stop.from.node()) else { return };
                // Queued here, on the reader, in order with the frames before it; only the wait is a task.
                let timeout = stop.timeout.min(crate::MAX_PEER_TIMEOUT);
                let stopped = (!runtime.is_remote(&stop.target))
                    .then(|| runtime.stop_from_remote(&stop.target, stop.reason, timeout));
                let inner = self.clone();
                self.tasks.spawn(async move {
                    let _slot = slot;
                    let result = match stopped {
                        None => Err(CallFailure::NoProc),
                        Some(stopped) => match stopped.await {
                            Ok(()) => Ok(Bytes::new()),
                            Err(noex_core::StopError::Timeout(_)) => Err(CallFailure::Timeout),
                            Err(_) => Err(CallFailure::NoProc),
                        },
                    };
                    inner.send_signal(stop.from.node(), Frame::Reply(Reply { call_id: stop.call_id, result }));
                });
            }
            Frame::Call(_)
            | Frame::Cast(_)
            | Frame::SpawnRequest(_)
            | Frame::Monitor(_)
            | Frame::Demonitor(_)
            | Frame::Down(_)
            | Frame::Link(_)
            | Frame::Unlink(_)
            | Frame::Exit(_)
            | Frame::Stop(_) => {} // refused by `own`, which logged it
            other => tracing::debug!(%from, ?other, "unexpected frame for the process layer"),
        }
    }

    /// A place for one more spawn or stop from `node`; `None` if it has too many in progress, in which case its
    /// connection has been closed (see `limits.rs`): the request is answered by the connection's end.
    fn admit_request(&self, node: &NodeName) -> Option<crate::limits::Slot> {
        let slot = self.inflight.acquire(node, crate::MAX_REQUESTS_PER_PEER);
        if slot.is_none() {
            tracing::warn!(
                %node,
                limit = crate::MAX_REQUESTS_PER_PEER,
                "the node has too many spawns and stops in progress here; closing its connection (overloaded)"
            );
            if let Ok(sender) = self.sender(node) {
                sender.close_overloaded();
            }
        }
        slot
    }

    /// Runs `f` if `node` is connected, atomically with `node_down` (which waits for it); `None` if it is not.
    fn while_live<T>(&self, node: &NodeName, f: impl FnOnce() -> T) -> Option<T> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.contains(node).then(f)
    }

    /// `node` is gone: fail every request to it, fire every monitor on its processes (`noconnection`), drop the
    /// monitors its processes held here, and send `noconnection` over every link with it.
    pub(crate) fn node_down(&self, node: &NodeName) {
        // First, under the write lock: a `Link` or `Monitor` being applied finishes before, any later one is refused.
        self.live.write().unwrap_or_else(|p| p.into_inner()).remove(node);
        self.forget_sender(node);
        self.pending.fail_node(node.as_str());
        for watcher in self.outgoing.take_node(node.as_str()) {
            watcher.deliver(ExitReason::NoConnection);
        }
        let incoming = self.incoming.take_node(node);
        let links = self.links.take_node(node);
        let Some(runtime) = self.runtime.upgrade() else { return };
        for (monitor, target) in incoming {
            runtime.demonitor_from_remote(&target, &monitor);
        }
        for (local, remote) in links {
            runtime.exit_from_remote(&local, remote, ExitReason::NoConnection, true);
        }
    }
}

/// A target as the runtime resolves it; a pid of another node (or incarnation) resolves to nothing there.
fn local_target(target: &Target) -> noex_core::Target<'_> {
    match target {
        Target::Pid(pid) => noex_core::Target::Pid(pid),
        Target::Name(name) => noex_core::Target::Name(name),
    }
}

fn exit_frame(from: &Pid, to: &Pid, reason: ExitReason, linked: bool) -> Frame {
    Frame::Exit(Exit { from: from.clone(), to: to.clone(), reason, linked })
}

/// Starts a behaviour on this node for a spawn request (from another node, or from this one).
pub(crate) async fn spawn_local(inner: &Arc<Inner>, request: SpawnRequest) -> Result<Pid, SpawnFailure> {
    let started_at = Instant::now();
    let runtime = inner.runtime.upgrade().ok_or_else(|| SpawnFailure::InitFailed("node stopped".into()))?;
    let factory = inner
        .behaviours
        .get(&request.behaviour)
        .ok_or_else(|| SpawnFailure::UnknownBehaviour(request.behaviour.clone()))?;
    let name = request.name.clone().filter(|_| request.registration != Registration::None);
    let registrar = match (request.registration, &name) {
        // Registered before `init` runs, so that `init` (and whoever it talks to) can rely on the name; a name
        // held by another live process refuses the start.
        (Registration::Global, Some(name)) => Some(inner.registry.registrar(name.clone())),
        _ => None,
    };
    let local_name = name.filter(|_| request.registration == Registration::Local);
    let bonds = request.bonds.clone().map(|bonds| *bonds);
    if let Some(noex_proto::SpawnBonds { supervisor: Some(supervisor), link, restart }) = &bonds {
        if link.is_some() {
            return Err(SpawnFailure::BadArguments("a supervised child is linked with its supervisor only".into()));
        }
        let supervisor = supervisor.clone();
        let timeout = request.timeout;
        let child = spawn_child(&runtime, &factory, request, (&supervisor, *restart), local_name, registrar).await;
        if let Ok((pid, id)) = &child {
            inner.abandonable.remember(pid, crate::abandon::Made::Child { supervisor, child: id.clone() }, timeout);
        }
        return child.map(|(pid, _)| pid);
    }
    let mut options = noex_core::StartOptions::default().init_timeout(request.timeout.min(crate::MAX_PEER_TIMEOUT));
    options.name = local_name;
    options.registrar = registrar;
    if let Some(link) = bonds.and_then(|bonds| bonds.link) {
        // A peer may only link its own processes: the link's other end is told by this node, on its behalf.
        if link.node() != request.from.node() {
            return Err(SpawnFailure::BadArguments(format!("{link} is not a process of the requesting node")));
        }
        options.link = Some(link);
    }
    let linked = options.link.clone();
    let pid = (factory.start)(runtime.clone(), request.init_args, options).await?;
    if let Some(peer) = linked {
        inner.abandonable.remember(&pid, crate::abandon::Made::Linked { peer }, request.timeout);
    }
    if started_at.elapsed() > request.timeout {
        // The requester has given up by now; do not leave the process behind (its global name goes with it).
        inner.abandonable.abandon(&runtime, &inner.links, &pid);
        return Err(SpawnFailure::Timeout);
    }
    Ok(pid)
}

/// A spawn request with a supervisor: the behaviour becomes one of its children (its pid and child id).
async fn spawn_child(
    runtime: &Runtime,
    factory: &crate::spawn::Factory,
    request: SpawnRequest,
    (supervisor, restart): (&Pid, noex_core::Restart),
    name: Option<String>,
    registrar: Option<noex_core::Registrar>,
) -> Result<(Pid, String), SpawnFailure> {
    let supervisor = (!runtime.is_remote(supervisor))
        .then(|| noex_core::Supervisor::from_pid(runtime, supervisor))
        .flatten()
        .ok_or_else(|| SpawnFailure::BadArguments(format!("{supervisor} is not a supervisor of this node")))?;
    // Unique among the children a requester asks for: its node's pid and its request number.
    let id = format!("{}#{}@{}", request.behaviour, request.spawn_id, request.from);
    // Its `init` runs inside the supervisor's call: bounded, so that a peer's arguments cannot stall the supervisor.
    let limit = request.timeout.min(crate::MAX_PEER_TIMEOUT);
    let mut spec = (factory.child)(id.clone(), request.init_args)?.restart(restart).init_timeout(limit);
    if let Some(name) = name {
        spec = spec.named(name);
    }
    if let Some(registrar) = registrar {
        spec = spec.registered(registrar);
    }
    let call = supervisor.start_child(spec);
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(pid)) => Ok((pid, id)),
        Ok(Err(noex_core::SupervisorError::Start(noex_core::StartError::NameTaken { name, .. }))) => {
            Err(SpawnFailure::NameTaken(name))
        }
        Ok(Err(noex_core::SupervisorError::Start(error))) => Err(SpawnFailure::InitFailed(error.to_string())),
        Ok(Err(error)) => Err(SpawnFailure::InitFailed(error.to_string())),
        Err(_) => {
            // The requester has given up: take the child out again rather than leave it supervised.
            let _ = supervisor.terminate_child(&id).await;
            let _ = supervisor.delete_child(&id).await;
            Err(SpawnFailure::Timeout)
        }
    }
}
