//! The observer on nodes of any size: exact totals from a node with more processes than one frame could list,
//! the top N of another node, pages that fit a frame, and a flood of queries answered within bounds.

use std::time::Duration;

use noex_cluster::FrameKind;
use noex_core::ServerRef;
use noex_observer::{
    ClusterObserver, MAX_WAITING_PER_NODE, ObservedStatus, QueryError, SnapshotOptions, SnapshotQuery, SortKey,
    decode_reply,
};
use noex_proto::Frame;
use noex_remote::Node;
use noex_tests::cluster::{config, wait_connected};
use noex_tests::observer::{Held, Worker, idle_servers, observed_node, observed_node_with};
use noex_tests::remote::{eventually, full_node, within};

/// Long enough for a large node's answer on a loaded machine; a failing test still fails, only later.
const SLOW: Duration = Duration::from_secs(30);

/// Processes on the node with small frames: listing them all would take about five of its frames.
const PROCESSES: u64 = 5_000;

/// A node with more processes than one of its frames could list lists the default 100 and counts the rest, and
/// the cluster totals stay exact. (The frame limit is lowered to 64 KiB so that the test stays fast: the same
/// happened at the default 8 MiB from ~107k processes, when a snapshot listed them all and answered `error`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_more_processes_than_a_frame_holds_reports_exact_totals() {
    let (a, observer) = observed_node("a", &[]).await;
    let (b, _b_observer, _idle) = small_frame_node(&a).await;
    let (_c, _c_observer) = observed_node("c", &[a.id()]).await;
    wait_connected(a.cluster(), 2).await;

    let snapshot = observer.cluster_snapshot_with(SnapshotOptions::fresh(SLOW)).await;
    let entry = snapshot.nodes.iter().find(|n| &n.node == b.id()).expect("b is listed");
    assert_eq!(entry.status, ObservedStatus::Connected, "{:?}", entry.error);
    let figures = entry.snapshot.as_ref().expect("b's snapshot");
    assert_eq!((figures.process_count, figures.server_count, figures.supervisor_count), (PROCESSES, PROCESSES, 0));
    assert_eq!((figures.servers.len() as u64, figures.unlisted), (100, PROCESSES - 100), "the default lists 100");
    assert_eq!((figures.tree.len() as u64, figures.tree_unlisted), (100, PROCESSES - 100));
    let totals = snapshot.aggregated;
    assert_eq!((totals.connected_nodes, totals.processes, totals.servers), (3, PROCESSES, PROCESSES));

    let totals_only = observer.node_snapshot(b.id(), SnapshotQuery::totals(), SLOW).await.expect("totals");
    assert_eq!((totals_only.process_count, totals_only.listed(), totals_only.tree.len()), (PROCESSES, 0, 0));
}

/// Asked for pages larger than its frames, a node lists fewer processes, so that its answer fits, and says
/// where the next page starts: paging through it lists every process once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_shrink_to_fit_the_frame_and_cover_every_process() {
    let (a, observer) = observed_node("a", &[]).await;
    let (b, b_observer, idle) = small_frame_node(&a).await;
    wait_connected(a.cluster(), 1).await;

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = observer.node_snapshot(b.id(), SnapshotQuery::page(after, 10_000), SLOW).await.expect("a page");
        assert!((page.servers.len() as u64) < PROCESSES, "a page of {PROCESSES} does not fit 64 KiB");
        assert_eq!(page.process_count, PROCESSES);
        assert_eq!(page.listed() + page.unlisted, page.process_count);
        seen.extend(page.servers.iter().map(|s| s.pid.id()));
        match page.next_page {
            Some(next) => after = next,
            None => break,
        }
    }
    let mut expected: Vec<u64> = idle.iter().map(|s| s.pid().id()).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every process once, in spawn order");
    let stats = b_observer.service_stats();
    assert!(stats.snapshots > stats.answered, "some pages were taken again, smaller: {stats:?}");
}

/// The top 3 by mailbox length of another node are the three longest mailboxes, longest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_top_n_of_another_node_is_the_right_n() {
    let (a, observer) = observed_node("a", &[]).await;
    let (b, b_observer) = observed_node("b", &[a.id()]).await;
    let _idle = idle_servers(&b, 2_000).await;
    let (gate, closed) = tokio::sync::watch::channel(false);
    let mut held: Vec<(ServerRef<Held>, u64)> = Vec::new();
    for waiting in [5, 9, 1, 7] {
        let server = b.runtime().start(Held(closed.clone())).await.expect("a held server");
        for _ in 0..waiting {
            server.cast(());
        }
        held.push((server, waiting));
    }
    wait_connected(a.cluster(), 1).await;
    // Each held server takes its first cast out of the mailbox and holds it: the others wait.
    let waiting = || b_observer.local().snapshot(SnapshotQuery::totals()).total_mailbox;
    eventually("the held servers to hold their first casts", || waiting() == 22 - 4).await;
    let top = observer.node_snapshot(b.id(), SnapshotQuery::top(SortKey::MailboxLen, 3), SLOW).await.expect("top");
    let listed: Vec<(u64, u64)> = top.servers.iter().map(|s| (s.pid.id(), s.mailbox_len)).collect();
    let expected: Vec<(u64, u64)> = [1, 3, 0].iter().map(|&i| (held[i].0.pid().id(), held[i].1 - 1)).collect();
    assert_eq!(listed, expected);
    assert_eq!((top.process_count, top.unlisted), (2_004, 2_001));
    gate.send_replace(true);
}

/// A peer that sends 1000 queries at once gets 1000 answers: snapshots for as many as may wait (the rest are
/// refused `busy` at once), `bad query` for the unreadable ones. The node never has more than
/// `MAX_WAITING_PER_NODE` of them waiting, and answers the ones that waited together with shared snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_queries_is_bounded_and_every_query_is_answered() {
    const QUERIES: u64 = 1_000;
    let (a, observer) = observed_node("a", &[]).await;
    let _idle = idle_servers(&a, 20_000).await;
    let peer = full_node("peer", &[a.id()]).await;
    let (replies, mut received) = tokio::sync::mpsc::unbounded_channel();
    peer.cluster().set_handler(FrameKind::Observer, move |_: &noex_cluster::NodeId, frame: Frame| {
        if let Frame::ObserverReply { query_id, snapshot } = frame {
            let _ = replies.send((query_id, snapshot));
        }
    });
    wait_connected(peer.cluster(), 1).await;
    for query_id in 1..=QUERIES {
        // Every hundredth is not a query at all.
        let query = if query_id % 100 == 0 { bytes::Bytes::from_static(&[0xff]) } else { bytes::Bytes::new() };
        peer.cluster().send(a.id(), Frame::ObserverQuery { query_id, query }).expect("the query is sent");
    }
    let (mut answered, mut busy, mut bad) = (0, 0, 0);
    let mut ids = Vec::new();
    while ids.len() < QUERIES as usize {
        let (query_id, snapshot) = within("every query answered", received.recv()).await.expect("a reply");
        ids.push(query_id);
        match decode_reply(a.id(), &snapshot) {
            Ok(snapshot) => {
                assert_eq!(snapshot.process_count, 20_000);
                answered += 1;
            }
            Err(QueryError::Busy) => busy += 1,
            Err(QueryError::BadQuery(_)) => bad += 1,
            Err(other) => panic!("query {query_id}: {other}"),
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=QUERIES).collect::<Vec<_>>(), "each query answered once");
    assert_eq!(bad, 10);
    assert!(busy > 0, "a burst of 1000 is more than may wait");
    let stats = observer.service_stats();
    assert_eq!((stats.answered, stats.busy, stats.bad), (answered, busy, bad));
    assert!(stats.peak_waiting <= MAX_WAITING_PER_NODE as u64, "{stats:?}");
    assert!(stats.snapshots <= stats.answered, "{stats:?}");
    assert_eq!(observer.pending_queries(), 0);
}

/// A node seeded with `a`, whose frames hold 64 KiB, with [`PROCESSES`] idle servers.
async fn small_frame_node(a: &Node) -> (Node, ClusterObserver, Vec<ServerRef<Worker>>) {
    let mut small = config("small");
    small.seeds = vec![a.id().to_string()];
    (small.max_frame, small.handshake_max_frame) = (64 << 10, 64 << 10);
    let (b, observer) = observed_node_with(small).await;
    let idle = idle_servers(&b, PROCESSES as usize).await;
    (b, observer, idle)
}
