//! The table step by step: local joins and leaves with repeats, a member's end, peers' incremental frames and
//! full syncs, lost nodes, and frames that break the rules (which change nothing).

use noex_core::{NodeName, Pid};
use noex_proto::{FullSync, GroupPids, GroupsSync};

use super::*;

const A: &str = "a@127.0.0.1:1";
const B: &str = "b@127.0.0.1:2";
const C: &str = "c@127.0.0.1:3";

fn name(node: &str) -> NodeName {
    NodeName::new(node)
}

fn pid(node: &str, id: u64) -> Pid {
    Pid::new(name(node), 1, id)
}

fn table() -> ScopeState {
    let mut state = ScopeState::new(name(A));
    state.node_up(name(B), 1);
    state.node_up(name(C), 1);
    state
}

fn sync(joined: &[(&str, Vec<Pid>)], left: &[(&str, Vec<Pid>)], full: Option<(u64, bool, bool)>) -> GroupsSync {
    let list = |groups: &[(&str, Vec<Pid>)]| {
        groups.iter().map(|(group, pids)| GroupPids { group: group.to_string(), pids: pids.clone() }).collect()
    };
    GroupsSync {
        scope: "s".into(),
        joined: list(joined),
        left: list(left),
        full: full.map(|(id, first, last)| FullSync { id, first, last }),
        answer_wanted: false,
    }
}

fn join(group: &str, pids: Vec<Pid>) -> Change {
    Change::Join { group: group.into(), pids }
}

fn leave(group: &str, pids: Vec<Pid>) -> Change {
    Change::Leave { group: group.into(), pids }
}

fn applied(received: Received) -> Vec<Change> {
    match received {
        Received::Applied(changes) => changes,
        other => panic!("not applied: {other:?}"),
    }
}

#[test]
fn local_joins_keep_repeats_and_a_leave_removes_one() {
    let mut state = table();
    let p = pid(A, 1);
    assert_eq!(state.join_local("g".into(), vec![p.clone()]), join("g", vec![p.clone()]));
    state.join_local("g".into(), vec![p.clone()]);
    assert_eq!(state.members("g"), vec![p.clone(), p.clone()]);
    assert_eq!(state.leave_local("g", std::slice::from_ref(&p)), Some(leave("g", vec![p.clone()])));
    assert_eq!(state.local_members("g"), vec![p.clone()]);
    assert!(state.is_local_member(&p));
    assert_eq!(state.leave_local("g", std::slice::from_ref(&p)), Some(leave("g", vec![p.clone()])));
    assert_eq!(state.leave_local("g", std::slice::from_ref(&p)), None, "not joined any more");
    assert!(!state.is_local_member(&p));
    assert!(state.groups().is_empty() && state.local_groups().is_none());
    state.check();
}

#[test]
fn a_local_member_that_ends_leaves_every_group_once_per_membership() {
    let mut state = table();
    let (p, q) = (pid(A, 1), pid(A, 2));
    state.join_local("g".into(), vec![p.clone(), q.clone(), p.clone()]);
    state.join_local("h".into(), vec![p.clone()]);
    let mut changes = state.local_ended(&p);
    changes.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(changes, vec![leave("g", vec![p.clone(), p.clone()]), leave("h", vec![p.clone()])]);
    assert_eq!(state.members("g"), vec![q.clone()]);
    assert!(state.local_ended(&p).is_empty(), "a second end changes nothing");
    state.check();
}

#[test]
fn incremental_frames_from_a_peer_change_only_its_members() {
    let mut state = table();
    let (b1, b2) = (pid(B, 1), pid(B, 2));
    state.join_local("g".into(), vec![pid(A, 1)]);
    let changes = applied(state.receive(&name(B), sync(&[("g", vec![b1.clone(), b2.clone()])], &[], None)));
    assert_eq!(changes, vec![join("g", vec![b1.clone(), b2.clone()])]);
    assert_eq!(state.members("g").len(), 3);
    assert_eq!(state.local_members("g"), vec![pid(A, 1)]);
    let changes = applied(state.receive(&name(B), sync(&[], &[("g", vec![b1.clone(), pid(B, 9)])], None)));
    assert_eq!(changes, vec![leave("g", vec![b1])], "a pid that was not a member is skipped");
    assert_eq!(state.members("g"), vec![pid(A, 1), b2]);
    state.check();
}

#[test]
fn a_frame_naming_another_nodes_process_changes_nothing() {
    let mut state = table();
    state.join_local("g".into(), vec![pid(A, 1)]);
    applied(state.receive(&name(C), sync(&[("g", vec![pid(C, 1)])], &[], None)));
    let before = state.members("g");
    // B speaks for A's and C's processes: refused whole, including its own pid in the same frame.
    for frame in [
        sync(&[("g", vec![pid(B, 1), pid(C, 2)])], &[], None),
        sync(&[], &[("g", vec![pid(C, 1)])], None),
        sync(&[], &[("g", vec![pid(A, 1)])], None),
        sync(&[("g", vec![Pid::new(name(B), 7, 1)])], &[], None), // another incarnation of B
        sync(&[("", vec![pid(B, 1)])], &[], None),
        sync(&[("g", vec![])], &[], None),
        sync(&[("x".repeat(MAX_GROUP_LEN + 1).as_str(), vec![pid(B, 1)])], &[], None),
        sync(&[], &[("g", vec![pid(B, 1)])], Some((1, true, true))),
        sync(&[("g", vec![pid(B, 1)])], &[], Some((5, false, true))), // no sync 5 in progress
    ] {
        assert!(matches!(state.receive(&name(B), frame), Received::Invalid(_)));
        assert_eq!(state.members("g"), before);
    }
    let mut bad_scope = sync(&[("g", vec![pid(B, 1)])], &[], None);
    bad_scope.scope = String::new();
    assert!(matches!(state.receive(&name(B), bad_scope), Received::Invalid(_)));
    assert_eq!(state.members("g"), before);
    state.check();
}

#[test]
fn frames_from_a_node_not_connected_are_dropped() {
    let mut state = ScopeState::new(name(A));
    assert_eq!(state.receive(&name(B), sync(&[("g", vec![pid(B, 1)])], &[], None)), Received::NotConnected);
    state.node_up(name(B), 1);
    applied(state.receive(&name(B), sync(&[("g", vec![pid(B, 1)])], &[], None)));
    assert_eq!(state.node_down(&name(B)), vec![leave("g", vec![pid(B, 1)])]);
    assert_eq!(state.receive(&name(B), sync(&[("g", vec![pid(B, 2)])], &[], None)), Received::NotConnected);
    assert!(state.members("g").is_empty());
    state.check();
}

#[test]
fn a_full_sync_replaces_the_senders_members_with_the_difference_as_changes() {
    let mut state = table();
    let (b1, b2, b3) = (pid(B, 1), pid(B, 2), pid(B, 3));
    applied(state.receive(
        &name(B),
        sync(&[("g", vec![b1.clone(), b1.clone(), b2.clone()]), ("h", vec![b2.clone()])], &[], None),
    ));
    // In chunks: nothing changes until the last.
    let first = sync(&[("g", vec![b1.clone()])], &[], Some((4, true, false)));
    assert_eq!(applied(state.receive(&name(B), first)), vec![]);
    assert_eq!(state.members("g").len(), 3, "the old members stand until the last chunk");
    // A change during the sync counts in it.
    assert_eq!(applied(state.receive(&name(B), sync(&[("k", vec![b3.clone()])], &[], None))), vec![]);
    let last = sync(&[("g", vec![b3.clone()])], &[], Some((4, false, true)));
    let mut changes = applied(state.receive(&name(B), last));
    changes.sort_by_key(|c| format!("{c:?}"));
    let mut expected = vec![
        leave("g", vec![b1.clone(), b2.clone()]),
        leave("h", vec![b2.clone()]),
        join("g", vec![b3.clone()]),
        join("k", vec![b3.clone()]),
    ];
    expected.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(changes, expected);
    assert_eq!(state.members("g"), vec![b1, b3.clone()]);
    assert_eq!(state.members("k"), vec![b3]);
    assert!(state.members("h").is_empty());
    // The same full sync again changes nothing.
    let again = sync(&[("g", vec![pid(B, 1), pid(B, 3)]), ("k", vec![pid(B, 3)])], &[], Some((5, true, true)));
    assert_eq!(applied(state.receive(&name(B), again)), vec![]);
    // An empty one removes everything of B's.
    assert_eq!(applied(state.receive(&name(B), sync(&[], &[], Some((6, true, true))))).len(), 2);
    assert!(state.groups().is_empty());
    state.check();
}

#[test]
fn a_lost_node_takes_its_members_and_its_unfinished_sync() {
    let mut state = table();
    state.join_local("g".into(), vec![pid(A, 1)]);
    applied(state.receive(&name(B), sync(&[("g", vec![pid(B, 1)])], &[], None)));
    applied(state.receive(&name(C), sync(&[("g", vec![pid(C, 1)])], &[], None)));
    applied(state.receive(&name(B), sync(&[("h", vec![pid(B, 2)])], &[], Some((1, true, false)))));
    let held = state.node_groups(&name(B));
    let changes = state.node_down(&name(B));
    assert_eq!(changes, vec![leave("g", vec![pid(B, 1)])]);
    assert!(replay(held, &changes).is_empty(), "the leaves are exactly what B held");
    assert!(state.node_groups(&name(B)).is_empty());
    assert_eq!(state.members("g"), vec![pid(A, 1), pid(C, 1)]);
    state.node_up(name(B), 2);
    let chunk = sync(&[("h", vec![Pid::new(name(B), 2, 5)])], &[], Some((1, false, true)));
    assert!(matches!(state.receive(&name(B), chunk), Received::Invalid(_)), "the old sync died with its connection");
    assert!(state.members("h").is_empty());
    assert!(state.node_down(&name(A)).is_empty(), "this node's own members never go with a node down");
    state.check();
}
