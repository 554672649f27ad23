//! The cluster observer: every node's snapshot, queried concurrently, with the totals over the nodes that
//! answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use noex_cluster::{Cluster, FrameKind, NodeStatus};
use noex_proto::NodeId;

use crate::asking::{Queries, QueryError};
use crate::polling::Polling;
use crate::service::{Answering, Service, ServiceStats};
use crate::{LocalObserver, NodeSnapshot, SnapshotQuery};

/// How long [`ClusterObserver::cluster_snapshot`] waits for each node, unless told otherwise.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a cluster snapshot is served from the cache.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// How a node of a [`ClusterSnapshot`] answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObservedStatus {
    /// It answered with its snapshot.
    Connected,
    /// It is known but not connected (it left, or was lost), or was lost while being asked.
    Disconnected,
    /// It did not answer within the timeout.
    Timeout,
    /// Its answer was an error (see [`ObservedNode::error`]).
    Error,
}

impl std::fmt::Display for ObservedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObservedStatus::Connected => "connected",
            ObservedStatus::Disconnected => "disconnected",
            ObservedStatus::Timeout => "timeout",
            ObservedStatus::Error => "error",
        })
    }
}

/// One node of a [`ClusterSnapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedNode {
    /// The node.
    pub node: NodeId,
    /// Whether this is the node that took the cluster snapshot.
    pub local: bool,
    /// How it answered.
    pub status: ObservedStatus,
    /// Its snapshot, when it answered.
    pub snapshot: Option<NodeSnapshot>,
    /// What went wrong, for `Timeout` and `Error`.
    pub error: Option<String>,
}

/// Totals over the nodes that answered, exact whatever their snapshots list (they come from each node's counts,
/// not from its lists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aggregated {
    /// Nodes listed (answering or not).
    pub total_nodes: u64,
    /// Nodes that answered.
    pub connected_nodes: u64,
    /// User processes.
    pub processes: u64,
    /// Servers.
    pub servers: u64,
    /// Supervisors.
    pub supervisors: u64,
    /// Messages handled.
    pub messages: u64,
    /// Messages waiting in mailboxes.
    pub mailbox: u64,
    /// Supervisor restarts.
    pub restarts: u64,
}

impl Aggregated {
    /// The totals of `nodes`.
    pub fn of(nodes: &[ObservedNode]) -> Aggregated {
        let mut totals = Aggregated { total_nodes: nodes.len() as u64, ..Aggregated::default() };
        for snapshot in
            nodes.iter().filter(|n| n.status == ObservedStatus::Connected).filter_map(|n| n.snapshot.as_ref())
        {
            // Saturating: the figures come from other nodes, which may be wrong or hostile.
            totals.connected_nodes += 1;
            totals.processes = totals.processes.saturating_add(snapshot.process_count);
            totals.servers = totals.servers.saturating_add(snapshot.server_count);
            totals.supervisors = totals.supervisors.saturating_add(snapshot.supervisor_count);
            totals.messages = totals.messages.saturating_add(snapshot.total_messages);
            totals.mailbox = totals.mailbox.saturating_add(snapshot.total_mailbox);
            totals.restarts = totals.restarts.saturating_add(snapshot.total_restarts);
        }
        totals
    }
}

/// Every node of the cluster at one moment: this node first, then the others by id.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSnapshot {
    /// When it was taken.
    pub timestamp: SystemTime,
    /// The node that took it.
    pub local: NodeId,
    /// This node, then every node it knows.
    pub nodes: Vec<ObservedNode>,
    /// Totals over the nodes that answered.
    pub aggregated: Aggregated,
}

/// Options of [`ClusterObserver::cluster_snapshot_with`] and [`ClusterObserver::start_polling_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Serve a snapshot of the same query younger than [`CACHE_TTL`] from the cache.
    pub use_cache: bool,
    /// How long to wait for each node.
    pub timeout: Duration,
    /// What each node lists besides its totals.
    pub query: SnapshotQuery,
}

impl Default for SnapshotOptions {
    /// Cached, [`DEFAULT_QUERY_TIMEOUT`], the default query (each node's 100 longest mailboxes and first 100
    /// processes of its tree).
    fn default() -> Self {
        SnapshotOptions { use_cache: true, timeout: DEFAULT_QUERY_TIMEOUT, query: SnapshotQuery::default() }
    }
}

impl SnapshotOptions {
    /// Fresh (not from the cache), waiting `timeout` for each node, with the default query.
    pub fn fresh(timeout: Duration) -> Self {
        SnapshotOptions { use_cache: false, timeout, query: SnapshotQuery::default() }
    }

    /// The same options with `query`.
    pub fn with_query(mut self, query: SnapshotQuery) -> Self {
        self.query = query;
        self
    }
}

/// What a cluster poller reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterObserverEvent {
    /// A fresh cluster snapshot (after the events for its nodes that did not answer).
    SnapshotUpdate(Arc<ClusterSnapshot>),
    /// A node did not answer within the timeout.
    NodeTimeout(NodeId),
    /// A node answered with an error.
    NodeError {
        /// The node.
        node: NodeId,
        /// The error.
        error: String,
    },
}

/// The cluster-wide observer of one node. Starting it also starts this node's observer service, which answers
/// other nodes' queries for as long as the cluster runs: every node to be observed must start one, and only
/// one (a second replaces the first's service, whose queries then go unanswered). Cheap to clone.
#[derive(Clone)]
pub struct ClusterObserver {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) local: LocalObserver,
    pub(crate) cluster: Cluster,
    pub(crate) queries: Queries,
    pub(crate) answering: Answering,
    cache: Mutex<Option<Cached>>,
}

/// The last cluster snapshot: when it was asked for, and with what query.
struct Cached {
    asked: Instant,
    query: SnapshotQuery,
    snapshot: Arc<ClusterSnapshot>,
}

impl std::fmt::Debug for ClusterObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterObserver").field("node", self.inner.cluster.local()).finish_non_exhaustive()
    }
}

impl ClusterObserver {
    /// Starts the observer service of `cluster`'s node (answering with `local`'s snapshots) and returns the
    /// node's cluster observer. Start it before the cluster opens (see `Cluster::bind`), or early queries from
    /// other nodes go unanswered until their timeout.
    pub fn start(local: LocalObserver, cluster: &Cluster) -> ClusterObserver {
        let inner = Arc::new(Inner {
            local,
            cluster: cluster.clone(),
            queries: Queries::new(),
            answering: Answering::default(),
            cache: Mutex::default(),
        });
        cluster.set_handler(FrameKind::Observer, Service { observer: inner.clone() });
        ClusterObserver { inner }
    }

    /// The observer of this node.
    pub fn local(&self) -> &LocalObserver {
        &self.inner.local
    }

    /// The cluster now, or as seen less than [`CACHE_TTL`] ago, with the default query (exact totals; each node's
    /// 100 longest mailboxes); each node waited for at most [`DEFAULT_QUERY_TIMEOUT`].
    pub async fn cluster_snapshot(&self) -> Arc<ClusterSnapshot> {
        self.cluster_snapshot_with(SnapshotOptions::default()).await
    }

    /// The cluster snapshot with explicit options: every connected node is asked at once; a node that is
    /// known but not connected is listed `Disconnected`.
    pub async fn cluster_snapshot_with(&self, options: SnapshotOptions) -> Arc<ClusterSnapshot> {
        if options.use_cache {
            let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = |c: &&Cached| c.query == options.query && c.asked.elapsed() < CACHE_TTL;
            if let Some(cached) = cache.as_ref().filter(fresh) {
                tracing::trace!(age = ?cached.asked.elapsed(), "cluster snapshot served from the cache");
                return cached.snapshot.clone();
            }
        }
        // Aged from when it was asked for: a round that waited for a slow node is not served as fresh.
        let asked = Instant::now();
        let snapshot = Arc::new(self.take(&options).await);
        let cached = Cached { asked, query: options.query, snapshot: snapshot.clone() };
        *self.inner.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(cached);
        snapshot
    }

    /// Forgets the cached cluster snapshot.
    pub fn invalidate_cache(&self) {
        *self.inner.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// One node's snapshot as `query` asks (this node's directly, another's through its observer service, which
    /// lists at most [`MAX_REMOTE_LIMIT`](crate::MAX_REMOTE_LIMIT) processes and fewer if they would not fit a
    /// frame). To list every process of a large node, page through it:
    ///
    /// ```no_run
    /// # async fn demo(observer: noex_observer::ClusterObserver, node: noex_cluster::NodeId) {
    /// use std::time::Duration;
    /// use noex_observer::SnapshotQuery;
    /// let mut after = 0;
    /// loop {
    ///     let page = observer.node_snapshot(&node, SnapshotQuery::page(after, 1000), Duration::from_secs(5)).await;
    ///     let Ok(page) = page else { break };
    ///     // ... page.servers, page.supervisors
    ///     match page.next_page {
    ///         Some(next) => after = next,
    ///         None => break,
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn node_snapshot(
        &self,
        node: &NodeId,
        query: SnapshotQuery,
        timeout: Duration,
    ) -> Result<NodeSnapshot, QueryError> {
        if node == self.inner.cluster.local() {
            return Ok(self.inner.local.snapshot(query));
        }
        self.inner.queries.ask(&self.inner.cluster, node, &query, timeout).await
    }

    /// What this node's observer service has answered so far.
    pub fn service_stats(&self) -> ServiceStats {
        self.inner.answering.stats()
    }

    /// Takes a fresh cluster snapshot now and then every `interval` (each poller keeps its own interval) and
    /// reports it to `handler`, after a `NodeTimeout` or `NodeError` for each node that did not answer. Runs
    /// until the returned handle is stopped or dropped. Must be called within a tokio runtime.
    pub fn start_polling(
        &self,
        interval: Duration,
        handler: impl FnMut(ClusterObserverEvent) + Send + 'static,
    ) -> Polling {
        self.start_polling_with(interval, SnapshotOptions::fresh(DEFAULT_QUERY_TIMEOUT), handler)
    }

    /// [`start_polling`](Self::start_polling) with explicit options for every round (a round may be served from
    /// the cache if `options.use_cache` says so).
    pub fn start_polling_with(
        &self,
        interval: Duration,
        options: SnapshotOptions,
        handler: impl FnMut(ClusterObserverEvent) + Send + 'static,
    ) -> Polling {
        let observer = self.clone();
        let handler = Arc::new(Mutex::new(handler));
        Polling::every(interval, move || {
            let (observer, handler) = (observer.clone(), handler.clone());
            async move {
                let snapshot = observer.cluster_snapshot_with(options).await;
                let mut handler = handler.lock().unwrap_or_else(|p| p.into_inner());
                for node in &snapshot.nodes {
                    match node.status {
                        ObservedStatus::Timeout => handler(ClusterObserverEvent::NodeTimeout(node.node.clone())),
                        ObservedStatus::Error => handler(ClusterObserverEvent::NodeError {
                            node: node.node.clone(),
                            error: node.error.clone().unwrap_or_default(),
                        }),
                        ObservedStatus::Connected | ObservedStatus::Disconnected => {}
                    }
                }
                handler(ClusterObserverEvent::SnapshotUpdate(snapshot));
            }
        })
    }

    /// Queries waiting for an answer (for tests: none may leak).
    pub fn pending_queries(&self) -> usize {
        self.inner.queries.len()
    }

    async fn take(&self, options: &SnapshotOptions) -> ClusterSnapshot {
        let inner = &self.inner;
        let (query, timeout) = (&options.query, options.timeout);
        let local = inner.cluster.local().clone();
        let known = inner.cluster.nodes();
        let answers = futures_util::future::join_all(known.iter().map(|(info, status)| async move {
            match status {
                NodeStatus::Connected => Some(inner.queries.ask(&inner.cluster, &info.node, query, timeout).await),
                NodeStatus::Disconnected => None,
            }
        }));
        // `join` polls the queries first: they are all sent before this node counts its own processes.
        let (answers, own) = futures_util::future::join(answers, async { inner.local.snapshot(*query) }).await;
        let mut nodes = vec![ObservedNode {
            node: local.clone(),
            local: true,
            status: ObservedStatus::Connected,
            snapshot: Some(own),
            error: None,
        }];
        for ((info, _), answer) in known.into_iter().zip(answers) {
            nodes.push(observed(info.node, answer));
        }
        let aggregated = Aggregated::of(&nodes);
        ClusterSnapshot { timestamp: SystemTime::now(), local, nodes, aggregated }
    }
}

/// A node's entry, from its answer (`None`: it was not asked, being disconnected).
fn observed(node: NodeId, answer: Option<Result<NodeSnapshot, QueryError>>) -> ObservedNode {
    let (status, snapshot, error) = match answer {
        Some(Ok(snapshot)) => (ObservedStatus::Connected, Some(snapshot), None),
        None | Some(Err(QueryError::NotConnected)) => (ObservedStatus::Disconnected, None, None),
        Some(Err(error @ QueryError::Timeout(_))) => (ObservedStatus::Timeout, None, Some(error.to_string())),
        Some(Err(error)) => (ObservedStatus::Error, None, Some(error.to_string())),
    };
    ObservedNode { node, local: false, status, snapshot, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStats;

    fn snapshot(processes: u64, messages: u64, restarts: u64) -> NodeSnapshot {
        NodeSnapshot {
            timestamp: SystemTime::UNIX_EPOCH,
            servers: Vec::new(),
            supervisors: Vec::new(),
            unlisted: processes,
            next_page: None,
            tree: Vec::new(),
            tree_unlisted: processes,
            process_count: processes,
            server_count: processes,
            supervisor_count: 0,
            total_messages: messages,
            total_mailbox: 1,
            total_restarts: restarts,
            system_processes: 0,
            memory: MemoryStats::default(),
        }
    }

    fn node(name: &str, answer: Option<Result<NodeSnapshot, QueryError>>) -> ObservedNode {
        observed(format!("{name}@127.0.0.1:1").parse().unwrap(), answer)
    }

    #[test]
    fn totals_count_only_the_nodes_that_answered() {
        let nodes = vec![
            node("a", Some(Ok(snapshot(4, 30, 1)))),
            node("b", Some(Ok(snapshot(5, 12, 2)))),
            node("c", None),
            node("d", Some(Err(QueryError::Timeout(Duration::from_secs(5))))),
            node("e", Some(Err(QueryError::Invalid("bad".into())))),
            node("f", Some(Err(QueryError::NotConnected))),
        ];
        let statuses: Vec<ObservedStatus> = nodes.iter().map(|n| n.status).collect();
        use ObservedStatus::*;
        assert_eq!(statuses, [Connected, Connected, Disconnected, Timeout, Error, Disconnected]);
        assert_eq!(nodes[4].error.as_deref(), Some("bad"));
        let totals = Aggregated::of(&nodes);
        assert_eq!(
            totals,
            Aggregated {
                total_nodes: 6,
                connected_nodes: 2,
                processes: 9,
                servers: 9,
                supervisors: 0,
                messages: 42,
                mailbox: 2,
                restarts: 3
            }
        );
    }
}
