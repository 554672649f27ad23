//! One scope's membership table and its merge rules, without any I/O: what changes when a local process joins or
//! leaves, when a local member ends, when another node's `GroupsSync` arrives (incremental, or a chunk of a full
//! sync), and when a node comes up or goes down. The scope turns the returned changes into notifications and
//! frames. Everything here is a plain function of the table and its input, so a test (or a fuzz target) can drive
//! it with any decoded frame.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use noex_core::{NodeName, Pid};
use noex_proto::{GroupPids, GroupsSync};
use rustc_hash::FxHashMap as HashMap;

use crate::{MAX_GROUP_LEN, MAX_SCOPE_LEN};

/// Groups and their members, a pid once per membership (a pid that joined twice is listed twice).
pub(crate) type Groups = HashMap<Arc<str>, Vec<Pid>>;

/// A change in the membership, for notifications and frames: `pids` are exactly the memberships added or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Join { group: Arc<str>, pids: Vec<Pid> },
    Leave { group: Arc<str>, pids: Vec<Pid> },
}

/// What became of a frame from a peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Applied (possibly changing nothing).
    Applied(Vec<Change>),
    /// The sender is not connected (the frame came on a connection already reported down): dropped.
    NotConnected,
    /// The frame breaks a rule of the protocol: dropped whole, nothing changed.
    Invalid(String),
}

/// The table of one scope on one node.
pub(crate) struct ScopeState {
    local: NodeName,
    /// Each node's memberships (this node's included), as that node announced them.
    by_node: HashMap<NodeName, Groups>,
    /// Every node's memberships by group: what `members` reads.
    members: Groups,
    /// This node's members and the groups of each, once per membership: what a member's end removes.
    local_index: HashMap<Pid, Vec<Arc<str>>>,
    /// The connected nodes and their incarnations: frames from any other node are stale, and a pid a peer
    /// announces must be of the peer's current incarnation.
    connected: HashMap<NodeName, u32>,
    /// Full syncs being received, by sender.
    assembling: HashMap<NodeName, Assembly>,
}

/// A full sync being received from one node: the memberships it lists so far.
struct Assembly {
    id: u64,
    groups: Groups,
}

impl ScopeState {
    pub(crate) fn new(local: NodeName) -> Self {
        ScopeState {
            local,
            by_node: HashMap::default(),
            members: HashMap::default(),
            local_index: HashMap::default(),
            connected: HashMap::default(),
            assembling: HashMap::default(),
        }
    }

    /// Every member of `group`, on every node.
    pub(crate) fn members(&self, group: &str) -> Vec<Pid> {
        self.members.get(group).cloned().unwrap_or_default()
    }

    /// The members of `group` on this node.
    pub(crate) fn local_members(&self, group: &str) -> Vec<Pid> {
        self.by_node.get(&self.local).and_then(|groups| groups.get(group)).cloned().unwrap_or_default()
    }

    /// Every group with at least one member.
    pub(crate) fn groups(&self) -> &Groups {
        &self.members
    }

    /// This node's groups and their members.
    pub(crate) fn local_groups(&self) -> Option<&Groups> {
        self.by_node.get(&self.local)
    }

    /// Whether the local process `pid` is a member of any group.
    pub(crate) fn is_local_member(&self, pid: &Pid) -> bool {
        self.local_index.contains_key(pid)
    }

    /// Local processes join `group` (the caller checked that they are local).
    pub(crate) fn join_local(&mut self, group: Arc<str>, pids: Vec<Pid>) -> Change {
        for pid in &pids {
            self.local_index.entry(pid.clone()).or_default().push(group.clone());
        }
        let local = self.local.clone();
        add(self.by_node.entry(local).or_default(), &group, &pids);
        add(&mut self.members, &group, &pids);
        Change::Join { group, pids }
    }

    /// Local processes leave `group`, one membership each; those that were not members are skipped. `None` if
    /// none was.
    pub(crate) fn leave_local(&mut self, group: &str, pids: &[Pid]) -> Option<Change> {
        let local = self.local.clone();
        let mut left = Vec::new();
        for pid in pids {
            let Some(groups) = self.local_index.get_mut(pid) else { continue };
            let Some(at) = groups.iter().position(|held| **held == *group) else { continue };
            groups.swap_remove(at);
            if groups.is_empty() {
                self.local_index.remove(pid);
            }
            left.push(pid.clone());
        }
        if left.is_empty() {
            return None;
        }
        let key = self.members.get_key_value(group).map(|(key, _)| key.clone())?;
        for pid in &left {
            if let Some(groups) = self.by_node.get_mut(&local) {
                remove_one_from(groups, &key, pid);
            }
            remove_one_from(&mut self.members, &key, pid);
        }
        self.drop_empty_local();
        Some(Change::Leave { group: key, pids: left })
    }

    /// The local process `pid` ended: every membership it held goes (one change per group).
    pub(crate) fn local_ended(&mut self, pid: &Pid) -> Vec<Change> {
        let Some(groups) = self.local_index.remove(pid) else { return Vec::new() };
        let mut changes: Vec<Change> = Vec::new();
        for group in groups {
            if let Some(local) = self.by_node.get_mut(&self.local) {
                remove_one_from(local, &group, pid);
            }
            remove_one_from(&mut self.members, &group, pid);
            match changes.iter_mut().find(|change| matches!(change, Change::Leave { group: g, .. } if *g == group)) {
                Some(Change::Leave { pids, .. }) => pids.push(pid.clone()),
                _ => changes.push(Change::Leave { group, pids: vec![pid.clone()] }),
            }
        }
        self.drop_empty_local();
        changes
    }

    /// `node` (incarnation `creation`) is connected: its frames are taken from now on.
    pub(crate) fn node_up(&mut self, node: NodeName, creation: u32) {
        if node != self.local {
            self.connected.insert(node, creation);
        }
    }

    /// `node` is no longer connected: its memberships go (one change per group), a full sync it was sending is
    /// dropped, and its frames are stale from now on.
    pub(crate) fn node_down(&mut self, node: &NodeName) -> Vec<Change> {
        self.connected.remove(node);
        self.assembling.remove(node);
        if *node == self.local {
            return Vec::new();
        }
        let Some(groups) = self.by_node.remove(node) else { return Vec::new() };
        let mut changes = Vec::with_capacity(groups.len());
        for (group, pids) in groups {
            for pid in &pids {
                remove_one_from(&mut self.members, &group, pid);
            }
            changes.push(Change::Leave { group, pids });
        }
        changes
    }

    /// A `GroupsSync` from `from` (the node at the other end of the connection it came on). Checked whole before
    /// anything changes: every pid must be a process of `from`'s current incarnation, so a node can only ever
    /// speak for its own processes. An incremental change applies at once, or to the full sync being assembled;
    /// a full sync replaces what `from` held here when its last chunk arrives, and the changes are the difference.
    pub(crate) fn receive(&mut self, from: &NodeName, sync: GroupsSync) -> Received {
        let Some(&creation) = self.connected.get(from) else { return Received::NotConnected };
        if let Err(reason) = validate(from, creation, &sync) {
            return Received::Invalid(reason);
        }
        match sync.full {
            Some(full) => {
                if full.first {
                    self.assembling.insert(from.clone(), Assembly { id: full.id, groups: Groups::default() });
                }
                let Some(assembly) = self.assembling.get_mut(from).filter(|a| a.id == full.id) else {
                    return Received::Invalid(format!("chunk of full sync {} that is not in progress", full.id));
                };
                for GroupPids { group, pids } in sync.joined {
                    add(&mut assembly.groups, &group.into(), &pids);
                }
                if !full.last {
                    return Received::Applied(Vec::new());
                }
                let assembly = self.assembling.remove(from).expect("found above");
                Received::Applied(self.replace(from, assembly.groups))
            }
            None => {
                if let Some(assembly) = self.assembling.get_mut(from) {
                    // Part of the sync in progress (a compliant sender queues its chunks together, so this is rare).
                    apply(&mut assembly.groups, sync.left, sync.joined);
                    return Received::Applied(Vec::new());
                }
                let node = self.by_node.entry(from.clone()).or_default();
                let changes = apply(node, sync.left, sync.joined);
                if node.is_empty() {
                    self.by_node.remove(from);
                }
                for change in &changes {
                    match change {
                        Change::Join { group, pids } => add(&mut self.members, group, pids),
                        Change::Leave { group, pids } => {
                            for pid in pids {
                                remove_one_from(&mut self.members, group, pid);
                            }
                        }
                    }
                }
                Received::Applied(changes)
            }
        }
    }

    /// The memberships `node` announced (this node's own included), for checks.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn node_groups(&self, node: &NodeName) -> Groups {
        self.by_node.get(node).cloned().unwrap_or_default()
    }

    /// Panics unless the table agrees with itself: every group's members are the nodes' members together, no
    /// group is empty, and the local index lists exactly this node's memberships.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn check(&self) {
        let mut union: HashMap<&str, Vec<&Pid>> = HashMap::default();
        for groups in self.by_node.values() {
            assert!(!groups.is_empty(), "a node without memberships is kept");
            for (group, pids) in groups {
                assert!(!pids.is_empty(), "empty group {group} kept");
                union.entry(group).or_default().extend(pids);
            }
        }
        let mut members: HashMap<&str, Vec<&Pid>> =
            self.members.iter().map(|(group, pids)| (&**group, pids.iter().collect())).collect();
        for pids in union.values_mut().chain(members.values_mut()) {
            pids.sort();
        }
        assert_eq!(members, union, "the members by group are not the nodes' memberships together");
        let mut indexed: Vec<(&str, &Pid)> =
            self.local_index.iter().flat_map(|(pid, groups)| groups.iter().map(move |g| (&**g, pid))).collect();
        let mut local: Vec<(&str, &Pid)> = self
            .by_node
            .get(&self.local)
            .into_iter()
            .flat_map(|groups| groups.iter().flat_map(|(g, pids)| pids.iter().map(move |pid| (&**g, pid))))
            .collect();
        indexed.sort();
        local.sort();
        assert_eq!(indexed, local, "the local index is not this node's memberships");
    }

    /// `from`'s memberships are now `new`: the difference, leaves first.
    fn replace(&mut self, from: &NodeName, new: Groups) -> Vec<Change> {
        let old = self.by_node.remove(from).unwrap_or_default();
        let mut leaves = Vec::new();
        let mut joins = Vec::new();
        for (group, pids) in &old {
            let left = difference(pids, new.get(group).map_or(&[][..], Vec::as_slice));
            if !left.is_empty() {
                for pid in &left {
                    remove_one_from(&mut self.members, group, pid);
                }
                leaves.push(Change::Leave { group: group.clone(), pids: left });
            }
        }
        for (group, pids) in &new {
            let joined = difference(pids, old.get(group).map_or(&[][..], Vec::as_slice));
            if !joined.is_empty() {
                add(&mut self.members, group, &joined);
                joins.push(Change::Join { group: group.clone(), pids: joined });
            }
        }
        if !new.is_empty() {
            self.by_node.insert(from.clone(), new);
        }
        leaves.extend(joins);
        leaves
    }

    fn drop_empty_local(&mut self) {
        if self.by_node.get(&self.local).is_some_and(HashMap::is_empty) {
            self.by_node.remove(&self.local);
        }
    }
}

/// The rules a frame must keep, checked before any of it is applied.
fn validate(from: &NodeName, creation: u32, sync: &GroupsSync) -> Result<(), String> {
    if sync.scope.is_empty() || sync.scope.len() > MAX_SCOPE_LEN {
        return Err(format!("scope name of {} bytes (1 to {MAX_SCOPE_LEN})", sync.scope.len()));
    }
    if sync.full.is_some() && !sync.left.is_empty() {
        return Err("a full sync lists no leaves".into());
    }
    for GroupPids { group, pids } in sync.joined.iter().chain(&sync.left) {
        if group.is_empty() || group.len() > MAX_GROUP_LEN {
            return Err(format!("group name of {} bytes (1 to {MAX_GROUP_LEN})", group.len()));
        }
        if pids.is_empty() {
            return Err(format!("group {group:?} listed without pids"));
        }
        if let Some(pid) = pids.iter().find(|pid| pid.node() != from || pid.creation() != creation) {
            return Err(format!("pid {pid} is not a process of the sender's incarnation {creation}"));
        }
    }
    Ok(())
}

/// `groups` with `changes` applied, for checks: what the changes say happened.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn replay(mut groups: Groups, changes: &[Change]) -> Groups {
    for change in changes {
        match change {
            Change::Join { group, pids } => add(&mut groups, group, pids),
            Change::Leave { group, pids } => {
                for pid in pids {
                    assert!(remove_one_from(&mut groups, group, pid), "a leave of {pid} from {group}, not a member");
                }
            }
        }
    }
    groups
}

/// Applies an incremental change to one node's groups: `left` (one membership per pid; pids not members are
/// skipped), then `joined`. Returns what changed.
fn apply(groups: &mut Groups, left: Vec<GroupPids>, joined: Vec<GroupPids>) -> Vec<Change> {
    let mut changes = Vec::new();
    for GroupPids { group, pids } in left {
        let Some(key) = groups.get_key_value(group.as_str()).map(|(key, _)| key.clone()) else { continue };
        let gone: Vec<Pid> = pids.into_iter().filter(|pid| remove_one_from(groups, &key, pid)).collect();
        if !gone.is_empty() {
            changes.push(Change::Leave { group: key, pids: gone });
        }
    }
    for GroupPids { group, pids } in joined {
        let key: Arc<str> = groups.get_key_value(group.as_str()).map_or_else(|| group.into(), |(key, _)| key.clone());
        add(groups, &key, &pids);
        changes.push(Change::Join { group: key, pids });
    }
    changes
}

fn add(groups: &mut Groups, group: &Arc<str>, pids: &[Pid]) {
    groups.entry(group.clone()).or_default().extend_from_slice(pids);
}

/// Removes one membership of `pid` from `group`; the group goes with its last member. Whether it was there.
fn remove_one_from(groups: &mut Groups, group: &str, pid: &Pid) -> bool {
    let Some((key, _)) = groups.get_key_value(group) else { return false };
    let key = key.clone();
    let Entry::Occupied(mut entry) = groups.entry(key) else { return false };
    let Some(at) = entry.get().iter().position(|member| member == pid) else { return false };
    entry.get_mut().remove(at);
    if entry.get().is_empty() {
        entry.remove();
    }
    true
}

/// `a` minus `b`, as multisets: each pid of `b` cancels one occurrence in `a`.
fn difference(a: &[Pid], b: &[Pid]) -> Vec<Pid> {
    let mut counts: HashMap<&Pid, usize> = HashMap::default();
    for pid in b {
        *counts.entry(pid).or_default() += 1;
    }
    a.iter()
        .filter(|pid| match counts.get_mut(pid) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect()
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
