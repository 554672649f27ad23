//! One walk over a node's processes: exact totals over all of them, and only what the query lists (a bounded
//! heap for the top N, the next page in spawn order, the first part of the supervision tree). Nothing in the walk
//! grows with the node but the tree's records, and only when a tree is asked for.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::SystemTime;

use noex_core::{Pid, ProcessInfo, ProcessKind, ProcessStatus};

use crate::memory::MemoryStats;
use crate::query::{ProcessList, SnapshotQuery, SortKey};
use crate::{NodeSnapshot, ProcessTreeNode, ServerStats, SupervisorStats};

/// The walk in progress: feed it every process with [`visit`](Self::visit), then [`finish`](Self::finish).
pub(crate) struct Walk {
    totals: Totals,
    list: Listing,
    tree: Option<TreeWalk>,
}

#[derive(Default)]
struct Totals {
    servers: u64,
    supervisors: u64,
    messages: u64,
    mailbox: u64,
    restarts: u64,
    system: u64,
}

enum Listing {
    None,
    Top { by: SortKey, limit: usize, kept: BinaryHeap<Kept<Rank>> },
    Page { after: u64, limit: usize, kept: BinaryHeap<Kept<u64>>, beyond: u64 },
}

/// A top-N rank: the higher key first, then the older (smaller number); reversed, so that the best is the smallest.
type Rank = Reverse<(u64, Reverse<u64>)>;

/// A kept process, ordered by its key alone (a max-heap of them has the one to give up on top).
struct Kept<K> {
    key: K,
    info: ProcessInfo,
}

/// The supervision tree's walk: every supervisor and every process with a parent is recorded (the tree's shape
/// needs them); of the standalone servers, which come last in the tree, only the first `limit` are kept.
struct TreeWalk {
    limit: usize,
    linked: Vec<ProcessInfo>,
    standalone: BinaryHeap<Kept<u64>>,
}

/// Deep enough for any real tree; a cycle (which a runtime cannot make) would stop here.
const MAX_DEPTH: usize = 64;

impl Walk {
    pub(crate) fn new(query: &SnapshotQuery) -> Walk {
        let limit = |l: u32| usize::try_from(l).unwrap_or(usize::MAX);
        let list = match query.list {
            ProcessList::None => Listing::None,
            ProcessList::Top { by, limit: l } => Listing::Top { by, limit: limit(l), kept: BinaryHeap::new() },
            ProcessList::Page { after, limit: l } => {
                Listing::Page { after, limit: limit(l), kept: BinaryHeap::new(), beyond: 0 }
            }
        };
        let tree = (query.tree_limit > 0).then(|| TreeWalk {
            limit: limit(query.tree_limit),
            linked: Vec::new(),
            standalone: BinaryHeap::new(),
        });
        Walk { totals: Totals::default(), list, tree }
    }

    /// Counts one process, and keeps it if the query may list it.
    pub(crate) fn visit(&mut self, p: &ProcessInfo) {
        if p.status == ProcessStatus::Exited {
            return;
        }
        if p.system {
            self.totals.system += 1;
            return;
        }
        let totals = &mut self.totals;
        totals.mailbox = totals.mailbox.saturating_add(p.mailbox_len);
        match supervisor(p) {
            Some(restarts) => {
                totals.supervisors += 1;
                totals.restarts = totals.restarts.saturating_add(restarts);
            }
            None => {
                totals.servers += 1;
                totals.messages = totals.messages.saturating_add(p.messages_processed);
            }
        }
        match &mut self.list {
            Listing::None => {}
            Listing::Top { by, limit, kept } => {
                let key = match by {
                    SortKey::MailboxLen => p.mailbox_len,
                    SortKey::MessagesProcessed => p.messages_processed,
                    SortKey::Restarts => supervisor(p).unwrap_or(0),
                };
                keep_smallest(kept, *limit, Reverse((key, Reverse(p.pid.id()))), p);
            }
            Listing::Page { after, limit, kept, beyond } => {
                if p.pid.id() > *after {
                    *beyond += 1;
                    keep_smallest(kept, *limit, p.pid.id(), p);
                }
            }
        }
        if let Some(tree) = &mut self.tree {
            if p.kind == ProcessKind::Supervisor || p.parent.is_some() {
                tree.linked.push(p.clone());
            } else {
                keep_smallest(&mut tree.standalone, tree.limit, p.pid.id(), p);
            }
        }
    }

    /// The snapshot: the totals, the kept processes in the query's order, the tree.
    pub(crate) fn finish(self, now: SystemTime, memory: MemoryStats) -> NodeSnapshot {
        let Walk { totals, list, tree } = self;
        let (listed, next_page): (Vec<ProcessInfo>, Option<u64>) = match list {
            Listing::None => (Vec::new(), None),
            // Smallest key first: the best rank, the lowest number.
            Listing::Top { kept, .. } => (kept.into_sorted_vec().into_iter().map(|k| k.info).collect(), None),
            Listing::Page { limit, kept, beyond, .. } => {
                let page: Vec<ProcessInfo> = kept.into_sorted_vec().into_iter().map(|k| k.info).collect();
                let next = (beyond > limit as u64).then(|| page.last().map(|p| p.pid.id())).flatten();
                (page, next)
            }
        };
        let process_count = totals.servers + totals.supervisors;
        let mut servers = Vec::new();
        let mut supervisors = Vec::new();
        for p in &listed {
            let uptime = now.duration_since(p.started_at).unwrap_or_default();
            let name = p.name.as_deref().map(str::to_owned);
            match &p.supervisor {
                Some(stats) if p.kind == ProcessKind::Supervisor => supervisors.push(SupervisorStats {
                    pid: p.pid.clone(),
                    name,
                    strategy: stats.strategy,
                    child_count: stats.child_count,
                    restarts: stats.restarts,
                    mailbox_len: p.mailbox_len,
                    messages_processed: p.messages_processed,
                    started_at: p.started_at,
                    uptime,
                }),
                _ => servers.push(ServerStats {
                    pid: p.pid.clone(),
                    name,
                    status: p.status,
                    mailbox_len: p.mailbox_len,
                    messages_processed: p.messages_processed,
                    started_at: p.started_at,
                    uptime,
                }),
            }
        }
        let tree = tree.map(TreeWalk::finish).unwrap_or_default();
        NodeSnapshot {
            timestamp: now,
            unlisted: process_count - listed.len() as u64,
            next_page,
            tree_unlisted: process_count.saturating_sub(count(&tree)),
            tree,
            servers,
            supervisors,
            process_count,
            server_count: totals.servers,
            supervisor_count: totals.supervisors,
            total_messages: totals.messages,
            total_mailbox: totals.mailbox,
            total_restarts: totals.restarts,
            system_processes: totals.system,
            memory,
        }
    }
}

/// A supervisor's restarts; `None` for a server (a supervisor without its figures counts as one, as it always
/// has).
fn supervisor(p: &ProcessInfo) -> Option<u64> {
    p.supervisor.filter(|_| p.kind == ProcessKind::Supervisor).map(|s| s.restarts)
}

/// Keeps in `heap` the `limit` processes of smallest key; `p` is copied only if it is kept (most are not).
fn keep_smallest<K: Ord>(heap: &mut BinaryHeap<Kept<K>>, limit: usize, key: K, p: &ProcessInfo) {
    if heap.len() < limit {
        heap.push(Kept { key, info: p.clone() });
    } else if let Some(mut largest) = heap.peek_mut() {
        if key < largest.key {
            *largest = Kept { key, info: p.clone() };
        }
    }
}

impl TreeWalk {
    /// Supervisors that no recorded supervisor supervises, each with its subtree, then the servers that no
    /// recorded supervisor supervises: children in spawn order, depth first, until `limit` processes are placed.
    fn finish(self) -> Vec<ProcessTreeNode> {
        let TreeWalk { limit, mut linked, standalone } = self;
        linked.extend(standalone.into_vec().into_iter().map(|k| k.info));
        linked.sort_unstable_by_key(|p| p.pid.id());
        let supervisors: HashSet<&Pid> =
            linked.iter().filter(|p| p.kind == ProcessKind::Supervisor).map(|p| &p.pid).collect();
        let mut children: HashMap<&Pid, Vec<&ProcessInfo>> = HashMap::new();
        let mut roots = Vec::new();
        for process in &linked {
            match process.parent.as_ref().filter(|parent| supervisors.contains(parent)) {
                Some(parent) => children.entry(parent).or_default().push(process),
                None => roots.push(process),
            }
        }
        let (supervisor_roots, server_roots): (Vec<_>, Vec<_>) =
            roots.into_iter().partition(|p| p.kind == ProcessKind::Supervisor);
        let mut budget = limit;
        supervisor_roots.into_iter().chain(server_roots).map_while(|p| subtree(p, &children, 0, &mut budget)).collect()
    }
}

/// `process` and as much of its subtree as `budget` allows; `None` once the budget is spent.
fn subtree(
    process: &ProcessInfo,
    children: &HashMap<&Pid, Vec<&ProcessInfo>>,
    depth: usize,
    budget: &mut usize,
) -> Option<ProcessTreeNode> {
    *budget = budget.checked_sub(1)?;
    let own = match children.get(&process.pid) {
        Some(own) if depth < MAX_DEPTH => {
            own.iter().map_while(|child| subtree(child, children, depth + 1, budget)).collect()
        }
        _ => Vec::new(),
    };
    Some(ProcessTreeNode {
        pid: process.pid.clone(),
        name: process.name.as_deref().map(str::to_owned),
        kind: process.kind,
        children: own,
    })
}

/// Processes in a tree.
pub(crate) fn count(tree: &[ProcessTreeNode]) -> u64 {
    tree.iter().map(|node| 1 + count(&node.children)).sum()
}

impl<K: Ord> Ord for Kept<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl<K: Ord> PartialOrd for Kept<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> PartialEq for Kept<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<K: Ord> Eq for Kept<K> {}

#[cfg(test)]
mod tests;
