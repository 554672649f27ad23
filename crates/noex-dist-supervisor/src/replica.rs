//! Replicas of a named supervision: one process per node that may own it, all in the process group
//! `dsup:<name>`. The owner is the member whose node id sorts first, a rule every node applies to the same
//! replicated membership; it runs the supervisor, which adopts the children that still run (they are registered
//! globally) and starts the others. When the owner's node is lost, its replica leaves the group everywhere and
//! the next one in order takes over, from the children the former owner told it of (`crate::replication`); a
//! replica that finds a smaller one (a healed partition, a node back) hands over without stopping anything, and
//! sends the new owner its children to merge.

use noex_core::{Context, ExitReason, GenServer, Pid};
use noex_remote::Node;
use tokio::sync::{broadcast, watch};

use crate::replication::{Applied, Followed, ReplicaMessage, Snapshot};
use crate::{DistEvent, DistSupervisorRef, DistSupervisorSpec};

pub(crate) struct Replica {
    node: Node,
    spec: DistSupervisorSpec,
    group: String,
    events: broadcast::Sender<DistEvent>,
    /// The supervisor, while this replica owns the supervision (published for `ReplicaRef`).
    owner: watch::Sender<Option<DistSupervisorRef>>,
    /// What each owner told this replica.
    followed: Followed,
    /// The node of the owner this replica last followed: the one whose children a takeover starts from.
    last_owner: Option<String>,
    /// Children handed over by a former owner before this replica started its supervisor.
    pending_merge: Vec<Snapshot>,
}

impl Replica {
    pub(crate) fn new(
        node: Node,
        spec: DistSupervisorSpec,
        events: broadcast::Sender<DistEvent>,
        owner: watch::Sender<Option<DistSupervisorRef>>,
    ) -> Self {
        let name = spec.name.clone().unwrap_or_default();
        let group = format!("dsup:{name}");
        Replica {
            node,
            spec,
            group,
            events,
            owner,
            followed: Followed::default(),
            last_owner: None,
            pending_merge: vec![],
        }
    }

    /// The owner by the rule: the member of the smallest node id (then the smallest pid, for two on one node).
    fn owner_of(members: &[Pid]) -> Option<&Pid> {
        members.iter().min_by(|a, b| a.node().as_str().cmp(b.node().as_str()).then(a.id().cmp(&b.id())))
    }

    fn supervisor(&self) -> Option<DistSupervisorRef> {
        self.owner.borrow().clone()
    }

    async fn recheck(&mut self, ctx: &mut Context<Self>) {
        let members = self.node.groups().members(&self.group);
        let owner = Self::owner_of(&members).cloned();
        let owns = owner.as_ref() == Some(ctx.pid());
        if let Some(owner) = owner.as_ref().filter(|_| !owns) {
            self.last_owner = Some(owner.node().as_str().to_string());
        }
        // An owner that left the group has been taken over (or is being taken over here): its state is done with.
        let last = self.last_owner.clone();
        self.followed.retain(|node| {
            last.as_deref() == Some(node) || members.iter().any(|member| member.node().as_str() == node)
        });
        match (self.supervisor(), owns) {
            (None, true) => {
                let inherited = self.last_owner.as_deref().and_then(|node| self.followed.of(node)).cloned();
                let children = inherited.as_ref().map_or(self.spec.children.len(), |s| s.children.len());
                let started = crate::start_with(&self.node, self.spec.clone(), self.events.clone(), inherited).await;
                match started {
                    Ok(supervisor) => {
                        tracing::info!(group = %self.group, node = %self.node.id(), children, "took over the supervision");
                        // Its end (past its restart intensity, say) makes this replica look again.
                        ctx.monitor(supervisor.pid());
                        // Its own state is the one to start from if it has to be started again.
                        self.last_owner = Some(self.node.id().node_name().as_str().to_string());
                        for snapshot in self.pending_merge.drain(..) {
                            supervisor.merge(snapshot);
                        }
                        self.owner.send_replace(Some(supervisor));
                    }
                    Err(error) => {
                        tracing::warn!(%error, group = %self.group, "cannot take over the supervision; retrying");
                        ctx.send_after(std::time::Duration::from_millis(100), ReplicaMessage::Recheck);
                    }
                }
            }
            (Some(supervisor), false) => {
                tracing::info!(group = %self.group, "another replica owns the supervision; handing over");
                self.owner.send_replace(None);
                self.hand_over(&supervisor, owner.as_ref()).await;
            }
            _ => {}
        }
    }

    /// Lets the supervisor go and sends its children to `successor` (the new owner's replica), to merge.
    async fn hand_over(&self, supervisor: &DistSupervisorRef, successor: Option<&Pid>) {
        let Some(snapshot) = supervisor.release().await else { return };
        if let Some(successor) = successor {
            let replica = self.node.runtime().remote_ref::<Replica>(successor);
            if let Err(error) = replica.cast_await(ReplicaMessage::Merge(snapshot)).await {
                tracing::warn!(%error, group = %self.group, "the new owner was not sent the children to merge");
            }
        }
    }

    async fn receive(&mut self, message: ReplicaMessage, ctx: &mut Context<Self>) {
        match message {
            ReplicaMessage::Recheck => self.recheck(ctx).await,
            ReplicaMessage::State(snapshot) => self.followed.state(snapshot),
            ReplicaMessage::Change { owner, epoch, seq, change } => {
                if self.followed.change(&owner, epoch, seq, change) == Applied::Gap {
                    tracing::warn!(%owner, seq, group = %self.group, "a change was missed; asking for the state");
                    self.ask_for_state(&owner);
                }
            }
            ReplicaMessage::Resend { node } => {
                if let Some(supervisor) = self.supervisor() {
                    supervisor.send_state_to(node);
                }
            }
            ReplicaMessage::Merge(snapshot) => match self.supervisor() {
                Some(supervisor) => supervisor.merge(snapshot),
                None => self.pending_merge.push(snapshot),
            },
        }
    }

    /// A change arrived out of sequence: the owner's supervisor is asked for its snapshot.
    fn ask_for_state(&self, owner: &str) {
        let members = self.node.groups().members(&self.group);
        let Some(replica) = members.iter().find(|pid| pid.node().as_str() == owner) else { return };
        let resend = ReplicaMessage::Resend { node: self.node.id().node_name().as_str().to_string() };
        self.node.runtime().remote_ref::<Replica>(replica).cast(resend);
    }
}

impl GenServer for Replica {
    /// A change an owner's supervisor waits for (see `server::replicate`).
    type Call = ReplicaMessage;
    type Reply = ();
    type Cast = ReplicaMessage;

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        let (_, mut changes) = self.node.groups().monitor(&self.group);
        self.node.groups().join(&self.group, ctx.pid()).map_err(|error| ExitReason::error(error.to_string()))?;
        let myself = ctx.myself();
        tokio::spawn(async move {
            while changes.next().await.is_some() {
                if myself.try_cast(ReplicaMessage::Recheck).is_err() {
                    return; // the replica has ended
                }
            }
        });
        ctx.send_self(ReplicaMessage::Recheck);
        Ok(())
    }

    async fn handle_call(&mut self, message: ReplicaMessage, ctx: &mut Context<Self>) {
        self.receive(message, ctx).await;
    }

    async fn handle_cast(&mut self, message: ReplicaMessage, ctx: &mut Context<Self>) {
        self.receive(message, ctx).await;
    }

    async fn handle_info(&mut self, info: noex_core::Info, ctx: &mut Context<Self>) {
        match info {
            noex_core::Info::Down(down) if self.supervisor().is_some_and(|owner| *owner.pid() == down.pid) => {
                tracing::warn!(reason = %down.reason, group = %self.group, "the supervisor ended; starting it again");
                self.owner.send_replace(None);
                ctx.send_after(std::time::Duration::from_millis(100), ReplicaMessage::Recheck);
            }
            info => {
                if let Some(ReplicaMessage::Recheck) = info.message::<ReplicaMessage>() {
                    self.recheck(ctx).await;
                }
            }
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, ctx: &mut Context<Self>) {
        // The supervision outlives this replica: the next one adopts the children, and merges those it did not
        // know.
        let Some(supervisor) = self.owner.send_replace(None) else { return };
        let members = self.node.groups().members(&self.group);
        let others: Vec<Pid> = members.into_iter().filter(|pid| pid != ctx.pid()).collect();
        self.hand_over(&supervisor, Self::owner_of(&others)).await;
    }
}
