//! The table's rules, step by step: conflicts, full syncs in chunks, lost nodes.

use noex_proto::{FullSync, RegistryEntry};

use super::*;
use crate::{ConflictResolver, FirstNodeWins, Winner};

const A: &str = "a@h:1";
const B: &str = "b@h:2";
const LOCAL: &str = "z@h:9";

fn node(name: &str) -> NodeName {
    NodeName::new(name)
}

fn pid(node_name: &str, id: u64) -> Pid {
    Pid::new(node(node_name), 1, id)
}

fn table() -> Table {
    let mut table = Table::new(node(LOCAL));
    table.node_up(node(A));
    table.node_up(node(B));
    table
}

fn entry(name: &str, pid: Pid) -> RegistryEntry {
    RegistryEntry { name: name.into(), pid }
}

fn incremental(entries: Vec<RegistryEntry>, removed: &[&str]) -> RegistrySync {
    RegistrySync {
        full: None,
        entries,
        removed: removed.iter().map(|name| name.to_string()).collect(),
        answer_wanted: false,
    }
}

fn chunk(id: u64, first: bool, last: bool, entries: Vec<RegistryEntry>) -> RegistrySync {
    RegistrySync { full: Some(FullSync { id, first, last }), entries, removed: Vec::new(), answer_wanted: false }
}

fn receive(table: &mut Table, from: &str, sync: RegistrySync) -> Vec<Change> {
    table.flush_lost().into_iter().chain(table.receive(&node(from), sync, &FirstNodeWins).unwrap()).collect()
}

fn holder(table: &Table, name: &str) -> Option<Pid> {
    table.get(name).map(|entry| entry.pid.clone())
}

#[test]
fn the_registration_of_the_node_that_sorts_first_wins_whatever_the_arrival_order() {
    for a_first in [true, false] {
        let mut table = table();
        let (from_a, from_b) = (entry("x", pid(A, 1)), entry("x", pid(B, 2)));
        let order = if a_first { [(A, from_a), (B, from_b)] } else { [(B, from_b), (A, from_a)] };
        let mut changes = Vec::new();
        for (from, entry) in order {
            changes.extend(receive(&mut table, from, incremental(vec![entry], &[])));
        }
        assert_eq!(holder(&table, "x"), Some(pid(A, 1)));
        let Some(Change::Conflict { winner, loser }) = changes.last() else { panic!("{changes:?}") };
        assert_eq!((winner.pid.clone(), loser.pid.clone()), (pid(A, 1), pid(B, 2)));
    }
}

#[test]
fn a_peer_cannot_take_a_name_held_by_a_node_that_sorts_before_it_whatever_its_entry_says() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    // b announces the name again and again, for a process of a node that sorts first, as a full sync: the
    // registrar (the connection's node) is what counts, and it sorts after a.
    for sync in [
        incremental(vec![entry("x", pid(B, 2))], &[]),
        incremental(vec![entry("x", pid("0@h:0", 3))], &[]),
        chunk(1, true, true, vec![entry("x", pid("0@h:0", 3))]),
    ] {
        let changes = receive(&mut table, B, sync);
        assert!(matches!(changes.as_slice(), [Change::Conflict { winner, .. }] if winner.registrar == node(A)));
        assert_eq!(holder(&table, "x"), Some(pid(A, 1)));
    }
    // Nor can it remove it.
    assert!(receive(&mut table, B, incremental(Vec::new(), &["x"])).is_empty());
    assert_eq!(holder(&table, "x"), Some(pid(A, 1)));
}

#[test]
fn another_resolver_can_be_plugged_in() {
    /// The node that sorts last wins, the opposite of the default.
    struct LastNodeWins;
    impl ConflictResolver for LastNodeWins {
        fn resolve(&self, a: &GlobalName, b: &GlobalName) -> Winner {
            if a.registrar >= b.registrar { Winner::First } else { Winner::Second }
        }
    }
    let mut table = table();
    table.receive(&node(A), incremental(vec![entry("x", pid(A, 1))], &[]), &LastNodeWins);
    table.receive(&node(B), incremental(vec![entry("x", pid(B, 2))], &[]), &LastNodeWins);
    assert_eq!(holder(&table, "x"), Some(pid(B, 2)));
}

#[test]
fn a_full_sync_in_chunks_removes_what_it_did_not_name_only_when_its_last_chunk_arrives() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("old", pid(A, 1)), entry("kept", pid(A, 2))], &[]));
    receive(&mut table, B, incremental(vec![entry("other", pid(B, 3))], &[]));

    receive(&mut table, A, chunk(7, true, false, vec![entry("new-1", pid(A, 4))]));
    assert_eq!(holder(&table, "new-1"), Some(pid(A, 4)), "names resolve as chunks arrive");
    assert!(holder(&table, "old").is_some(), "nothing is removed before the last chunk");
    // Changes the registrar makes during its sync count in it.
    receive(&mut table, A, incremental(vec![entry("during", pid(A, 5))], &[]));
    receive(&mut table, A, chunk(7, false, false, vec![entry("kept", pid(A, 2))]));
    let changes = receive(&mut table, A, chunk(7, false, true, vec![entry("new-2", pid(A, 6))]));

    let removed: Vec<_> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Removed { name, .. } => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec!["old".to_string()]);
    for name in ["kept", "new-1", "new-2", "during", "other"] {
        assert!(holder(&table, name).is_some(), "{name}");
    }
    assert_eq!(table.len(), 5);
}

#[test]
fn an_empty_full_sync_removes_everything_its_sender_registered() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    receive(&mut table, A, chunk(1, true, true, Vec::new()));
    assert_eq!(table.len(), 0);
}

#[test]
fn a_full_sync_cut_short_by_its_connection_removes_nothing_and_the_next_one_counts() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1)), entry("y", pid(A, 2))], &[]));
    receive(&mut table, A, chunk(1, true, false, vec![entry("x", pid(A, 1))]));
    assert_eq!(table.len(), 2);
    // The connection drops: the half sync is forgotten; a's names go with the node (when flushed).
    table.node_down(&node(A));
    assert!(table.receive(&node(A), chunk(1, false, true, Vec::new()), &FirstNodeWins).is_none(), "stale");
    table.node_up(node(A));
    // The reconnect's full sync arrives before anyone flushed: the old names go first, then the sync's arrive.
    receive(&mut table, A, chunk(2, true, false, vec![entry("y", pid(A, 2))]));
    receive(&mut table, A, chunk(2, false, true, vec![entry("z", pid(A, 3))]));
    let mut names: Vec<String> = table.names().map(|name| name.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["y".to_string(), "z".to_string()]);
}

#[test]
fn a_superseded_full_sync_neither_removes_nor_confuses_the_newer_one() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("stale", pid(A, 9))], &[]));
    receive(&mut table, A, chunk(1, true, false, vec![entry("x", pid(A, 1))]));
    receive(&mut table, A, chunk(2, true, false, vec![entry("x", pid(A, 1))]));
    // The end of the older sync is only a merge.
    receive(&mut table, A, chunk(1, false, true, vec![entry("y", pid(A, 2))]));
    assert!(holder(&table, "stale").is_some());
    receive(&mut table, A, chunk(2, false, true, vec![entry("y", pid(A, 2))]));
    assert!(holder(&table, "stale").is_none());
    assert!(holder(&table, "x").is_some() && holder(&table, "y").is_some());
}

#[test]
fn a_registrar_moving_its_name_to_another_process_is_a_replacement() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    let changes = receive(&mut table, A, incremental(vec![entry("x", pid(A, 2))], &[]));
    assert!(matches!(changes.as_slice(), [Change::Replaced { .. }]), "{changes:?}");
    assert_eq!(holder(&table, "x"), Some(pid(A, 2)));
}

#[test]
fn a_lost_node_takes_its_registrations_and_its_processes_names_when_flushed() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("mine", pid(A, 1))], &[]));
    receive(&mut table, B, incremental(vec![entry("theirs", pid(A, 7)), entry("safe", pid(B, 3))], &[]));
    let local = table.insert_local("mine-for-a", pid(A, 8));
    assert_eq!(&*local, "mine-for-a");
    table.node_down(&node(A));
    assert_eq!(table.len(), 4, "node_down only marks: it runs under the membership lock");
    assert!(table.has_lost());
    assert_eq!(table.flush_lost().len(), 2);
    assert!(!table.has_lost());
    assert_eq!(table.len(), 2, "the local registration of a's process is left to its watch");
    assert!(holder(&table, "safe").is_some() && holder(&table, "mine-for-a").is_some());
}

#[test]
fn a_removal_from_another_registrar_or_for_another_process_is_ignored() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    assert!(table.remove_if("x", &node(B), None, UnregisterReason::Unregistered).is_none());
    assert!(table.remove_if("x", &node(A), Some(&pid(A, 9)), UnregisterReason::ProcessExited).is_none());
    assert!(table.remove_if("x", &node(A), None, UnregisterReason::Unregistered).is_some());
}

/// A registered `x` on b while this node still holds a's `x` (a is being lost: b had already removed it, so b
/// never sees the conflict and keeps its registration). When a's names go, b's comes back here: the tables agree.
#[test]
fn a_conflicts_loser_on_a_live_node_takes_the_name_when_the_winners_node_is_lost() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    let changes = receive(&mut table, B, incremental(vec![entry("x", pid(B, 2))], &[]));
    assert!(matches!(&changes[..], [Change::Conflict { .. }]));
    assert_eq!(holder(&table, "x"), Some(pid(A, 1)), "a's node sorts first");
    table.node_down(&node(A));
    let changes = table.flush_lost();
    assert!(changes.iter().any(|c| matches!(c, Change::Added { name, pid: p } if &**name == "x" && *p == pid(B, 2))));
    assert_eq!(holder(&table, "x"), Some(pid(B, 2)));
}

/// The loser's node saw the conflict and ended it (it unregisters the name): nothing comes back.
#[test]
fn a_conflicts_loser_that_ended_does_not_come_back() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    receive(&mut table, B, incremental(vec![entry("x", pid(B, 2))], &[]));
    receive(&mut table, B, incremental(vec![], &["x"]));
    assert_eq!(holder(&table, "x"), Some(pid(A, 1)), "b's removal of its own loser leaves a's");
    table.node_down(&node(A));
    table.flush_lost();
    assert_eq!(holder(&table, "x"), None);
}

/// The winner's registrar frees the name while the loser's node (which never saw the conflict) still runs it.
#[test]
fn a_conflicts_loser_takes_the_name_when_the_winner_unregisters() {
    let mut table = table();
    receive(&mut table, A, incremental(vec![entry("x", pid(A, 1))], &[]));
    receive(&mut table, B, incremental(vec![entry("x", pid(B, 2))], &[]));
    receive(&mut table, A, incremental(vec![], &["x"]));
    assert_eq!(holder(&table, "x"), Some(pid(B, 2)));
}
