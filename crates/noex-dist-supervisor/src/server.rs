//! The supervisor process: it places children with remote spawn, monitors each one, and restarts what ended by
//! its strategy. Every restart comes from one `DOWN` of one monitor, which is what makes failover exactly once: a
//! lost node's children are all handled at its first `noconnection`, and the monitors of the others are removed
//! in the same step (after `demonitor`, their `DOWN`s are never delivered).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use noex_cluster::NodeId;
use noex_core::{Context, ExitReason, GenServer, Info, MonitorRef, NodeName, Pid, ProcessDown, Restart};
use noex_remote::{Node, SpawnOptions};
use tokio::sync::broadcast;

use crate::selector::Candidates;
use crate::{DistChildInfo, DistChildSpec, DistEvent, DistStats, DistSupervisorError, DistSupervisorSpec, Strategy};

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
    /// The task that turns cluster events into notices; ended with the supervisor.
    forwarder: Option<tokio::task::AbortHandle>,
}

impl Drop for DistSupervisorServer {
    fn drop(&mut self) {
        if let Some(forwarder) = self.forwarder.take() {
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
    pub(crate) fn new(node: Node, spec: DistSupervisorSpec, events: broadcast::Sender<DistEvent>) -> Self {
        let children = spec.children.iter().map(|spec| Child {
            spec: spec.clone(),
            running: None,
            restarts: 0,
            lost_from: None,
            ended: None,
            retrying: false,
        });
        DistSupervisorServer {
            node,
            children: children.collect(),
            spec,
            recent: VecDeque::new(),
            round_robin: 0,
            next_template_id: 0,
            events,
            total_restarts: 0,
            node_failure_restarts: 0,
            started_at: SystemTime::now(),
            started: Instant::now(),
            orphans: Vec::new(),
            released: false,
            forwarder: None,
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
        let load = |node: &NodeId| {
            self.children.iter().filter(|c| c.running.as_ref().is_some_and(|r| r.node == *node)).count()
        };
        let selector = spec.selector.as_ref().unwrap_or(&self.spec.selector);
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
        let node = self.place(&spec, excluded)?;
        let mut options = match &name {
            Some(name) => SpawnOptions::global(name.clone()),
            None => SpawnOptions::default(),
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

    /// The process and node of child `index`, which has just been started (or adopted).
    fn current(&self, index: usize) -> (Pid, NodeId) {
        let running = self.children[index].running.as_ref().expect("started");
        (running.pid.clone(), running.node.clone())
    }

    /// Records one restart against the intensity; false if that is one too many.
    fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > self.spec.within) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.spec.max_restarts as usize
    }

    /// The children a strategy restarts together with `index`, in start order.
    fn group(&self, index: usize) -> Vec<usize> {
        match self.spec.strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => vec![index],
            Strategy::OneForAll => (0..self.children.len()).collect(),
            Strategy::RestForOne => (index..self.children.len()).collect(),
        }
    }

    /// A child's monitor fired: restart what the strategy says, once.
    async fn child_down(&mut self, down: ProcessDown, ctx: &mut Context<Self>) {
        let Some(index) =
            self.children.iter().position(|c| c.running.as_ref().is_some_and(|r| r.monitor == down.monitor))
        else {
            return; // a child already stopped or replaced
        };
        // `noconnection` from a node that is still connected is one child's end (a link to a lost node, say),
        // not a lost node: only the child is restarted.
        let child_node = &self.children[index].running.as_ref().expect("found").node;
        let node_gone = *child_node != *self.node.id() && !self.node.cluster().is_connected(child_node);
        let lost_node = (down.reason == ExitReason::NoConnection && node_gone).then(|| down.pid.node().clone());
        let ended = self.children[index].running.take().expect("found running");
        self.children[index].ended = Some(ended.pid.clone());
        // A lost node: every child there is handled now, the others' monitors removed, so each restarts once.
        let mut affected = vec![index];
        if let Some(lost) = &lost_node {
            self.orphans.push((self.children[index].spec.id.clone(), ended.pid.clone()));
            self.children[index].lost_from = Some(ended.node.clone());
            for (i, child) in self.children.iter_mut().enumerate() {
                if child.running.as_ref().is_some_and(|r| r.pid.node() == lost) {
                    let running = child.running.take().expect("checked");
                    ctx.demonitor(&running.monitor);
                    self.orphans.push((child.spec.id.clone(), running.pid.clone()));
                    child.ended = Some(running.pid);
                    child.lost_from = Some(running.node);
                    affected.push(i);
                }
            }
            affected.sort_unstable();
            let ids = affected.iter().map(|&i| self.children[i].spec.id.clone()).collect();
            self.emit(DistEvent::NodeFailureDetected { node: ended.node.clone(), affected: ids });
        }
        // One failure, one restart against the intensity, however many children it took.
        let restarting: Vec<usize> =
            affected.iter().copied().filter(|&i| self.wants_restart(i, &down.reason)).collect();
        // By id: removing the temporary children below shifts the indices.
        let must_restart: Vec<Arc<str>> = restarting.iter().map(|&i| self.children[i].spec.id.clone()).collect();
        self.remove_finished(&affected, &restarting, &down.reason);
        if must_restart.is_empty() {
            return;
        }
        if !self.allow_restart() {
            tracing::error!(pid = %ctx.pid(), "distributed supervisor: restart intensity exceeded; stopping");
            return ctx.stop(ExitReason::Shutdown);
        }
        self.restart_all(must_restart, lost_node.as_ref(), ctx).await;
    }

    fn wants_restart(&self, index: usize, reason: &ExitReason) -> bool {
        match self.children[index].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !matches!(reason, ExitReason::Normal | ExitReason::Shutdown),
            Restart::Temporary => false,
        }
    }

    /// Children that ended for good: temporary ones are forgotten, others stay stopped; each said once.
    fn remove_finished(&mut self, affected: &[usize], restarting: &[usize], reason: &ExitReason) {
        for &i in affected.iter().filter(|i| !restarting.contains(i)) {
            self.emit(DistEvent::ChildStopped { id: self.children[i].spec.id.clone(), reason: reason.clone() });
        }
        let mut i = 0;
        self.children.retain(|child| {
            let keep = !(affected.contains(&i) && !restarting.contains(&i) && child.spec.restart == Restart::Temporary);
            i += 1;
            keep
        });
    }

    /// Restarts children `ids` with their strategy's group; `lost` (a lost node) is kept out of placement.
    async fn restart_all(&mut self, ids: Vec<Arc<str>>, lost: Option<&NodeName>, ctx: &mut Context<Self>) {
        let mut group: Vec<usize> = Vec::new();
        for id in &ids {
            let Ok(index) = self.index(id) else { continue };
            for i in self.group(index) {
                if !group.contains(&i) {
                    group.push(i);
                }
            }
        }
        group.sort_unstable();
        for &i in group.iter().rev() {
            self.stop(i, ctx).await;
        }
        // As OTP: temporary siblings stopped by a group restart are not started again, but removed.
        let temporary: Vec<Arc<str>> = group
            .iter()
            .map(|&i| &self.children[i].spec)
            .filter(|spec| spec.restart == Restart::Temporary && !ids.contains(&spec.id))
            .map(|spec| spec.id.clone())
            .collect();
        for id in &temporary {
            self.emit(DistEvent::ChildStopped { id: id.clone(), reason: ExitReason::Shutdown });
        }
        let members: Vec<Arc<str>> = group.iter().map(|&i| self.children[i].spec.id.clone()).collect();
        self.children.retain(|child| !temporary.contains(&child.spec.id));
        // By id again: removing children shifted the indices.
        let group: Vec<usize> =
            (0..self.children.len()).filter(|&i| members.contains(&self.children[i].spec.id)).collect();
        for i in group {
            let id = self.children[i].spec.id.clone();
            match self.start(i, lost, ctx).await {
                Ok(_) => {
                    let child = &mut self.children[i];
                    child.retrying = false;
                    child.restarts += 1;
                    let (attempt, lost_from) = (child.restarts, child.lost_from.take());
                    self.total_restarts += 1;
                    let (pid, node) = self.current(i);
                    let event = match lost_from {
                        Some(from) => {
                            self.node_failure_restarts += 1;
                            DistEvent::ChildMigrated { id, pid, from, to: node }
                        }
                        None => DistEvent::ChildRestarted { id, pid, node, attempt },
                    };
                    self.emit(event);
                }
                Err(error) => {
                    // Retried through the mailbox, as a crash: counted against the intensity.
                    tracing::warn!(%error, "distributed supervisor: a restart failed; retrying");
                    self.children[i].retrying = true;
                    ctx.send_after(std::time::Duration::from_millis(100), RetryStart(id));
                }
            }
        }
    }

    async fn start_new(&mut self, spec: DistChildSpec, ctx: &mut Context<Self>) -> Result<(Pid, NodeId)> {
        if self.children.iter().any(|c| c.spec.id == spec.id) {
            return Err(DistSupervisorError::DuplicateChild(spec.id.to_string()));
        }
        self.children.push(Child { spec, running: None, restarts: 0, lost_from: None, ended: None, retrying: false });
        let index = self.children.len() - 1;
        if let Err(error) = self.start(index, None, ctx).await {
            self.children.pop();
            return Err(error);
        }
        let (pid, node) = self.current(index);
        let id = self.children[index].spec.id.clone();
        self.emit(DistEvent::ChildStarted { id, pid: pid.clone(), node: node.clone() });
        Ok((pid, node))
    }

    async fn handle(&mut self, op: Op, ctx: &mut Context<Self>) -> Result<Answer> {
        Ok(match op {
            Op::StartChild(spec) => {
                if self.spec.strategy == Strategy::SimpleOneForOne {
                    return Err(DistSupervisorError::Misuse(
                        "a simple_one_for_one supervisor starts from its template",
                    ));
                }
                let (pid, node) = self.start_new(spec, ctx).await?;
                Answer::Started(pid, node)
            }
            Op::StartFromTemplate(args) => {
                let Some(template) =
                    self.spec.template.clone().filter(|_| self.spec.strategy == Strategy::SimpleOneForOne)
                else {
                    return Err(DistSupervisorError::Misuse(
                        "start_child with arguments needs simple_one_for_one and a template",
                    ));
                };
                self.next_template_id += 1;
                let id: Arc<str> = format!("{}_{}", template.id, self.next_template_id).into();
                let (pid, node) = self.start_new(DistChildSpec { id, args, ..template }, ctx).await?;
                Answer::Started(pid, node)
            }
            Op::Terminate(id) => {
                let index = self.index(&id)?;
                self.children[index].retrying = false;
                self.stop(index, ctx).await;
                self.emit(DistEvent::ChildStopped {
                    id: self.children[index].spec.id.clone(),
                    reason: ExitReason::Shutdown,
                });
                Answer::Done
            }
            Op::Restart(id) => {
                let index = self.index(&id)?;
                self.children[index].retrying = false;
                self.stop(index, ctx).await;
                self.start(index, None, ctx).await?;
                let (pid, node) = self.current(index);
                Answer::Started(pid, node)
            }
            Op::Delete(id) => {
                let index = self.index(&id)?;
                self.stop(index, ctx).await;
                self.children.remove(index);
                Answer::Done
            }
            Op::WhichChildren => Answer::Children(self.children.iter().map(child_info).collect()),
            Op::Release => {
                for child in &mut self.children {
                    if let Some(running) = child.running.take() {
                        ctx.demonitor(&running.monitor);
                    }
                }
                self.orphans.clear();
                self.released = true;
                Answer::Done
            }
            Op::Stats => Answer::Stats(self.stats()),
        })
    }

    /// `node` is connected (again): what still runs there of children replaced elsewhere is stopped.
    fn node_up(&mut self, node: &NodeId) {
        // The notice came through a task: the node may have gone again since; its orphans wait for the next up.
        if !self.node.cluster().is_connected(node) {
            return;
        }
        let name = node.node_name();
        let (back, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.orphans).into_iter().partition(|(_, pid)| *pid.node() == name);
        self.orphans = others;
        let current: Vec<Pid> =
            self.children.iter().filter_map(|c| c.running.as_ref().map(|r| r.pid.clone())).collect();
        for (id, pid) in back.into_iter().filter(|(_, pid)| !current.contains(pid)) {
            // Killed, not asked: a duplicate must not go on working, whatever it traps. A process of an older
            // incarnation of the node is gone already, and the signal goes nowhere.
            self.node.runtime().exit(&pid, ExitReason::Killed);
            self.emit(DistEvent::DuplicateStopped { id, pid, node: node.clone() });
        }
    }

    fn stats(&self) -> DistStats {
        let mut children_by_node = BTreeMap::new();
        for running in self.children.iter().filter_map(|c| c.running.as_ref()) {
            *children_by_node.entry(running.node.to_string()).or_insert(0) += 1;
        }
        DistStats {
            children: self.children.len(),
            children_by_node,
            total_restarts: self.total_restarts,
            node_failure_restarts: self.node_failure_restarts,
            started_at: self.started_at,
            uptime: self.started.elapsed(),
        }
    }
}

fn child_info(child: &Child) -> DistChildInfo {
    DistChildInfo {
        id: child.spec.id.clone(),
        behaviour: child.spec.behaviour.clone(),
        pid: child.running.as_ref().map(|r| r.pid.clone()),
        node: child.running.as_ref().map(|r| r.node.clone()),
        restart: child.spec.restart,
        restarts: child.restarts,
    }
}

/// "Try starting this child again" (a restart whose spawn failed).
struct RetryStart(Arc<str>);

/// What the supervisor hears from outside its calls.
pub(crate) enum Notice {
    /// A node is connected (again).
    NodeUp(NodeId),
    /// Node-ups may have been missed: look at every connected node.
    Resync,
}

impl GenServer for DistSupervisorServer {
    type Call = Op;
    type Reply = Result<Answer>;
    type Cast = Notice;

    async fn init(&mut self, ctx: &mut Context<Self>) -> std::result::Result<(), ExitReason> {
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
        self.forwarder = Some(forwarder.abort_handle());
        for index in 0..self.children.len() {
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
        Ok(())
    }

    async fn handle_call(&mut self, op: Op, ctx: &mut Context<Self>) -> Result<Answer> {
        self.handle(op, ctx).await
    }

    async fn handle_cast(&mut self, notice: Notice, _ctx: &mut Context<Self>) {
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
        }
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<Self>) {
        if self.released {
            return;
        }
        match info {
            Info::Down(down) => self.child_down(down, ctx).await,
            Info::Message(msg) => {
                if let Ok(RetryStart(id)) = msg.downcast::<RetryStart>() {
                    let Ok(index) = self.index(&id) else { return };
                    // Terminated, deleted or restarted on request meanwhile: nothing to retry.
                    if self.children[index].running.is_some() || !self.children[index].retrying {
                        return;
                    }
                    if !self.allow_restart() {
                        tracing::error!(pid = %ctx.pid(), "distributed supervisor: restart intensity exceeded; stopping");
                        return ctx.stop(ExitReason::Shutdown);
                    }
                    let id = self.children[index].spec.id.clone();
                    self.restart_all(vec![id], None, ctx).await;
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
