//! The supervisor process: it places children with remote spawn, monitors each one, and restarts what ended by
//! its strategy. Every restart comes from one `DOWN` of one monitor, which is what makes failover exactly once: a
//! lost node's children are all handled at its first `noconnection`, and the monitors of the others are removed
//! in the same step (after `demonitor`, their `DOWN`s are never delivered).

mod load;
mod ops;
mod replicate;
mod restart;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use noex_cluster::NodeId;
use noex_core::{Context, ExitReason, GenServer, Info, MonitorRef, NodeName, Pid};
use noex_remote::{Node, SpawnOptions};
use tokio::sync::broadcast;

use crate::replication::{Kind, Snapshot};
use crate::selector::Candidates;
use crate::{
    DistChildInfo, DistChildSpec, DistEvent, DistStats, DistSupervisorError, DistSupervisorSpec, NodeSelector,
};
use replicate::Replication;

/// A child and, while it runs, its process, node and monitor.
struct Child {
    spec: DistChildSpec,
    running: Option<Running>,
    restarts: u32,
    /// The lost node it ran on, until it runs again (its restart is then a migration).
    lost_from: Option<NodeId>,
    /// Its last process, once ended: a registration of it that lingers on this node is not adopted.
    ended: Option<Pid>,
    /// A failed restart of it is to be retried (cleared when it is terminated, deleted or restarted on request).
    retrying: bool,
    /// How it came into the supervision.
    kind: Kind,
    /// Ended for good (terminated, or ended and not to be restarted): a new owner does not start it.
    stopped: bool,
}

impl Child {
    fn new(spec: DistChildSpec, kind: Kind, stopped: bool) -> Self {
        Child { spec, running: None, restarts: 0, lost_from: None, ended: None, retrying: false, kind, stopped }
    }
}

struct Running {
    pid: Pid,
    node: NodeId,
    monitor: MonitorRef,
}

pub(crate) struct DistSupervisorServer {
    node: Node,
    spec: DistSupervisorSpec,
    children: Vec<Child>,
    /// When the restarts within the intensity window happened.
    recent: VecDeque<Instant>,
    round_robin: usize,
    next_template_id: u64,
    events: broadcast::Sender<DistEvent>,
    total_restarts: u64,
    node_failure_restarts: u64,
    started_at: SystemTime,
    started: Instant,
    /// Children's processes on lost nodes, replaced elsewhere: if their node comes back (a partition healed, not a
    /// crash), they still run, and are stopped then. The rule is the same wherever it runs: the supervisor's
    /// current placement wins.
    orphans: Vec<(Arc<str>, Pid)>,
    /// Let go of its children (`Release`): it starts and stops nothing more.
    released: bool,
    /// The tasks that turn cluster and group events into notices; ended with the supervisor.
    forwarders: Vec<tokio::task::AbortHandle>,
    /// A named supervision's replication to its replicas.
    replication: Option<Replication>,
    /// The nodes' figures for `LeastLoaded`, as last observed.
    observed: Option<load::Observed>,
    /// The ids of the most recently removed children (see `replication::TOMBSTONES`).
    removed: VecDeque<Arc<str>>,
    /// Merges waiting for their children's nodes (see `merge`); handed on with the children at a release.
    deferred: Vec<Snapshot>,
}

impl Drop for DistSupervisorServer {
    fn drop(&mut self) {
        for forwarder in self.forwarders.drain(..) {
            forwarder.abort();
        }
    }
}

/// What the handle asks (local only: the supervisor is managed from its own node).
pub(crate) enum Op {
    StartChild(DistChildSpec),
    StartFromTemplate(Bytes),
    Terminate(String),
    Restart(String),
    Delete(String),
    WhichChildren,
    Stats,
    /// Let go of the children without stopping them (another supervisor of this name adopts them); the
    /// supervisor is then stopped, with nothing to stop.
    Release,
}

pub(crate) enum Answer {
    Started(Pid, NodeId),
    Done,
    /// Let go: the children, for the next owner to merge.
    Released(Vec<Snapshot>),
    Children(Vec<DistChildInfo>),
    Stats(DistStats),
}

type Result<T> = std::result::Result<T, DistSupervisorError>;

/// How a child came to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Spawned,
    /// It ran already (a named supervision's child, registered under its name): now monitored.
    Adopted,
}

impl DistSupervisorServer {
    /// A supervisor of `spec`'s children, or of those of `inherited` (a former owner's, as a replica knew them).
    pub(crate) fn new(
        node: Node,
        spec: DistSupervisorSpec,
        events: broadcast::Sender<DistEvent>,
        inherited: Option<Snapshot>,
    ) -> Self {
        let (children, next_template_id, removed) = match &inherited {
            Some(snapshot) => {
                let children = snapshot.children.iter().map(|c| Child::new(c.to_spec(&spec), c.kind, c.stopped));
                let removed = snapshot.removed.iter().map(|id| Arc::from(id.as_str())).collect();
                (children.collect(), snapshot.next_template_id, removed)
            }
            None => {
                let children = spec.children.iter().map(|c| Child::new(c.clone(), Kind::Static, false));
                (children.collect(), 0, VecDeque::new())
            }
        };
        let owner = node.id().node_name().as_str().to_string();
        let replication = spec.name.as_deref().map(|name| Replication::new(name, owner));
        DistSupervisorServer {
            node,
            children,
            spec,
            recent: VecDeque::new(),
            round_robin: 0,
            next_template_id,
            events,
            total_restarts: 0,
            node_failure_restarts: 0,
            started_at: SystemTime::now(),
            started: Instant::now(),
            orphans: Vec::new(),
            released: false,
            forwarders: Vec::new(),
            replication,
            observed: None,
            removed,
            deferred: Vec::new(),
        }
    }

    fn emit(&self, event: DistEvent) {
        let _ = self.events.send(event);
    }

    /// Picks a node for `spec`, never `excluded`.
    fn place(&mut self, spec: &DistChildSpec, excluded: Option<&NodeName>) -> Result<NodeId> {
        let local = self.node.id().clone();
        let mut others: Vec<NodeId> = self.node.cluster().connected();
        others.sort_by_key(|node| node.to_string());
        let nodes: Vec<NodeId> = std::iter::once(local)
            .chain(others)
            .filter(|node| excluded.is_none_or(|excluded| node.node_name() != *excluded))
            .collect();
        let selector = spec.selector.as_ref().unwrap_or(&self.spec.selector);
        let loads = match selector {
            NodeSelector::LeastLoaded => self.loads(&nodes),
            _ => Default::default(),
        };
        let load = |node: &NodeId| loads.get(node).copied().unwrap_or(0);
        let candidates = Candidates { nodes: &nodes, load: &load };
        let mut next = self.round_robin;
        let chosen = selector.choose(&candidates, &spec.id, &mut next);
        self.round_robin = next;
        chosen.ok_or_else(|| DistSupervisorError::NoAvailableNode(spec.id.to_string()))
    }

    /// Starts child `index` on a node its selector picks (never `excluded`), and monitors it.
    /// The global name of child `id`, if the supervision is named.
    fn child_name(&self, id: &str) -> Option<String> {
        self.spec.name.as_ref().map(|name| format!("dsup:{name}:{id}"))
    }

    /// Starts child `index` on a node its selector picks (never `excluded`), and monitors it. A named supervision's
    /// child that already runs (registered under its name) is adopted instead; the result says which.
    async fn start(&mut self, index: usize, excluded: Option<&NodeName>, ctx: &mut Context<Self>) -> Result<Start> {
        let spec = self.children[index].spec.clone();
        let name = self.child_name(&spec.id);
        if let Some(adopted) = self.adopt(index, name.as_deref(), ctx) {
            return Ok(adopted);
        }
        if matches!(spec.selector.as_ref().unwrap_or(&self.spec.selector), NodeSelector::LeastLoaded) {
            self.refresh_load().await;
        }
        let node = self.place(&spec, excluded)?;
        // A named supervision's children outlive its process (the next owner adopts them); the others are linked
        // to it, as OTP's are, so that they end with it whatever ends it.
        let mut options = match &name {
            Some(name) => SpawnOptions::global(name.clone()),
            None => SpawnOptions::default().link(ctx.pid()),
        };
        options.init_args = spec.args.clone();
        let spawned = self.node.remote().spawn(&spec.behaviour, &node, options).await;
        let pid = match spawned {
            Ok(pid) => pid,
            // Another copy holds the name: it runs, and is adopted (once the name has reached this node).
            Err(noex_remote::SpawnError::NameTaken(_)) if self.adopt(index, name.as_deref(), ctx).is_some() => {
                return Ok(Start::Adopted);
            }
            Err(error) => {
                let reason = error.to_string();
                return Err(DistSupervisorError::Spawn { id: spec.id.to_string(), node: node.to_string(), reason });
            }
        };
        // Monitored after the spawn: a child that ended in between gets a `noproc` DOWN, and is restarted as any.
        let monitor = ctx.monitor(&pid);
        self.children[index].running = Some(Running { pid, node, monitor });
        Ok(Start::Spawned)
    }

    /// Takes over child `index` if a live process is registered under its `name` (not its own ended process, nor
    /// one of a node that is not connected: registrations of those may linger here a moment).
    fn adopt(&mut self, index: usize, name: Option<&str>, ctx: &mut Context<Self>) -> Option<Start> {
        let pid = self.node.registry().whereis(name?)?;
        self.take_over(index, pid, ctx)
    }

    /// Monitors `pid` as child `index`'s process, unless its node is out of reach or it is the child's own ended
    /// process. A process that has ended meanwhile gets a `noproc` `DOWN`, and is restarted as any.
    fn take_over(&mut self, index: usize, pid: Pid, ctx: &mut Context<Self>) -> Option<Start> {
        let node: NodeId = pid.node().as_str().parse().ok()?;
        let reachable = node == *self.node.id() || self.node.cluster().is_connected(&node);
        if !reachable || self.children[index].ended.as_ref() == Some(&pid) {
            return None;
        }
        self.orphans.retain(|(_, orphan)| *orphan != pid);
        let monitor = ctx.monitor(&pid);
        self.children[index].running = Some(Running { pid, node, monitor });
        Some(Start::Adopted)
    }

    /// Stops child `index` if it runs (its monitor removed first, so its end is not taken for a crash).
    async fn stop(&mut self, index: usize, ctx: &mut Context<Self>) {
        let Some(running) = self.children[index].running.take() else { return };
        ctx.demonitor(&running.monitor);
        let timeout = self.children[index].spec.shutdown;
        if let Err(noex_core::StopError::NoConnection) =
            self.node.runtime().stop(&running.pid, ExitReason::Shutdown, timeout).await
        {
            // Out of reach (a partition not yet detected): it may still run, so it is stopped when its node is back.
            self.orphans.push((self.children[index].spec.id.clone(), running.pid));
        }
    }

    fn index(&self, id: &str) -> Result<usize> {
        self.children
            .iter()
            .position(|c| &*c.spec.id == id)
            .ok_or_else(|| DistSupervisorError::ChildNotFound(id.into()))
    }

    /// Forwards the joins of the supervision's replicas as notices; returns the replicas there are now.
    fn forward_joins(&mut self, ctx: &mut Context<Self>) -> Vec<Pid> {
        let Some(replication) = &self.replication else { return Vec::new() };
        let (members, mut changes) = self.node.groups().monitor(&replication.group);
        let myself = ctx.myself();
        let forwarder = tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                if let noex_pg::GroupEvent::Join { pids, .. } = change
                    && myself.try_cast(Notice::Joined(pids)).is_err()
                {
                    return; // the supervisor has ended
                }
            }
        });
        self.forwarders.push(forwarder.abort_handle());
        members
    }

    /// The process and node of child `index`, which has just been started (or adopted).
    fn current(&self, index: usize) -> (Pid, NodeId) {
        let running = self.children[index].running.as_ref().expect("started");
        (running.pid.clone(), running.node.clone())
    }
}

/// "Try starting this child again" (a restart whose spawn failed).
struct RetryStart(Arc<str>);

/// "Merge this again" (its children's nodes were not all connected yet), with the attempt's number.
struct MergeLater(u32);

/// What the supervisor hears from outside its calls.
pub(crate) enum Notice {
    /// A node is connected (again).
    NodeUp(NodeId),
    /// Node-ups may have been missed: look at every connected node.
    Resync,
    /// Replicas joined the supervision's group: they are sent the snapshot.
    Joined(Vec<Pid>),
    /// A replica on this node missed a change: it is sent the snapshot.
    SendState(String),
    /// A former owner handed over: its children are merged.
    Merge(Snapshot),
}

impl GenServer for DistSupervisorServer {
    type Call = Op;
    type Reply = Result<Answer>;
    type Cast = Notice;

    async fn init(&mut self, ctx: &mut Context<Self>) -> std::result::Result<(), ExitReason> {
        // Linked children's exits arrive as messages; their monitors' `DOWN`s are what restarts them.
        ctx.trap_exits(self.spec.name.is_none());
        // Node-ups reach the supervisor as casts, in order with everything else it handles.
        let mut cluster = self.node.cluster().events();
        let myself = ctx.myself();
        let forwarder = tokio::spawn(async move {
            loop {
                let notice = match cluster.recv().await {
                    Ok(noex_cluster::ClusterEvent::NodeUp(info)) => Notice::NodeUp(info.node),
                    Ok(_) => continue,
                    // A node-up may be among those missed: every connected node is looked at again.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "distributed supervisor: cluster events missed; resyncing");
                        Notice::Resync
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if myself.try_cast(notice).is_err() {
                    return; // the supervisor has ended
                }
            }
        });
        self.forwarders.push(forwarder.abort_handle());
        let members = self.forward_joins(ctx);
        for index in 0..self.children.len() {
            if self.children[index].stopped {
                continue; // stopped for good under a former owner
            }
            let start = match self.start(index, None, ctx).await {
                Ok(start) => start,
                // A named supervision taking over must never stop what it adopted: a child it cannot start yet
                // (its lost node's registration still lingers somewhere, say) is retried, as a failed restart is.
                Err(error) if self.spec.name.is_some() => {
                    tracing::warn!(%error, "distributed supervisor: a child cannot start yet; retrying");
                    self.children[index].retrying = true;
                    ctx.send_after(
                        std::time::Duration::from_millis(100),
                        RetryStart(self.children[index].spec.id.clone()),
                    );
                    continue;
                }
                Err(error) => {
                    for started in (0..index).rev() {
                        self.stop(started, ctx).await;
                    }
                    return Err(ExitReason::error(error.to_string()));
                }
            };
            let (pid, node) = self.current(index);
            let id = self.children[index].spec.id.clone();
            self.emit(match start {
                Start::Spawned => DistEvent::ChildStarted { id, pid, node },
                Start::Adopted => DistEvent::ChildAdopted { id, pid, node },
            });
        }
        self.send_state(members).await;
        Ok(())
    }

    async fn handle_call(&mut self, op: Op, ctx: &mut Context<Self>) -> Result<Answer> {
        if self.released {
            // Between its handover and its end: what it would do now, the new owner would never hear of.
            return Err(DistSupervisorError::HandedOver);
        }
        self.handle(op, ctx).await
    }

    async fn handle_cast(&mut self, notice: Notice, ctx: &mut Context<Self>) {
        if self.released {
            return;
        }
        match notice {
            Notice::NodeUp(node) => self.node_up(&node),
            Notice::Resync => {
                for node in self.node.cluster().connected() {
                    self.node_up(&node);
                }
            }
            Notice::Joined(pids) => self.send_state(pids).await,
            Notice::SendState(node) => {
                let Some(replication) = &self.replication else { return };
                let mut members = self.node.groups().members(&replication.group);
                members.retain(|pid| pid.node().as_str() == node);
                self.send_state(members).await;
            }
            Notice::Merge(snapshot) => self.merge(snapshot, 0, ctx).await,
        }
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<Self>) {
        if self.released {
            return;
        }
        match info {
            Info::Down(down) => self.child_down(down, ctx).await,
            Info::Message(msg) => {
                let msg = match msg.downcast::<MergeLater>() {
                    Ok(MergeLater(attempt)) => {
                        for snapshot in std::mem::take(&mut self.deferred) {
                            self.merge(snapshot, attempt, ctx).await;
                        }
                        return;
                    }
                    Err(msg) => msg,
                };
                if let Ok(RetryStart(id)) = msg.downcast::<RetryStart>() {
                    let Ok(index) = self.index(&id) else { return };
                    // Terminated, deleted or restarted on request meanwhile: nothing to retry.
                    if self.children[index].running.is_some() || !self.children[index].retrying {
                        return;
                    }
                    let id = self.children[index].spec.id.clone();
                    self.restart_counted(vec![id], None, ctx).await;
                }
            }
            _ => {}
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, ctx: &mut Context<Self>) {
        for index in (0..self.children.len()).rev() {
            self.stop(index, ctx).await;
        }
    }
}
