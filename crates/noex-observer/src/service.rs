//! The observer service: this node answers `ObserverQuery` frames with its snapshot, with bounded work (one
//! snapshot at a time, a bounded backlog, identical waiting queries answered by one snapshot), and hands the
//! `ObserverReply` frames that answer its own queries to the asking side (`asking.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use noex_cluster::{DownReason, FrameHandler, NodeInfo, SendError};
use noex_proto::{Frame, NodeId};
use prost::Message;

use crate::cluster_observer::Inner;
use crate::query::MAX_REMOTE_LIMIT;
use crate::reply::decode_query;
use crate::wire::{self, ErrorKind};
use crate::{QueryError, SnapshotQuery};

/// Queries one peer may have waiting for this node's snapshots; more are refused `busy` at once.
pub const MAX_WAITING_PER_NODE: usize = 16;

/// Queries all peers together may have waiting; more are refused `busy` at once.
pub const MAX_WAITING: usize = 1024;

/// What this node's observer service has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Queries answered with a snapshot.
    pub answered: u64,
    /// Snapshots taken to answer them (fewer when waiting queries asked the same and shared one).
    pub snapshots: u64,
    /// Queries refused `busy` (too many waiting).
    pub busy: u64,
    /// Queries refused as unreadable.
    pub bad: u64,
    /// The most queries that waited at once (bounded by [`MAX_WAITING`], and by [`MAX_WAITING_PER_NODE`] from
    /// each peer).
    pub peak_waiting: u64,
}

/// The answering side's state: the backlog and the figures.
#[derive(Default)]
pub(crate) struct Answering {
    backlog: Mutex<Backlog>,
    answered: AtomicU64,
    snapshots: AtomicU64,
    busy: AtomicU64,
    bad: AtomicU64,
    peak_waiting: AtomicU64,
}

#[derive(Default)]
struct Backlog {
    waiting: Vec<Waiting>,
    per_node: HashMap<NodeId, usize>,
    /// A worker is answering the backlog (at most one: one snapshot at a time).
    working: bool,
}

struct Waiting {
    from: NodeId,
    query_id: u64,
    query: SnapshotQuery,
}

impl Answering {
    pub(crate) fn stats(&self) -> ServiceStats {
        ServiceStats {
            answered: self.answered.load(Ordering::Relaxed),
            snapshots: self.snapshots.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            bad: self.bad.load(Ordering::Relaxed),
            peak_waiting: self.peak_waiting.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `FrameKind::Observer` handler. Holds the observer: it answers for as long as the cluster runs (the
/// cluster drops its handlers when it stops, which ends the cycle).
pub(crate) struct Service {
    pub(crate) observer: Arc<Inner>,
}

impl FrameHandler for Service {
    fn handle(&self, from: &NodeId, frame: Frame) {
        match frame {
            Frame::ObserverQuery { query_id, query } => self.query(from, query_id, &query),
            Frame::ObserverReply { query_id, snapshot } => self.observer.queries.answer(from, query_id, &snapshot),
            other => tracing::debug!(%from, ?other, "unexpected frame for the observer"),
        }
    }

    fn node_down(&self, node: &NodeInfo, _reason: DownReason) {
        self.observer.queries.node_down(&node.node);
    }
}

impl Service {
    /// Queues a query, or refuses it at once (unreadable, or too many waiting). Runs on the connection's reader:
    /// nothing here grows with the node's processes.
    fn query(&self, from: &NodeId, query_id: u64, query: &[u8]) {
        let answering = &self.observer.answering;
        let query = match decode_query(query) {
            Ok(query) => query,
            Err(error) => {
                tracing::warn!(%from, query_id, %error, "observer query refused");
                answering.bad.fetch_add(1, Ordering::Relaxed);
                let text = match error {
                    QueryError::BadQuery(text) => text,
                    other => other.to_string(),
                };
                return self.refuse(from, query_id, ErrorKind::BadQuery, text);
            }
        };
        let start_worker = {
            let mut backlog = answering.lock();
            let theirs = backlog.per_node.get(from).copied().unwrap_or(0);
            if theirs >= MAX_WAITING_PER_NODE || backlog.waiting.len() >= MAX_WAITING {
                drop(backlog);
                tracing::debug!(%from, query_id, "observer query refused: too many waiting");
                answering.busy.fetch_add(1, Ordering::Relaxed);
                return self.refuse(from, query_id, ErrorKind::Busy, "too many observer queries waiting".into());
            }
            *backlog.per_node.entry(from.clone()).or_default() += 1;
            backlog.waiting.push(Waiting { from: from.clone(), query_id, query });
            answering.peak_waiting.fetch_max(backlog.waiting.len() as u64, Ordering::Relaxed);
            !std::mem::replace(&mut backlog.working, true)
        };
        if start_worker {
            let observer = self.observer.clone();
            // On the blocking pool, not on the connection's reader: a node with many processes must not hold up
            // the asker's other traffic while it counts them.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || work(&observer))),
                Err(_) => work(&observer),
            }
        }
    }

    fn refuse(&self, from: &NodeId, query_id: u64, kind: ErrorKind, error: String) {
        let snapshot = Bytes::from(wire::Snapshot::failed(kind, error).encode_to_vec());
        if let Err(error) = self.observer.cluster.send(from, Frame::ObserverReply { query_id, snapshot }) {
            tracing::warn!(%from, query_id, %error, "observer refusal not sent");
        }
    }
}

/// The worker: answers the backlog until it is empty. Each round takes every waiting query and answers each
/// distinct query with one snapshot, taken after all of them arrived (so no answer is older than its query).
fn work(observer: &Inner) {
    // Were a snapshot to panic, the next query would start a worker again (and it would answer this backlog).
    let mut unwinding = Unwinding(Some(&observer.answering));
    loop {
        let batch = {
            let mut backlog = observer.answering.lock();
            if backlog.waiting.is_empty() {
                // Under the lock that saw the backlog empty: a query queued after this starts a new worker.
                backlog.working = false;
                unwinding.0 = None;
                return;
            }
            let batch = std::mem::take(&mut backlog.waiting);
            for waiting in &batch {
                if let Some(count) = backlog.per_node.get_mut(&waiting.from) {
                    *count -= 1;
                    if *count == 0 {
                        backlog.per_node.remove(&waiting.from);
                    }
                }
            }
            batch
        };
        let mut groups: Vec<(SnapshotQuery, Vec<(NodeId, u64)>)> = Vec::new();
        for Waiting { from, query_id, query } in batch {
            match groups.iter_mut().find(|(q, _)| *q == query) {
                Some((_, askers)) => askers.push((from, query_id)),
                None => groups.push((query, vec![(from, query_id)])),
            }
        }
        for (query, askers) in groups {
            answer(observer, query, askers);
        }
    }
}

/// Marks the worker stopped if it unwinds (a normal return does so itself, under its lock).
struct Unwinding<'a>(Option<&'a Answering>);

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if let Some(answering) = self.0 {
            answering.lock().working = false;
        }
    }
}

/// Answers `askers` with one snapshot. The reply must fit a frame: if it does not, the lists and the tree are
/// lowered in proportion and the snapshot taken again, until it fits (the totals alone always do).
fn answer(observer: &Inner, query: SnapshotQuery, askers: Vec<(NodeId, u64)>) {
    let mut query = query.capped(MAX_REMOTE_LIMIT);
    let mut payload = payload(observer, &query);
    for (from, query_id) in askers {
        loop {
            match observer.cluster.send(&from, Frame::ObserverReply { query_id, snapshot: payload.clone() }) {
                Ok(()) => {
                    observer.answering.answered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(SendError::TooLarge { len, limit }) if query.largest_limit() > 0 => {
                    query = shrunk(query, len, limit);
                    tracing::debug!(%from, len, limit, ?query, "snapshot larger than a frame; listing fewer processes");
                    payload = self::payload(observer, &query);
                }
                Err(SendError::TooLarge { len, limit }) => {
                    // Only a frame limit smaller than the totals could do this (the configuration forbids it).
                    tracing::error!(%from, len, limit, "even a snapshot with totals only is larger than a frame");
                    let error = format!("a snapshot of {len} bytes does not fit the frame limit ({limit})");
                    let snapshot = Bytes::from(wire::Snapshot::failed(ErrorKind::Failed, error).encode_to_vec());
                    let _ = observer.cluster.send(&from, Frame::ObserverReply { query_id, snapshot });
                    break;
                }
                Err(error) => {
                    tracing::warn!(%from, query_id, %error, "observer reply not sent");
                    break;
                }
            }
        }
    }
}

fn payload(observer: &Inner, query: &SnapshotQuery) -> Bytes {
    observer.answering.snapshots.fetch_add(1, Ordering::Relaxed);
    Bytes::from(wire::Snapshot::from(&observer.local.snapshot(*query)).encode_to_vec())
}

/// `query` with its limits lowered so that a reply of `len` bytes would fit in `limit`, with room to spare (the
/// lists and the tree are most of the bytes). Always lower than before: the caller's loop ends.
fn shrunk(query: SnapshotQuery, len: usize, limit: usize) -> SnapshotQuery {
    let largest = u64::from(query.largest_limit());
    let keep = largest.saturating_mul(limit as u64) / (len as u64).max(1) * 3 / 4;
    query.capped(u32::try_from(keep.min(largest.saturating_sub(1))).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SortKey;

    #[test]
    fn a_reply_too_large_lists_fewer_until_it_lists_none() {
        let mut query = SnapshotQuery::page(0, 10_000).with_tree(100);
        query = shrunk(query, 2_000_000, 1_000_000);
        assert_eq!(query, SnapshotQuery::page(0, 3_750).with_tree(100));
        let mut rounds = 0;
        while query.largest_limit() > 0 {
            query = shrunk(query, 1_000_001, 1_000_000);
            rounds += 1;
        }
        assert!(rounds < 40, "each round lowers the limits");
        assert_eq!(
            shrunk(SnapshotQuery::top(SortKey::MailboxLen, 1), 10, 1),
            SnapshotQuery::top(SortKey::MailboxLen, 0)
        );
    }
}
