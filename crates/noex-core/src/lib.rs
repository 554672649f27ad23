//! OTP-style processes on tokio: the bottom layer of noex-rs.
//!
//! A [`Runtime`] is one node's process table. Its processes are [`GenServer`]s: each owns its state, handles
//! calls, casts and info messages one at a time, and ends with an [`ExitReason`]. Around them, the Erlang toolkit:
//!
//! - **monitors** ([`Context::monitor`], [`Runtime::monitor`]): exactly one [`ProcessDown`] per monitor;
//! - **links** ([`Context::link`], [`Context::start_link`]): abnormal exits propagate unless trapped
//!   ([`Context::trap_exits`]), in which case they arrive as [`Info::Exit`];
//! - **supervisors** ([`Supervisor`]): restart strategies, restart intensity, ordered shutdown;
//! - a **local name registry** ([`Runtime::register`], [`Runtime::whereis`]);
//! - **timers** and self-messages ([`Context::send_after`], [`Context::send_interval`], [`Context::cast_after`]),
//!   and continuations ([`Context::continue_with`]);
//! - **deferred replies** ([`Context::reply_later`]);
//! - **requests with their own reply types** ([`requests!`], [`ServerRef::request`]);
//! - **lifecycle events** ([`Runtime::lifecycle_events`]) and **introspection** ([`Runtime::processes`]) for
//!   observers;
//! - an **encoded-message seam** ([`Runtime::deliver_encoded`]) through which the cluster layers deliver calls and
//!   casts that arrived over the network.
//!
//! Messages that cross the network implement [`Encodable`]: every prost message does. With the cargo feature
//! **`serde`**, plain Rust types with `#[derive(Serialize, Deserialize)]` do too, once listed in
//! `serde_encodable!`, or wrapped in `Serde` (encoded with postcard; docs/concepts.md, "Messages between nodes:
//! prost or serde", says which to choose).
//!
//! Nothing here is global: several runtimes (nodes) can live in one OS process.
//!
//! ```
//! use noex_core::{Context, GenServer, Runtime, StartOptions};
//!
//! struct Counter(i64);
//!
//! impl GenServer for Counter {
//!     type Call = ();
//!     type Reply = i64;
//!     type Cast = i64;
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
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let runtime = Runtime::new();
//! let counter = runtime.start_with(Counter(0), StartOptions::named("counter")).await.unwrap();
//! counter.cast(5);
//! assert_eq!(counter.call(()).await, Ok(5));
//! assert_eq!(runtime.whereis("counter").as_ref(), Some(counter.pid()));
//! # }
//! ```

mod context;
mod credit;
mod deadline;
mod distribution;
mod encoded;
mod error;
mod exit;
mod introspection;
mod lifecycle;
mod mailbox;
mod monitor;
mod pid;
mod process;
mod reply;
mod request;
mod runtime;
#[cfg(feature = "serde")]
mod serde_codec;
mod server;
mod server_ref;
mod shutdown;
mod supervisor;
mod sync;
mod timers;
#[cfg(noex_loom)]
#[doc(hidden)]
pub use sync::check_model;
// What `serde_encodable!` expands to reaches the codec (and serde's traits) through here, so a user's crate needs
// no dependency on postcard.
#[cfg(feature = "serde")]
pub use serde_codec::Serde;
#[cfg(feature = "serde")]
#[doc(hidden)]
pub use serde_codec::hidden as __serde;

pub use context::Context;
pub use credit::{CreditSink, Receipt};
pub use distribution::{BoxFuture, CallReply, Distribution, RemoteWatcher, WeakRuntime};
pub use encoded::{Encodable, EncodedMessage, EncodedReply, Target, WirePayload};
pub use error::{
    CallError, Callee, CastError, DeliverError, LifecycleError, NoProc, RegistryError, StartError, StopError,
};
pub use exit::ExitReason;
pub use introspection::{ProcessInfo, ProcessKind, ProcessStatus, SupervisorInfo};
pub use lifecycle::{LifecycleEvent, LifecycleEvents};
pub use monitor::{ExitSignal, Monitor, ProcessDown};
pub use pid::{MonitorRef, NodeName, Pid};
pub use reply::{ReplyHandle, Unanswered};
pub use request::{Handle, Request};
pub use runtime::{Registrar, Runtime, RuntimeConfig, StartOptions};
pub use server::{GenServer, Info};
pub use server_ref::{DEFAULT_CALL_TIMEOUT, ServerRef};
pub use supervisor::{
    ChildInfo, ChildKind, ChildSpec, Restart, Shutdown, Strategy, Supervisor, SupervisorError, SupervisorRef,
    SupervisorSpec,
};
pub use timers::{LocalMessage, Timer};
