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
    Top { by: SortKey, limit: usize, kept: BinaryHeap<Reverse<Ranked>> },
    Page { after: u64, limit: usize, kept: BinaryHeap<ById>, beyond: u64 },
}

/// A process with its rank: a higher key ranks first, then the older (smaller number).
struct Ranked {
    key: u64,
    info: ProcessInfo,
}

/// A process ordered by its number alone.
struct ById(ProcessInfo);

/// The supervision tree's walk: every supervisor and every process with a parent is recorded (the tree's shape
/// needs them); of the standalone servers, which come last in the tree, only the first `limit` are kept.
struct TreeWalk {
    limit: usize,
    linked: Vec<ProcessInfo>,
    standalone: BinaryHeap<ById>,
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
                keep_best(kept, *limit, Reverse(Ranked { key, info: p.clone() }), |new, worst| new < worst);
            }
            Listing::Page { after, limit, kept, beyond } => {
                if p.pid.id() > *after {
                    *beyond += 1;
                    keep_best(kept, *limit, ById(p.clone()), |new, largest| new < largest);
                }
            }
        }
        if let Some(tree) = &mut self.tree {
            if p.kind == ProcessKind::Supervisor || p.parent.is_some() {
                tree.linked.push(p.clone());
            } else {
                keep_best(&mut tree.standalone, tree.limit, ById(p.clone()), |new, largest| new < largest);
            }
        }
    }

    /// The snapshot: the totals, the kept processes in the query's order, the tree.
    pub(crate) fn finish(self, now: SystemTime, memory: MemoryStats) -> NodeSnapshot {
        let Walk { totals, list, tree } = self;
        let (listed, next_page): (Vec<ProcessInfo>, Option<u64>) = match list {
            Listing::None => (Vec::new(), None),
            // Ascending `Reverse` is best first.
            Listing::Top { kept, .. } => (kept.into_sorted_vec().into_iter().map(|r| r.0.info).collect(), None),
            Listing::Page { limit, kept, beyond, .. } => {
                let page: Vec<ProcessInfo> = kept.into_sorted_vec().into_iter().map(|p| p.0).collect();
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

/// Keeps the `limit` best items in `heap`, whose top is the worst kept; `better(new, worst)` says whether `new`
/// displaces it.
fn keep_best<T: Ord>(heap: &mut BinaryHeap<T>, limit: usize, new: T, better: impl Fn(&T, &T) -> bool) {
    if heap.len() < limit {
        heap.push(new);
    } else if let Some(mut worst) = heap.peek_mut() {
        if better(&new, &worst) {
            *worst = new;
        }
    }
}

impl TreeWalk {
    /// Supervisors that no recorded supervisor supervises, each with its subtree, then the servers that no
    /// recorded supervisor supervises: children in spawn order, depth first, until `limit` processes are placed.
    fn finish(self) -> Vec<ProcessTreeNode> {
        let TreeWalk { limit, mut linked, standalone } = self;
        linked.extend(standalone.into_vec().into_iter().map(|p| p.0));
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

impl Ranked {
    fn rank(&self) -> (u64, Reverse<u64>) {
        (self.key, Reverse(self.info.pid.id()))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Ranked {}

impl Ord for ById {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.pid.id().cmp(&other.0.pid.id())
    }
}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.pid.id() == other.0.pid.id()
    }
}

impl Eq for ById {}

#[cfg(test)]
mod tests;
