//! Observation for noex-rs: what a node's processes are doing, and the same for every node of a cluster.
//!
//! - [`LocalObserver`]: a [`NodeSnapshot`] of one node: counts and totals over every user process (servers,
//!   supervisors, messages handled and waiting, restarts, memory), and the processes a [`SnapshotQuery`] lists
//!   (none, the top N, or a page; by default the 100 longest mailboxes and the first 100 of the supervision
//!   tree), so that a node of any size answers in one frame. Also a subscription to user processes starting and
//!   stopping, and polling. Internal processes are left out of every user-facing figure.
//! - [`ClusterObserver`]: starts the node's *observer service*, which answers other nodes' snapshot queries
//!   through the cluster (authenticated like all cluster traffic), and takes [`ClusterSnapshot`]s: this node
//!   first, then every node it knows, each `connected` (with its snapshot), `disconnected`, `timeout` or
//!   `error`, plus totals over the nodes that answered. Snapshots are cached for 2 s unless bypassed; pollers
//!   report fresh ones at their own interval. The service takes one snapshot at a time and refuses queries
//!   beyond a bounded backlog with [`QueryError::Busy`].
//! - [`AlertManager`]: queue-size alerts (noex's), round by round over the servers of any snapshots: a mailbox
//!   above `mean + k·stddev` of its own history triggers an alert, which resolves when it drops back.
//! - [`CountingAllocator`]: a global allocator a program can install (and hand to
//!   [`LocalObserver::with_heap`]) so that snapshots report heap bytes in
//!   use (without it, only the resident set size is known).
//!
//! ```no_run
//! use std::time::Duration;
//! use noex_cluster::ClusterConfig;
//! use noex_observer::{ClusterObserver, ClusterObserverEvent, LocalObserver};
//! use noex_remote::Node;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::bind(ClusterConfig::new("nodeA")).await?;
//! let observer = ClusterObserver::start(LocalObserver::new(node.runtime()), node.cluster());
//! node.open(); // after the service is installed: no early query goes unanswered
//!
//! let snapshot = observer.cluster_snapshot().await;
//! println!("{} processes on {} nodes", snapshot.aggregated.processes, snapshot.aggregated.connected_nodes);
//!
//! let _polling = observer.start_polling(Duration::from_secs(5), |event| {
//!     if let ClusterObserverEvent::NodeTimeout(node) = event {
//!         eprintln!("{node} is not responding");
//!     }
//! });
//! # Ok(()) }
//! ```

mod alerts;
mod asking;
mod cluster_observer;
mod local;
mod memory;
mod polling;
mod query;
mod reply;
mod select;
mod service;
mod snapshot;
mod wire;

pub use alerts::{Alert, AlertConfig, AlertEvent, AlertManager};
pub use asking::QueryError;
pub use cluster_observer::{
    Aggregated, CACHE_TTL, ClusterObserver, ClusterObserverEvent, ClusterSnapshot, DEFAULT_QUERY_TIMEOUT, ObservedNode,
    ObservedStatus, SnapshotOptions,
};
pub use local::{LocalObserver, ObserverEvent, ObserverEvents};
pub use memory::{CountingAllocator, MemoryStats, counting_allocator};
pub use polling::Polling;
pub use query::{DEFAULT_LIMIT, MAX_REMOTE_LIMIT, ProcessList, SnapshotQuery, SortKey};
#[doc(hidden)] // for fuzz targets: the checks every query and reply from a peer goes through
pub use reply::{decode_query, decode_reply};
pub use service::{MAX_WAITING, MAX_WAITING_PER_NODE, ServiceStats};
pub use snapshot::{NodeSnapshot, ProcessTreeNode, ServerStats, SupervisorStats};
