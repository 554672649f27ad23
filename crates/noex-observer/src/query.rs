//! What a snapshot lists: [`SnapshotQuery`]. The totals cover every process whatever the query; the query only
//! chooses which processes are listed one by one, so that a node of any size answers in one small frame.

/// Processes listed by [`SnapshotQuery::default`] (and the supervision tree's default size).
pub const DEFAULT_LIMIT: u32 = 100;

/// The most processes a node lists for another node's query, in each of the lists and in the tree (a larger
/// limit is lowered to this; the rest are counted, as always). A node's own snapshots are not capped.
pub const MAX_REMOTE_LIMIT: u32 = 10_000;

/// What a snapshot lists besides its totals (see `docs/architecture.md`, "Snapshots of any size").
///
/// ```
/// use noex_observer::{SnapshotQuery, SortKey};
/// let busiest = SnapshotQuery::top(SortKey::MailboxLen, 10); // the 10 longest mailboxes
/// let first_page = SnapshotQuery::page(0, 500);                // then `page(snapshot.next_page?, 500)`
/// let figures = SnapshotQuery::totals();                      // no list, no tree: the cheapest
/// assert_eq!(SnapshotQuery::default(), SnapshotQuery::top(SortKey::MailboxLen, 100).with_tree(100));
/// # let _ = (busiest, first_page, figures);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotQuery {
    /// Which processes the snapshot lists (servers and supervisors, split by kind).
    pub list: ProcessList,
    /// At most this many processes of the supervision tree, taken in its order (supervisors with their
    /// children, depth first, then standalone servers); 0 for no tree.
    pub tree_limit: u32,
}

/// Which processes a [`SnapshotQuery`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessList {
    /// None: the snapshot carries totals only.
    None,
    /// The `limit` processes that rank first by `by`, highest first (ties: the oldest first).
    Top {
        /// The ranking.
        by: SortKey,
        /// How many.
        limit: u32,
    },
    /// Up to `limit` processes in the order they were spawned, starting after the process numbered `after`
    /// (0 for the first page; the next page starts after [`NodeSnapshot::next_page`](crate::NodeSnapshot)).
    /// Processes that start or end between pages neither shift nor repeat the others.
    Page {
        /// The last process number of the previous page (`Pid::id`), or 0.
        after: u64,
        /// How many.
        limit: u32,
    },
}

/// What a [`ProcessList::Top`] ranks processes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// Messages waiting in the mailbox: where work piles up.
    MailboxLen,
    /// Messages handled so far: the busiest.
    MessagesProcessed,
    /// Restarts performed (supervisors; servers count 0).
    Restarts,
}

impl Default for SnapshotQuery {
    /// The 100 longest mailboxes and the first 100 processes of the supervision tree.
    fn default() -> Self {
        SnapshotQuery::top(SortKey::MailboxLen, DEFAULT_LIMIT).with_tree(DEFAULT_LIMIT)
    }
}

impl SnapshotQuery {
    /// Totals only: no process listed, no tree.
    pub const fn totals() -> Self {
        SnapshotQuery { list: ProcessList::None, tree_limit: 0 }
    }

    /// The `limit` processes that rank first by `by`, no tree.
    pub const fn top(by: SortKey, limit: u32) -> Self {
        SnapshotQuery { list: ProcessList::Top { by, limit }, tree_limit: 0 }
    }

    /// Up to `limit` processes in spawn order after the process numbered `after`, no tree.
    pub const fn page(after: u64, limit: u32) -> Self {
        SnapshotQuery { list: ProcessList::Page { after, limit }, tree_limit: 0 }
    }

    /// The same query, with at most `tree_limit` processes of the supervision tree.
    pub const fn with_tree(mut self, tree_limit: u32) -> Self {
        self.tree_limit = tree_limit;
        self
    }

    /// How many processes the lists hold at most.
    pub fn list_limit(&self) -> u32 {
        match self.list {
            ProcessList::None => 0,
            ProcessList::Top { limit, .. } | ProcessList::Page { limit, .. } => limit,
        }
    }

    /// The same query with its limits lowered to at most `limit`.
    pub(crate) fn capped(mut self, limit: u32) -> Self {
        match &mut self.list {
            ProcessList::None => {}
            ProcessList::Top { limit: l, .. } | ProcessList::Page { limit: l, .. } => *l = (*l).min(limit),
        }
        self.tree_limit = self.tree_limit.min(limit);
        self
    }

    /// The largest of its limits (what [`capped`](Self::capped) lowers).
    pub(crate) fn largest_limit(&self) -> u32 {
        self.list_limit().max(self.tree_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capping_lowers_every_limit_and_nothing_else() {
        let query = SnapshotQuery::page(7, 50_000).with_tree(20_000);
        assert_eq!(query.capped(MAX_REMOTE_LIMIT), SnapshotQuery::page(7, 10_000).with_tree(10_000));
        assert_eq!(SnapshotQuery::default().capped(MAX_REMOTE_LIMIT), SnapshotQuery::default());
        assert_eq!(SnapshotQuery::totals().capped(0), SnapshotQuery::totals());
        assert_eq!(SnapshotQuery::default().largest_limit(), 100);
        assert_eq!(SnapshotQuery::top(SortKey::Restarts, 3).list_limit(), 3);
    }
}
