//! The asking side of the observer service: this node's queries to other nodes, each waiting for its
//! `ObserverReply` (or the node's loss, or its timeout).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use noex_cluster::{Cluster, SendError};
use noex_proto::{Frame, NodeId};
use prost::Message;
use tokio::sync::oneshot;

use crate::reply::decode_reply;
use crate::{NodeSnapshot, SnapshotQuery, wire};

/// Why a node's snapshot could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// The node has too many queries waiting for its snapshots already: ask again later.
    #[error("busy: too many observer queries waiting")]
    Busy,
    /// The node could not read the query, or it asks for something the node does not know.
    #[error("{0}")]
    BadQuery(String),
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

    /// Asks `node` for its snapshot as `query` says and waits at most `timeout` for the answer.
    pub(crate) async fn ask(
        &self,
        cluster: &Cluster,
        node: &NodeId,
        query: &SnapshotQuery,
        timeout: Duration,
    ) -> Result<NodeSnapshot, QueryError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        // Recorded before sending: the answer, or the node going down, may come before `send` returns.
        self.lock().insert(id, (node.clone(), answer));
        let _forget = Forget { queries: self, id };
        let query = Bytes::from(wire::Query::from(query).encode_to_vec());
        match cluster.send(node, Frame::ObserverQuery { query_id: id, query }) {
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
    pub(crate) fn answer(&self, from: &NodeId, query_id: u64, snapshot: &[u8]) {
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
        let result = decode_reply(from, snapshot);
        if let Err(error) = &result {
            tracing::warn!(%from, %error, "observer reply refused");
        }
        let _ = answer.send(result);
    }

    /// `node` is gone: its queries fail at once.
    pub(crate) fn node_down(&self, node: &NodeId) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeSnapshot;
    use crate::reply::tests::{encoded, node};

    /// One server of `pid_node`, listed.
    fn snapshot_of(pid_node: &NodeId) -> NodeSnapshot {
        crate::reply::tests::snapshot_of(pid_node, 1, 1)
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
        queries.answer(&b, 1, &encoded(&snapshot_of(&b)));
        assert!(answered.try_recv().is_err(), "b cannot answer a query sent to a");
        queries.answer(&a, 1, &encoded(&snapshot_of(&b)));
        let refused = answered.try_recv().unwrap();
        assert!(matches!(refused, Err(QueryError::Invalid(ref why)) if why.contains("another node")), "{refused:?}");

        let mut answered = waiting(&queries, 2, &a);
        queries.answer(&a, 2, &encoded(&snapshot_of(&a)));
        assert_eq!(answered.try_recv().unwrap().unwrap().process_count, 1);
        queries.answer(&a, 2, &encoded(&snapshot_of(&a)));
        assert_eq!(queries.len(), 0, "a late second answer finds nothing");
    }

    #[test]
    fn a_failed_answer_and_a_lost_node_end_their_queries() {
        let (a, b) = (node("a"), node("b"));
        let queries = Queries::new();
        let mut failed = waiting(&queries, 1, &a);
        queries.answer(&a, 1, &wire::Snapshot::failed(wire::ErrorKind::Failed, "too big".into()).encode_to_vec());
        assert_eq!(failed.try_recv().unwrap(), Err(QueryError::Failed("too big".into())));

        let mut lost = waiting(&queries, 2, &b);
        let mut kept = waiting(&queries, 3, &a);
        queries.node_down(&b);
        assert_eq!(lost.try_recv().unwrap(), Err(QueryError::NotConnected));
        assert!(kept.try_recv().is_err());
        assert_eq!(queries.len(), 1);
    }
}
