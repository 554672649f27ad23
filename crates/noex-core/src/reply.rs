//! Deferred replies: a call answered after `handle_call` has returned, by this process or by another one (OTP's
//! `{noreply, State}` followed by `gen_server:reply/2`).

use crate::ExitReason;
use crate::process::ReplyTo;

/// Why a call was not answered: what the caller's side of a call learns when no reply value comes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unanswered {
    /// The process ended before it replied.
    Exited(ExitReason),
    /// The server took the call's [`ReplyHandle`] and dropped it without replying.
    ReplyDropped,
}

/// The reply owed to one caller, taken with [`Context::reply_later`](crate::Context::reply_later).
///
/// Keep it in the server's state, or send it to another process (it is `Send` and not tied to the server), and
/// answer with [`reply`](Self::reply) when the answer is known: a job queue's `take` that waits for a job, a call
/// that waits on another call. The caller waits as for any call, up to its own timeout; a reply after that timeout
/// is dropped. Dropping the handle without replying fails the call at once with
/// [`CallError::ReplyDropped`](crate::CallError::ReplyDropped): a caller never hangs on a lost handle. The
/// handle outlives the process that took it: a reply sent after the server ended still reaches the caller.
///
/// ```
/// use std::collections::VecDeque;
/// use noex_core::{Context, GenServer, ReplyHandle, Runtime};
///
/// /// A queue whose `take` waits until a job is there.
/// #[derive(Default)]
/// struct Jobs { jobs: VecDeque<String>, waiting: VecDeque<ReplyHandle<String>> }
///
/// impl GenServer for Jobs {
///     type Call = ();          // take
///     type Reply = String;
///     type Cast = String;      // put
///
///     async fn handle_call(&mut self, _: (), ctx: &mut Context<Self>) -> String {
///         match self.jobs.pop_front() {
///             Some(job) => job,
///             None => {
///                 self.waiting.extend(ctx.reply_later());
///                 String::new() // ignored: the reply is deferred
///             }
///         }
///     }
///
///     async fn handle_cast(&mut self, job: String, _ctx: &mut Context<Self>) {
///         match self.waiting.pop_front() {
///             Some(taker) => taker.reply(job),
///             None => self.jobs.push_back(job),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runtime = Runtime::new();
/// let jobs = runtime.start(Jobs::default()).await.unwrap();
/// let taker = tokio::spawn({ let jobs = jobs.clone(); async move { jobs.call(()).await } });
/// jobs.cast("resize image 7".to_string());
/// assert_eq!(taker.await.unwrap(), Ok("resize image 7".to_string()));
/// # }
/// ```
#[must_use = "dropping a ReplyHandle fails the call at once"]
pub struct ReplyHandle<R> {
    to: Option<ReplyTo<R>>,
}

impl<R> ReplyHandle<R> {
    pub(crate) fn new(to: ReplyTo<R>) -> Self {
        ReplyHandle { to: Some(to) }
    }

    /// Answers the call. If the caller has stopped waiting (timeout, or its node is gone), the reply is dropped.
    pub fn reply(mut self, value: R) {
        if let Some(to) = self.to.take() {
            to.send(Ok(value));
        }
    }

    /// Whether the caller is on another node (its reply will be encoded).
    pub fn is_remote(&self) -> bool {
        matches!(self.to, Some(ReplyTo::Encoded(_)))
    }
}

impl<R> Drop for ReplyHandle<R> {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            to.send(Err(Unanswered::ReplyDropped));
        }
    }
}

impl<R> std::fmt::Debug for ReplyHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let caller = if self.is_remote() { "remote" } else { "local" };
        f.debug_struct("ReplyHandle").field("caller", &caller).finish()
    }
}
