//! What an observer reports about one node: its user processes, how busy they are, and the node's memory.

use std::time::{Duration, SystemTime};

use noex_core::{Pid, ProcessKind, ProcessStatus, Runtime, Strategy};

use crate::SnapshotQuery;
use crate::memory::{self, MemoryStats};
use crate::select::Walk;

/// One node at one moment, as [`LocalObserver::snapshot`](crate::LocalObserver::snapshot) sees it. The counts
/// and totals cover every user process; the lists and the tree hold the processes the [`SnapshotQuery`] asked
/// for, and say how many they leave out. Internal (system) processes are left out of every list and count but
/// `system_processes`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSnapshot {
    /// When it was taken.
    pub timestamp: SystemTime,
    /// The listed `GenServer`s, in the query's order.
    pub servers: Vec<ServerStats>,
    /// The listed supervisors, in the query's order.
    pub supervisors: Vec<SupervisorStats>,
    /// User processes in neither list.
    pub unlisted: u64,
    /// For a [`ProcessList::Page`](crate::ProcessList::Page) query with processes after this page: where the
    /// next page starts (its `after`).
    pub next_page: Option<u64>,
    /// The supervision tree, as far as the query's `tree_limit`: supervisors with their children (nested
    /// supervisors nested), then standalone servers, each level in spawn order.
    pub tree: Vec<ProcessTreeNode>,
    /// User processes not in the tree.
    pub tree_unlisted: u64,
    /// User processes: servers plus supervisors.
    pub process_count: u64,
    /// User `GenServer`s.
    pub server_count: u64,
    /// User supervisors.
    pub supervisor_count: u64,
    /// Calls and casts handled by all servers so far.
    pub total_messages: u64,
    /// Messages waiting in all mailboxes.
    pub total_mailbox: u64,
    /// Restarts performed by all supervisors so far.
    pub total_restarts: u64,
    /// Internal processes, counted nowhere else.
    pub system_processes: u64,
    /// The node's memory.
    pub memory: MemoryStats,
}

/// A `GenServer`'s figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerStats {
    /// Its pid.
    pub pid: Pid,
    /// Its local name, if registered.
    pub name: Option<String>,
    /// Where it is in its life.
    pub status: ProcessStatus,
    /// Messages waiting in its mailbox.
    pub mailbox_len: u64,
    /// Calls and casts handled so far.
    pub messages_processed: u64,
    /// When it started.
    pub started_at: SystemTime,
    /// How long it has been running, when the snapshot was taken.
    pub uptime: Duration,
}

/// A supervisor's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct SupervisorStats {
    /// Its pid.
    pub pid: Pid,
    /// Its local name, if registered.
    pub name: Option<String>,
    /// Its restart strategy.
    pub strategy: Strategy,
    /// Children it currently has.
    pub child_count: u32,
    /// Restarts it has performed.
    pub restarts: u64,
    /// Messages waiting in its mailbox.
    pub mailbox_len: u64,
    /// Messages it handled so far (child exits, requests about its children).
    pub messages_processed: u64,
    /// When it started.
    pub started_at: SystemTime,
    /// How long it has been running, when the snapshot was taken.
    pub uptime: Duration,
}

/// A process in the supervision tree.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessTreeNode {
    /// Its pid.
    pub pid: Pid,
    /// Its local name, if registered.
    pub name: Option<String>,
    /// Server or supervisor.
    pub kind: ProcessKind,
    /// For a supervisor: its children, in the order they started.
    pub children: Vec<ProcessTreeNode>,
}

impl NodeSnapshot {
    /// Takes a snapshot of `runtime`'s processes as `query` asks; `heap` is the heap gauge, if the program has
    /// one. One walk over the processes, keeping only what the query lists (see `select.rs`).
    pub(crate) fn take(
        runtime: &Runtime,
        heap: Option<&'static memory::CountingAllocator>,
        query: &SnapshotQuery,
    ) -> NodeSnapshot {
        let now = SystemTime::now();
        let mut walk = Walk::new(query);
        runtime.for_each_process(|p| walk.visit(p));
        walk.finish(now, MemoryStats::now(heap))
    }

    /// Processes listed (servers and supervisors).
    pub fn listed(&self) -> u64 {
        (self.servers.len() + self.supervisors.len()) as u64
    }

    /// Every pid the snapshot mentions (lists and tree).
    pub(crate) fn pids(&self) -> impl Iterator<Item = &Pid> {
        fn walk<'a>(nodes: &'a [ProcessTreeNode], into: &mut Vec<&'a Pid>) {
            for node in nodes {
                into.push(&node.pid);
                walk(&node.children, into);
            }
        }
        let mut in_tree = Vec::new();
        walk(&self.tree, &mut in_tree);
        self.servers.iter().map(|s| &s.pid).chain(self.supervisors.iter().map(|s| &s.pid)).chain(in_tree)
    }
}

#[cfg(test)]
mod tests {
    use noex_core::{
        ChildSpec, Context, GenServer, ProcessKind, Runtime, StartOptions, Strategy, Supervisor, SupervisorSpec,
    };

    use super::*;

    struct Worker;

    impl GenServer for Worker {
        type Call = ();
        type Reply = ();
        type Cast = ();

        async fn handle_call(&mut self, (): (), _: &mut Context<Self>) {}

        async fn handle_cast(&mut self, (): (), _: &mut Context<Self>) {}
    }

    /// A supervisor with two workers and a nested supervisor of one, a standalone server, a system process.
    async fn node() -> (Runtime, Pid, Pid) {
        let runtime = Runtime::new();
        let inner = SupervisorSpec::new(Strategy::OneForAll).child(ChildSpec::worker("deep", || Worker));
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(ChildSpec::worker("w1", || Worker).named("w1"))
            .child(ChildSpec::supervisor("inner", inner))
            .child(ChildSpec::worker("w2", || Worker));
        let top = Supervisor::start(&runtime, spec, StartOptions::named("top")).await.unwrap();
        let alone = runtime.start_with(Worker, StartOptions::default()).await.unwrap();
        runtime.start_with(Worker, StartOptions { system: true, ..StartOptions::default() }).await.unwrap();
        for _ in 0..3 {
            alone.cast(());
        }
        alone.call(()).await.unwrap();
        (runtime, top.pid().clone(), alone.pid().clone())
    }

    #[tokio::test]
    async fn a_snapshot_counts_user_processes_and_nests_supervisors() {
        let (runtime, top, alone) = node().await;
        let snapshot = NodeSnapshot::take(&runtime, None, &SnapshotQuery::default());
        assert_eq!((snapshot.process_count, snapshot.system_processes), (6, 1));
        assert_eq!((snapshot.server_count, snapshot.supervisor_count), (4, 2));
        assert_eq!((snapshot.servers.len(), snapshot.supervisors.len(), snapshot.unlisted), (4, 2, 0));
        assert_eq!(snapshot.tree_unlisted, 0);
        assert_eq!(snapshot.total_messages, 4, "three casts and a call, all on the standalone server");
        assert_eq!(snapshot.total_restarts, 0);
        assert_eq!(snapshot.supervisors[0].name.as_deref(), Some("top"));
        assert_eq!(snapshot.supervisors[0].child_count, 3);

        let shape: Vec<(ProcessKind, usize)> = snapshot.tree.iter().map(|n| (n.kind, n.children.len())).collect();
        assert_eq!(shape, [(ProcessKind::Supervisor, 3), (ProcessKind::Server, 0)]);
        assert_eq!(snapshot.tree[0].pid, top);
        assert_eq!(snapshot.tree[1].pid, alone);
        let children = &snapshot.tree[0].children;
        assert_eq!(children[0].name.as_deref(), Some("w1"));
        assert_eq!((children[1].kind, children[1].children.len()), (ProcessKind::Supervisor, 1));
        assert_eq!(children[2].kind, ProcessKind::Server);
    }

    #[tokio::test]
    async fn a_snapshot_reports_resident_memory_and_heap_only_when_counted() {
        let runtime = Runtime::new();
        let snapshot = NodeSnapshot::take(&runtime, None, &SnapshotQuery::totals());
        assert!(snapshot.memory.rss_bytes.is_some_and(|rss| rss > 0), "Linux reports the resident set size");
        assert_eq!(snapshot.memory.heap_bytes, None);
        assert_eq!(snapshot.memory.in_use(), snapshot.memory.rss_bytes);
    }

    #[tokio::test]
    async fn the_wire_form_round_trips_and_refuses_damage() {
        use prost::Message;

        let (runtime, _, _) = node().await;
        let mut snapshot = NodeSnapshot::take(&runtime, None, &SnapshotQuery::default());
        let encoded = crate::wire::Snapshot::from(&snapshot).encode_to_vec();
        let decoded = NodeSnapshot::try_from(crate::wire::Snapshot::decode(encoded.as_slice()).unwrap()).unwrap();
        // Times travel in whole milliseconds.
        let ms = |t: SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(ms(decoded.timestamp), ms(snapshot.timestamp));
        snapshot.timestamp = decoded.timestamp;
        for (ours, theirs) in snapshot.servers.iter_mut().zip(&decoded.servers) {
            assert_eq!(ms(ours.started_at), ms(theirs.started_at));
            (ours.started_at, ours.uptime) = (theirs.started_at, theirs.uptime);
        }
        for (ours, theirs) in snapshot.supervisors.iter_mut().zip(&decoded.supervisors) {
            (ours.started_at, ours.uptime) = (theirs.started_at, theirs.uptime);
        }
        assert_eq!(decoded, snapshot);

        // Every truncation either fails to decode or is refused; none panics.
        for cut in 0..encoded.len() {
            if let Ok(wire) = crate::wire::Snapshot::decode(&encoded[..cut]) {
                let _ = NodeSnapshot::try_from(wire);
            }
        }
        // An unknown status is refused, not guessed.
        let mut damaged = encoded.clone();
        let status_at = damaged.windows(2).position(|w| w == [0x18, 0x01]).expect("a running server's status");
        damaged[status_at + 1] = 9;
        let refused = NodeSnapshot::try_from(crate::wire::Snapshot::decode(damaged.as_slice()).unwrap());
        assert!(refused.is_err());
    }
}
