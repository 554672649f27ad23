//! Process groups for noex-rs: named groups of processes, replicated on every node of the cluster, with the
//! semantics of Erlang/OTP's `pg` module (OTP 23+).
//!
//! A group is a name and the processes that joined it, on any node. It has no owner and no leader: a process
//! joins and leaves on its own node ([`ProcessGroups::join`], [`ProcessGroups::leave`]), every node keeps the
//! whole membership (so [`ProcessGroups::members`] is a local read), and a member leaves every group when it ends
//! or when its node goes down. Use it to find the workers of a service, fan an event out to subscribers, or
//! spread calls over a pool, where one global name (noex-registry) is not enough.
//!
//! Groups live in **scopes** ([`Scopes::scope`]): independent namespaces, each exchanging memberships only with
//! the same scope on other nodes. A node's memberships are only ever stated by that node (it is the only one
//! whose processes it lets join), so no node can add or remove another node's members. When two nodes connect
//! (a join, a reconnect, a healed partition) each sends the other its own memberships, and both converge.
//!
//! Changes can be watched ([`ProcessGroups::monitor_scope`], [`ProcessGroups::monitor`], as `pg:monitor_scope`
//! and `pg:monitor` of OTP 25.1): the current membership, then every [`GroupEvent`] in order.
//!
//! ```no_run
//! use noex_cluster::{Cluster, ClusterConfig};
//! use noex_core::Runtime;
//! use noex_pg::{GroupEvent, Scopes};
//!
//! # async fn demo(worker: noex_core::Pid) -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::bind(ClusterConfig::new("node1")).await?;
//! let runtime = Runtime::with_config(noex_core::RuntimeConfig {
//!     node: cluster.local().node_name(),
//!     creation: cluster.creation(),
//!     ..Default::default()
//! });
//! let groups = Scopes::start(&runtime, &cluster).scope("default")?;
//! cluster.open();
//!
//! let (members, mut changes) = groups.monitor("workers");
//! assert!(members.is_empty());
//! groups.join("workers", &worker)?;
//! assert_eq!(groups.members("workers"), vec![worker.clone()]);
//! assert_eq!(changes.next().await, Some(GroupEvent::Join { group: "workers".into(), pids: vec![worker] }));
//! # Ok(()) }
//! ```
//!
//! How the replicas stay in step, and what the frames say, is in `docs/architecture.md` and `docs/protocol.md`.

mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod scope;
mod scopes;
mod state;
mod subscription;
mod sync;
mod watch;

use noex_core::Pid;

pub use error::GroupsError;
pub use scope::ProcessGroups;
pub use scopes::Scopes;
pub use subscription::Subscription;

/// The scope `noex_remote::Node` starts on every node (`Node::groups`).
pub const DEFAULT_SCOPE: &str = "default";

/// The longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 1024;

/// The longest scope name, in bytes.
pub const MAX_SCOPE_LEN: usize = 255;

/// A change of a scope's membership, as a subscription reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// Processes joined `group` (a pid listed twice joined twice).
    Join {
        /// The group.
        group: String,
        /// The processes, once per membership added.
        pids: Vec<Pid>,
    },
    /// Processes left `group`: they left, ended, or their node went down.
    Leave {
        /// The group.
        group: String,
        /// The processes, once per membership removed.
        pids: Vec<Pid>,
    },
}
