//! The `GenServer` behaviour: what a user implements.

use std::future::Future;

use crate::{Context, ExitReason, ExitSignal, LocalMessage, ProcessDown};

/// A generic server, as in Erlang's `gen_server`: a process that owns its state (`self`) and handles typed calls
/// (request and reply), casts (fire-and-forget) and info messages (monitor `DOWN`s, trapped `EXIT`s), one at a time.
///
/// Every callback may `.await`; while it does, the server handles nothing else, so its state needs no locks. A panic
/// in any callback ends the process with reason `error(...)`; it never takes the runtime down.
///
/// ```
/// use noex_core::{Context, GenServer};
///
/// struct Counter(i64);
///
/// enum Op { Get, Add(i64) }
///
/// impl GenServer for Counter {
///     type Call = Op;
///     type Reply = i64;
///     type Cast = i64;
///
///     async fn handle_call(&mut self, op: Op, _ctx: &mut Context<Self>) -> i64 {
///         if let Op::Add(n) = op { self.0 += n }
///         self.0
///     }
///
///     async fn handle_cast(&mut self, n: i64, _ctx: &mut Context<Self>) {
///         self.0 += n;
///     }
/// }
/// ```
pub trait GenServer: Sized + Send + 'static {
    /// Requests that expect a reply.
    type Call: Send + 'static;
    /// Replies to calls.
    type Reply: Send + 'static;
    /// Fire-and-forget messages; use `()` if the server takes none.
    type Cast: Send + 'static;

    /// Runs in the new process before `start` returns. An error ends the process and makes `start` fail with it.
    fn init(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles a call; the returned value is the reply.
    fn handle_call(&mut self, msg: Self::Call, ctx: &mut Context<Self>) -> impl Future<Output = Self::Reply> + Send;

    /// Handles a cast. The default ignores it.
    fn handle_cast(&mut self, msg: Self::Cast, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = (msg, ctx);
        async {}
    }

    /// Handles an info message: a `DOWN` from a monitor, an `EXIT` from a link while trapping exits, or a message
    /// this process sent itself ([`Context::send_after`], [`Context::send_interval`]). The default ignores it.
    fn handle_info(&mut self, info: Info, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = (info, ctx);
        async {}
    }

    /// Handles what [`Context::continue_with`] asked for, right after the callback that asked returned and before
    /// any other message. The default ignores it.
    fn handle_continue(&mut self, msg: LocalMessage, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = (msg, ctx);
        async {}
    }

    /// Runs when the server stops by its own decision, a `stop` request, a panic in a callback, or an `EXIT`
    /// from its parent. It does not run when the process is killed or dies from an exit signal it does not trap
    /// (as in OTP).
    fn terminate(&mut self, reason: &ExitReason, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// An info message for [`GenServer::handle_info`].
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Info {
    /// A monitored process ended.
    Down(ProcessDown),
    /// A linked process ended (only delivered while trapping exits).
    Exit(ExitSignal),
    /// A message this process sent itself with a timer: local only, never from another node.
    Message(LocalMessage),
}

impl Info {
    /// The self-sent message, if this is one and it is a `T`: `if let Some(Expire) = info.message() { .. }`.
    pub fn message<T: std::any::Any>(&self) -> Option<&T> {
        match self {
            Info::Message(msg) => msg.get(),
            _ => None,
        }
    }
}
