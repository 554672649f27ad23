//! The observer service: this node answers `ObserverQuery` frames with its snapshot, and matches the
//! `ObserverReply` frames that answer its own queries to the callers waiting for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Weak};
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
    /// The answer could not be decoded.
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
            Ok(snapshot) => NodeSnapshot::try_from(snapshot).map_err(|e| QueryError::Invalid(e.to_string())),
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

/// The `FrameKind::Observer` handler. Holds the observer weakly: the cluster must not keep it alive.
pub(crate) struct Service {
    pub(crate) observer: Weak<crate::cluster_observer::Inner>,
}

impl FrameHandler for Service {
    fn handle(&self, from: &NodeId, frame: Frame) {
        let Some(observer) = self.observer.upgrade() else { return };
        match frame {
            Frame::ObserverQuery { query_id } => {
                let snapshot = wire::Snapshot::from(&observer.local.snapshot()).encode_to_vec();
                let reply = Frame::ObserverReply { query_id, snapshot: Bytes::from(snapshot) };
                if let Err(error) = observer.cluster.send(from, reply) {
                    tracing::warn!(%from, %error, "observer reply not sent");
                }
            }
            Frame::ObserverReply { query_id, snapshot } => observer.queries.answer(from, query_id, snapshot),
            other => tracing::debug!(%from, ?other, "unexpected frame for the observer"),
        }
    }

    fn node_down(&self, node: &NodeInfo, _reason: DownReason) {
        if let Some(observer) = self.observer.upgrade() {
            observer.queries.node_down(&node.node);
        }
    }
}
