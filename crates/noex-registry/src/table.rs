//! The replicated table and its merge rules, without any I/O: what changes when a name is registered here, when
//! another node's `RegistrySync` arrives (incremental, or one chunk of a full sync), and when a node goes away.
//! The registry turns the returned changes into events, frames and notifications. Everything here is a plain
//! function of the table and its input, so a test (or a fuzz target) can drive it with any decoded frame.

use std::collections::HashSet;
use std::sync::Arc;

use noex_core::{NodeName, Pid};
use noex_proto::RegistrySync;
use rustc_hash::FxHashMap as HashMap;

use crate::{ConflictResolver, GlobalName, UnregisterReason, Winner};

/// One registration as the table keeps it (the name is the map's key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) pid: Pid,
    /// The node that registered it: shares its `Arc` with every other entry of that node.
    pub(crate) registrar: NodeName,
    /// The full sync (numbered by this table) that last confirmed it: when a full sync from its registrar ends,
    /// the entries it did not confirm are removed. 0: none.
    mark: u64,
}

/// What a change did, for events and notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Added {
        name: Arc<str>,
        pid: Pid,
    },
    Removed {
        name: Arc<str>,
        pid: Pid,
        registrar: NodeName,
        reason: UnregisterReason,
    },
    /// The registrar moved the name to another process.
    Replaced {
        name: Arc<str>,
        old: Pid,
        new: Pid,
    },
    /// Two registrations of one name met; `winner` keeps it everywhere.
    Conflict {
        winner: GlobalName,
        loser: GlobalName,
    },
}

/// The table of one node.
pub(crate) struct Table {
    local: NodeName,
    /// Hashed with FxHash: SipHash was a quarter of a large sync's time, and the names come only from this node
    /// and authenticated peers (which are trusted further than flooding a hash bucket: see docs/protocol.md).
    names: HashMap<Arc<str>, Entry>,
    /// The nodes currently connected: frames from any other node are stale (sent on a connection that was
    /// already reported down) and must not bring back names that a node down took away.
    connected: HashSet<NodeName>,
    /// Full syncs being received, by registrar.
    assembling: HashMap<NodeName, Assembly>,
    /// The number the next full sync received gets (its entries' `mark`).
    next_mark: u64,
    /// Nodes reported down whose names are still here: removed by `flush_lost`, which the registry runs before
    /// any other use of the table (so nothing can observe them or collide with them), or from a task.
    lost: Vec<NodeName>,
    /// The losers of conflicts that live on other nodes, by name. Their node may never see the conflict (it had
    /// already removed the winner, whose node was being lost): then it keeps its registration, and this table
    /// takes the loser back when the winner's name goes, rather than disagree with it for good. A loser that
    /// ends is unregistered by its node, which removes it here too.
    shadowed: HashMap<Arc<str>, Entry>,
}

/// A full sync being received from one registrar.
struct Assembly {
    /// The sender's number for it.
    id: u64,
    /// Ours: the `mark` of the entries it confirmed.
    mark: u64,
}

impl Table {
    /// An empty table of the node `local`.
    pub(crate) fn new(local: NodeName) -> Self {
        Table {
            local,
            names: HashMap::default(),
            connected: HashSet::new(),
            assembling: HashMap::default(),
            next_mark: 1,
            lost: Vec::new(),
            shadowed: HashMap::default(),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Entry> {
        self.names.get(name)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = GlobalName> + '_ {
        self.names.iter().map(|(name, entry)| global_name(name, entry))
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.names.keys()
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The names this node registered, in no particular order.
    pub(crate) fn local_names(&self) -> Vec<Arc<str>> {
        self.names.iter().filter(|(_, entry)| entry.registrar == self.local).map(|(name, _)| name.clone()).collect()
    }

    /// The process `name` names, if this node registered it.
    pub(crate) fn local_pid(&self, name: &str) -> Option<&Pid> {
        self.names.get(name).filter(|entry| entry.registrar == self.local).map(|entry| &entry.pid)
    }

    /// A local registration; the caller has checked that the name is free. Returns the key, shared with the
    /// caller's index of watched processes.
    pub(crate) fn insert_local(&mut self, name: &str, pid: Pid) -> Arc<str> {
        let key: Arc<str> = name.into();
        let entry = Entry { pid, registrar: self.local.clone(), mark: 0 };
        self.names.insert(key.clone(), entry);
        key
    }

    /// Removes `name` if it is held by `pid` (any, if `None`) as registered by `registrar`.
    pub(crate) fn remove_if(
        &mut self,
        name: &str,
        registrar: &NodeName,
        pid: Option<&Pid>,
        reason: UnregisterReason,
    ) -> Option<Change> {
        let entry = self.names.get(name)?;
        if entry.registrar != *registrar || pid.is_some_and(|pid| entry.pid != *pid) {
            return None;
        }
        let (name, entry) = self.names.remove_entry(name)?;
        Some(Change::Removed { name, pid: entry.pid, registrar: entry.registrar, reason })
    }

    /// A `RegistrySync` from `registrar` (the node at the other end of the connection it came on). Incremental
    /// changes apply at once; the entries of a full sync's chunks too (so names resolve as chunks arrive), and
    /// when its last chunk arrives, what the registrar held here and did not name since its first chunk (in a
    /// chunk or in an incremental change) is removed. A chunk of a superseded full sync merges like an
    /// incremental change. Nothing from a node that is not connected is taken (`None`).
    ///
    /// The caller runs `flush_lost` first.
    pub(crate) fn receive(
        &mut self,
        registrar: &NodeName,
        sync: RegistrySync,
        resolver: &dyn ConflictResolver,
    ) -> Option<Vec<Change>> {
        if !self.connected.contains(registrar) {
            return None;
        }
        let mark = match sync.full {
            Some(full) if full.first => {
                let mark = self.next_mark;
                self.next_mark += 1;
                self.assembling.insert(registrar.clone(), Assembly { id: full.id, mark });
                Some(mark)
            }
            Some(full) => self.assembling.get(registrar).filter(|a| a.id == full.id).map(|a| a.mark),
            None => self.assembling.get(registrar).map(|a| a.mark),
        };
        let mut changes = Vec::new();
        for name in &sync.removed {
            changes.extend(self.remove_if(name, registrar, None, UnregisterReason::Unregistered));
            if self.shadowed.get(name.as_str()).is_some_and(|shadow| shadow.registrar == *registrar) {
                self.shadowed.remove(name.as_str());
            }
            changes.extend(self.promote(name));
        }
        for entry in sync.entries {
            changes.extend(self.merge(entry.name, entry.pid, registrar, mark, resolver));
        }
        if let (Some(full), Some(mark)) = (sync.full, mark) {
            if full.last {
                self.assembling.remove(registrar);
                changes.extend(self.finish(registrar, mark));
            }
        }
        Some(changes)
    }

    /// `node` is connected (again): its frames are taken.
    pub(crate) fn node_up(&mut self, node: NodeName) {
        self.connected.insert(node);
    }

    /// `node` went down: from now on its frames are stale, a full sync it was sending is dropped (having removed
    /// nothing), and its names are to go (`flush_lost`). Quick: called under the cluster's membership lock.
    pub(crate) fn node_down(&mut self, node: &NodeName) {
        self.connected.remove(node);
        self.assembling.remove(node);
        if !self.lost.contains(node) {
            self.lost.push(node.clone());
        }
    }

    /// Whether `node` was reported down and its names are still to be removed.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn is_lost(&self, node: &NodeName) -> bool {
        self.lost.contains(node)
    }

    /// Whether names of lost nodes are still to be removed.
    pub(crate) fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Removes the names of the nodes reported down since the last call: their registrations, and the names of
    /// their processes. Names that this node registered for a lost node's processes are left to their watch,
    /// which frees them *and* tells the other nodes (who may still be connected to the lost node and would
    /// otherwise keep them).
    pub(crate) fn flush_lost(&mut self) -> Vec<Change> {
        if self.lost.is_empty() {
            return Vec::new();
        }
        let lost: HashSet<NodeName> = std::mem::take(&mut self.lost).into_iter().collect();
        self.shadowed.retain(|_, e| !lost.contains(&e.registrar) && !lost.contains(e.pid.node()));
        let local = &self.local;
        let gone: Vec<Arc<str>> = self
            .names
            .iter()
            .filter(|(_, e)| lost.contains(&e.registrar) || (e.registrar != *local && lost.contains(e.pid.node())))
            .map(|(name, _)| name.clone())
            .collect();
        let mut changes: Vec<Change> = gone
            .iter()
            .filter_map(|name| self.names.remove_entry(name))
            .map(|(name, e)| Change::Removed {
                name,
                pid: e.pid,
                registrar: e.registrar,
                reason: UnregisterReason::NodeDown,
            })
            .collect();
        for name in &gone {
            changes.extend(self.promote(name));
        }
        changes
    }

    /// Gives a free `name` back to the conflict's loser it shadows, if that one's node is still connected.
    fn promote(&mut self, name: &str) -> Option<Change> {
        if self.names.contains_key(name) {
            return None;
        }
        let (name, entry) = self.shadowed.remove_entry(name)?;
        if !self.connected.contains(&entry.registrar) {
            return None;
        }
        let pid = entry.pid.clone();
        self.names.insert(name.clone(), entry);
        Some(Change::Added { name, pid })
    }

    /// Keeps `loser` of a conflict over `name` if it lives on another node (see `shadowed`).
    fn shadow(&mut self, name: &str, loser: Entry) {
        if *loser.pid.node() != self.local && loser.registrar != self.local {
            self.shadowed.insert(name.into(), loser);
        }
    }

    /// Merges an entry that `registrar` announced; `mark`, if it belongs to a full sync being received.
    fn merge(
        &mut self,
        name: String,
        pid: Pid,
        registrar: &NodeName,
        mark: Option<u64>,
        resolver: &dyn ConflictResolver,
    ) -> Option<Change> {
        let Some(held) = self.names.get_mut(name.as_str()) else {
            let name: Arc<str> = name.into();
            let entry = Entry { pid: pid.clone(), registrar: registrar.clone(), mark: mark.unwrap_or(0) };
            self.names.insert(name.clone(), entry);
            return Some(Change::Added { name, pid });
        };
        if held.registrar == *registrar {
            if let Some(mark) = mark {
                held.mark = mark;
            }
            if held.pid == pid {
                return None; // already known
            }
            // The same node registered the name again, for another process: its newest word counts.
            let old = std::mem::replace(&mut held.pid, pid.clone());
            return Some(Change::Replaced { name: name.into(), old, new: pid });
        }
        let current = GlobalName { name: name.clone(), pid: held.pid.clone(), registrar: held.registrar.clone() };
        let incoming = GlobalName { name, pid, registrar: registrar.clone() };
        let incoming_entry = Entry { pid: incoming.pid.clone(), registrar: registrar.clone(), mark: mark.unwrap_or(0) };
        match resolver.resolve(&current, &incoming) {
            Winner::First => {
                self.shadow(&current.name, incoming_entry);
                Some(Change::Conflict { winner: current, loser: incoming })
            }
            Winner::Second => {
                let held_entry = std::mem::replace(held, incoming_entry);
                self.shadow(&incoming.name, held_entry);
                Some(Change::Conflict { winner: incoming, loser: current })
            }
        }
    }

    /// The end of a full sync from `registrar`: its entries that the sync did not confirm are gone.
    fn finish(&mut self, registrar: &NodeName, mark: u64) -> Vec<Change> {
        // Losers of this registrar that its full sync did not name again are gone from it.
        self.shadowed.retain(|_, entry| entry.registrar != *registrar || entry.mark == mark);
        let gone: Vec<Arc<str>> = self
            .names
            .iter()
            .filter(|(_, entry)| entry.registrar == *registrar && entry.mark != mark)
            .map(|(name, _)| name.clone())
            .collect();
        let mut changes: Vec<Change> = gone
            .iter()
            .filter_map(|name| self.remove_if(name, registrar, None, UnregisterReason::Unregistered))
            .collect();
        for name in &gone {
            changes.extend(self.promote(name));
        }
        changes
    }
}

fn global_name(name: &Arc<str>, entry: &Entry) -> GlobalName {
    GlobalName { name: name.to_string(), pid: entry.pid.clone(), registrar: entry.registrar.clone() }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
