//! A process's mailbox: an unbounded FIFO with one consumer, drained a batch at a time.
//!
//! Why not `tokio::sync::mpsc`: an idle process must cost almost nothing (tokio's unbounded channel allocates a
//! 32-slot block up front), the runtime needs the queue length for introspection, closing must hand back what is
//! still queued (pending calls get a typed error, monitor requests get their `DOWN`), and the exit-signal decision
//! (kill or deliver as a message) must be atomic with the process's `trap_exit` flag. A mutex around a `VecDeque`
//! does all of that; the consumer swaps the whole queue out under one lock, so producers and the consumer touch the
//! lock once per batch, not once per message.
//!
//! The promises, checked by the loom models in `models/mailbox.rs`: every message pushed is either handed to the
//! consumer in a batch (in its producer's order), handed back by `close`, or refused to its producer, exactly
//! once; a consumer that saw an empty queue is woken by the next push or close (its waker is registered under the
//! same lock that pushes take); an exit signal is decided atomically with `trap_exit` and the link set.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use crate::process::LinkPeer;
use crate::sync::{Mutex, MutexGuard};
use crate::{ExitReason, ExitSignal, Pid};

pub(crate) struct Mailbox<T> {
    state: Mutex<State<T>>,
}

pub(crate) struct State<T> {
    pub(crate) queue: VecDeque<T>,
    waiter: Option<Waker>,
    /// Set once, when the process ends; afterwards every push fails.
    pub(crate) exit: Option<ExitReason>,
    pub(crate) trap_exit: bool,
    /// The processes this one is linked with. Kept under the same lock as `exit` and `trap_exit`, so that linking,
    /// unlinking and a link's exit signal are decided atomically: after `unlink` returns, no exit signal from that
    /// link has any effect, and a process that is ending takes its links in the same step that closes it.
    pub(crate) links: Vec<(Pid, LinkPeer)>,
    /// Messages (not system signals) ever pushed; with the consumer's processed count this gives the queue length.
    pub(crate) enqueued: u64,
}

/// What an ended process still has to answer for.
pub(crate) struct Closed<T> {
    pub(crate) reason: ExitReason,
    pub(crate) queued: VecDeque<T>,
    pub(crate) links: Vec<(Pid, LinkPeer)>,
}

/// What an exit signal did (see [`Mailbox::exit_signal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitOutcome {
    /// Nothing: the process has ended, the link is gone, or the reason is `normal` and exits are not trapped.
    Ignored,
    /// Trapped: queued as a message behind those already there.
    Queued,
    /// Fatal: the mailbox is now closed with the reason; the caller aborts the process's task.
    Closed,
}

/// What a poll of the mailbox produced.
pub(crate) enum Batch {
    /// `out` now holds at least one message.
    Ready,
    /// The process was ended from outside (exit signal); stop with this reason.
    Closed(ExitReason),
}

impl<T> Mailbox<T> {
    pub(crate) fn new() -> Self {
        Mailbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                waiter: None,
                exit: None,
                trap_exit: false,
                links: Vec::new(),
                enqueued: 0,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A poisoned lock can only come from a panic while holding it, and no code here panics under the lock;
        // the data is still a consistent queue, so keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a message; hands it back if the process has ended.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.push_counted(item, true)
    }

    /// Appends a message, counting it towards the queue length only if it is a user message.
    pub(crate) fn push_counted(&self, item: T, counted: bool) -> Result<(), T> {
        let waker = {
            let mut state = self.lock();
            if state.exit.is_some() {
                return Err(item);
            }
            state.push_locked(item, counted)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Moves every queued message into `out` (which must be empty), or registers the consumer's waker.
    pub(crate) fn poll_batch(&self, cx: &mut Context<'_>, out: &mut VecDeque<T>) -> Poll<Batch> {
        let mut state = self.lock();
        if let Some(reason) = &state.exit {
            return Poll::Ready(Batch::Closed(reason.clone()));
        }
        if state.queue.is_empty() {
            match &state.waiter {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waiter = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        std::mem::swap(&mut state.queue, out);
        Poll::Ready(Batch::Ready)
    }

    /// An exit signal from `from` (a link's when `via_link`: then acted on only if `from` is still linked, and
    /// unlinked by it), decided in one locked step with `trap_exit`: trapped (queued as `trapped(signal)`),
    /// ignored (`normal`), or fatal (the mailbox closes with the reason).
    pub(crate) fn exit_signal(
        &self,
        from: Pid,
        reason: ExitReason,
        via_link: bool,
        trapped: impl FnOnce(ExitSignal) -> T,
    ) -> ExitOutcome {
        let waker = {
            let mut state = self.lock();
            if state.exit.is_some() {
                return ExitOutcome::Ignored;
            }
            if via_link {
                let Some(index) = state.links.iter().position(|(p, _)| *p == from) else {
                    return ExitOutcome::Ignored; // unlinked meanwhile
                };
                state.links.swap_remove(index);
            }
            if state.trap_exit {
                state.push_locked(trapped(ExitSignal { from, reason }), false)
            } else if reason.is_normal() {
                return ExitOutcome::Ignored;
            } else {
                state.close_locked(reason);
                return ExitOutcome::Closed;
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        ExitOutcome::Queued
    }

    /// Records the exit reason (the first one wins) and takes what is still queued and the links.
    pub(crate) fn close(&self, reason: ExitReason) -> Closed<T> {
        let mut state = self.lock();
        let reason = state.exit.get_or_insert(reason).clone();
        state.waiter = None;
        Closed { reason, queued: std::mem::take(&mut state.queue), links: std::mem::take(&mut state.links) }
    }

    pub(crate) fn enqueued(&self) -> u64 {
        self.lock().enqueued
    }
}

impl<T> State<T> {
    /// Pushes under an already held lock; returns the waker to wake once the lock is released.
    pub(crate) fn push_locked(&mut self, item: T, counted: bool) -> Option<Waker> {
        self.queue.push_back(item);
        self.enqueued += u64::from(counted);
        self.waiter.take()
    }

    /// Marks the process ended from outside; the caller then aborts its task.
    pub(crate) fn close_locked(&mut self, reason: ExitReason) -> bool {
        if self.exit.is_some() {
            return false;
        }
        self.exit = Some(reason);
        // Normally the caller aborts the task; waking covers a task whose abort handle is not recorded yet.
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
        true
    }
}

#[cfg(all(test, noex_loom))]
mod model;

#[cfg(all(test, not(noex_loom)))]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn batches_preserve_order_and_close_returns_the_rest() {
        let mailbox = Mailbox::new();
        for i in 0..5 {
            mailbox.push(i).unwrap();
        }
        let mut out = VecDeque::new();
        let polled = poll_fn(|cx| mailbox.poll_batch(cx, &mut out)).await;
        assert!(matches!(polled, Batch::Ready));
        assert_eq!(out.drain(..).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        mailbox.push(9).unwrap();
        let closed = mailbox.close(ExitReason::Normal);
        assert_eq!(closed.reason, ExitReason::Normal);
        assert_eq!(closed.queued, VecDeque::from([9]));
        assert_eq!(mailbox.push(10), Err(10), "a closed mailbox refuses messages");
        assert_eq!(mailbox.close(ExitReason::Killed).reason, ExitReason::Normal, "the first reason wins");
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_consumer() {
        let mailbox = std::sync::Arc::new(Mailbox::new());
        let consumer = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                let mut out = VecDeque::new();
                poll_fn(|cx| mailbox.poll_batch(cx, &mut out)).await;
                out.pop_front()
            })
        };
        tokio::task::yield_now().await;
        mailbox.push(42).unwrap();
        assert_eq!(consumer.await.unwrap(), Some(42));
    }
}
