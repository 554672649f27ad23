//! The global registry of noex-rs: process names that hold across the cluster, as Erlang's `global`.
//!
//! Every node keeps a full replica of the table, so [`GlobalRegistry::whereis`] is a local read. A name is freed
//! everywhere when it is unregistered, when its process exits, and when its node (or the node that registered
//! it) goes down. A node that joins receives every other node's names and sends its own, in chunks, so a table of
//! any size reaches it (and it resolves names as they arrive). Two registrations of one name that meet (a race,
//! or both sides of a healed partition) are settled by a [`ConflictResolver`] that every node applies alike; by
//! default the registration made by the node whose id sorts first wins ([`FirstNodeWins`], no clock involved) and
//! the losing process gets an exit signal.
//!
//! ```no_run
//! use noex_cluster::{Cluster, ClusterConfig};
//! use noex_core::Runtime;
//! use noex_registry::GlobalRegistry;
//!
//! # async fn demo(worker: noex_core::Pid) -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::start(ClusterConfig::new("node1")).await?;
//! let runtime = Runtime::with_config(noex_core::RuntimeConfig {
//!     node: cluster.local().node_name(),
//!     creation: cluster.creation(),
//!     ..Default::default()
//! });
//! let registry = GlobalRegistry::start(&runtime, &cluster);
//! registry.register("counter:my-counter", &worker)?;
//! assert_eq!(registry.whereis("counter:my-counter"), Some(worker));
//! # Ok(()) }
//! ```

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod registry;
mod resolver;
mod sync;
mod table;
mod typed;
mod watch;

use noex_core::{NodeName, Pid};

pub use registry::GlobalRegistry;
pub use resolver::{ConflictResolver, FirstNodeWins, Winner};

/// The longest name `register` takes, in bytes: one entry always fits a sync chunk, far under the frame limit.
pub const MAX_NAME_LEN: usize = 64 * 1024;

/// One registration: a name, its process, and the node that registered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalName {
    /// The name.
    pub name: String,
    /// The process it names (on any node).
    pub pid: Pid,
    /// The node that registered it, which announces it to the others. For a name learned from another node, this
    /// is the node at the other end of the connection it came on (authenticated), never a value a frame claims.
    pub registrar: NodeName,
}

/// A change in the table, as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryEvent {
    /// A name now names `pid` (registered here, or learned from another node).
    Registered {
        /// The name.
        name: String,
        /// Its process.
        pid: Pid,
    },
    /// A name is free again.
    Unregistered {
        /// The name.
        name: String,
        /// The process it named.
        pid: Pid,
        /// Why.
        reason: UnregisterReason,
    },
    /// Two registrations of one name met; `winner` keeps it on every node.
    ConflictResolved {
        /// The name.
        name: String,
        /// The process that keeps it.
        winner: Pid,
        /// The process that lost it (notified by its own node, see [`ConflictResolver::on_loser`]).
        loser: Pid,
    },
}

/// Why a name was freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnregisterReason {
    /// Unregistered by the node that registered it.
    Unregistered,
    /// Its process exited.
    ProcessExited,
    /// Its node, or the node that registered it, went down.
    NodeDown,
    /// The registering node moved the name to another process.
    Replaced,
}

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// Another process holds the name.
    #[error("global name '{name}' is already registered to {holder}")]
    NameTaken {
        /// The name.
        name: String,
        /// The process holding it.
        holder: Pid,
    },
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("global name of {len} bytes is longer than the limit of {limit}")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_NAME_LEN`].
        limit: usize,
    },
    /// The (local) process does not exist.
    #[error("no such process: {0}")]
    NoProc(Pid),
    /// The node's runtime is gone.
    #[error("the node is stopped")]
    Stopped,
}
