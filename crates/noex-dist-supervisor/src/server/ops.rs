//! What the supervisor is asked to do (start, terminate, restart, delete, list, hand over) and what it takes on
//! from a supervisor that handed over to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use noex_cluster::NodeId;
use noex_core::{Context, ExitReason, Pid};

use super::{Answer, Child, DistSupervisorServer, Op, Result, RetryStart, Start};
use crate::replication::{Change, Kind, ReplicatedChild, Snapshot};
use crate::{DistChildInfo, DistChildSpec, DistEvent, DistStats, DistSupervisorError, Strategy};

impl DistSupervisorServer {
    /// Adds a child and starts it. The replicas hear of it first: if this node dies during the start, the new owner
    /// starts (or adopts) it.
    async fn start_new(&mut self, spec: DistChildSpec, kind: Kind, ctx: &mut Context<Self>) -> Result<(Pid, NodeId)> {
        if self.children.iter().any(|c| c.spec.id == spec.id) {
            return Err(DistSupervisorError::DuplicateChild(spec.id.to_string()));
        }
        self.children.push(Child::new(spec, kind, false));
        let index = self.children.len() - 1;
        self.replicate_added(index).await;
        if let Err(error) = self.start(index, None, ctx).await {
            let child = self.children.pop().expect("pushed");
            self.replicate(Change::Removed(child.spec.id.to_string())).await;
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
                self.next_template_id += 1;
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
                let child = self.children.remove(index);
                self.replicate(Change::Removed(child.spec.id.to_string())).await;
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
                Answer::Released(self.snapshot())
            }
            Op::Stats => Answer::Stats(self.stats()),
        })
    }

    /// Takes on the children of a supervisor that handed over to this one and that this one does not know
    /// (started on the other side of a partition, say): they are adopted if they run, started if they should.
    pub(super) async fn merge(&mut self, snapshot: Snapshot, ctx: &mut Context<Self>) {
        self.next_template_id = self.next_template_id.max(snapshot.next_template_id);
        for child in snapshot.children {
            if self.children.iter().any(|c| *c.spec.id == *child.id) {
                continue;
            }
            tracing::info!(child = %child.id, "distributed supervisor: taking on a child of a former owner");
            self.children.push(Child::new(child.to_spec(&self.spec), child.kind, child.stopped));
            let index = self.children.len() - 1;
            self.replicate_added(index).await;
            if child.stopped {
                continue;
            }
            let id = self.children[index].spec.id.clone();
            match self.start(index, None, ctx).await {
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
