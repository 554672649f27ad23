//! What a distributed supervisor reports: its lifecycle events, its children, its figures, its errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use noex_cluster::NodeId;
use noex_core::{ExitReason, Pid, Restart};

/// A change in a distributed supervisor's children, sent to every [`events`](crate::DistSupervisorRef::events)
/// subscriber once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DistEvent {
    /// A child started (first start, or through `start_child`).
    ChildStarted {
        /// The child.
        id: Arc<str>,
        /// Its process.
        pid: Pid,
        /// Where it runs.
        node: NodeId,
    },
    /// A named supervision's child that already ran (registered under its name) was taken over, not started again:
    /// a supervisor started under the name of one whose node died.
    ChildAdopted {
        /// The child.
        id: Arc<str>,
        /// Its process.
        pid: Pid,
        /// Where it runs.
        node: NodeId,
    },
    /// A child ended and stays ended (terminated, temporary, or a transient one that ended normally).
    ChildStopped {
        /// The child.
        id: Arc<str>,
        /// Why.
        reason: ExitReason,
    },
    /// A child was restarted after it ended (on its node's failure: see `ChildMigrated` instead).
    ChildRestarted {
        /// The child.
        id: Arc<str>,
        /// Its new process.
        pid: Pid,
        /// Where it runs now.
        node: NodeId,
        /// How many times this child has been restarted, this one included.
        attempt: u32,
    },
    /// A child whose node was lost runs again on another node.
    ChildMigrated {
        /// The child.
        id: Arc<str>,
        /// Its new process.
        pid: Pid,
        /// The lost node.
        from: NodeId,
        /// Where it runs now.
        to: NodeId,
    },
    /// A node that was lost came back (a healed partition): a process it still ran for a child that runs
    /// elsewhere now was stopped, so that each child runs once cluster-wide.
    DuplicateStopped {
        /// The child.
        id: Arc<str>,
        /// The stopped duplicate.
        pid: Pid,
        /// Its node.
        node: NodeId,
    },
    /// A node hosting children was lost: `affected` are restarted elsewhere (or removed, if temporary).
    NodeFailureDetected {
        /// The lost node.
        node: NodeId,
        /// Its children, in start order.
        affected: Vec<Arc<str>>,
    },
}

/// One child, as [`which_children`](crate::DistSupervisorRef::which_children) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistChildInfo {
    /// Its id.
    pub id: Arc<str>,
    /// Its behaviour.
    pub behaviour: Arc<str>,
    /// Its process, if it runs.
    pub pid: Option<Pid>,
    /// Where it runs, if it does.
    pub node: Option<NodeId>,
    /// Its restart type.
    pub restart: Restart,
    /// How many times it was restarted.
    pub restarts: u32,
}

/// A distributed supervisor's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistStats {
    /// Children it holds (running or not).
    pub children: usize,
    /// Running children by node.
    pub children_by_node: BTreeMap<String, usize>,
    /// Restarts of every kind.
    pub total_restarts: u64,
    /// Restarts caused by a lost node.
    pub node_failure_restarts: u64,
    /// When it started.
    pub started_at: SystemTime,
    /// How long it has run.
    pub uptime: Duration,
}

/// Why a distributed supervisor operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DistSupervisorError {
    /// No candidate node for the child (its selector's node is not connected, say).
    #[error("no node available for child '{0}'")]
    NoAvailableNode(String),
    /// A child with this id exists already.
    #[error("child '{0}' already exists")]
    DuplicateChild(String),
    /// No child with this id.
    #[error("child '{0}' not found")]
    ChildNotFound(String),
    /// The child could not be spawned on the chosen node.
    #[error("child '{id}' could not start on {node}: {reason}")]
    Spawn {
        /// The child.
        id: String,
        /// The node tried.
        node: String,
        /// What the spawn said.
        reason: String,
    },
    /// `start_child` with arguments is for `SimpleOneForOne` supervisors, with a template; a spec for the others.
    #[error("{0}")]
    Misuse(&'static str),
    /// The supervisor has handed over to another node's (a replica that sorts first joined): ask that one.
    #[error("the supervisor has handed over to another node's")]
    HandedOver,
    /// The supervisor did not answer (it has stopped, for instance after too many restarts).
    #[error("supervisor unavailable: {0}")]
    Unavailable(#[from] noex_core::CallError),
    /// The supervisor could not be started.
    #[error("cannot start the supervisor: {0}")]
    Start(#[from] noex_core::StartError),
}
