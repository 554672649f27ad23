//! The encoding of a [`SnapshotQuery`] inside an `ObserverQuery` frame and of a [`NodeSnapshot`] inside an
//! `ObserverReply` frame (see `docs/protocol.md`): prost messages declared here, since only this layer reads them.
//! Decoding and checking what arrives is `reply.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use noex_core::{Pid, ProcessKind, ProcessStatus, Strategy};

use crate::memory::MemoryStats;
use crate::query::{DEFAULT_LIMIT, ProcessList, SnapshotQuery, SortKey};
use crate::{NodeSnapshot, ProcessTreeNode, ServerStats, SupervisorStats};

/// A node's snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Snapshot {
    #[prost(uint64, tag = "1")]
    timestamp_ms: u64,
    #[prost(message, repeated, tag = "2")]
    servers: Vec<Server>,
    #[prost(message, repeated, tag = "3")]
    supervisors: Vec<Supervisor>,
    #[prost(message, repeated, tag = "4")]
    tree: Vec<TreeNode>,
    #[prost(uint64, tag = "5")]
    process_count: u64,
    #[prost(uint64, tag = "6")]
    total_messages: u64,
    #[prost(uint64, tag = "7")]
    total_restarts: u64,
    #[prost(uint64, tag = "8")]
    system_processes: u64,
    #[prost(uint64, optional, tag = "9")]
    rss_bytes: Option<u64>,
    #[prost(uint64, optional, tag = "10")]
    heap_bytes: Option<u64>,
    /// Set (and the rest left empty) when the node could not give its snapshot.
    #[prost(string, tag = "11")]
    pub(crate) error: String,
    #[prost(uint64, tag = "12")]
    pub(crate) server_count: u64,
    #[prost(uint64, tag = "13")]
    pub(crate) supervisor_count: u64,
    #[prost(uint64, tag = "14")]
    pub(crate) unlisted: u64,
    #[prost(uint64, optional, tag = "15")]
    next_page: Option<u64>,
    #[prost(uint64, tag = "16")]
    pub(crate) tree_unlisted: u64,
    #[prost(uint64, tag = "17")]
    total_mailbox: u64,
    /// With `error`: what kind of failure ([`ErrorKind`]).
    #[prost(uint32, tag = "18")]
    pub(crate) error_kind: u32,
}

/// Why a node could not give its snapshot, in `Snapshot::error_kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Anything else (the message says what).
    Failed = 0,
    /// Too many queries are waiting for this node's snapshots: ask again later.
    Busy = 1,
    /// The query could not be decoded, or asks for something this node does not know.
    BadQuery = 2,
}

/// What a query asks for (`ObserverQuery.query`); every field absent (empty bytes) is the default query.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Query {
    /// 0 top, 1 page, 2 none (totals only).
    #[prost(uint32, tag = "1")]
    pub(crate) list: u32,
    /// For top: 0 mailbox_len, 1 messages_processed, 2 restarts.
    #[prost(uint32, tag = "2")]
    pub(crate) sort_key: u32,
    /// Absent: [`DEFAULT_LIMIT`](crate::query::DEFAULT_LIMIT).
    #[prost(uint32, optional, tag = "3")]
    pub(crate) limit: Option<u32>,
    /// For page: list the processes numbered above this.
    #[prost(uint64, tag = "4")]
    pub(crate) after: u64,
    /// Absent: [`DEFAULT_LIMIT`](crate::query::DEFAULT_LIMIT).
    #[prost(uint32, optional, tag = "5")]
    pub(crate) tree_limit: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Server {
    #[prost(message, optional, tag = "1")]
    pid: Option<Pid>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(uint32, tag = "3")]
    status: u32,
    #[prost(uint64, tag = "4")]
    mailbox_len: u64,
    #[prost(uint64, tag = "5")]
    messages_processed: u64,
    #[prost(uint64, tag = "6")]
    started_at_ms: u64,
    #[prost(uint64, tag = "7")]
    uptime_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Supervisor {
    #[prost(message, optional, tag = "1")]
    pid: Option<Pid>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(uint32, tag = "3")]
    strategy: u32,
    #[prost(uint32, tag = "4")]
    child_count: u32,
    #[prost(uint64, tag = "5")]
    restarts: u64,
    #[prost(uint64, tag = "6")]
    started_at_ms: u64,
    #[prost(uint64, tag = "7")]
    uptime_ms: u64,
    #[prost(uint64, tag = "8")]
    mailbox_len: u64,
    #[prost(uint64, tag = "9")]
    messages_processed: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TreeNode {
    #[prost(message, optional, tag = "1")]
    pid: Option<Pid>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(uint32, tag = "3")]
    kind: u32,
    #[prost(message, repeated, tag = "4")]
    children: Vec<TreeNode>,
}

/// A snapshot that arrived damaged.
#[derive(Debug, thiserror::Error)]
#[error("invalid snapshot: {0}")]
pub(crate) struct Invalid(pub(crate) String);

pub(crate) fn invalid(what: impl Into<String>) -> Invalid {
    Invalid(what.into())
}

impl Snapshot {
    /// The answer of a node that cannot give its snapshot.
    pub(crate) fn failed(kind: ErrorKind, error: String) -> Snapshot {
        Snapshot { error, error_kind: kind as u32, ..Snapshot::default() }
    }
}

impl From<&SnapshotQuery> for Query {
    fn from(query: &SnapshotQuery) -> Query {
        let (list, sort_key, limit, after) = match query.list {
            ProcessList::Top { by, limit } => (0, sort_key_code(by), limit, 0),
            ProcessList::Page { after, limit } => (1, 0, limit, after),
            ProcessList::None => (2, 0, 0, 0),
        };
        Query { list, sort_key, limit: Some(limit), after, tree_limit: Some(query.tree_limit) }
    }
}

impl TryFrom<Query> for SnapshotQuery {
    type Error = Invalid;

    fn try_from(q: Query) -> Result<SnapshotQuery, Invalid> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        let list = match q.list {
            0 => ProcessList::Top { by: sort_key(q.sort_key)?, limit },
            1 => ProcessList::Page { after: q.after, limit },
            2 => ProcessList::None,
            other => return Err(invalid(format!("unknown process list {other}"))),
        };
        Ok(SnapshotQuery { list, tree_limit: q.tree_limit.unwrap_or(DEFAULT_LIMIT) })
    }
}

fn sort_key_code(key: SortKey) -> u32 {
    match key {
        SortKey::MailboxLen => 0,
        SortKey::MessagesProcessed => 1,
        SortKey::Restarts => 2,
    }
}

fn sort_key(code: u32) -> Result<SortKey, Invalid> {
    Ok(match code {
        0 => SortKey::MailboxLen,
        1 => SortKey::MessagesProcessed,
        2 => SortKey::Restarts,
        other => return Err(invalid(format!("unknown sort key {other}"))),
    })
}

impl NodeSnapshot {
    /// Its size on the wire, in bytes (without the frame around it).
    pub fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(&Snapshot::from(self))
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms)).unwrap_or(UNIX_EPOCH)
}

fn status_code(status: ProcessStatus) -> u32 {
    status as u32
}

fn status(code: u32) -> Result<ProcessStatus, Invalid> {
    Ok(match code {
        0 => ProcessStatus::Initializing,
        1 => ProcessStatus::Running,
        2 => ProcessStatus::Stopping,
        3 => ProcessStatus::Exited,
        other => return Err(invalid(format!("unknown process status {other}"))),
    })
}

fn strategy_code(strategy: Strategy) -> u32 {
    match strategy {
        Strategy::OneForOne => 0,
        Strategy::OneForAll => 1,
        Strategy::RestForOne => 2,
    }
}

fn strategy(code: u32) -> Result<Strategy, Invalid> {
    Ok(match code {
        0 => Strategy::OneForOne,
        1 => Strategy::OneForAll,
        2 => Strategy::RestForOne,
        other => return Err(invalid(format!("unknown strategy {other}"))),
    })
}

fn kind_code(kind: ProcessKind) -> u32 {
    match kind {
        ProcessKind::Server => 0,
        ProcessKind::Supervisor => 1,
    }
}

fn kind(code: u32) -> Result<ProcessKind, Invalid> {
    Ok(match code {
        0 => ProcessKind::Server,
        1 => ProcessKind::Supervisor,
        other => return Err(invalid(format!("unknown process kind {other}"))),
    })
}

fn pid(pid: Option<Pid>) -> Result<Pid, Invalid> {
    pid.ok_or_else(|| invalid("a process without a pid"))
}

impl From<&NodeSnapshot> for Snapshot {
    fn from(s: &NodeSnapshot) -> Snapshot {
        Snapshot {
            timestamp_ms: millis(s.timestamp),
            servers: s
                .servers
                .iter()
                .map(|p| Server {
                    pid: Some(p.pid.clone()),
                    name: p.name.clone(),
                    status: status_code(p.status),
                    mailbox_len: p.mailbox_len,
                    messages_processed: p.messages_processed,
                    started_at_ms: millis(p.started_at),
                    uptime_ms: duration_ms(p.uptime),
                })
                .collect(),
            supervisors: s
                .supervisors
                .iter()
                .map(|p| Supervisor {
                    pid: Some(p.pid.clone()),
                    name: p.name.clone(),
                    strategy: strategy_code(p.strategy),
                    child_count: p.child_count,
                    restarts: p.restarts,
                    started_at_ms: millis(p.started_at),
                    uptime_ms: duration_ms(p.uptime),
                    mailbox_len: p.mailbox_len,
                    messages_processed: p.messages_processed,
                })
                .collect(),
            tree: s.tree.iter().map(tree_node).collect(),
            process_count: s.process_count,
            total_messages: s.total_messages,
            total_restarts: s.total_restarts,
            system_processes: s.system_processes,
            rss_bytes: s.memory.rss_bytes,
            heap_bytes: s.memory.heap_bytes,
            error: String::new(),
            server_count: s.server_count,
            supervisor_count: s.supervisor_count,
            unlisted: s.unlisted,
            next_page: s.next_page,
            tree_unlisted: s.tree_unlisted,
            total_mailbox: s.total_mailbox,
            error_kind: 0,
        }
    }
}

fn tree_node(node: &ProcessTreeNode) -> TreeNode {
    TreeNode {
        pid: Some(node.pid.clone()),
        name: node.name.clone(),
        kind: kind_code(node.kind),
        children: node.children.iter().map(tree_node).collect(),
    }
}

fn from_tree_node(node: TreeNode) -> Result<ProcessTreeNode, Invalid> {
    Ok(ProcessTreeNode {
        pid: pid(node.pid)?,
        name: node.name,
        kind: kind(node.kind)?,
        children: node.children.into_iter().map(from_tree_node).collect::<Result<_, _>>()?,
    })
}

impl TryFrom<Snapshot> for NodeSnapshot {
    type Error = Invalid;

    fn try_from(s: Snapshot) -> Result<NodeSnapshot, Invalid> {
        Ok(NodeSnapshot {
            timestamp: time(s.timestamp_ms),
            servers: s
                .servers
                .into_iter()
                .map(|p| {
                    Ok(ServerStats {
                        pid: pid(p.pid)?,
                        name: p.name,
                        status: status(p.status)?,
                        mailbox_len: p.mailbox_len,
                        messages_processed: p.messages_processed,
                        started_at: time(p.started_at_ms),
                        uptime: Duration::from_millis(p.uptime_ms),
                    })
                })
                .collect::<Result<_, Invalid>>()?,
            supervisors: s
                .supervisors
                .into_iter()
                .map(|p| {
                    Ok(SupervisorStats {
                        pid: pid(p.pid)?,
                        name: p.name,
                        strategy: strategy(p.strategy)?,
                        child_count: p.child_count,
                        restarts: p.restarts,
                        mailbox_len: p.mailbox_len,
                        messages_processed: p.messages_processed,
                        started_at: time(p.started_at_ms),
                        uptime: Duration::from_millis(p.uptime_ms),
                    })
                })
                .collect::<Result<_, Invalid>>()?,
            tree: s.tree.into_iter().map(from_tree_node).collect::<Result<_, _>>()?,
            unlisted: s.unlisted,
            next_page: s.next_page,
            tree_unlisted: s.tree_unlisted,
            process_count: s.process_count,
            server_count: s.server_count,
            supervisor_count: s.supervisor_count,
            total_messages: s.total_messages,
            total_mailbox: s.total_mailbox,
            total_restarts: s.total_restarts,
            system_processes: s.system_processes,
            memory: MemoryStats { rss_bytes: s.rss_bytes, heap_bytes: s.heap_bytes },
        })
    }
}
