//! Call timeouts without a tokio timer per call.
//!
//! Every call has a deadline (5 s by default), so the timeout sits on the hottest path. A `tokio::time::timeout`
//! per call takes the time driver's global lock twice and, whenever no other timer is pending, unparks the driver
//! thread: measured, that doubled the latency of a local call. Instead, a waiting caller registers its deadline
//! and waker in this per-runtime table (one short uncontended lock, and another to deregister), and one watchdog
//! task per runtime sleeps until the earliest deadline (or at most [`IDLE_TICK`]) and wakes the callers whose
//! deadline has passed. A caller only registers once its reply is not already there, and only wakes the watchdog
//! if its deadline is earlier than the one the watchdog sleeps towards, which the default 5 s never is.
//!
//! The promises, checked by the loom models in `models/deadline.rs` against callers, repliers and the watchdog
//! running at once: a caller whose deadline has passed is woken (the watchdog is told of a deadline earlier than
//! the one it sleeps towards), a wait ends with its reply or its timeout and leaves nothing registered, and a
//! registration's removal never removes another's that reused its slot.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;
#[cfg(all(test, not(noex_loom)))]
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::sync::{Mutex, MutexGuard, Notify};

/// The longest the watchdog sleeps, so that it notices its runtime is gone.
const IDLE_TICK: Duration = Duration::from_secs(1);

pub(crate) struct Deadlines {
    state: Mutex<State>,
    wake_watchdog: Notify,
}

struct State {
    waiting: Slab<Waiting>,
    next_id: u64,
    /// When the watchdog will next wake.
    armed: Instant,
}

struct Waiting {
    id: u64,
    deadline: Instant,
    waker: Waker,
}

/// A registration in the table; `id` guards against the slot being reused after the watchdog removed it.
#[derive(Clone, Copy)]
struct Ticket {
    key: usize,
    id: u64,
}

impl Deadlines {
    /// Creates the table and spawns its watchdog on `handle`; the watchdog ends soon after the table is dropped.
    pub(crate) fn start(handle: &tokio::runtime::Handle) -> Arc<Self> {
        let deadlines = Arc::new(Deadlines::new());
        handle.spawn(watchdog(Arc::downgrade(&deadlines)));
        deadlines
    }

    /// The table alone; `start` adds the watchdog task, a model plays the watchdog itself through `expire`.
    fn new() -> Self {
        Deadlines {
            state: Mutex::new(State { waiting: Slab::new(), next_id: 0, armed: Instant::now() }),
            wake_watchdog: Notify::new(),
        }
    }

    /// Waits for `reply` until `timeout` has passed.
    pub(crate) fn wait<F: Future + Unpin>(&self, reply: F, timeout: Duration) -> WaitReply<'_, F> {
        WaitReply { reply, timeout: Some(timeout), phase: Phase::Fresh, deadlines: self }
    }

    /// Waits for `reply` until `timeout` has passed, registering the deadline at the first poll: for a reply that
    /// cannot come within one yield (from another node), where the yield would only cost a pass of the scheduler.
    pub(crate) fn wait_registered<F: Future + Unpin>(&self, reply: F, timeout: Duration) -> WaitReply<'_, F> {
        WaitReply { reply, timeout: Some(timeout), phase: Phase::Yielded, deadlines: self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(&self, deadline: Instant, waker: &Waker) -> Ticket {
        let (ticket, earlier) = {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            let key = state.waiting.insert(Waiting { id, deadline, waker: waker.clone() });
            (Ticket { key, id }, deadline < state.armed)
        };
        if earlier {
            self.wake_watchdog.notify_one();
        }
        ticket
    }

    /// Refreshes the waker; false if the watchdog has already expired this registration.
    fn refresh(&self, ticket: Ticket, waker: &Waker) -> bool {
        let mut state = self.lock();
        match state.waiting.get_mut(ticket.key) {
            Some(waiting) if waiting.id == ticket.id => {
                if !waiting.waker.will_wake(waker) {
                    waiting.waker = waker.clone();
                }
                true
            }
            _ => false,
        }
    }

    fn cancel(&self, ticket: Ticket) {
        let mut state = self.lock();
        if state.waiting.get(ticket.key).is_some_and(|waiting| waiting.id == ticket.id) {
            state.waiting.remove(ticket.key);
        }
    }

    /// Wakes every caller whose deadline has passed; returns when to look again.
    fn expire(&self, now: Instant) -> Instant {
        let mut expired = Vec::new();
        let mut next = now + IDLE_TICK;
        {
            let mut state = self.lock();
            state.waiting.retain(|_, waiting| {
                if waiting.deadline <= now {
                    expired.push(waiting.waker.clone());
                    false
                } else {
                    next = next.min(waiting.deadline);
                    true
                }
            });
            state.armed = next;
        }
        expired.into_iter().for_each(Waker::wake);
        next
    }
}

async fn watchdog(deadlines: std::sync::Weak<Deadlines>) {
    loop {
        let Some(deadlines) = deadlines.upgrade() else { return };
        let next = deadlines.expire(Instant::now());
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = deadlines.wake_watchdog.notified() => {}
        }
        if Arc::strong_count(&deadlines) == 1 {
            return;
        }
    }
}

/// A reply awaited with a deadline; `Err(())` means the deadline passed. Cancel safe.
pub(crate) struct WaitReply<'a, F> {
    reply: F,
    /// `None` once timed out, or if the timeout is too long to represent (then there is none).
    timeout: Option<Duration>,
    phase: Phase,
    deadlines: &'a Deadlines,
}

enum Phase {
    /// Not polled yet.
    Fresh,
    /// Polled once and yielded: a reply from a server on this worker usually arrives before the next poll,
    /// so most calls never touch the table.
    Yielded,
    Registered(Ticket, Instant),
}

impl<F: Future + Unpin> Future for WaitReply<'_, F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.reply).poll(cx) {
            if let Phase::Registered(ticket, _) = this.phase {
                this.deadlines.cancel(ticket);
            }
            return Poll::Ready(Ok(result));
        }
        match this.phase {
            Phase::Fresh => {
                this.phase = Phase::Yielded;
                cx.waker().wake_by_ref();
            }
            Phase::Yielded => {
                let Some(deadline) = this.timeout.and_then(|timeout| Instant::now().checked_add(timeout)) else {
                    return Poll::Pending;
                };
                this.phase = Phase::Registered(this.deadlines.register(deadline, cx.waker()), deadline);
            }
            Phase::Registered(ticket, deadline) => {
                if Instant::now() >= deadline || !this.deadlines.refresh(ticket, cx.waker()) {
                    this.deadlines.cancel(ticket);
                    this.phase = Phase::Yielded;
                    this.timeout = None;
                    return Poll::Ready(Err(()));
                }
            }
        }
        Poll::Pending
    }
}

impl<F> Drop for WaitReply<'_, F> {
    fn drop(&mut self) {
        if let Phase::Registered(ticket, _) = self.phase {
            self.deadlines.cancel(ticket);
        }
    }
}

#[cfg(all(test, noex_loom))]
mod model;

#[cfg(all(test, not(noex_loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reply_in_time_wins_and_a_late_one_times_out() {
        let deadlines = Deadlines::start(&tokio::runtime::Handle::current());
        let (tx, rx) = oneshot::channel();
        tx.send(1).unwrap();
        assert_eq!(deadlines.wait(rx, Duration::from_millis(10)).await, Ok(Ok(1)));

        let (_tx, rx) = oneshot::channel::<u32>();
        let started = Instant::now();
        assert_eq!(deadlines.wait(rx, Duration::from_millis(10)).await, Err(()));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(10) && waited < Duration::from_millis(20), "waited {waited:?}");
        assert!(deadlines.lock().waiting.is_empty(), "nothing is left registered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_deregisters() {
        let deadlines = Deadlines::start(&tokio::runtime::Handle::current());
        let (_tx, rx) = oneshot::channel::<u32>();
        let wait = deadlines.wait(rx, Duration::from_secs(5));
        let _ = tokio::time::timeout(Duration::from_millis(1), wait).await;
        tokio::task::yield_now().await;
        assert!(deadlines.lock().waiting.is_empty());
    }
}
