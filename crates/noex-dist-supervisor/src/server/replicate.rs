//! The supervisor's side of replication (see `crate::replication`): its snapshot, sent to each replica that joins
//! or asks, and each change of its children, numbered, sent to every replica in the order it was made.

use std::time::Duration;

use noex_core::Pid;

use super::DistSupervisorServer;
use crate::replica::Replica;
use crate::replication::{Change, ReplicaMessage, ReplicatedChild, Snapshot};

/// How long a replica of another node gets to apply a change.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a named supervisor's changes go, and how they are numbered.
pub(super) struct Replication {
    /// The process group of the supervision's replicas.
    pub(super) group: String,
    /// This node, as replicas know the owner.
    owner: String,
    /// New with each supervisor process: a replica never applies one supervisor's change to another's state.
    epoch: u64,
    /// The number of the last change.
    seq: u64,
}

impl Replication {
    pub(super) fn new(name: &str, owner: String) -> Self {
        let epoch = getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |t| t.as_nanos() as u64)
        });
        Replication { group: format!("dsup:{name}"), owner, epoch, seq: 0 }
    }
}

impl DistSupervisorServer {
    /// The children as replicas keep them.
    pub(super) fn snapshot(&self) -> Snapshot {
        let (owner, epoch, seq) =
            self.replication.as_ref().map_or((String::new(), 0, 0), |r| (r.owner.clone(), r.epoch, r.seq));
        let children = self
            .children
            .iter()
            .map(|c| {
                let mut child = ReplicatedChild::new(&c.spec, c.kind, c.stopped);
                child.running = c.running.as_ref().map(|r| (&r.pid).into());
                child
            })
            .collect();
        let removed = self.removed.iter().map(|id| id.to_string()).collect();
        Snapshot { owner, epoch, seq, children, next_template_id: self.next_template_id, removed }
    }

    /// Tells every replica of `change`, in order with the others.
    pub(super) async fn replicate(&mut self, change: Change) {
        let Some(replication) = &mut self.replication else { return };
        replication.seq += 1;
        let message = ReplicaMessage::Change {
            owner: replication.owner.clone(),
            epoch: replication.epoch,
            seq: replication.seq,
            change,
        };
        let members = self.node.groups().members(&replication.group);
        self.send(members, message, true).await;
    }

    /// Sends the snapshot to replicas `to`.
    pub(super) async fn send_state(&self, to: Vec<Pid>) {
        if self.replication.is_some() && !to.is_empty() {
            self.send(to, ReplicaMessage::State(self.snapshot()), false).await;
        }
    }

    /// Sends `message` to replicas `to`, in order. With `acknowledged` (a change), other nodes' replicas answer
    /// once they have applied it, so that a change the supervisor has made (and answered) is known wherever a
    /// takeover can start; a replica that does not answer in time is one that lost its connection, leaves the
    /// group, and is sent the snapshot when it joins again. A snapshot is not waited for: the replica it goes to may
    /// be starting a supervisor of its own that waits on this one's replica (a handover to a node that sorts
    /// first). The replica of this node, which may be waiting on this supervisor, is never waited for.
    async fn send(&self, to: Vec<Pid>, message: ReplicaMessage, acknowledged: bool) {
        for pid in to {
            let replica = self.node.runtime().remote_ref::<Replica>(&pid);
            let sent = if !self.node.runtime().is_remote(&pid) {
                replica.try_cast(message.clone()).map_err(|e| e.to_string())
            } else if acknowledged {
                replica.call_timeout(message.clone(), REPLICATION_TIMEOUT).await.map_err(|e| e.to_string())
            } else {
                replica.cast_await(message.clone()).await.map_err(|e| e.to_string())
            };
            if let Err(error) = sent {
                tracing::warn!(%pid, %error, "distributed supervisor: a replica was not told of a change");
            }
        }
    }
}
