//! Loom models of the deadline table: callers waiting (`WaitReply`), repliers and the watchdog racing each other.
//!
//! Run with `RUSTFLAGS="--cfg noex_loom" cargo test -p noex-core --lib --release ::model::` (see
//! docs/architecture.md, "Models"). Time stands still in a model: every caller's deadline (now + 30 min) has passed
//! at the instant the watchdog expires (now + 1 h), and the watchdog's own idle timer (1 s later) never fires, so
//! it wakes only when told to, as it does for a deadline earlier than the one it sleeps towards. A caller that is
//! never woken leaves every thread blocked, which loom reports as a deadlock.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use tokio::time::Instant;

use super::Deadlines;
use crate::sync::check_model;

/// Every caller's timeout: far enough that a caller never sees its own deadline pass on the real clock.
const TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The table, the model's watchdog and the count of callers done (so that the watchdog knows when to stop).
struct Setup {
    deadlines: Deadlines,
    done: AtomicUsize,
    /// The one instant the watchdog ever sees: past every caller's deadline, before its idle timer.
    now: Instant,
}

impl Setup {
    fn new() -> Arc<Self> {
        Arc::new(Setup { deadlines: Deadlines::new(), done: AtomicUsize::new(0), now: Instant::now() + 2 * TIMEOUT })
    }

    /// The watchdog task's loop: expire, then sleep until told (its timer never fires here), until every one of
    /// `callers` is done.
    fn watchdog(setup: &Arc<Self>, callers: usize) -> thread::JoinHandle<()> {
        let setup = setup.clone();
        thread::spawn(move || {
            loop {
                setup.deadlines.expire(setup.now);
                if setup.done.load(Ordering::SeqCst) == callers {
                    return;
                }
                block_on(setup.deadlines.wake_watchdog.notified());
            }
        })
    }

    /// A caller has finished; the watchdog hears of it (the model's stand-in for its runtime going away).
    fn caller_done(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
        self.deadlines.wake_watchdog.notify_one();
    }

    fn assert_nothing_registered(&self) {
        assert!(self.deadlines.lock().waiting.is_empty(), "a wait left its registration behind");
    }
}

/// A reply that never comes.
struct Never;

impl Future for Never {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// A one-shot reply channel on loom's mutex, so that the reply's arrival is one of the explored steps.
#[derive(Clone)]
struct Reply(Arc<Mutex<(Option<u32>, Option<Waker>)>>);

impl Reply {
    fn new() -> Self {
        Reply(Arc::new(Mutex::new((None, None))))
    }

    fn send(&self, value: u32) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.0 = Some(value);
            slot.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Future for Reply {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut slot = self.0.lock().unwrap();
        match slot.0 {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A caller whose reply never comes is woken by the watchdog and times out, whether it registered before the
/// watchdog's pass (which then finds it) or after (and told the watchdog, whose next wake-up is later).
#[test]
fn a_caller_without_reply_times_out() {
    check_model(Some(3), || {
        let setup = Setup::new();
        let watchdog = Setup::watchdog(&setup, 1);
        assert_eq!(block_on(setup.deadlines.wait(Never, TIMEOUT)), Err(()));
        setup.caller_done();
        watchdog.join().unwrap();
        setup.assert_nothing_registered();
    });
}

/// A reply racing the deadline: the caller ends with the reply or with its timeout, and either way leaves
/// nothing registered.
#[test]
fn a_reply_racing_the_deadline_ends_the_wait_once_and_cleanly() {
    check_model(Some(3), || {
        let setup = Setup::new();
        let reply = Reply::new();
        let replier = {
            let reply = reply.clone();
            thread::spawn(move || reply.send(7))
        };
        let watchdog = Setup::watchdog(&setup, 1);
        let result = block_on(setup.deadlines.wait(reply, TIMEOUT));
        assert!(matches!(result, Ok(7) | Err(())), "{result:?}");
        setup.caller_done();
        replier.join().unwrap();
        watchdog.join().unwrap();
        setup.assert_nothing_registered();
    });
}

/// One caller gives up after registering (its `WaitReply` is dropped, as by a `select!`), while another waits
/// without reply: when the watchdog expired the first and the second took over its slot, the first one's late
/// removal must leave the second's registration alone, or the second would never be woken.
#[test]
fn a_stale_removal_leaves_a_reused_slot_alone() {
    check_model(Some(2), || {
        let setup = Setup::new();
        let waiter = {
            let setup = setup.clone();
            thread::spawn(move || {
                assert_eq!(block_on(setup.deadlines.wait(Never, TIMEOUT)), Err(()));
                setup.caller_done();
            })
        };
        let watchdog = Setup::watchdog(&setup, 2);
        // The quitter, on the model's main thread: the first poll yields, the second registers; then it stops.
        let mut wait = setup.deadlines.wait(Never, TIMEOUT);
        let mut polls = 0;
        block_on(poll_fn(|cx| {
            polls += 1;
            assert!(Pin::new(&mut wait).poll(cx).is_pending(), "no reply, and no wake-up yet");
            if polls == 2 { Poll::Ready(()) } else { Poll::Pending }
        }));
        drop(wait);
        setup.caller_done();
        waiter.join().unwrap();
        watchdog.join().unwrap();
        setup.assert_nothing_registered();
    });
}
