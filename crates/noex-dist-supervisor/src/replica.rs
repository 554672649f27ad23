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

    /// Follows the owner by the rule once its state has come: until then, a takeover starts from the state of
    /// the owner before it (which may die before it has sent anything).
    fn follow(&mut self, members: &[Pid], me: &Pid) {
        let Some(owner) = Self::owner_of(members).filter(|owner| *owner != me) else { return };
        let node = owner.node().as_str();
        if self.last_owner.is_none() || self.followed.of(node).is_some() {
            self.last_owner = Some(node.to_string());
        }
    }

    async fn recheck(&mut self, ctx: &mut Context<Self>) {
        let members = self.node.groups().members(&self.group);
        let owner = Self::owner_of(&members).cloned();
        let owns = owner.as_ref() == Some(ctx.pid());
        self.follow(&members, ctx.pid());
        // An owner that left the group has been taken over (or is being taken over here): its state is done with.
        let last = self.last_owner.clone();
        self.followed.retain(|node| {
            last.as_deref() == Some(node) || members.iter().any(|member| member.node().as_str() == node)
        });
        match (self.supervisor(), owns) {
            (None, true) => {
                let inherited = self.last_owner.as_deref().and_then(|node| self.followed.of(node)).cloned();
                let children = inherited.as_ref().map_or(self.spec.children.len(), |s| s.children.len());
                // Linked: a supervisor past its restart intensity ends this replica too (the next one takes over,
                // as a supervisor's parent restarts it in OTP), and a replica killed takes its supervisor along
                // (its children run on, for the next owner). Started as this replica's child, it is stopped after
                // the replica when the node shuts down: the replica hands over first.
                let (node, spec, events) = (self.node.clone(), self.spec.clone(), self.events.clone());
                let started = crate::start_linked(ctx, &node, spec, events, inherited).await;
                match started {
                    Ok(supervisor) => {
                        tracing::info!(group = %self.group, node = %self.node.id(), children, "took over the supervision");
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
            (None, false) => self.send_merges(owner.as_ref()).await,
            (Some(_), true) => {}
        }
    }

    /// Lets the supervisor go and sends its children to `successor` (the new owner's replica), to merge.
    /// If the successor cannot be reached (the partition that made this replica an owner is back), the
    /// children are kept, and sent to whichever replica owns the supervision when it can be reached, or merged
    /// into this replica's next supervisor.
    async fn hand_over(&mut self, supervisor: &DistSupervisorRef, successor: Option<&Pid>) {
        self.pending_merge.extend(supervisor.release().await);
        self.send_merges(successor).await;
    }

    /// Sends the children of supervisors this replica let go to `owner`'s replica, to merge.
    async fn send_merges(&mut self, owner: Option<&Pid>) {
        let Some(owner) = owner else { return };
        let replica = self.node.runtime().remote_ref::<Replica>(owner);
        for snapshot in std::mem::take(&mut self.pending_merge) {
            // Acknowledged: a merge lost with its connection would leave children that nobody supervises.
            let merge = ReplicaMessage::Merge(snapshot.clone());
            if let Err(error) = replica.call_timeout(merge, std::time::Duration::from_secs(5)).await {
                tracing::warn!(%error, group = %self.group, "the owner was not sent the children to merge; kept");
                self.pending_merge.push(snapshot);
            }
        }
    }

    async fn receive(&mut self, message: ReplicaMessage, ctx: &mut Context<Self>) {
        tracing::debug!(group = %self.group, node = %self.node.id(), ?message, "replica message");
        match message {
            ReplicaMessage::Recheck => self.recheck(ctx).await,
            ReplicaMessage::State(snapshot) => {
                self.followed.state(snapshot);
                let members = self.node.groups().members(&self.group);
                self.follow(&members, ctx.pid());
            }
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
            ReplicaMessage::Merge(snapshot) if !self.is_peer(&snapshot.owner) => {
                tracing::warn!(owner = %snapshot.owner, group = %self.group, "a merge from no connected node; ignored");
            }
            ReplicaMessage::Merge(snapshot) => match self.supervisor() {
                Some(supervisor) => supervisor.merge(snapshot),
                None => self.pending_merge.push(snapshot),
            },
        }
    }

    /// Whether `node` is this node or a connected one (a merge comes from the replica of a node that handed over,
    /// over its connection; its membership may not have reached this node yet).
    fn is_peer(&self, node: &str) -> bool {
        node == self.node.id().node_name().as_str()
            || self.node.cluster().connected().iter().any(|peer| peer.node_name().as_str() == node)
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
        if let Some(ReplicaMessage::Recheck) = info.message::<ReplicaMessage>() {
            self.recheck(ctx).await;
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, ctx: &mut Context<Self>) {
        // The supervision outlives this replica: the next one adopts the children, and merges those it did not
        // know.
        let members = self.node.groups().members(&self.group);
        let others: Vec<Pid> = members.into_iter().filter(|pid| pid != ctx.pid()).collect();
        match self.owner.send_replace(None) {
            Some(supervisor) => self.hand_over(&supervisor, Self::owner_of(&others)).await,
            None => self.send_merges(Self::owner_of(&others)).await,
        }
    }
}
