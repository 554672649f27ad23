//! Replicas of a named supervision: one process per node that may own it, all in the process group
//! `dsup:<name>`. The owner is the member whose node id sorts first, a rule every node applies to the same
//! replicated membership; it runs the supervisor, which adopts the children that still run (they are registered
//! globally) and starts the others. When the owner's node is lost, its replica leaves the group everywhere and
//! the next one in order takes over; a replica that finds a smaller one (a healed partition, a node back) hands
//! over without stopping anything.

use noex_core::{Context, ExitReason, GenServer, Pid};
use noex_remote::Node;
use tokio::sync::broadcast;

use crate::{DistEvent, DistSupervisorRef, DistSupervisorSpec};

pub(crate) struct Replica {
    node: Node,
    spec: DistSupervisorSpec,
    group: String,
    events: broadcast::Sender<DistEvent>,
    /// The supervisor, while this replica owns the supervision.
    owner: Option<DistSupervisorRef>,
}

/// "The group changed: look again at who owns the supervision."
pub(crate) struct Recheck;

pub(crate) enum ReplicaCall {
    /// The local supervisor, if this replica owns the supervision.
    Supervisor,
}

impl Replica {
    pub(crate) fn new(node: Node, spec: DistSupervisorSpec, events: broadcast::Sender<DistEvent>) -> Self {
        let name = spec.name.clone().unwrap_or_default();
        Replica { node, spec, group: format!("dsup:{name}"), events, owner: None }
    }

    /// The owner by the rule: the member of the smallest node id (then the smallest pid, for two on one node).
    fn owner_of(members: &[Pid]) -> Option<&Pid> {
        members.iter().min_by(|a, b| a.node().as_str().cmp(b.node().as_str()).then(a.id().cmp(&b.id())))
    }

    async fn recheck(&mut self, ctx: &mut Context<Self>) {
        let members = self.node.groups().members(&self.group);
        let owns = Self::owner_of(&members) == Some(ctx.pid());
        match (&self.owner, owns) {
            (None, true) => {
                let started = crate::start_with(&self.node, self.spec.clone(), self.events.clone()).await;
                match started {
                    Ok(supervisor) => {
                        tracing::info!(group = %self.group, node = %self.node.id(), "took over the supervision");
                        // Its end (past its restart intensity, say) makes this replica look again.
                        ctx.monitor(supervisor.pid());
                        self.owner = Some(supervisor);
                    }
                    Err(error) => {
                        tracing::warn!(%error, group = %self.group, "cannot take over the supervision; retrying");
                        ctx.send_after(std::time::Duration::from_millis(100), Recheck);
                    }
                }
            }
            (Some(supervisor), false) => {
                tracing::info!(group = %self.group, "another replica owns the supervision; handing over");
                supervisor.release().await;
                self.owner = None;
            }
            _ => {}
        }
    }
}

impl GenServer for Replica {
    type Call = ReplicaCall;
    type Reply = Option<DistSupervisorRef>;
    type Cast = ();

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        let (_, mut changes) = self.node.groups().monitor(&self.group);
        self.node.groups().join(&self.group, ctx.pid()).map_err(|error| ExitReason::error(error.to_string()))?;
        let myself = ctx.myself();
        tokio::spawn(async move {
            while changes.next().await.is_some() {
                if myself.try_cast(()).is_err() {
                    return; // the replica has ended
                }
            }
        });
        ctx.send_self(Recheck);
        Ok(())
    }

    async fn handle_call(&mut self, ReplicaCall::Supervisor: ReplicaCall, _ctx: &mut Context<Self>) -> Self::Reply {
        self.owner.clone()
    }

    async fn handle_cast(&mut self, (): (), ctx: &mut Context<Self>) {
        self.recheck(ctx).await;
    }

    async fn handle_info(&mut self, info: noex_core::Info, ctx: &mut Context<Self>) {
        match info {
            noex_core::Info::Down(down) if self.owner.as_ref().is_some_and(|owner| *owner.pid() == down.pid) => {
                tracing::warn!(reason = %down.reason, group = %self.group, "the supervisor ended; starting it again");
                self.owner = None;
                ctx.send_after(std::time::Duration::from_millis(100), Recheck);
            }
            info if info.message::<Recheck>().is_some() => self.recheck(ctx).await,
            _ => {}
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Context<Self>) {
        // The supervision outlives this replica: the next one adopts the children.
        if let Some(supervisor) = self.owner.take() {
            supervisor.release().await;
        }
    }
}
