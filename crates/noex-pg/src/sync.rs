//! Memberships as `GroupsSync` frames: incremental changes and full syncs, cut into frames of about 256 KiB
//! however many memberships there are (a group's pids spread over several frames if need be), far under the
//! frame limit.

use noex_core::Pid;
use noex_proto::{FullSync, GroupPids, GroupsSync};

use crate::state::{Change, Groups};

/// The size a frame aims at.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// The frames announcing `change`.
pub(crate) fn incremental(scope: &str, change: &Change) -> Vec<GroupsSync> {
    let (group, pids, join) = match change {
        Change::Join { group, pids } => (group, pids, true),
        Change::Leave { group, pids } => (group, pids, false),
    };
    split([(&**group, &pids[..])])
        .into_iter()
        .map(|lists| {
            let (joined, left) = if join { (lists, Vec::new()) } else { (Vec::new(), lists) };
            GroupsSync { scope: scope.to_owned(), joined, left, full: None, answer_wanted: false }
        })
        .collect()
}

/// The frames of a full sync of `groups` (this node's memberships), numbered `id`: at least one frame, the
/// first marked `first`, the last `last`.
pub(crate) fn full(scope: &str, groups: Option<&Groups>, id: u64, answer_wanted: bool) -> Vec<GroupsSync> {
    let lists = match groups {
        Some(groups) => split(groups.iter().map(|(group, pids)| (&**group, &pids[..]))),
        None => vec![Vec::new()],
    };
    let count = lists.len();
    lists
        .into_iter()
        .enumerate()
        .map(|(at, joined)| GroupsSync {
            scope: scope.to_owned(),
            joined,
            left: Vec::new(),
            full: Some(FullSync { id, first: at == 0, last: at + 1 == count }),
            answer_wanted: answer_wanted && at == 0,
        })
        .collect()
}

/// Cuts memberships into lists of about `CHUNK_BYTES` each (at least one list, maybe empty).
fn split<'a>(groups: impl IntoIterator<Item = (&'a str, &'a [Pid])>) -> Vec<Vec<GroupPids>> {
    let mut lists = vec![Vec::new()];
    let mut bytes = 0;
    for (group, pids) in groups {
        let mut rest = pids;
        while !rest.is_empty() {
            if bytes >= CHUNK_BYTES {
                lists.push(Vec::new());
                bytes = 0;
            }
            bytes += group.len() + 8;
            let mut taken = 0;
            while taken < rest.len() && bytes < CHUNK_BYTES {
                bytes += pid_bytes(&rest[taken]);
                taken += 1;
            }
            let list = lists.last_mut().expect("never empty");
            list.push(GroupPids { group: group.to_owned(), pids: rest[..taken].to_vec() });
            rest = &rest[taken..];
        }
    }
    lists
}

/// About what a pid takes on the wire (protobuf tags, lengths and varints rounded up).
fn pid_bytes(pid: &Pid) -> usize {
    pid.node().as_str().len() + 24
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_core::NodeName;

    #[test]
    fn large_groups_are_cut_into_frames_that_keep_every_membership() {
        let node = NodeName::new("a@127.0.0.1:1");
        let pids: Vec<Pid> = (0..20_000).map(|id| Pid::new(node.clone(), 1, id)).collect();
        let mut groups = Groups::default();
        groups.insert("big".into(), pids.clone());
        groups.insert("small".into(), pids[..3].to_vec());
        let frames = full("s", Some(&groups), 7, true);
        assert!(frames.len() > 1, "20k pids make more than one frame");
        assert!(frames[0].answer_wanted && frames[0].full.unwrap().first);
        assert!(frames.last().unwrap().full.unwrap().last);
        assert!(frames[1..].iter().all(|f| !f.answer_wanted && !f.full.unwrap().first));
        let total: usize = frames.iter().flat_map(|f| &f.joined).map(|g| g.pids.len()).sum();
        assert_eq!(total, 20_003);
        let empty = full("s", None, 8, false);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].joined.is_empty() && empty[0].full.unwrap().last);
        let change = Change::Leave { group: "big".into(), pids };
        let frames = incremental("s", &change);
        assert!(frames.len() > 1 && frames.iter().all(|f| f.joined.is_empty() && f.full.is_none()));
    }
}
