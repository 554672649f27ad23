//! Remote operations for noex-rs: processes on other nodes are called, cast to, spawned, monitored, linked and
//! stopped with the same API as local ones.
//!
//! [`Remote::start`] installs this layer into a node's [`Runtime`](noex_core::Runtime) (usually through
//! [`Node::start`], which wires the whole stack). From then on a [`ServerRef`](noex_core::ServerRef) made with
//! [`Runtime::remote_ref`](noex_core::Runtime::remote_ref) works whatever node its process lives on: locally it
//! moves typed values between mailboxes, remotely it encodes them (the server's message types are
//! [`Encodable`](noex_core::Encodable): prost messages, or serde types with noex-core's `serde` feature) and sends
//! them through the cluster. A node that goes down fails every call waiting for it at once
//! (`NoConnection`), fires every monitor on its processes and sends `noconnection` over every link with them.
//!
//! ```no_run
//! use noex_cluster::ClusterConfig;
//! use noex_core::{Context, GenServer};
//! use noex_remote::{Node, SpawnOptions};
//!
//! struct Counter(i64);
//!
//! impl GenServer for Counter {
//!     type Call = ();    // get
//!     type Reply = i64;  // prost encodes i64 as a scalar message
//!     type Cast = i64;   // add
//!
//!     async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> i64 {
//!         self.0
//!     }
//!
//!     async fn handle_cast(&mut self, by: i64, _ctx: &mut Context<Self>) {
//!         self.0 += by;
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::start(ClusterConfig::new("node1")).await?;
//! node.remote().behaviours().register("counter", |(): ()| Ok(Counter(0)));
//! // On another node of the cluster (here: this one), start a counter registered globally, then use it.
//! let pid = node.remote().spawn("counter", node.id(), SpawnOptions::global("counter:a")).await?;
//! let counter = node.runtime().remote_ref::<Counter>(&pid);
//! counter.cast(10);
//! assert_eq!(counter.call(()).await?, 10);
//! assert_eq!(node.registry().whereis("counter:a"), Some(pid));
//! # Ok(()) }
//! ```

mod abandon;
mod bonds;
mod inbound;
mod limits;
mod node;
mod pending;
mod remote;
mod route;
mod spawn;

pub use limits::{MAX_PEER_TIMEOUT, MAX_REQUESTS_PER_PEER};
pub use node::Node;
pub use noex_core::CallError;
pub use remote::{Remote, RemoteStats};
pub use spawn::{Behaviours, DEFAULT_SPAWN_TIMEOUT, Registration, SpawnError, SpawnOptions};
