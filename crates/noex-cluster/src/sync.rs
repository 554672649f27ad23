//! The primitives of the outbound hand-off (`outbound.rs`): std's in every normal build, loom's in model builds
//! (`--cfg noex_loom`, as in noex-core: see docs/architecture.md, "Models"), so that the models in
//! `outbound/model.rs` check the very code that runs. A normal build re-exports std's types unchanged.
//!
//! The clock is part of it: loom replays each interleaving and needs every run of one to take the same branches,
//! which a real clock would not. The model clock stands still, far from every write: a sender always tries the
//! socket itself (the streaming hand-off is the blocked-socket hand-off without that try) and the liveness
//! thread always finds a link quiet enough for a heartbeat.

#[cfg(not(noex_loom))]
pub(crate) use std::sync::atomic::AtomicBool;
#[cfg(not(noex_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(noex_loom))]
pub(crate) use std::time::Instant;

#[cfg(noex_loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(noex_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(noex_loom)]
pub(crate) use model::Instant;

#[cfg(noex_loom)]
mod model {
    use std::time::Duration;

    /// A clock that stands still an hour after every instant it hands out.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Instant;

    impl Instant {
        pub(crate) fn now() -> Self {
            Instant
        }

        pub(crate) fn elapsed(&self) -> Duration {
            Duration::from_secs(3600)
        }
    }
}
