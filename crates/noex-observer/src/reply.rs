//! Checking what a peer sent: a reply's snapshot ([`decode_reply`]) and a query ([`decode_query`]). Plain
//! functions of bytes, so that a fuzz target can call them: hostile input is a typed error, never a panic, and
//! nothing is guessed (the rules are in `docs/protocol.md`, "Observer traffic").

use noex_proto::NodeId;
use prost::Message;

use crate::wire::{self, ErrorKind, Invalid};
use crate::{NodeSnapshot, QueryError, SnapshotQuery, select};

/// The snapshot in an `ObserverReply` from `from`, checked: it decodes, its enums are known, every process it
/// lists has a pid and is `from`'s own, and its counts add up (servers and supervisors make the process count;
/// the listed and unlisted processes make it too, and so do the tree's). A node's refusal (it is busy, it could
/// not read the query, or another failure it names) is the matching [`QueryError`].
pub fn decode_reply(from: &NodeId, bytes: &[u8]) -> Result<NodeSnapshot, QueryError> {
    let snapshot =
        wire::Snapshot::decode(bytes).map_err(|e| QueryError::Invalid(format!("undecodable snapshot: {e}")))?;
    if !snapshot.error.is_empty() {
        return Err(match snapshot.error_kind {
            k if k == ErrorKind::Busy as u32 => QueryError::Busy,
            k if k == ErrorKind::BadQuery as u32 => QueryError::BadQuery(snapshot.error),
            _ => QueryError::Failed(snapshot.error),
        });
    }
    let snapshot = NodeSnapshot::try_from(snapshot).map_err(|e| QueryError::Invalid(e.to_string()))?;
    consistent(&snapshot).map_err(|e| QueryError::Invalid(e.to_string()))?;
    own(from, &snapshot)?;
    Ok(snapshot)
}

/// The query in an `ObserverQuery` (empty: the default query). An unknown list kind or sort key is refused,
/// not guessed.
pub fn decode_query(bytes: &[u8]) -> Result<SnapshotQuery, QueryError> {
    let bad = |e: String| QueryError::BadQuery(format!("invalid observer query: {e}"));
    let query = wire::Query::decode(bytes).map_err(|e| bad(e.to_string()))?;
    SnapshotQuery::try_from(query).map_err(|e| bad(e.0))
}

/// The counts of a snapshot agree with each other and with its lists.
fn consistent(s: &NodeSnapshot) -> Result<(), Invalid> {
    let sum = |a: u64, b: u64, what: &str| a.checked_add(b).ok_or_else(|| wire::invalid(format!("{what} overflow")));
    if sum(s.server_count, s.supervisor_count, "counts")? != s.process_count {
        return Err(wire::invalid(format!(
            "{} servers and {} supervisors are not {} processes",
            s.server_count, s.supervisor_count, s.process_count
        )));
    }
    if s.servers.len() as u64 > s.server_count || s.supervisors.len() as u64 > s.supervisor_count {
        return Err(wire::invalid("more processes listed than counted"));
    }
    if sum(s.listed(), s.unlisted, "list counts")? != s.process_count {
        return Err(wire::invalid(format!(
            "{} listed and {} unlisted are not {} processes",
            s.listed(),
            s.unlisted,
            s.process_count
        )));
    }
    if sum(select::count(&s.tree), s.tree_unlisted, "tree counts")? != s.process_count {
        return Err(wire::invalid("the tree and its unlisted processes are not the process count"));
    }
    Ok(())
}

/// A node speaks only for itself: every process in its snapshot must be one of its own.
fn own(from: &NodeId, snapshot: &NodeSnapshot) -> Result<(), QueryError> {
    let name = from.node_name();
    match snapshot.pids().find(|pid| *pid.node() != name) {
        Some(pid) => Err(QueryError::Invalid(format!("snapshot lists {pid}, a process of another node"))),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, SystemTime};

    use noex_core::{NodeName, Pid, ProcessStatus};

    use super::*;
    use crate::memory::MemoryStats;
    use crate::{ServerStats, SortKey};

    pub(crate) fn node(name: &str) -> NodeId {
        format!("{name}@127.0.0.1:1").parse().unwrap()
    }

    /// `listed` servers of `pid_node` listed out of `servers`.
    pub(crate) fn snapshot_of(pid_node: &NodeId, listed: u64, servers: u64) -> NodeSnapshot {
        let server = |id| ServerStats {
            pid: Pid::new(NodeName::new(pid_node.as_str()), 1, id),
            name: None,
            status: ProcessStatus::Running,
            mailbox_len: 0,
            messages_processed: 0,
            started_at: SystemTime::UNIX_EPOCH,
            uptime: Duration::ZERO,
        };
        NodeSnapshot {
            timestamp: SystemTime::UNIX_EPOCH,
            servers: (1..=listed).map(server).collect(),
            supervisors: Vec::new(),
            unlisted: servers - listed,
            next_page: None,
            tree: Vec::new(),
            tree_unlisted: servers,
            process_count: servers,
            server_count: servers,
            supervisor_count: 0,
            total_messages: 0,
            total_mailbox: 0,
            total_restarts: 0,
            system_processes: 0,
            memory: MemoryStats::default(),
        }
    }

    pub(crate) fn encoded(snapshot: &NodeSnapshot) -> Vec<u8> {
        wire::Snapshot::from(snapshot).encode_to_vec()
    }

    #[test]
    fn a_reply_is_accepted_only_about_its_sender_and_with_counts_that_add_up() {
        let (a, b) = (node("a"), node("b"));
        let good = snapshot_of(&a, 2, 150_000);
        assert_eq!(decode_reply(&a, &encoded(&good)), Ok(good.clone()));
        let refused = decode_reply(&a, &encoded(&snapshot_of(&b, 1, 1)));
        assert!(matches!(refused, Err(QueryError::Invalid(ref why)) if why.contains("another node")), "{refused:?}");

        let lying = [
            NodeSnapshot { process_count: 150_001, ..good.clone() },
            NodeSnapshot { unlisted: 0, ..good.clone() },
            NodeSnapshot { server_count: 1, process_count: 1, unlisted: 0, ..good.clone() },
            NodeSnapshot { tree_unlisted: 7, ..good.clone() },
            NodeSnapshot { server_count: u64::MAX, supervisor_count: 2, ..good.clone() },
            NodeSnapshot { unlisted: u64::MAX, ..good },
        ];
        for snapshot in lying {
            let refused = decode_reply(&a, &encoded(&snapshot));
            assert!(matches!(refused, Err(QueryError::Invalid(_))), "{snapshot:?} gave {refused:?}");
        }
    }

    #[test]
    fn refusals_are_typed() {
        let a = node("a");
        let failed = |kind, text: &str| wire::Snapshot::failed(kind, text.into()).encode_to_vec();
        assert_eq!(decode_reply(&a, &failed(ErrorKind::Busy, "busy")), Err(QueryError::Busy));
        assert_eq!(decode_reply(&a, &failed(ErrorKind::BadQuery, "no")), Err(QueryError::BadQuery("no".into())));
        assert_eq!(decode_reply(&a, &failed(ErrorKind::Failed, "oops")), Err(QueryError::Failed("oops".into())));
        let undecodable = decode_reply(&a, &[0xff, 0xff, 0xff]);
        assert!(matches!(undecodable, Err(QueryError::Invalid(ref why)) if why.contains("undecodable")));
    }

    #[test]
    fn queries_round_trip_and_the_empty_one_is_the_default() {
        let queries = [
            SnapshotQuery::default(),
            SnapshotQuery::totals(),
            SnapshotQuery::top(SortKey::MessagesProcessed, 0),
            SnapshotQuery::top(SortKey::Restarts, 7).with_tree(3),
            SnapshotQuery::page(u64::MAX, u32::MAX),
        ];
        for query in queries {
            assert_eq!(decode_query(&wire::Query::from(&query).encode_to_vec()), Ok(query));
        }
        assert_eq!(decode_query(&[]), Ok(SnapshotQuery::default()));
        let unknown = wire::Query { list: 9, ..wire::Query::default() }.encode_to_vec();
        assert!(matches!(decode_query(&unknown), Err(QueryError::BadQuery(_))));
        let unknown = wire::Query { sort_key: 9, ..wire::Query::default() }.encode_to_vec();
        assert!(matches!(decode_query(&unknown), Err(QueryError::BadQuery(_))));
        assert!(matches!(decode_query(&[0xff]), Err(QueryError::BadQuery(_))));
    }

    /// Short of a fuzzer: every prefix and every single-byte change of a real reply gives an answer, never a
    /// panic.
    #[test]
    fn damaged_replies_are_refused_without_panicking() {
        let a = node("a");
        let mut snapshot = snapshot_of(&a, 3, 10);
        snapshot.supervisors.clear();
        let bytes = encoded(&snapshot);
        for cut in 0..bytes.len() {
            let _ = decode_reply(&a, &bytes[..cut]);
        }
        for at in 0..bytes.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] = value;
                let _ = decode_reply(&a, &damaged);
                let _ = decode_query(&damaged);
            }
        }
    }
}
