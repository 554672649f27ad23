//! The synchronisation primitives of the hand-made concurrency (`mailbox.rs`, `deadline.rs`): std's and tokio's
//! in every normal build, loom's in model builds, so that the models in `models/` check the very code that runs.
//!
//! Model builds are switched on with `RUSTFLAGS="--cfg noex_loom"` (see docs/architecture.md, "Models"). Not
//! `--cfg loom`: tokio reacts to that one itself and would swap its own internals, which are not what we model.
//! Not a cargo feature either: a feature is turned on by `--all-features`, and with loom's primitives outside a
//! `loom::model` every normal test of the crate would panic. A normal build re-exports std's and tokio's types
//! unchanged: no wrapper, no cost.

#[cfg(not(noex_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(noex_loom))]
pub(crate) use tokio::sync::Notify;

#[cfg(noex_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(noex_loom)]
pub(crate) use model::Notify;

#[cfg(noex_loom)]
mod model {
    use std::future::poll_fn;
    use std::task::{Poll, Waker};

    /// A stand-in for `tokio::sync::Notify` built on loom's mutex, for the two methods the modelled code uses,
    /// with tokio's permit rule: a `notify_one` with nobody waiting is kept for the next `notified`. tokio checks
    /// its own `Notify` with loom; here only our use of it is in question.
    pub(crate) struct Notify {
        state: loom::sync::Mutex<State>,
    }

    struct State {
        permit: bool,
        waiter: Option<Waker>,
    }

    impl Notify {
        pub(crate) fn new() -> Self {
            Notify { state: loom::sync::Mutex::new(State { permit: false, waiter: None }) }
        }

        pub(crate) fn notify_one(&self) {
            let waiter = {
                let mut state = self.state.lock().unwrap();
                state.permit = true;
                state.waiter.take()
            };
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }

        /// Completes once a permit is there, and takes it.
        pub(crate) fn notified(&self) -> impl std::future::Future<Output = ()> + '_ {
            poll_fn(|cx| {
                let mut state = self.state.lock().unwrap();
                if std::mem::take(&mut state.permit) {
                    return Poll::Ready(());
                }
                state.waiter = Some(cx.waker().clone());
                Poll::Pending
            })
        }
    }
}

/// Checks `model` in every interleaving loom finds, with at most `preemptions` preemptions per execution (`None`:
/// no bound) unless `LOOM_MAX_PREEMPTIONS` says otherwise; the bound keeps the larger models within seconds.
/// Public in model builds only, for the models of the crates above (noex-cluster's outbound hand-off).
#[cfg(noex_loom)]
pub fn check_model(preemptions: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    builder.check(model);
}
