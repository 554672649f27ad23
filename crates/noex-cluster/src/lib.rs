//! Cluster membership for noex-rs: nodes find each other from seeds, authenticate with a shared cookie, form a
//! full mesh of TCP connections, watch each other's liveness, and report nodes joining and leaving.
//!
//! ```no_run
//! use noex_cluster::{Cluster, ClusterConfig, ClusterEvent};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = ClusterConfig::new("node2");
//! config.port = 4370;
//! config.seeds = vec!["node1@127.0.0.1:4369".into()];
//! let cluster = Cluster::start(config).await?;
//! let mut events = cluster.events();
//! while let Ok(event) = events.recv().await {
//!     match event {
//!         ClusterEvent::NodeUp(info) => println!("Node joined: {}", info.node),
//!         ClusterEvent::NodeDown { node, reason } => println!("Node left: {} ({reason})", node.node),
//!         ClusterEvent::DialRefused { node, refusal } => println!("Cannot join {node}: {refusal}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod admission;
mod cluster;
mod config;
mod connect;
mod connection;
mod cookie;
mod credit;
mod error;
mod event;
mod exhaustion;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
mod liveness;
mod outbound;
mod routing;
mod slots;
mod stats;
mod sync;

pub use cluster::Cluster;
pub use config::{ClusterConfig, DEFAULT_PORT, Settings};
pub use cookie::{COOKIE_ENV, COOKIE_FILE, Cookie, default_cookie_path};
pub use error::{ConfigError, StartError};
pub use event::{ClusterEvent, DownReason, NodeInfo, NodeStatus, Refusal};
pub use exhaustion::{SocketExhaustion, raise_fd_limit};
pub use handshake::{HandshakeError, Peer};
pub use noex_proto::{Host, NodeId, NodeIdError};
pub use routing::{CastFrame, CastMode, FrameHandler, FrameKind, NodeSender, SendError};
pub use stats::ConnectionStats;
