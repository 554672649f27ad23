//! A distributed supervisor for noex-rs: a supervisor whose children run on any node of the cluster, placed by
//! node selectors, and restarted elsewhere when their node is lost, each exactly once.
//!
//! Children are behaviours by name (the allow-list of remote spawn, `Behaviours::register`, on every node that
//! may host them) with init arguments, a restart type and an optional selector of their own. The supervisor is a
//! process of the node that starts it; it spawns each child on the node its selector picks, monitors it, and
//! restarts by its strategy (`OneForOne`, `OneForAll`, `RestForOne`, `SimpleOneForOne`) within its restart
//! intensity (3 in 5 s by default). A lost node is seen through the children's monitors (`noconnection`): at the
//! first one, every child of that node is handled at once (temporary ones removed, the others started on another
//! node) and counts as one restart, and the other monitors are removed, so no child restarts twice.
//!
//! `LeastLoaded` places by each node's count of user processes, from the nodes' observer services (give the spec
//! this node's `ClusterObserver`; noex's figure was always 0), corrected by the children placed since; without
//! one, by the children this supervisor runs on each node.
//!
//! A **named** supervision ([`DistSupervisorSpec::name`]) registers each child globally as `dsup:<name>:<id>`
//! before its `init`, so the registry makes a second copy of a child impossible, and a supervisor started under
//! that name adopts the children that still run. [`DistSupervisor::start_replica`] runs one replica per node
//! (all in the process group `dsup:<name>`): the replica on the node whose id sorts first owns the supervision;
//! when that node is lost, the next one takes over and adopts the children, starting only those that died with
//! it. The spec is configuration, the same on every replica; what changes (children added with `start_child` or
//! `start_templated`, children terminated or deleted) is replicated to every replica before the supervisor
//! answers, so a takeover starts from the former owner's children. A supervisor that hands over sends its
//! children to the new owner, which takes on those it did not know (started on the other side of a partition)
//! and stops the other side's copies of children it holds stopped or deleted. A replica's supervisor is linked to
//! it: past its restart intensity it ends the replica, and the next one takes over (OTP's escalation).
//! An unnamed supervisor links its children, as OTP's does: they end with it.
//!
//! `examples/failover.rs` shows it across OS processes: three nodes, `kill -9` of one, and its children started
//! on the others.
//!
//! ```no_run
//! use noex_dist_supervisor::{DistChildSpec, DistSupervisor, DistSupervisorSpec, NodeSelector, Strategy};
//!
//! # async fn demo(node: noex_remote::Node) -> Result<(), Box<dyn std::error::Error>> {
//! let spec = DistSupervisorSpec::new(Strategy::OneForOne)
//!     .selector(NodeSelector::RoundRobin)
//!     .child(DistChildSpec::new("counter-1", "counter"))
//!     .child(DistChildSpec::new("counter-2", "counter"));
//! let supervisor = DistSupervisor::start(&node, spec).await?;
//! for child in supervisor.which_children().await? {
//!     println!("{} runs on {:?}", child.id, child.node);
//! }
//! # Ok(()) }
//! ```

mod event;
mod replica;
mod replication;
mod selector;
mod server;
mod spec;

use bytes::Bytes;
use noex_cluster::NodeId;
use noex_core::{Encodable, ExitReason, Pid, ServerRef, StartOptions, StopError};
use noex_remote::Node;
use tokio::sync::{broadcast, watch};

pub use event::{DistChildInfo, DistEvent, DistStats, DistSupervisorError};
pub use selector::{NodeSelector, PlaceFn};
pub use spec::{DistChildSpec, DistSupervisorSpec, Strategy};

use server::{Answer, DistSupervisorServer, Notice, Op};

/// Events buffered per subscriber before the slowest one starts losing them (it is told how many).
const EVENT_BUFFER: usize = 4096;

/// Starts distributed supervisors.
pub struct DistSupervisor;

impl DistSupervisor {
    /// Starts a distributed supervisor on `node`; it starts its children, in order, before this returns. If one
    /// cannot start, those already started are stopped and this fails.
    pub async fn start(node: &Node, spec: DistSupervisorSpec) -> Result<DistSupervisorRef, DistSupervisorError> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let server = DistSupervisorServer::new(node.clone(), spec, events.clone(), None);
        let server = node.runtime().start(server).await?;
        Ok(DistSupervisorRef { server, events })
    }

    /// Starts `node`'s replica of a named supervision (the spec must have a [`name`](DistSupervisorSpec::name),
    /// and be the same on every node that runs a replica). Of all replicas, the one on the node whose id sorts
    /// first owns the supervision and runs the supervisor; when its node is lost, the next one takes over and
    /// adopts the children that still run (see the crate docs).
    pub async fn start_replica(node: &Node, spec: DistSupervisorSpec) -> Result<ReplicaRef, DistSupervisorError> {
        if spec.name.is_none() {
            return Err(DistSupervisorError::Misuse("a replicated supervision needs a name"));
        }
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (owner, supervisor) = watch::channel(None);
        let replica = replica::Replica::new(node.clone(), spec, events.clone(), owner);
        // Other nodes' replicas and supervisors send it the supervision's state.
        let replica = node.runtime().start_encodable(replica, StartOptions::default()).await?;
        Ok(ReplicaRef { replica, events, supervisor })
    }
}

/// Starts a replica's supervisor, linked to it (see `replica.rs`), with `inherited`'s children if a former owner
/// left some.
pub(crate) async fn start_linked<S: noex_core::GenServer>(
    ctx: &mut noex_core::Context<S>,
    node: &Node,
    spec: DistSupervisorSpec,
    events: broadcast::Sender<DistEvent>,
    inherited: Option<replication::Snapshot>,
) -> Result<DistSupervisorRef, DistSupervisorError> {
    let server = DistSupervisorServer::new(node.clone(), spec, events.clone(), inherited);
    let server = ctx.start_link(server, StartOptions::default()).await?;
    Ok(DistSupervisorRef { server, events })
}

/// A handle on this node's replica of a named supervision.
#[derive(Clone)]
pub struct ReplicaRef {
    replica: ServerRef<replica::Replica>,
    events: broadcast::Sender<DistEvent>,
    supervisor: watch::Receiver<Option<DistSupervisorRef>>,
}

impl ReplicaRef {
    /// The replica's pid (a member of the process group `dsup:<name>`).
    pub fn pid(&self) -> &Pid {
        self.replica.pid()
    }

    /// The supervisor, if this replica owns the supervision now.
    pub fn supervisor(&self) -> Option<DistSupervisorRef> {
        self.supervisor.borrow().clone()
    }

    /// Waits until this replica owns the supervision, and returns its supervisor; `None` if the replica ends
    /// first.
    pub async fn owned(&self) -> Option<DistSupervisorRef> {
        let mut supervisor = self.supervisor.clone();
        let owned = supervisor.wait_for(|supervisor| supervisor.is_some()).await;
        owned.ok().and_then(|supervisor| supervisor.clone())
    }

    /// The events of the supervisor whenever this replica owns the supervision.
    pub fn events(&self) -> broadcast::Receiver<DistEvent> {
        self.events.subscribe()
    }

    /// Stops this replica; if it owned the supervision, another replica takes it over (the children run on).
    pub async fn stop(&self, timeout: std::time::Duration) -> Result<(), StopError> {
        self.replica.stop(ExitReason::Shutdown, timeout).await
    }
}

/// A handle on a running distributed supervisor (on this node). Cheap to clone.
#[derive(Clone)]
pub struct DistSupervisorRef {
    server: ServerRef<DistSupervisorServer>,
    events: broadcast::Sender<DistEvent>,
}

impl DistSupervisorRef {
    /// The supervisor's pid.
    pub fn pid(&self) -> &Pid {
        self.server.pid()
    }

    /// Its lifecycle events from now on.
    pub fn events(&self) -> broadcast::Receiver<DistEvent> {
        self.events.subscribe()
    }

    async fn ask(&self, op: Op) -> Result<Answer, DistSupervisorError> {
        match self.server.call_timeout(op, std::time::Duration::from_secs(60)).await? {
            Ok(answer) => Ok(answer),
            Err(error) => Err(error),
        }
    }

    async fn started(&self, op: Op) -> Result<(Pid, NodeId), DistSupervisorError> {
        match self.ask(op).await? {
            Answer::Started(pid, node) => Ok((pid, node)),
            _ => Err(DistSupervisorError::Misuse("the supervisor answered another request")),
        }
    }

    /// Adds and starts a child (not for `SimpleOneForOne`); returns its process and node.
    pub async fn start_child(&self, spec: DistChildSpec) -> Result<(Pid, NodeId), DistSupervisorError> {
        self.started(Op::StartChild(spec)).await
    }

    /// Starts a `SimpleOneForOne` supervisor's template with `args`; its id is the template's, numbered.
    pub async fn start_templated(&self, args: &impl Encodable) -> Result<(Pid, NodeId), DistSupervisorError> {
        self.started(Op::StartFromTemplate(args.encode_wire())).await
    }

    /// Starts the template with already encoded arguments.
    pub async fn start_templated_bytes(&self, args: Bytes) -> Result<(Pid, NodeId), DistSupervisorError> {
        self.started(Op::StartFromTemplate(args)).await
    }

    /// Stops a child and keeps its spec (restart it with [`restart_child`](Self::restart_child)).
    pub async fn terminate_child(&self, id: &str) -> Result<(), DistSupervisorError> {
        self.ask(Op::Terminate(id.into())).await.map(drop)
    }

    /// Stops a child if it runs and starts it again, on a node its selector picks.
    pub async fn restart_child(&self, id: &str) -> Result<(Pid, NodeId), DistSupervisorError> {
        self.started(Op::Restart(id.into())).await
    }

    /// Stops a child and forgets its spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), DistSupervisorError> {
        self.ask(Op::Delete(id.into())).await.map(drop)
    }

    /// The children, in start order, with their processes and nodes.
    pub async fn which_children(&self) -> Result<Vec<DistChildInfo>, DistSupervisorError> {
        match self.ask(Op::WhichChildren).await? {
            Answer::Children(children) => Ok(children),
            _ => Err(DistSupervisorError::Misuse("the supervisor answered another request")),
        }
    }

    /// How many children it holds, and how many run.
    pub async fn count_children(&self) -> Result<(usize, usize), DistSupervisorError> {
        let children = self.which_children().await?;
        let running = children.iter().filter(|c| c.pid.is_some()).count();
        Ok((children.len(), running))
    }

    /// Its figures.
    pub async fn stats(&self) -> Result<DistStats, DistSupervisorError> {
        match self.ask(Op::Stats).await? {
            Answer::Stats(stats) => Ok(stats),
            _ => Err(DistSupervisorError::Misuse("the supervisor answered another request")),
        }
    }

    /// Stops the supervisor: its children first, in reverse start order.
    pub async fn stop(&self, timeout: std::time::Duration) -> Result<(), StopError> {
        self.server.stop(ExitReason::Shutdown, timeout).await
    }

    /// Ends the supervisor without stopping its children (for another supervisor of the same name to adopt);
    /// returns its children, for that one to merge.
    pub(crate) async fn release(&self) -> Vec<replication::Snapshot> {
        let released = self.ask(Op::Release).await;
        let _ = self.server.stop(ExitReason::Normal, std::time::Duration::from_secs(5)).await;
        match released {
            Ok(Answer::Released(snapshots)) => snapshots,
            _ => Vec::new(),
        }
    }

    /// Takes on the children of a former owner that it does not know.
    pub(crate) fn merge(&self, snapshot: replication::Snapshot) {
        self.server.cast(Notice::Merge(snapshot));
    }

    /// Sends the snapshot to the replica on `node`.
    pub(crate) fn send_state_to(&self, node: String) {
        self.server.cast(Notice::SendState(node));
    }

    /// Whether the supervisor runs.
    pub fn is_alive(&self) -> bool {
        self.server.is_alive()
    }
}

impl std::fmt::Debug for DistSupervisorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DistSupervisorRef({})", self.pid())
    }
}
