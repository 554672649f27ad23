//! The observer service: this node answers `ObserverQuery` frames with its snapshot, and matches the
//! `ObserverReply` frames that answer its own queries to the callers waiting for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use noex_cluster::{Cluster, DownReason, FrameHandler, NodeInfo, SendError};
use noex_proto::{Frame, NodeId};
use prost::Message;
use tokio::sync::oneshot;

use crate::{NodeSnapshot, wire};

/// Why a node's snapshot could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node is not connected, or was lost before it answered.
    #[error("node not connected")]
    NotConnected,
    /// The node answered that it could not give its snapshot.
    #[error("{0}")]
    Failed(String),
    /// The answer could not be decoded, or is not about the node that gave it.
    #[error("{0}")]
    Invalid(String),
    /// The query could not be sent (the node's outbound queue is full, say).
    #[error("query not sent: {0}")]
    Send(String),
}

type Answer = oneshot::Sender<Result<NodeSnapshot, QueryError>>;

/// Queries waiting for an answer, by id, each with the node it was sent to.
pub(crate) struct Queries {
    waiting: Mutex<HashMap<u64, (NodeId, Answer)>>,
    next: AtomicU64,
}

impl Queries {
    pub(crate) fn new() -> Self {
        Queries { waiting: Mutex::default(), next: AtomicU64::new(1) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (NodeId, Answer)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks `node` for its snapshot and waits at most `timeout` for the answer.
    pub(crate) async fn ask(
        &self,
        cluster: &Cluster,
        node: &NodeId,
        timeout: Duration,
    ) -> Result<NodeSnapshot, QueryError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        // Recorded before sending: the answer, or the node going down, may come before `send` returns.
        self.lock().insert(id, (node.clone(), answer));
        let _forget = Forget { queries: self, id };
        match cluster.send(node, Frame::ObserverQuery { query_id: id }) {
            Ok(()) => {}
            Err(SendError::NotConnected(_)) => return Err(QueryError::NotConnected),
            Err(error) => return Err(QueryError::Send(error.to_string())),
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QueryError::NotConnected),
            Err(_) => Err(QueryError::Timeout(timeout)),
        }
    }

    /// An answer from `from`; dropped unless it answers a query this node sent to `from`.
    fn answer(&self, from: &NodeId, query_id: u64, snapshot: Bytes) {
        let waiting = {
            let mut queries = self.lock();
            match queries.get(&query_id) {
                Some((node, _)) if node == from => queries.remove(&query_id),
                _ => None,
            }
        };
        let Some((_, answer)) = waiting else {
            tracing::debug!(%from, query_id, "late or unexpected observer reply dropped");
            return;
        };
        let result = match wire::Snapshot::decode(snapshot) {
            Err(error) => Err(QueryError::Invalid(format!("undecodable snapshot: {error}"))),
            Ok(snapshot) if !snapshot.error.is_empty() => Err(QueryError::Failed(snapshot.error)),
            Ok(snapshot) => NodeSnapshot::try_from(snapshot)
                .map_err(|e| QueryError::Invalid(e.to_string()))
                .and_then(|snapshot| own(from, snapshot)),
        };
        if let Err(error) = &result {
            tracing::warn!(%from, %error, "observer reply refused");
        }
        let _ = answer.send(result);
    }

    /// `node` is gone: its queries fail at once.
    fn node_down(&self, node: &NodeId) {
        let lost: Vec<Answer> = {
            let mut queries = self.lock();
            let ids: Vec<u64> = queries.iter().filter(|(_, (n, _))| n == node).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| queries.remove(&id)).map(|(_, answer)| answer).collect()
        };
        for answer in lost {
            let _ = answer.send(Err(QueryError::NotConnected));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A node speaks only for itself: every process in its snapshot must be one of its own.
fn own(from: &NodeId, snapshot: NodeSnapshot) -> Result<NodeSnapshot, QueryError> {
    let name = from.node_name();
    let stray = snapshot.pids().find(|pid| *pid.node() != name).map(|pid| pid.to_string());
    match stray {
        Some(pid) => Err(QueryError::Invalid(format!("snapshot lists {pid}, a process of another node"))),
        None => Ok(snapshot),
    }
}

/// Removes a query when its caller stops waiting, answered or not.
struct Forget<'a> {
    queries: &'a Queries,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.queries.lock().remove(&self.id);
    }
}

/// The `FrameKind::Observer` handler. Holds the observer: it answers for as long as the cluster runs (the
/// cluster drops its handlers when it stops, which ends the cycle).
pub(crate) struct Service {
    pub(crate) observer: Arc<crate::cluster_observer::Inner>,
}

impl FrameHandler for Service {
    fn handle(&self, from: &NodeId, frame: Frame) {
        match frame {
            Frame::ObserverQuery { query_id } => self.answer_query(from, query_id),
            Frame::ObserverReply { query_id, snapshot } => self.observer.queries.answer(from, query_id, snapshot),
            other => tracing::debug!(%from, ?other, "unexpected frame for the observer"),
        }
    }

    fn node_down(&self, node: &NodeInfo, _reason: DownReason) {
        self.observer.queries.node_down(&node.node);
    }
}

impl Service {
    /// Takes and sends the snapshot on the blocking pool, not on the connection's reader: a node with many
    /// processes must not hold up the asker's other traffic while it counts them.
    fn answer_query(&self, from: &NodeId, query_id: u64) {
        let observer = self.observer.clone();
        let from = from.clone();
        let answer = move || {
            let snapshot = wire::Snapshot::from(&observer.local.snapshot()).encode_to_vec();
            let reply = Frame::ObserverReply { query_id, snapshot: Bytes::from(snapshot) };
            match observer.cluster.send(&from, reply) {
                Ok(()) => {}
                Err(SendError::TooLarge { len, limit }) => {
                    tracing::warn!(%from, len, limit, "snapshot larger than a frame; answering with an error");
                    let error = format!("snapshot of {len} bytes is larger than the frame limit ({limit})");
                    let reply = Frame::ObserverReply {
                        query_id,
                        snapshot: Bytes::from(wire::Snapshot::failed(error).encode_to_vec()),
                    };
                    let _ = observer.cluster.send(&from, reply);
                }
                Err(error) => tracing::warn!(%from, %error, "observer reply not sent"),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(answer)),
            Err(_) => answer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use noex_core::{NodeName, Pid, ProcessStatus};

    use super::*;
    use crate::memory::MemoryStats;
    use crate::{NodeSnapshot, ServerStats};

    fn node(name: &str) -> NodeId {
        format!("{name}@127.0.0.1:1").parse().unwrap()
    }

    fn snapshot_of(pid_node: &NodeId) -> NodeSnapshot {
        let pid = Pid::new(NodeName::new(pid_node.as_str()), 1, 7);
        NodeSnapshot {
            timestamp: SystemTime::UNIX_EPOCH,
            servers: vec![ServerStats {
                pid,
                name: None,
                status: ProcessStatus::Running,
                mailbox_len: 0,
                messages_processed: 0,
                started_at: SystemTime::UNIX_EPOCH,
                uptime: Duration::ZERO,
            }],
            supervisors: Vec::new(),
            tree: Vec::new(),
            process_count: 1,
            total_messages: 0,
            total_restarts: 0,
            system_processes: 0,
            memory: MemoryStats::default(),
        }
    }

    fn encoded(snapshot: &NodeSnapshot) -> Bytes {
        Bytes::from(wire::Snapshot::from(snapshot).encode_to_vec())
    }

    fn waiting(queries: &Queries, id: u64, to: &NodeId) -> oneshot::Receiver<Result<NodeSnapshot, QueryError>> {
        let (answer, answered) = oneshot::channel();
        queries.lock().insert(id, (to.clone(), answer));
        answered
    }

    #[test]
    fn an_answer_counts_only_from_the_asked_node_and_only_about_itself() {
        let (a, b) = (node("a"), node("b"));
        let queries = Queries::new();
        let mut answered = waiting(&queries, 1, &a);
        queries.answer(&b, 1, encoded(&snapshot_of(&b)));
        assert!(answered.try_recv().is_err(), "b cannot answer a query sent to a");
        queries.answer(&a, 1, encoded(&snapshot_of(&b)));
        let refused = answered.try_recv().unwrap();
        assert!(matches!(refused, Err(QueryError::Invalid(ref why)) if why.contains("another node")), "{refused:?}");

        let mut answered = waiting(&queries, 2, &a);
        queries.answer(&a, 2, encoded(&snapshot_of(&a)));
        assert_eq!(answered.try_recv().unwrap().unwrap().process_count, 1);
        queries.answer(&a, 2, encoded(&snapshot_of(&a)));
        assert_eq!(queries.len(), 0, "a late second answer finds nothing");
    }

    #[test]
    fn a_failed_answer_and_a_lost_node_end_their_queries() {
        let (a, b) = (node("a"), node("b"));
        let queries = Queries::new();
        let mut failed = waiting(&queries, 1, &a);
        queries.answer(&a, 1, Bytes::from(wire::Snapshot::failed("too big".into()).encode_to_vec()));
        assert_eq!(failed.try_recv().unwrap(), Err(QueryError::Failed("too big".into())));

        let mut lost = waiting(&queries, 2, &b);
        let mut kept = waiting(&queries, 3, &a);
        queries.node_down(&b);
        assert_eq!(lost.try_recv().unwrap(), Err(QueryError::NotConnected));
        assert!(kept.try_recv().is_err());
        assert_eq!(queries.len(), 1);
    }
}
