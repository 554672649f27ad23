//! The walk over synthetic processes, fed in a scrambled order (as the runtime's table gives them).

use std::time::SystemTime;

use noex_core::{NodeName, Pid, ProcessInfo, ProcessKind, ProcessStatus, Strategy, SupervisorInfo};

use super::*;
use crate::SnapshotQuery;

fn pid(id: u64) -> Pid {
    Pid::new(NodeName::new("a@127.0.0.1:1"), 1, id)
}

fn server(id: u64, mailbox: u64, messages: u64) -> ProcessInfo {
    ProcessInfo {
        pid: pid(id),
        kind: ProcessKind::Server,
        name: None,
        status: ProcessStatus::Running,
        messages_processed: messages,
        mailbox_len: mailbox,
        started_at: SystemTime::UNIX_EPOCH,
        system: false,
        parent: None,
        supervisor: None,
    }
}

fn supervisor(id: u64, restarts: u64) -> ProcessInfo {
    let stats = SupervisorInfo { strategy: Strategy::OneForOne, child_count: 0, restarts };
    ProcessInfo { kind: ProcessKind::Supervisor, supervisor: Some(stats), ..server(id, 0, 0) }
}

fn child_of(parent: u64, p: ProcessInfo) -> ProcessInfo {
    ProcessInfo { parent: Some(pid(parent)), ..p }
}

/// `processes` in an order unrelated to their numbers (a fixed permutation: 7919 is prime).
fn scrambled(processes: Vec<ProcessInfo>) -> Vec<ProcessInfo> {
    let n = processes.len();
    assert!(n % 7919 != 0, "not a permutation of {n}");
    (0..n).map(|i| processes[(i * 7919) % n].clone()).collect()
}

fn walk(query: SnapshotQuery, processes: &[ProcessInfo]) -> NodeSnapshot {
    let mut walk = Walk::new(&query);
    for p in processes {
        walk.visit(p);
    }
    walk.finish(SystemTime::UNIX_EPOCH, MemoryStats::default())
}

fn ids(snapshot: &NodeSnapshot) -> Vec<u64> {
    snapshot.servers.iter().map(|s| s.pid.id()).chain(snapshot.supervisors.iter().map(|s| s.pid.id())).collect()
}

#[test]
fn the_top_n_is_the_right_n_and_the_totals_count_everything() {
    // Mailboxes 0..=99 repeated, so ties abound: the older (smaller number) wins them.
    let processes = scrambled((1..=10_000).map(|id| server(id, (id * 37) % 100, id)).collect());
    let snapshot = walk(SnapshotQuery::top(SortKey::MailboxLen, 10), &processes);
    let mut expected: Vec<(u64, u64)> = (1..=10_000).map(|id| ((id * 37) % 100, id)).collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let expected: Vec<u64> = expected.iter().take(10).map(|&(_, id)| id).collect();
    assert_eq!(ids(&snapshot), expected);
    assert!(snapshot.servers.iter().all(|s| s.mailbox_len == 99));
    assert_eq!((snapshot.process_count, snapshot.server_count, snapshot.unlisted), (10_000, 10_000, 9_990));
    assert_eq!(snapshot.total_messages, 10_000 * 10_001 / 2);
    assert_eq!(snapshot.total_mailbox, (1..=10_000u64).map(|id| (id * 37) % 100).sum::<u64>());
    assert_eq!(snapshot.next_page, None);

    let busiest = walk(SnapshotQuery::top(SortKey::MessagesProcessed, 3), &processes);
    assert_eq!(ids(&busiest), [10_000, 9_999, 9_998]);
    let more_than_all = walk(SnapshotQuery::top(SortKey::MailboxLen, 20_000), &processes);
    assert_eq!((more_than_all.servers.len(), more_than_all.unlisted), (10_000, 0));
    let none = walk(SnapshotQuery::top(SortKey::MailboxLen, 0), &processes);
    assert_eq!((none.listed(), none.unlisted), (0, 10_000));
}

#[test]
fn top_by_restarts_ranks_supervisors_and_splits_the_lists_by_kind() {
    let mut processes: Vec<ProcessInfo> = (1..=20).map(|id| server(id, 5, 0)).collect();
    processes.extend([supervisor(21, 4), supervisor(22, 9), supervisor(23, 0)]);
    let snapshot = walk(SnapshotQuery::top(SortKey::Restarts, 3), &scrambled(processes));
    let supervisors: Vec<u64> = snapshot.supervisors.iter().map(|s| s.pid.id()).collect();
    assert_eq!(supervisors, [22, 21]);
    // The third place is a tie at 0 restarts, which the oldest process wins.
    assert_eq!(snapshot.servers.iter().map(|s| s.pid.id()).collect::<Vec<_>>(), [1]);
    assert_eq!((snapshot.server_count, snapshot.supervisor_count, snapshot.total_restarts), (20, 3, 13));
}

#[test]
fn pages_cover_every_process_once_in_spawn_order_even_as_processes_come_and_go() {
    let all: Vec<ProcessInfo> = (1..=50).map(|id| server(id * 3, 0, 0)).collect();
    let mut seen = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        // Between pages, the process just listed ends and a new one starts: the next page neither skips nor
        // repeats the others.
        let live: Vec<ProcessInfo> = all.iter().filter(|p| p.pid.id() != after).cloned().collect();
        let page = walk(SnapshotQuery::page(after, 7), &scrambled(live));
        pages += 1;
        assert!(page.servers.windows(2).all(|w| w[0].pid.id() < w[1].pid.id()), "in spawn order");
        seen.extend(page.servers.iter().map(|s| s.pid.id()));
        assert_eq!(page.listed() + page.unlisted, page.process_count);
        match page.next_page {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, (1..=50).map(|id| id * 3).collect::<Vec<_>>());
    assert_eq!(pages, 8, "seven full pages and one of one");
    let past_the_end = walk(SnapshotQuery::page(150, 7), &all);
    assert_eq!((past_the_end.listed(), past_the_end.next_page), (0, None));
}

#[test]
fn totals_leave_out_system_and_exited_processes_and_list_nothing() {
    let processes = vec![
        server(1, 2, 3),
        supervisor(2, 1),
        ProcessInfo { system: true, ..server(3, 9, 9) },
        ProcessInfo { status: ProcessStatus::Exited, ..server(4, 9, 9) },
    ];
    let snapshot = walk(SnapshotQuery::totals(), &processes);
    assert_eq!((snapshot.process_count, snapshot.server_count, snapshot.supervisor_count), (2, 1, 1));
    assert_eq!((snapshot.system_processes, snapshot.total_messages, snapshot.total_mailbox), (1, 3, 2));
    assert_eq!(snapshot.total_restarts, 1);
    assert_eq!((snapshot.listed(), snapshot.unlisted, snapshot.tree.len(), snapshot.tree_unlisted), (0, 2, 0, 2));
}

#[test]
fn the_tree_is_cut_depth_first_at_its_limit() {
    // 1: supervisor of 2 (server), 3 (supervisor of 4), 5; then standalone servers 6..=1000, and 7 is linked to
    // a server (so it is a root too).
    let mut processes = vec![
        supervisor(1, 0),
        child_of(1, server(2, 0, 0)),
        child_of(1, supervisor(3, 0)),
        child_of(3, server(4, 0, 0)),
        child_of(1, server(5, 0, 0)),
        child_of(6, server(7, 0, 0)),
    ];
    processes.extend((6..=1000).filter(|&id| id != 7).map(|id| server(id, 0, 0)));
    let processes = scrambled(processes);

    let whole = walk(SnapshotQuery::totals().with_tree(6), &processes);
    let top = &whole.tree[0];
    assert_eq!(top.pid.id(), 1);
    let children: Vec<u64> = top.children.iter().map(|c| c.pid.id()).collect();
    assert_eq!(children, [2, 3, 5]);
    assert_eq!(top.children[1].children[0].pid.id(), 4);
    assert_eq!(whole.tree[1].pid.id(), 6, "then standalone servers, oldest first");
    assert_eq!((count(&whole.tree), whole.tree_unlisted), (6, 994));

    let cut = walk(SnapshotQuery::totals().with_tree(3), &processes);
    assert_eq!(cut.tree.len(), 1);
    let children: Vec<u64> = cut.tree[0].children.iter().map(|c| c.pid.id()).collect();
    assert_eq!(children, [2, 3], "depth first: 1, 2, 3, and no room for 3's child");
    assert!(cut.tree[0].children[1].children.is_empty());
    assert_eq!(cut.tree_unlisted, 997);

    let servers = walk(SnapshotQuery::totals().with_tree(8), &processes);
    let roots: Vec<u64> = servers.tree.iter().map(|n| n.pid.id()).collect();
    assert_eq!(roots, [1, 6, 7, 8]);
}
