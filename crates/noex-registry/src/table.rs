//! The replicated table and its merge rules, without any I/O: what changes when a name is registered here, when
//! another node's entries arrive, and when a node goes away. The registry turns the returned changes into events,
//! frames and notifications.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use noex_core::{NodeName, Pid};

use crate::{ConflictResolver, GlobalName, UnregisterReason, Winner};

/// One entry with what only this node needs to know about it.
pub(crate) struct Slot {
    pub(crate) entry: GlobalName,
    /// The task watching the process, when this node registered it.
    pub(crate) watch: Option<tokio::task::AbortHandle>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
    }
}

/// What a change did, for events and notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Added(GlobalName),
    Removed(GlobalName, UnregisterReason),
    /// The registrar moved the name to another process.
    Replaced {
        old: GlobalName,
        new: GlobalName,
    },
    /// Two registrations of one name met; `winner` keeps it everywhere.
    Conflict {
        name: String,
        winner: GlobalName,
        loser: GlobalName,
    },
}

#[derive(Default)]
pub(crate) struct Table {
    slots: HashMap<Arc<str>, Slot>,
    /// The nodes currently connected: frames from any other node are stale (sent on a connection that was
    /// already reported down) and must not bring back names that `remove_node` took away.
    connected: HashSet<NodeName>,
}

impl Table {
    pub(crate) fn get(&self, name: &str) -> Option<&GlobalName> {
        self.slots.get(name).map(|slot| &slot.entry)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &GlobalName> {
        self.slots.values().map(|slot| &slot.entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// A local registration; the caller has checked that the name is free.
    pub(crate) fn insert(&mut self, entry: GlobalName, watch: Option<tokio::task::AbortHandle>) {
        self.slots.insert(entry.name.as_str().into(), Slot { entry, watch });
    }

    /// Removes `name` if it is held by `pid` as registered by `registrar`.
    pub(crate) fn remove_if(
        &mut self,
        name: &str,
        registrar: &NodeName,
        pid: Option<&Pid>,
        reason: UnregisterReason,
    ) -> Option<Change> {
        let slot = self.slots.get(name)?;
        if slot.entry.registrar != *registrar || pid.is_some_and(|pid| slot.entry.pid != *pid) {
            return None;
        }
        let slot = self.slots.remove(name)?;
        Some(Change::Removed(slot.entry.clone(), reason))
    }

    /// Merges an entry that `entry.registrar` announced.
    pub(crate) fn merge(&mut self, entry: GlobalName, resolver: &dyn ConflictResolver) -> Option<Change> {
        let Some(slot) = self.slots.get_mut(entry.name.as_str()) else {
            self.slots.insert(entry.name.as_str().into(), Slot { entry: entry.clone(), watch: None });
            return Some(Change::Added(entry));
        };
        if slot.entry.pid == entry.pid && slot.entry.registrar == entry.registrar {
            return None; // already known
        }
        if slot.entry.registrar == entry.registrar {
            // The same node registered the name again, for another process: its newest word counts.
            let old = std::mem::replace(&mut *slot, Slot { entry: entry.clone(), watch: None });
            return Some(Change::Replaced { old: old.entry.clone(), new: entry });
        }
        let name = entry.name.clone();
        match resolver.resolve(&slot.entry, &entry) {
            Winner::First => Some(Change::Conflict { name, winner: slot.entry.clone(), loser: entry }),
            Winner::Second => {
                let old = std::mem::replace(&mut *slot, Slot { entry: entry.clone(), watch: None });
                Some(Change::Conflict { name, winner: entry, loser: old.entry.clone() })
            }
        }
    }

    /// A full sync from `registrar`: its entries replace everything held from it before.
    pub(crate) fn replace_from(
        &mut self,
        registrar: &NodeName,
        entries: Vec<GlobalName>,
        resolver: &dyn ConflictResolver,
    ) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .slots
            .iter()
            .filter(|(name, slot)| slot.entry.registrar == *registrar && !entries.iter().any(|e| e.name == ***name))
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|name| self.remove_if(&name, registrar, None, UnregisterReason::Unregistered))
            .collect();
        changes.extend(entries.into_iter().filter_map(|entry| self.merge(entry, resolver)));
        changes
    }

    pub(crate) fn node_up(&mut self, node: NodeName) {
        self.connected.insert(node);
    }

    pub(crate) fn is_connected(&self, node: &NodeName) -> bool {
        self.connected.contains(node)
    }

    /// `node` went down: its registrations, and the names of its processes, are gone. Names that `local` (this
    /// node) registered for the down node's processes are left to their watch, which frees them *and* tells the
    /// other nodes (who may still be connected to the down node and would otherwise keep them).
    pub(crate) fn remove_node(&mut self, node: &NodeName, local: &NodeName) -> Vec<Change> {
        self.connected.remove(node);
        let gone: Vec<Arc<str>> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                slot.entry.registrar == *node || (slot.entry.pid.node() == node && slot.entry.registrar != *local)
            })
            .map(|(name, _)| name.clone())
            .collect();
        gone.into_iter()
            .filter_map(|name| self.slots.remove(&name))
            .map(|slot| Change::Removed(slot.entry.clone(), UnregisterReason::NodeDown))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConflictResolver, EarliestWins, Winner};

    fn entry(name: &str, node: &str, id: u64, at: u64) -> GlobalName {
        GlobalName {
            name: name.into(),
            pid: Pid::new(NodeName::new(node), 1, id),
            registered_at_ms: at,
            registrar: NodeName::new(node),
        }
    }

    #[test]
    fn the_earlier_registration_wins_whatever_the_arrival_order() {
        let a = entry("x", "a@h:1", 1, 100);
        let b = entry("x", "b@h:2", 2, 50);
        for (first, second) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
            let mut table = Table::default();
            table.merge(first, &EarliestWins);
            let change = table.merge(second, &EarliestWins).unwrap();
            assert!(matches!(change, Change::Conflict { ref winner, .. } if *winner == b));
            assert_eq!(table.get("x"), Some(&b));
        }
    }

    #[test]
    fn ties_are_broken_by_node_id_alike_on_every_node() {
        let a = entry("x", "a@h:1", 1, 100);
        let b = entry("x", "b@h:2", 2, 100);
        let mut one = Table::default();
        one.merge(a.clone(), &EarliestWins);
        one.merge(b.clone(), &EarliestWins);
        let mut two = Table::default();
        two.merge(b, &EarliestWins);
        two.merge(a.clone(), &EarliestWins);
        assert_eq!(one.get("x"), Some(&a));
        assert_eq!(two.get("x"), Some(&a));
    }

    #[test]
    fn another_resolver_can_be_plugged_in() {
        /// The latest registration wins (ties: the larger node id), the opposite of the default.
        struct LatestWins;
        impl ConflictResolver for LatestWins {
            fn resolve(&self, a: &GlobalName, b: &GlobalName) -> Winner {
                let key = |e: &GlobalName| (e.registered_at_ms, e.registrar.clone());
                if key(a) >= key(b) { Winner::First } else { Winner::Second }
            }
        }
        let early = entry("x", "a@h:1", 1, 10);
        let late = entry("x", "b@h:2", 2, 20);
        let mut table = Table::default();
        table.merge(early, &LatestWins);
        table.merge(late.clone(), &LatestWins);
        assert_eq!(table.get("x"), Some(&late));
    }

    #[test]
    fn a_full_sync_replaces_what_came_from_its_sender_only() {
        let mut table = Table::default();
        table.merge(entry("old", "a@h:1", 1, 1), &EarliestWins);
        table.merge(entry("kept", "a@h:1", 2, 1), &EarliestWins);
        table.merge(entry("other", "b@h:2", 3, 1), &EarliestWins);
        let changes = table.replace_from(&NodeName::new("a@h:1"), vec![entry("kept", "a@h:1", 2, 1)], &EarliestWins);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(table.get("old").is_none());
        assert!(table.get("kept").is_some());
        assert!(table.get("other").is_some());
    }

    #[test]
    fn a_removal_from_another_registrar_or_for_another_process_is_ignored() {
        let mut table = Table::default();
        table.merge(entry("x", "a@h:1", 1, 1), &EarliestWins);
        let b = NodeName::new("b@h:2");
        assert!(table.remove_if("x", &b, None, UnregisterReason::Unregistered).is_none());
        let a = NodeName::new("a@h:1");
        let other = Pid::new(a.clone(), 1, 9);
        assert!(table.remove_if("x", &a, Some(&other), UnregisterReason::ProcessExited).is_none());
        assert!(table.remove_if("x", &a, None, UnregisterReason::Unregistered).is_some());
    }

    #[test]
    fn a_node_going_down_takes_its_registrations_and_its_processes_names() {
        let mut table = Table::default();
        table.merge(entry("mine", "a@h:1", 1, 1), &EarliestWins);
        let mut remote_process = entry("theirs", "b@h:2", 2, 1);
        remote_process.pid = Pid::new(NodeName::new("a@h:1"), 1, 7);
        table.merge(remote_process, &EarliestWins);
        table.merge(entry("safe", "b@h:2", 3, 1), &EarliestWins);
        let mut mine = entry("mine-for-a", "c@h:3", 4, 1);
        mine.pid = Pid::new(NodeName::new("a@h:1"), 1, 8);
        table.merge(mine, &EarliestWins);
        assert_eq!(table.remove_node(&NodeName::new("a@h:1"), &NodeName::new("c@h:3")).len(), 2);
        assert_eq!(table.len(), 2, "the local registration of a's process is left to its watch");
    }
}
