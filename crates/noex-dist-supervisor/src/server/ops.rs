//! What the supervisor is asked to do (start, terminate, restart, delete, list, hand over) and what it takes on
//! from a supervisor that handed over to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use noex_cluster::NodeId;
use noex_core::{Context, ExitReason, Pid};

use super::{Answer, Child, DistSupervisorServer, MergeLater, Op, Result, RetryStart, Start};
use crate::replication::{Change, Kind, ReplicatedChild, Snapshot, TOMBSTONES};

/// How many times (50 ms apart) a merge waits for the nodes its children run on.
const MERGE_ATTEMPTS: u32 = 40;
use crate::{DistChildInfo, DistChildSpec, DistEvent, DistStats, DistSupervisorError, Strategy};

impl DistSupervisorServer {
    /// Adds a child and starts it. The replicas hear of it first: if this node dies during the start, the new owner
    /// starts (or adopts) it.
    async fn start_new(&mut self, spec: DistChildSpec, kind: Kind, ctx: &mut Context<Self>) -> Result<(Pid, NodeId)> {
        if self.children.iter().any(|c| c.spec.id == spec.id) {
            return Err(DistSupervisorError::DuplicateChild(spec.id.to_string()));
        }
        self.removed.retain(|id| *id != spec.id);
        self.children.push(Child::new(spec, kind, false));
        let index = self.children.len() - 1;
        self.replicate_added(index).await;
        if let Err(error) = self.start(index, None, ctx).await {
            self.forget(index).await;
            return Err(error);
        }
        let (pid, node) = self.current(index);
        let id = self.children[index].spec.id.clone();
        self.emit(DistEvent::ChildStarted { id, pid: pid.clone(), node: node.clone() });
        Ok((pid, node))
    }

    async fn replicate_added(&mut self, index: usize) {
        let child = &self.children[index];
        let child = ReplicatedChild::new(&child.spec, child.kind, child.stopped);
        self.replicate(Change::Added { child, next_template_id: self.next_template_id }).await;
    }

    /// Marks child `index` stopped for good or not, and tells the replicas if that changed.
    async fn set_stopped(&mut self, index: usize, stopped: bool) {
        if std::mem::replace(&mut self.children[index].stopped, stopped) != stopped {
            let id = self.children[index].spec.id.to_string();
            self.replicate(Change::Stopped { id, stopped }).await;
        }
    }

    pub(super) async fn handle(&mut self, op: Op, ctx: &mut Context<Self>) -> Result<Answer> {
        Ok(match op {
            Op::StartChild(spec) => {
                if self.spec.strategy == Strategy::SimpleOneForOne {
                    return Err(DistSupervisorError::Misuse(
                        "a simple_one_for_one supervisor starts from its template",
                    ));
                }
                let (pid, node) = self.start_new(spec, Kind::Added, ctx).await?;
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
                self.next_template_id = self
                    .next_template_id
                    .checked_add(1)
                    .ok_or(DistSupervisorError::Misuse("the template's child numbers are used up"))?;
                let id: Arc<str> = format!("{}_{}", template.id, self.next_template_id).into();
                let spec = DistChildSpec { id, args, ..template };
                let (pid, node) = self.start_new(spec, Kind::Templated, ctx).await?;
                Answer::Started(pid, node)
            }
            Op::Terminate(id) => {
                let index = self.index(&id)?;
                self.children[index].retrying = false;
                self.stop(index, ctx).await;
                self.set_stopped(index, true).await;
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
                self.set_stopped(index, false).await;
                let (pid, node) = self.current(index);
                Answer::Started(pid, node)
            }
            Op::Delete(id) => {
                let index = self.index(&id)?;
                self.stop(index, ctx).await;
                self.forget(index).await;
                Answer::Done
            }
            Op::WhichChildren => Answer::Children(self.children.iter().map(child_info).collect()),
            Op::Release => {
                // Taken first: the new owner adopts the children where they run now.
                let snapshot = self.snapshot();
                for child in &mut self.children {
                    if let Some(running) = child.running.take() {
                        ctx.demonitor(&running.monitor);
                    }
                }
                self.orphans.clear();
                self.released = true;
                let mut snapshots = vec![snapshot];
                snapshots.append(&mut self.deferred);
                Answer::Released(snapshots)
            }
            Op::Stats => Answer::Stats(self.stats()),
        })
    }

    /// Takes on what a supervisor that handed over to this one ran: the children this one does not know (started
    /// on the other side of a partition, say) are adopted where they run, or started; copies of children this one
    /// removed or holds stopped are killed, so that its decisions win. A merge whose children run on nodes not yet
    /// connected again (a partition healing link by link) waits for them a moment, so that they are adopted, not
    /// started twice.
    pub(super) async fn merge(&mut self, snapshot: Snapshot, attempt: u32, ctx: &mut Context<Self>) {
        let unreachable = |pid: &crate::replication::WirePid| {
            let node: Option<NodeId> = pid.to_pid().node().as_str().parse().ok();
            node.is_some_and(|node| node != *self.node.id() && !self.node.cluster().is_connected(&node))
        };
        // Only children it would take on count: those it knows are skipped or stopped anyway.
        let unknown = |c: &&ReplicatedChild| !self.children.iter().any(|known| *known.spec.id == *c.id);
        let waiting = snapshot.children.iter().filter(unknown).filter_map(|c| c.running.as_ref()).any(unreachable);
        if attempt < MERGE_ATTEMPTS && waiting {
            self.deferred.push(snapshot);
            ctx.send_after(std::time::Duration::from_millis(50), MergeLater(attempt + 1));
            return;
        }
        self.next_template_id = self.next_template_id.max(snapshot.next_template_id);
        tracing::debug!(from = %snapshot.owner, children = snapshot.children.len(), attempt, "merging");
        for child in snapshot.children {
            let known = self.children.iter().find(|c| *c.spec.id == *child.id);
            let removed = known.is_none() && self.removed.iter().any(|id| **id == *child.id);
            if known.is_some_and(|c| c.stopped) || removed {
                // Stopped or deleted here: a copy the other side ran must not run on, unsupervised.
                if let Some(pid) = child.running.as_ref().map(|pid| pid.to_pid()) {
                    self.node.runtime().exit(&pid, ExitReason::Killed);
                    let node = pid.node().as_str().parse().unwrap_or_else(|_| self.node.id().clone());
                    self.emit(DistEvent::DuplicateStopped { id: child.id.as_str().into(), pid, node });
                }
                continue;
            }
            if known.is_some() {
                continue; // both ran it: the registry keeps one copy, which this supervisor adopts if it is not its own
            }
            tracing::info!(child = %child.id, "distributed supervisor: taking on a child of a former owner");
            self.children.push(Child::new(child.to_spec(&self.spec), child.kind, child.stopped));
            let index = self.children.len() - 1;
            self.replicate_added(index).await;
            if child.stopped {
                continue;
            }
            let id = self.children[index].spec.id.clone();
            // Where it runs, as the former owner knew it: this node's registry may not have its name yet.
            let known = child.running.as_ref().and_then(|pid| self.take_over(index, pid.to_pid(), ctx));
            let started = match known {
                Some(adopted) => Ok(adopted),
                None => self.start(index, None, ctx).await,
            };
            match started {
                Ok(start) => {
                    let (pid, node) = self.current(index);
                    self.emit(match start {
                        Start::Spawned => DistEvent::ChildStarted { id, pid, node },
                        Start::Adopted => DistEvent::ChildAdopted { id, pid, node },
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "distributed supervisor: a merged child cannot start yet; retrying");
                    self.children[index].retrying = true;
                    ctx.send_after(std::time::Duration::from_millis(100), RetryStart(id));
                }
            }
        }
    }

    /// Forgets child `index` (deleted, or a temporary child that ended): its id is remembered for merges, and
    /// the replicas are told.
    pub(super) async fn forget(&mut self, index: usize) -> Child {
        let child = self.children.remove(index);
        self.removed.retain(|id| *id != child.spec.id);
        if self.removed.len() >= TOMBSTONES {
            self.removed.pop_front();
        }
        self.removed.push_back(child.spec.id.clone());
        self.replicate(Change::Removed(child.spec.id.to_string())).await;
        child
    }

    /// `node` is connected (again): what still runs there of children replaced elsewhere is stopped.
    pub(super) fn node_up(&mut self, node: &NodeId) {
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

    pub(super) fn stats(&self) -> DistStats {
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
