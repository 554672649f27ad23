//! `ServerRef`: a typed handle for calling, casting to and stopping a server.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::process::{Envelope, ReplyTo, ServerCell};
use crate::{CallError, ExitReason, GenServer, NoProc, Pid, Runtime, StopError};

/// How long [`ServerRef::call`] waits for a reply, as OTP's `gen_server:call/2`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A typed reference to a server process. Cheap to clone; sends go straight into the process's mailbox (no
/// lookup, no encoding).
pub struct ServerRef<S: GenServer> {
    cell: Arc<ServerCell<S>>,
    runtime: Runtime,
}

impl<S: GenServer> ServerRef<S> {
    pub(crate) fn from_cell(cell: Arc<ServerCell<S>>, runtime: Runtime) -> Self {
        ServerRef { cell, runtime }
    }

    /// The server's pid.
    pub fn pid(&self) -> &Pid {
        &self.cell.core.pid
    }

    /// Calls the server and waits up to [`DEFAULT_CALL_TIMEOUT`] for the reply.
    ///
    /// Cancel safe: dropping the future abandons the call; the server still handles it and the reply is dropped.
    pub async fn call(&self, msg: S::Call) -> Result<S::Reply, CallError> {
        self.call_timeout(msg, DEFAULT_CALL_TIMEOUT).await
    }

    /// Calls the server and waits up to `timeout` for the reply. After a timeout the server stays usable.
    pub async fn call_timeout(&self, msg: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
        let (reply, receive) = oneshot::channel();
        if self.cell.mailbox.push(Envelope::Call(msg, ReplyTo::Local(reply))).is_err() {
            return Err(CallError::NoProc);
        }
        match self.runtime.deadlines().wait(receive, timeout).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(reason))) => Err(CallError::Exited(reason)),
            // The process drops an unanswered reply only while ending, and answers it first when it can.
            Ok(Err(_)) => Err(CallError::Exited(ExitReason::Killed)),
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    /// Sends a cast and returns at once. If the server has exited, the message is dropped (as in OTP); use
    /// [`try_cast`](Self::try_cast) to find out.
    pub fn cast(&self, msg: S::Cast) {
        let _ = self.cell.mailbox.push(Envelope::Cast(msg));
    }

    /// Sends a cast; fails if the server has exited.
    pub fn try_cast(&self, msg: S::Cast) -> Result<(), NoProc> {
        self.cell.mailbox.push(Envelope::Cast(msg)).map_err(|_| NoProc(self.pid().clone()))
    }

    /// Asks the server to stop with `reason` after the messages already queued, waits until it has exited (its
    /// `terminate` has run, its name is free), and kills it past `timeout`.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), StopError> {
        self.runtime.stop(self.pid(), reason, timeout).await
    }

    /// Whether the server is still running.
    pub fn is_alive(&self) -> bool {
        self.cell.mailbox.lock().exit.is_none()
    }

    /// Messages in the server's mailbox, not yet handled.
    pub fn mailbox_len(&self) -> u64 {
        let processed = self.cell.core.processed.load(std::sync::atomic::Ordering::Relaxed);
        self.cell.mailbox.enqueued().saturating_sub(processed)
    }
}

impl<S: GenServer> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        ServerRef { cell: self.cell.clone(), runtime: self.runtime.clone() }
    }
}

impl<S: GenServer> std::fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerRef({})", self.pid())
    }
}

impl<S: GenServer> PartialEq for ServerRef<S> {
    fn eq(&self, other: &Self) -> bool {
        self.pid() == other.pid()
    }
}
