//! The frames as the layers above see them: hand-written types, converted from and to the generated ones.

use std::time::Duration;

use bytes::Bytes;
use noex_core::{ExitReason, Pid, Restart};

use crate::NodeId;

/// One frame of the protocol.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// Handshake, dialer -> acceptor.
    Hello(Hello),
    /// Handshake, acceptor -> dialer: its identity and nonce (nothing that depends on the cookie).
    Challenge(Challenge),
    /// Handshake, dialer -> acceptor: the dialer's HMAC proof.
    Proof(Bytes),
    /// Handshake, acceptor -> dialer: the dialer is authenticated; the acceptor's HMAC proof.
    Welcome {
        /// The acceptor's proof, which the dialer checks before it takes the connection up.
        proof: Bytes,
    },
    /// Handshake refused; the connection closes.
    Reject(RejectReason),
    /// Liveness on an idle connection.
    Heartbeat,
    /// The sender's connected nodes.
    Members(Vec<Member>),
    /// The sender is stopping gracefully.
    Goodbye,
    /// Flow control: the total cost of the casts the sender of this frame has consumed on this connection.
    CastCredit {
        /// Cumulative since the connection was established.
        consumed: u64,
        /// The sender's own cast window, stated once at the start of a connection; 0 when not stated.
        window: u64,
    },
    /// A call to a process on the receiving node.
    Call(Call),
    /// The answer to a call.
    Reply(Reply),
    /// A cast to a process on the receiving node.
    Cast(Cast),
    /// Start a registered behaviour on the receiving node.
    SpawnRequest(SpawnRequest),
    /// The answer to a spawn request.
    SpawnReply(SpawnReply),
    /// Monitor a process on the receiving node.
    Monitor(Monitor),
    /// Remove a monitor.
    Demonitor(Demonitor),
    /// A monitored process ended.
    Down(Down),
    /// Link two processes.
    Link(LinkPair),
    /// Unlink two processes.
    Unlink(LinkPair),
    /// An exit signal, over a link or explicit.
    Exit(Exit),
    /// Stop a process gracefully; answered with a `Reply`.
    Stop(Stop),
    /// Global registry changes.
    RegistrySync(RegistrySync),
    /// Process group memberships of one scope.
    GroupsSync(GroupsSync),
    /// Ask for the receiving node's observer snapshot.
    ObserverQuery {
        /// Echoed in the reply.
        query_id: u64,
        /// What to list, encoded by the observer layer (empty: its default).
        query: Bytes,
    },
    /// An observer snapshot.
    ObserverReply {
        /// The query answered.
        query_id: u64,
        /// The snapshot, encoded by the observer layer.
        snapshot: Bytes,
    },
}

/// The dialer's first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version the dialer speaks.
    pub version: u32,
    /// The dialer.
    pub node: NodeId,
    /// The dialer's incarnation.
    pub creation: u32,
    /// The dialer's random nonce.
    pub nonce: Bytes,
}

/// The acceptor's answer to `Hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The protocol version the acceptor speaks.
    pub version: u32,
    /// The acceptor.
    pub node: NodeId,
    /// The acceptor's incarnation.
    pub creation: u32,
    /// The acceptor's random nonce.
    pub nonce: Bytes,
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Authentication failed or the peer is not welcome (deliberately vague).
    NotAllowed,
    /// A connection between the two nodes already exists or wins the simultaneous-dial tie-break.
    Duplicate,
}

/// A node in a membership list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node.
    pub node: NodeId,
    /// Its incarnation.
    pub creation: u32,
}

/// A process on the receiving node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// By pid.
    Pid(Pid),
    /// By local registered name.
    Name(String),
}

/// A remote call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Unique per sending node; echoed in the reply.
    pub call_id: u64,
    /// The process called.
    pub target: Target,
    /// The caller.
    pub from: Pid,
    /// The encoded `Call` message.
    pub payload: Bytes,
    /// How long the caller waits.
    pub timeout: Duration,
}

/// The answer to a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The call answered.
    pub call_id: u64,
    /// The encoded reply, or why there is none.
    pub result: Result<Bytes, CallFailure>,
}

/// Why a remote call got no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// No such process or name.
    NoProc,
    /// The process ended before replying.
    Exited(ExitReason),
    /// The payload did not decode as the target's `Call` type.
    Decode(String),
    /// The target does not take encoded messages.
    NotEncodable,
    /// The operation did not finish in time on the target node (a `Stop` whose target had to be killed).
    Timeout,
    /// The server deferred its reply and dropped it unanswered.
    ReplyDropped,
}

/// A remote cast.
#[derive(Clone, Debug, PartialEq)]
pub struct Cast {
    /// The process cast to.
    pub target: Target,
    /// The sender.
    pub from: Pid,
    /// The encoded `Cast` message.
    pub payload: Bytes,
}

/// How a remotely spawned process is registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Not registered.
    None,
    /// Under its name on its node.
    Local,
    /// Under its name in the global registry.
    Global,
}

/// A remote spawn.
#[derive(Clone, Debug, PartialEq)]
pub struct SpawnRequest {
    /// Unique per sending node; echoed in the reply.
    pub spawn_id: u64,
    /// The registered behaviour to start.
    pub behaviour: String,
    /// Its encoded init arguments.
    pub init_args: Bytes,
    /// The name to register, if any.
    pub name: Option<String>,
    /// How to register it.
    pub registration: Registration,
    /// How long the requester waits.
    pub timeout: Duration,
    /// The requester.
    pub from: Pid,
    /// How the new process is bound to others: `None` for a plain spawn (boxed: most spawns have none, and this
    /// is the largest frame).
    pub bonds: Option<Box<SpawnBonds>>,
}

/// A spawn's links to other processes: to a process of the requester, or to a supervisor of the target node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnBonds {
    /// A process of the requester's node to link the new process with, before its `init` runs.
    pub link: Option<Pid>,
    /// A supervisor of the target node to start the new process under, as its child, with `restart`.
    pub supervisor: Option<Pid>,
    /// The child's restart type (with `supervisor`).
    pub restart: Restart,
}

/// The answer to a spawn request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnReply {
    /// The request answered.
    pub spawn_id: u64,
    /// The new process, or why there is none.
    pub result: Result<Pid, SpawnFailure>,
}

/// Why a remote spawn failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnFailure {
    /// No behaviour registered under that name.
    UnknownBehaviour(String),
    /// `init` failed.
    InitFailed(String),
    /// The name is taken.
    NameTaken(String),
    /// The init arguments did not decode.
    BadArguments(String),
    /// Starting took longer than the request's timeout; the process was stopped again.
    Timeout,
}

/// A remote monitor request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    /// Unique per watcher's node.
    pub monitor_id: u64,
    /// The watching process.
    pub watcher: Pid,
    /// The monitored process.
    pub target: Target,
}

/// A remote demonitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demonitor {
    /// The monitor removed.
    pub monitor_id: u64,
    /// The watching process.
    pub watcher: Pid,
}

/// A monitored process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The monitor that fired.
    pub monitor_id: u64,
    /// The watching process.
    pub watcher: Pid,
    /// The process that ended.
    pub pid: Pid,
    /// Why.
    pub reason: ExitReason,
}

/// The two ends of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPair {
    /// The sender's process.
    pub from: Pid,
    /// The receiver's process.
    pub to: Pid,
}

/// An exit signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The process that ended (or sent the signal).
    pub from: Pid,
    /// The receiving process.
    pub to: Pid,
    /// Why.
    pub reason: ExitReason,
    /// Over a link (ignored unless the two are still linked), or an explicit exit signal.
    pub linked: bool,
}

/// A request to stop a process gracefully.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Unique per sending node, shared with calls; echoed in the `Reply`.
    pub call_id: u64,
    /// The process to stop.
    pub target: Pid,
    /// The requester.
    pub from: Pid,
    /// The exit reason to stop with.
    pub reason: ExitReason,
    /// How long the target may take before it is killed.
    pub timeout: Duration,
}

/// Global registry changes: the names the sender registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrySync {
    /// Set on every chunk of a full sync; `None` for an incremental change.
    pub full: Option<FullSync>,
    /// Added or changed names.
    pub entries: Vec<RegistryEntry>,
    /// Removed names.
    pub removed: Vec<String>,
    /// The sender's registry started after the connection came up, so it may have missed the receiver's full
    /// sync: the receiver answers with one.
    pub answer_wanted: bool,
}

/// Marks one chunk of a full sync: the chunks of one full sync share `id` and follow each other on one
/// connection; the sync replaces what the receiver holds from the sender once its `last` chunk has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullSync {
    /// The sender's number for this full sync.
    pub id: u64,
    /// The first chunk: a full sync from the sender that was being assembled is superseded.
    pub first: bool,
    /// The last chunk.
    pub last: bool,
}

/// One global name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The name.
    pub name: String,
    /// Its process (of any node).
    pub pid: Pid,
}

/// Process group memberships of one scope: those of the sender's own processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupsSync {
    /// The scope's name.
    pub scope: String,
    /// Memberships added.
    pub joined: Vec<GroupPids>,
    /// Memberships removed (one occurrence per listed pid); applied before `joined`.
    pub left: Vec<GroupPids>,
    /// Set on every chunk of a full sync; `None` for an incremental change.
    pub full: Option<FullSync>,
    /// The sender's scope started after the connection came up: the receiver answers with a full sync.
    pub answer_wanted: bool,
}

/// Members of one group, as a `GroupsSync` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPids {
    /// The group.
    pub group: String,
    /// Its pids (with repeats for a pid that joined more than once).
    pub pids: Vec<Pid>,
}
