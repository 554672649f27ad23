//! The cluster observer across in-process nodes: statuses, totals, the cache, pollers, and lost nodes.

use std::sync::Arc;
use std::time::Duration;

use noex_cluster::{FrameKind, NodeId};
use noex_observer::{ClusterObserverEvent, ObservedStatus, QueryError, SnapshotOptions, SnapshotQuery};
use noex_proto::Frame;
use noex_tests::cluster::wait_connected;
use noex_tests::observer::{observed_node, seed_workload};
use noex_tests::remote::{eventually, full_node, within};

fn fresh(timeout: Duration) -> SnapshotOptions {
    SnapshotOptions::fresh(timeout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_seed_nodes_add_up_to_the_seed_figures() {
    let (a, a_observer) = observed_node("nodeA", &[]).await;
    let (b, b_observer) = observed_node("nodeB", &[a.id()]).await;
    let (c, c_observer) = observed_node("nodeC", &[a.id()]).await;
    for (node, observer) in [(&a, &a_observer), (&b, &b_observer), (&c, &c_observer)] {
        seed_workload(node, observer).await;
    }
    for node in [&a, &b, &c] {
        wait_connected(node.cluster(), 2).await;
    }

    let snapshot = b_observer.cluster_snapshot().await;
    let ids: Vec<&NodeId> = snapshot.nodes.iter().map(|n| &n.node).collect();
    assert_eq!(ids, [b.id(), a.id(), c.id()], "the local node first, then the others by id");
    assert!(snapshot.nodes[0].local && !snapshot.nodes[1].local);
    for node in &snapshot.nodes {
        assert_eq!(node.status, ObservedStatus::Connected, "{}", node.node);
        let figures = node.snapshot.as_ref().expect("a snapshot");
        assert_eq!((figures.process_count, figures.total_messages, figures.total_restarts), (4, 30, 0));
        assert_eq!((figures.servers.len(), figures.supervisors.len()), (3, 1));
        assert_eq!(figures.tree.len(), 1, "one supervisor holding its three workers");
        assert_eq!(figures.tree[0].children.len(), 3);
    }
    let totals = snapshot.aggregated;
    assert_eq!((totals.total_nodes, totals.connected_nodes), (3, 3));
    assert_eq!((totals.processes, totals.servers, totals.supervisors), (12, 9, 3));
    assert_eq!((totals.messages, totals.restarts), (90, 0));
    // Being observed is not a message: the figures do not grow with every poll (unlike noex's).
    let again = b_observer.cluster_snapshot_with(fresh(Duration::from_secs(5))).await;
    assert_eq!(again.aggregated.messages, 90);
    assert_eq!(b_observer.pending_queries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_dies_is_listed_disconnected_and_fails_its_queries_at_once() {
    let (a, observer) = observed_node("a", &[]).await;
    let (b, _b_observer) = observed_node("b", &[a.id()]).await;
    wait_connected(a.cluster(), 1).await;
    let before = observer.cluster_snapshot_with(fresh(Duration::from_secs(5))).await;
    assert_eq!(before.aggregated.connected_nodes, 2);

    b.crash().await;
    eventually("a sees b down", || !a.cluster().is_connected(b.id())).await;
    let after = observer.cluster_snapshot_with(fresh(Duration::from_secs(5))).await;
    assert_eq!(after.nodes.len(), 2, "a node known but down is listed, not dropped");
    assert_eq!(after.nodes[1].status, ObservedStatus::Disconnected);
    assert!(after.nodes[1].snapshot.is_none());
    assert_eq!((after.aggregated.total_nodes, after.aggregated.connected_nodes), (2, 1));
    assert_eq!(
        observer.node_snapshot(b.id(), SnapshotQuery::default(), Duration::from_secs(5)).await,
        Err(QueryError::NotConnected)
    );
    assert_eq!(observer.pending_queries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_service_times_out_and_a_garbled_answer_is_an_error() {
    let (a, observer) = observed_node("a", &[]).await;
    // `silent` runs no observer service; `liar` answers every query with bytes that are not a snapshot.
    let silent = full_node("silent", &[a.id()]).await;
    let liar = full_node("liar", &[a.id()]).await;
    let liar_cluster = liar.cluster().clone();
    liar.cluster().set_handler(FrameKind::Observer, move |from: &NodeId, frame: Frame| {
        if let Frame::ObserverQuery { query_id, .. } = frame {
            let garbage = bytes::Bytes::from_static(&[0xff, 0xff, 0xff]);
            let _ = liar_cluster.send(from, Frame::ObserverReply { query_id, snapshot: garbage });
        }
    });
    wait_connected(a.cluster(), 2).await;

    // Long enough for the liar to answer on a loaded machine; only the silent node waits it out.
    let snapshot = observer.cluster_snapshot_with(fresh(Duration::from_secs(2))).await;
    let status = |id: &NodeId| snapshot.nodes.iter().find(|n| &n.node == id).map(|n| (n.status, n.error.clone()));
    let (liar_status, liar_error) = status(liar.id()).unwrap();
    assert_eq!(liar_status, ObservedStatus::Error);
    assert!(liar_error.unwrap().contains("undecodable snapshot"));
    assert_eq!(status(silent.id()).unwrap().0, ObservedStatus::Timeout);
    assert_eq!(snapshot.aggregated.connected_nodes, 1);
    assert_eq!(observer.pending_queries(), 0, "timed-out queries are forgotten");

    let mut events = Vec::new();
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let polling = observer.start_polling_with(Duration::from_secs(60), fresh(Duration::from_secs(2)), move |event| {
        let _ = sender.send(event);
    });
    // The first round reports both failures, then the update.
    while events.len() < 3 {
        events.push(within("a poll round", received.recv()).await.expect("an event"));
    }
    polling.stop();
    assert!(events.contains(&ClusterObserverEvent::NodeTimeout(silent.id().clone())));
    assert!(events.iter().any(|e| matches!(e, ClusterObserverEvent::NodeError { node, .. } if node == liar.id())));
    assert!(matches!(events[2], ClusterObserverEvent::SnapshotUpdate(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_recent_snapshots_unless_bypassed() {
    let (a, observer) = observed_node("a", &[]).await;
    let (_b, _b_observer) = observed_node("b", &[a.id()]).await;
    wait_connected(a.cluster(), 1).await;
    let first = observer.cluster_snapshot().await;
    let cached = observer.cluster_snapshot().await;
    assert!(Arc::ptr_eq(&first, &cached), "served from the cache");
    let bypassed = observer.cluster_snapshot_with(fresh(Duration::from_secs(5))).await;
    assert!(!Arc::ptr_eq(&first, &bypassed));
    observer.invalidate_cache();
    assert!(!Arc::ptr_eq(&bypassed, &observer.cluster_snapshot().await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_poller_keeps_its_own_interval_until_stopped() {
    let (a, observer) = observed_node("a", &[]).await;
    let (_b, _b_observer) = observed_node("b", &[a.id()]).await;
    wait_connected(a.cluster(), 1).await;
    let (fast_tx, mut fast) = tokio::sync::mpsc::unbounded_channel();
    let (slow_tx, mut slow) = tokio::sync::mpsc::unbounded_channel();
    let fast_polling = observer.start_polling(Duration::from_millis(20), move |event| {
        if let ClusterObserverEvent::SnapshotUpdate(snapshot) = event {
            let _ = fast_tx.send(snapshot.aggregated.connected_nodes);
        }
    });
    let slow_polling = observer.start_polling(Duration::from_secs(3600), move |event| {
        if let ClusterObserverEvent::SnapshotUpdate(snapshot) = event {
            let _ = slow_tx.send(snapshot.aggregated.connected_nodes);
        }
    });
    // Both poll at once; then only the fast one polls again.
    assert_eq!(within("the slow poller's first round", slow.recv()).await, Some(2));
    for _ in 0..5 {
        assert_eq!(within("a fast round", fast.recv()).await, Some(2));
    }
    assert!(slow.try_recv().is_err(), "the slow poller has its own interval");
    fast_polling.stop();
    drop(slow_polling);
    // Once stopped, the pollers' handlers (and their senders) are gone.
    assert_eq!(within("the fast poller to end", async { while fast.recv().await.is_some() {} }).await, ());
    assert_eq!(within("the slow poller to end", slow.recv()).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_observer_reports_user_processes_starting_and_stopping() {
    use noex_observer::ObserverEvent;
    let (a, observer) = observed_node("a", &[]).await;
    let mut events = observer.local().events();
    let worker = a
        .runtime()
        .start_with(noex_tests::observer::Worker::default(), noex_core::StartOptions::named("w"))
        .await
        .unwrap();
    let started = within("started", events.recv()).await.expect("an event");
    assert!(matches!(started, ObserverEvent::ProcessStarted { ref name, .. } if name.as_deref() == Some("w")));
    worker.stop(noex_core::ExitReason::Shutdown, Duration::from_secs(1)).await.unwrap();
    let stopped = within("stopped", events.recv()).await.expect("an event");
    assert_eq!(
        stopped,
        ObserverEvent::ProcessStopped {
            pid: worker.pid().clone(),
            name: Some("w".into()),
            reason: noex_core::ExitReason::Shutdown
        }
    );
}
