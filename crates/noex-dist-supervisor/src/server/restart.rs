//! Restarts: which children a failure takes with it, how many restarts the intensity allows, and the restart of
//! a group in order. A lost node's children are all handled at its first `noconnection`, once.

use std::sync::Arc;
use std::time::Instant;

use noex_core::{Context, ExitReason, NodeName, ProcessDown, Restart};

use super::{DistSupervisorServer, RetryStart, Start};
use crate::replication::Change;
use crate::{DistEvent, Strategy};

impl DistSupervisorServer {
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
    pub(super) async fn child_down(&mut self, down: ProcessDown, ctx: &mut Context<Self>) {
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
        self.remove_finished(&affected, &restarting, &down.reason).await;
        if must_restart.is_empty() {
            return;
        }
        self.restart_counted(must_restart, lost_node.as_ref(), ctx).await;
    }

    fn wants_restart(&self, index: usize, reason: &ExitReason) -> bool {
        match self.children[index].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !matches!(reason, ExitReason::Normal | ExitReason::Shutdown),
            Restart::Temporary => false,
        }
    }

    /// Children that ended for good: temporary ones are forgotten, others stay stopped; each said once, and told
    /// to the replicas.
    async fn remove_finished(&mut self, affected: &[usize], restarting: &[usize], reason: &ExitReason) {
        let mut temporary = Vec::new();
        for &i in affected.iter().filter(|i| !restarting.contains(i)) {
            let child = &mut self.children[i];
            let id = child.spec.id.clone();
            if child.spec.restart == Restart::Temporary {
                temporary.push(id.clone());
            } else {
                child.stopped = true;
                self.replicate(Change::Stopped { id: id.to_string(), stopped: true }).await;
            }
            self.emit(DistEvent::ChildStopped { id, reason: reason.clone() });
        }
        for id in temporary {
            if let Ok(index) = self.index(&id) {
                self.forget(index).await;
            }
        }
    }

    /// Restarts children `ids` with their strategy's group; `lost` (a lost node) is kept out of placement.
    ///
    /// Returns whether it started (or tried to start) anything: a named supervision's child whose copy elsewhere
    /// holds its name is adopted instead, and a restart that only adopted is not one. That is how the registry's
    /// resolution of a duplicate (it ends one copy of each child after a healed partition) costs no intensity.
    pub(super) async fn restart_all(
        &mut self,
        ids: Vec<Arc<str>>,
        lost: Option<&NodeName>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let mut spawned = false;
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
        let members: Vec<Arc<str>> = group.iter().map(|&i| self.children[i].spec.id.clone()).collect();
        for id in &temporary {
            self.emit(DistEvent::ChildStopped { id: id.clone(), reason: ExitReason::Shutdown });
            if let Ok(index) = self.index(id) {
                self.forget(index).await;
            }
        }
        // By id again: removing children shifted the indices.
        let group: Vec<usize> =
            (0..self.children.len()).filter(|&i| members.contains(&self.children[i].spec.id)).collect();
        for i in group {
            let id = self.children[i].spec.id.clone();
            match self.start(i, lost, ctx).await {
                Ok(Start::Adopted) => {
                    let child = &mut self.children[i];
                    child.retrying = false;
                    child.lost_from = None;
                    let (pid, node) = self.current(i);
                    self.emit(DistEvent::ChildAdopted { id, pid, node });
                }
                Ok(Start::Spawned) => {
                    spawned = true;
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
                    spawned = true;
                    // Retried through the mailbox, as a crash: counted against the intensity.
                    tracing::warn!(%error, "distributed supervisor: a restart failed; retrying");
                    self.children[i].retrying = true;
                    ctx.send_after(std::time::Duration::from_millis(100), RetryStart(id));
                    // As OTP: a group stops at its first failed start, and the retry restarts the group again
                    // (all of it, or this child and those after it). Independent children go on.
                    if matches!(self.spec.strategy, Strategy::OneForAll | Strategy::RestForOne) {
                        break;
                    }
                }
            }
        }
        spawned
    }

    /// Restarts `ids` as one restart against the intensity (refunded if it only adopted); false if the intensity
    /// is exceeded, and the supervisor stops.
    pub(super) async fn restart_counted(
        &mut self,
        ids: Vec<Arc<str>>,
        lost: Option<&NodeName>,
        ctx: &mut Context<Self>,
    ) {
        if !self.allow_restart() {
            tracing::error!(pid = %ctx.pid(), "distributed supervisor: restart intensity exceeded; stopping");
            return ctx.stop(ExitReason::Shutdown);
        }
        if !self.restart_all(ids, lost, ctx).await {
            self.recent.pop_back();
        }
    }
}
