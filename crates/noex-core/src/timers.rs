//! Messages a process sends itself: timers (once, or periodic), continuations, and the local-only
//! [`LocalMessage`] they carry, which no other node can send.

use std::any::Any;
use std::time::Duration;

use crate::process::{Envelope, ProcessCell, Signal};
use crate::{Context, GenServer};

/// A message a process sent itself ([`Context::send_after`], [`Context::send_interval`],
/// [`Context::continue_with`]): any Rust value, which never crosses the network, so a timer's tick is not part of
/// the server's public `Cast` type and no other node can forge it. Take the value back with
/// [`downcast`](Self::downcast) or look at it with [`get`](Self::get).
pub struct LocalMessage(Box<dyn Any + Send>);

impl LocalMessage {
    pub(crate) fn new(msg: impl Any + Send) -> Self {
        LocalMessage(Box::new(msg))
    }

    /// Whether the message is a `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.0.is::<T>()
    }

    /// The message, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }

    /// The message as a `T`, or itself back if it is something else.
    pub fn downcast<T: Any>(self) -> Result<T, LocalMessage> {
        self.0.downcast().map(|msg| *msg).map_err(LocalMessage)
    }
}

impl std::fmt::Debug for LocalMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalMessage(..)")
    }
}

impl PartialEq for LocalMessage {
    /// Two local messages are never equal: their contents are opaque (this lets [`Info`](crate::Info) compare).
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

/// A pending timer of [`Context::cast_after`], [`Context::send_after`] or [`Context::send_interval`].
#[derive(Debug)]
pub struct Timer {
    task: tokio::task::AbortHandle,
}

impl Timer {
    /// Stops the timer; a message it has not sent yet is never sent. Dropping the handle does not stop it.
    pub fn cancel(&self) {
        self.task.abort();
    }
}

impl<S: GenServer> Context<S> {
    /// Casts `msg` to this process after `delay`, as a cast from anyone would arrive. For a message only this
    /// process can send, use [`send_after`](Self::send_after).
    pub fn cast_after(&self, delay: Duration, msg: S::Cast) -> Timer {
        let cell = self.cell().clone();
        let task = self.runtime().spawn_task(async move {
            tokio::time::sleep(delay).await;
            let _ = cell.mailbox.push(Envelope::Cast(msg, None));
        });
        Timer { task }
    }

    /// Sends `msg` to this process after `delay`, as [`Info::Message`](crate::Info::Message) (Erlang's
    /// `erlang:send_after/3` to self). Local only: nothing from the network can look like it.
    pub fn send_after(&self, delay: Duration, msg: impl Any + Send) -> Timer {
        let cell = self.cell().clone();
        let task = self.runtime().spawn_task(async move {
            tokio::time::sleep(delay).await;
            let _ = cell.signal(Signal::Message(LocalMessage::new(msg)));
        });
        Timer { task }
    }

    /// Sends `msg` to this process now, behind what is already in its mailbox, as
    /// [`Info::Message`](crate::Info::Message) (Erlang's `self() ! Msg`): a loop of such messages lets `DOWN`s,
    /// calls and casts in between its turns, which a loop of [`continue_with`](Self::continue_with) does not.
    pub fn send_self(&self, msg: impl Any + Send) {
        let _ = self.cell().signal(Signal::Message(LocalMessage::new(msg)));
    }

    /// Sends a clone of `msg` to this process every `period`, first after one `period`, as
    /// [`Info::Message`](crate::Info::Message) (`timer:send_interval/2`), until [`Timer::cancel`] or the process
    /// ends (a period under a millisecond counts as one). A tick that falls due while the runtime is too busy to
    /// send it is skipped, not sent in a burst later; ticks queue behind a slow handler as any message does.
    pub fn send_interval<M: Any + Send + Clone>(&self, period: Duration, msg: M) -> Timer {
        let cell = self.cell().clone();
        // A zero period would be a busy loop (and tokio refuses it): the shortest interval is a millisecond.
        let period = period.max(Duration::from_millis(1));
        let task = self.runtime().spawn_task(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                if cell.signal(Signal::Message(LocalMessage::new(msg.clone()))).is_err() {
                    return; // the process ended
                }
            }
        });
        Timer { task }
    }

    /// Runs [`GenServer::handle_continue`] with `msg` as soon as the current callback (`init` included) returns,
    /// before any other message is handled (OTP's `{continue, Msg}`): for work that must follow `init` without
    /// making `start` wait for it, or that must run before the next request. A second call in one callback
    /// replaces the first.
    pub fn continue_with(&mut self, msg: impl Any + Send) {
        self.continuation = Some(LocalMessage::new(msg));
    }
}
