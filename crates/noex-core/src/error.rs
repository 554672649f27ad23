//! The errors this crate returns.

use std::time::Duration;

use crate::{ExitReason, NodeName, Pid};

/// The process does not exist (never did, or has exited).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such process: {0}")]
pub struct NoProc(pub Pid);

/// Why a cast was not sent ([`ServerRef::try_cast`](crate::ServerRef::try_cast),
/// [`ServerRef::cast_await`](crate::ServerRef::cast_await)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CastError {
    /// The local process has exited.
    #[error("no such process: {0}")]
    NoProc(Pid),
    /// The process's node is not connected.
    #[error("the node of {0} is not connected")]
    NoConnection(Pid),
    /// The connection to the process's node has no room: the casts already sent to that node are not consumed
    /// yet (the link or the receiving processes are slower than the sender). Nothing was sent; retry later or
    /// use [`cast_await`](crate::ServerRef::cast_await), which waits for room.
    #[error("the connection to the node of {0} is full")]
    Full(Pid),
}

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the timeout. The server keeps running; a late reply is dropped.
    #[error("call timed out after {0:?}")]
    Timeout(Duration),
    /// The process does not exist (never did, or had already exited when the call was sent).
    #[error("no such process: {0}")]
    NoProc(Callee),
    /// The process exited before it replied.
    #[error("process exited before replying: {0}")]
    Exited(ExitReason),
    /// The process's node is not connected, or was lost before the reply came.
    #[error("node {0} is not connected")]
    NoConnection(NodeName),
    /// The request or the reply could not be decoded (the two sides disagree on the message types).
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The process was called from another node but takes no encoded messages: it was started with `start`, not
    /// `start_encodable` (or a child spec's counterpart), so only its own node can call it.
    #[error(
        "the process takes no messages from other nodes (start it with start_encodable or ChildSpec::encodable_worker)"
    )]
    NotEncodable,
    /// The server deferred its reply ([`Context::reply_later`](crate::Context::reply_later)) and dropped the
    /// [`ReplyHandle`](crate::ReplyHandle) without replying.
    #[error("the server dropped the reply without answering")]
    ReplyDropped,
    /// The server answered a [`Request`](crate::Request) (of the named type) with another request's reply.
    #[error("the server answered a {0} with another request's reply")]
    UnexpectedReply(&'static str),
}

impl From<crate::Unanswered> for CallError {
    fn from(unanswered: crate::Unanswered) -> Self {
        match unanswered {
            crate::Unanswered::Exited(reason) => CallError::Exited(reason),
            crate::Unanswered::ReplyDropped => CallError::ReplyDropped,
        }
    }
}

/// Whom a call was for: what [`CallError::NoProc`] says was not there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Callee {
    /// A process, by pid.
    Pid(Pid),
    /// A name registered on a node.
    Name {
        /// The name.
        name: String,
        /// The node it was looked up on.
        node: NodeName,
    },
}

impl Callee {
    /// The node the callee was on.
    pub fn node(&self) -> &NodeName {
        match self {
            Callee::Pid(pid) => pid.node(),
            Callee::Name { node, .. } => node,
        }
    }
}

impl std::fmt::Display for Callee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Callee::Pid(pid) => write!(f, "{pid}"),
            Callee::Name { name, node } => write!(f, "'{name}' on {node}"),
        }
    }
}

/// Why a process could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The requested name is held by another process.
    #[error("name '{name}' is already registered to {holder}")]
    NameTaken {
        /// The name asked for.
        name: String,
        /// The process holding it.
        holder: Pid,
    },
    /// The process's [`Registrar`](crate::Registrar) refused it (other than for a taken name).
    #[error("cannot register the process: {0}")]
    Registration(String),
    /// `init` returned an error, panicked, or the process was killed while initialising.
    #[error("init failed: {0}")]
    Init(ExitReason),
    /// `init` took longer than [`StartOptions::init_timeout`](crate::StartOptions::init_timeout); the process
    /// was killed.
    #[error("init did not finish within {0:?}; the process was killed")]
    InitTimeout(std::time::Duration),
    /// The runtime is shutting down ([`Runtime::shutdown`](crate::Runtime::shutdown)): no process starts any more.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is held by another process.
    #[error("name '{name}' is already registered to {holder}")]
    NameTaken {
        /// The name asked for.
        name: String,
        /// The process holding it.
        holder: Pid,
    },
    /// The process already has a name (a process has at most one, as in Erlang).
    #[error("process {pid} is already registered as '{name}'")]
    AlreadyNamed {
        /// The process.
        pid: Pid,
        /// Its current name.
        name: String,
    },
    /// The process does not exist.
    #[error("no such process")]
    NoProc,
}

/// Why `stop` did not end the process cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// The process was not running.
    #[error("no such process")]
    NoProc,
    /// The process did not finish within the timeout and was killed.
    #[error("process did not stop within {0:?} and was killed")]
    Timeout(Duration),
    /// The process's node is not connected, or was lost before it answered.
    #[error("node not connected")]
    NoConnection,
}

/// Why an encoded message could not be delivered to a local process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// No process with that pid or name.
    #[error("no such process")]
    NoProc,
    /// The process was not started with encodable message types.
    #[error("process does not accept encoded messages")]
    NotEncodable,
    /// The payload is not a valid message for that process.
    #[error("cannot decode message: {0}")]
    Decode(String),
}

/// Why a lifecycle subscription returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The subscriber fell behind and this many events were dropped; the next `recv` continues after them.
    #[error("subscriber lagged; {0} events were dropped")]
    Lagged(u64),
    /// The runtime is gone.
    #[error("runtime closed")]
    Closed,
}
