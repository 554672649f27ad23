//! `GroupsError`: why a join, a leave or a scope was refused.

use noex_core::Pid;

/// Why a process group operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupsError {
    /// Only processes of this node may join or leave through it (as in Erlang's `pg`): each node speaks for its
    /// own processes only.
    #[error("{0} is not a process of this node")]
    NotLocal(Pid),
    /// The (local) process does not exist.
    #[error("no such process: {0}")]
    NoProc(Pid),
    /// None of the processes was a member of the group.
    #[error("not a member of group '{group}'")]
    NotJoined {
        /// The group.
        group: String,
    },
    /// A group or scope name is empty or too long.
    #[error("{what} name of {len} bytes: it must have 1 to {limit}")]
    BadName {
        /// `"group"` or `"scope"`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_GROUP_LEN`](crate::MAX_GROUP_LEN) or [`MAX_SCOPE_LEN`](crate::MAX_SCOPE_LEN).
        limit: usize,
    },
    /// The node's runtime is gone.
    #[error("the node is stopped")]
    Stopped,
}
