//! `ServerRef`: a typed handle for calling, casting to and stopping a server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::process::{Envelope, ReplyTo, ServerCell};
use crate::{
    CallError, CallReply, Callee, CastError, Distribution, Encodable, ExitReason, GenServer, Pid, Request, Runtime,
    StopError,
};

/// How long [`ServerRef::call`] waits for a reply, as OTP's `gen_server:call/2`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A typed reference to a server process, on this node or another one.
///
/// Cheap to clone. To a local process, sends go straight into its mailbox (no lookup, no encoding). To a process
/// of another node (see [`Runtime::remote_ref`]) they are encoded and go through the cluster; the API and the
/// guarantees are the same, with [`CallError::NoConnection`] added for a node that is not (or no longer)
/// connected.
pub struct ServerRef<S: GenServer> {
    route: Route<S>,
    runtime: Runtime,
}

enum Route<S: GenServer> {
    Local(Arc<ServerCell<S>>),
    Remote(Pid, Codec<S>),
}

/// How a remote reference turns messages into bytes and replies back; captured where the message types are known
/// to be [`Encodable`], so that `call` and `cast` need no such bound.
struct Codec<S: GenServer> {
    encode_call: fn(&S::Call) -> Bytes,
    cast_len: fn(&S::Cast) -> usize,
    write_cast: fn(&S::Cast, &mut [u8]),
    decode_reply: fn(Bytes) -> Result<S::Reply, String>,
}

impl<S: GenServer> Clone for Codec<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: GenServer> Copy for Codec<S> {}

impl<S: GenServer> Codec<S> {
    /// A cast's message, encoded only where the connection writes it.
    fn cast<'a>(&self, msg: &'a S::Cast) -> crate::encoded::Typed<'a, S::Cast> {
        crate::encoded::Typed { msg, len: self.cast_len, write: self.write_cast }
    }
}

impl<S: GenServer> ServerRef<S> {
    pub(crate) fn from_cell(cell: Arc<ServerCell<S>>, runtime: Runtime) -> Self {
        ServerRef { route: Route::Local(cell), runtime }
    }

    pub(crate) fn remote(pid: Pid, runtime: Runtime) -> Self
    where
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
    {
        let codec = Codec {
            encode_call: Encodable::encode_wire,
            cast_len: Encodable::wire_len,
            write_cast: Encodable::encode_wire_into,
            decode_reply: Encodable::decode_wire,
        };
        ServerRef { route: Route::Remote(pid, codec), runtime }
    }

    /// The server's pid.
    pub fn pid(&self) -> &Pid {
        match &self.route {
            Route::Local(cell) => &cell.core.pid,
            Route::Remote(pid, _) => pid,
        }
    }

    /// Whether the server lives on another node.
    pub fn is_remote(&self) -> bool {
        matches!(self.route, Route::Remote(..))
    }

    /// Calls the server and waits up to [`DEFAULT_CALL_TIMEOUT`] for the reply.
    ///
    /// Cancel safe: dropping the future abandons the call; the server still handles it and the reply is dropped.
    pub async fn call(&self, msg: S::Call) -> Result<S::Reply, CallError> {
        self.call_timeout(msg, DEFAULT_CALL_TIMEOUT).await
    }

    /// Calls the server and waits up to `timeout` for the reply. After a timeout the server stays usable.
    pub async fn call_timeout(&self, msg: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
        let cell = match &self.route {
            Route::Local(cell) => cell,
            Route::Remote(pid, codec) => return self.call_remote(pid, codec, msg, timeout).await,
        };
        let (reply, receive) = oneshot::channel();
        if cell.mailbox.push(Envelope::Call(msg, ReplyTo::Local(reply))).is_err() {
            return Err(CallError::NoProc(Callee::Pid(cell.core.pid.clone())));
        }
        match self.runtime.deadlines().wait(receive, timeout).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(unanswered))) => Err(unanswered.into()),
            // Every path answers a reply before dropping it (even a dropped `ReplyHandle`); a bare drop means the
            // process ended in a way that skipped even that.
            Ok(Err(_)) => Err(CallError::Exited(ExitReason::Killed)),
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    /// Sends one kind of [`Request`] and waits up to [`DEFAULT_CALL_TIMEOUT`] for its own reply type (see
    /// [`requests!`](crate::requests)).
    pub async fn request<R>(&self, request: R) -> Result<R::Reply, CallError>
    where
        R: Request<Call = S::Call, Replies = S::Reply>,
    {
        self.request_timeout(request, DEFAULT_CALL_TIMEOUT).await
    }

    /// [`request`](Self::request) with a timeout. A reply of another variant (the server answered with another
    /// request's reply) is [`CallError::UnexpectedReply`].
    pub async fn request_timeout<R>(&self, request: R, timeout: Duration) -> Result<R::Reply, CallError>
    where
        R: Request<Call = S::Call, Replies = S::Reply>,
    {
        let replies = self.call_timeout(request.into_call(), timeout).await?;
        R::unwrap_reply(replies).map_err(|_| CallError::UnexpectedReply(std::any::type_name::<R>()))
    }

    async fn call_remote(
        &self,
        pid: &Pid,
        codec: &Codec<S>,
        msg: S::Call,
        timeout: Duration,
    ) -> Result<S::Reply, CallError> {
        if !self.runtime.is_remote(pid) {
            return Err(CallError::NoProc(Callee::Pid(pid.clone())));
        }
        let distribution = self.runtime.distribution().ok_or_else(|| CallError::NoConnection(pid.node().clone()))?;
        let (reply, receive) = oneshot::channel();
        let id = distribution.call(pid, (codec.encode_call)(&msg), timeout, CallReply(reply))?;
        // Forgets the pending call if this future is dropped or times out; disarmed once the reply is in.
        let mut pending = PendingCall { distribution, node: pid.node(), id, armed: true };
        let result = self.runtime.deadlines().wait_registered(receive, timeout).await;
        if result.is_ok() {
            pending.armed = false;
        }
        match result {
            Ok(Ok(Ok(bytes))) => (codec.decode_reply)(bytes).map_err(CallError::Decode),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(CallError::NoConnection(pid.node().clone())),
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    /// The distribution layer for a remote pid; `None` (no route) if there is none, or if the pid names a process
    /// of this node that is not (or no longer) a server of type `S`.
    fn remote_route(&self, pid: &Pid) -> Option<&Arc<dyn Distribution>> {
        if !self.runtime.is_remote(pid) {
            return None;
        }
        self.runtime.distribution()
    }

    /// Sends a cast and returns at once. If the server has exited, the message is dropped (as in OTP); use
    /// [`try_cast`](Self::try_cast) to find out.
    pub fn cast(&self, msg: S::Cast) {
        match &self.route {
            Route::Local(cell) => {
                let _ = cell.mailbox.push(Envelope::Cast(msg, None));
            }
            Route::Remote(pid, codec) => {
                if let Some(distribution) = self.remote_route(pid) {
                    distribution.cast(pid, &codec.cast(&msg));
                }
            }
        }
    }

    /// Sends a cast without waiting, or says why not: the server has exited ([`CastError::NoProc`]), its node is
    /// not connected, or the connection to its node has no room ([`CastError::Full`]; nothing is sent). For a
    /// remote server, whether the process exists is known on its node, not here.
    pub fn try_cast(&self, msg: S::Cast) -> Result<(), CastError> {
        match &self.route {
            Route::Local(cell) => {
                cell.mailbox.push(Envelope::Cast(msg, None)).map_err(|_| CastError::NoProc(self.pid().clone()))
            }
            Route::Remote(pid, codec) => match self.remote_route(pid) {
                Some(distribution) => distribution.try_cast(pid, &codec.cast(&msg), false),
                None => Err(CastError::NoConnection(pid.clone())),
            },
        }
    }

    /// Sends a cast, waiting first for room on the connection to the server's node: the way to send many casts
    /// to another node without outrunning it (Erlang suspends a sender on a busy distribution port the same
    /// way). A local server's mailbox always has room. Fails as [`try_cast`](Self::try_cast) does, except that
    /// it waits instead of failing with `Full`.
    ///
    /// Cancel safe: if the future is dropped before it completes, the cast was not sent.
    pub async fn cast_await(&self, msg: S::Cast) -> Result<(), CastError> {
        let (pid, codec) = match &self.route {
            Route::Local(_) => return self.try_cast(msg),
            Route::Remote(pid, codec) => (pid, codec),
        };
        let distribution = self.remote_route(pid).ok_or_else(|| CastError::NoConnection(pid.clone()))?;
        let payload = codec.cast(&msg);
        loop {
            match distribution.try_cast(pid, &payload, true) {
                Err(CastError::Full(_)) => distribution.cast_room(pid).await?,
                sent => return sent,
            }
        }
    }

    /// Asks the server to stop with `reason` after the messages already queued, waits until it has exited (its
    /// `terminate` has run, its name is free), and kills it past `timeout`.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), StopError> {
        self.runtime.stop(self.pid(), reason, timeout).await
    }

    /// Whether the server is still running. For a remote server: whether its node is connected (whether the
    /// process itself still runs is known on that node; monitor it to find out).
    pub fn is_alive(&self) -> bool {
        match &self.route {
            Route::Local(cell) => cell.mailbox.lock().exit.is_none(),
            Route::Remote(pid, _) => self.remote_route(pid).is_some_and(|d| d.is_connected(pid.node())),
        }
    }

    /// Messages in the server's mailbox, not yet handled (0 for a remote server: ask its node's observer).
    pub fn mailbox_len(&self) -> u64 {
        match &self.route {
            Route::Local(cell) => {
                let processed = cell.core.processed.load(std::sync::atomic::Ordering::Relaxed);
                cell.mailbox.enqueued().saturating_sub(processed)
            }
            Route::Remote(..) => 0,
        }
    }
}

/// A remote call in flight, forgotten by the distribution layer if the caller stops waiting.
struct PendingCall<'a> {
    distribution: &'a Arc<dyn Distribution>,
    node: &'a crate::NodeName,
    id: u64,
    armed: bool,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.distribution.cancel_call(self.node, self.id);
        }
    }
}

impl<S: GenServer> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        let route = match &self.route {
            Route::Local(cell) => Route::Local(cell.clone()),
            Route::Remote(pid, codec) => Route::Remote(pid.clone(), *codec),
        };
        ServerRef { route, runtime: self.runtime.clone() }
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
