//! Big meshes in one process (formation with chain and star seeding, one connection per pair, no flap), and
//! what a node does about nodes that are gone (no redial after a goodbye, forgetting after `forget_after`).

use std::time::Duration;

use noex_cluster::{Cluster, ClusterConfig, ClusterEvent, FrameKind, NodeStatus};
use noex_tests::cluster::{MembershipCounter, config, node, wait_connected, wait_down};
use tokio::net::TcpListener;

/// Nodes in the big-mesh tests: 64 * 63 sockets, past the usual soft limit of 1024 open files.
const MESH: usize = 64;

#[derive(Clone, Copy)]
enum Seeding {
    Chain,
    Star,
}

/// Starts `MESH` nodes seeded as said, each with a membership counter installed before it opens, and waits for the
/// full mesh. Production timers (heartbeats every 5 s), not the fast test ones: 4032 links heartbeating every
/// 100 ms would be a load test of their own.
async fn full_mesh(seeding: Seeding) -> Vec<(Cluster, MembershipCounter)> {
    noex_cluster::raise_fd_limit().expect("the soft limit on open files can be raised");
    let mut nodes: Vec<(Cluster, MembershipCounter)> = Vec::with_capacity(MESH);
    for i in 0..MESH {
        let seed = match seeding {
            Seeding::Chain => nodes.last(),
            Seeding::Star => nodes.first(),
        };
        let defaults = ClusterConfig::new("x");
        let config = ClusterConfig {
            seeds: seed.map(|(seed, _)| vec![seed.local().to_string()]).unwrap_or_default(),
            heartbeat_interval: defaults.heartbeat_interval,
            failure_timeout: defaults.failure_timeout,
            ..config(&format!("n{i}"))
        };
        let cluster = Cluster::bind(config).await.expect("node binds");
        let counter = MembershipCounter::default();
        cluster.set_handler(FrameKind::Observer, counter.clone());
        cluster.open();
        nodes.push((cluster, counter));
    }
    // A mesh forms in a few seconds on two idle cores (release build: well under one); a debug build on a machine
    // busy with other builds takes several times that, hence a deadline of its own.
    tokio::time::timeout(Duration::from_secs(60), async {
        for (cluster, _) in &nodes {
            let mut events = cluster.events();
            while cluster.node_count() < MESH - 1 {
                if let Ok(ClusterEvent::NodeDown { node, reason }) = events.recv().await {
                    panic!("{} reported {} down ({reason}) while the mesh formed", cluster.local(), node.node);
                }
            }
        }
    })
    .await
    .expect("the mesh forms");
    nodes
}

/// Every node is connected to every other over one connection that never flapped: each node's layers heard of
/// each peer exactly once, and of no node going down.
async fn assert_one_connection_per_pair(nodes: Vec<(Cluster, MembershipCounter)>) {
    for (cluster, counter) in &nodes {
        let peers: Vec<_> = cluster.connections().into_iter().map(|(node, _)| node).collect();
        assert_eq!(peers.len(), MESH - 1, "{} is connected to {} nodes", cluster.local(), peers.len());
        assert_eq!(
            (counter.ups(), counter.downs()),
            (MESH - 1, 0),
            "{}: one node_up per peer and no node_down while the mesh formed",
            cluster.local()
        );
    }
    for (cluster, _) in &nodes {
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "flaps under load: a NodeDown (connection_closed or heartbeat_timeout) while 64 nodes form; see the mesh-scale report"]
async fn a_64_node_mesh_seeded_in_a_chain_forms_with_one_connection_per_pair() {
    assert_one_connection_per_pair(full_mesh(Seeding::Chain).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "flaps under load: a NodeDown (connection_closed or heartbeat_timeout) while 64 nodes form; see the mesh-scale report"]
async fn a_64_node_mesh_seeded_from_one_node_forms_with_one_connection_per_pair() {
    assert_one_connection_per_pair(full_mesh(Seeding::Star).await).await;
}

/// Whether anything dials `port` within `window` (a listener put where a node that is gone used to be).
async fn dialed_within(listener: &TcpListener, window: Duration) -> bool {
    tokio::time::timeout(window, listener.accept()).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_said_goodbye_is_not_redialed() {
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    wait_connected(&a, 1).await;
    let mut events = a.events();
    let b_id = b.local().clone();
    b.shutdown().await;
    wait_down(&mut events, &b_id).await;
    // Something listens where b was, and a meets a newcomer meanwhile (membership news of its own).
    let listener = TcpListener::bind(("127.0.0.1", b_id.port())).await.expect("b's port is free again");
    let c = node("c", &[a.local()]).await;
    wait_connected(&c, 1).await;
    // Test timers redial within reconnect_max (500 ms), so a redial would come well within this window.
    assert!(!dialed_within(&listener, Duration::from_millis(1500)).await, "a redialed a node that said goodbye");
    let listed = a.nodes().into_iter().find(|(info, _)| info.node == b_id).map(|(_, status)| status);
    assert_eq!(listed, Some(NodeStatus::Disconnected), "remembered until forget_after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_learned_from_a_peer_is_forgotten_after_forget_after() {
    let forget_after = Duration::from_millis(1500);
    let quick = |name: &str, seeds: Vec<String>| ClusterConfig { forget_after, seeds, ..config(name) };
    let a = Cluster::start(quick("a", vec![])).await.unwrap();
    let b = Cluster::start(quick("b", vec![a.local().to_string()])).await.unwrap();
    // c is seeded with b only: a learns of it from b's gossip, so a does not dial it for ever.
    let c = Cluster::start(quick("c", vec![b.local().to_string()])).await.unwrap();
    wait_connected(&a, 2).await;
    let c_id = c.local().clone();
    let mut events = a.events();
    c.crash().await;
    wait_down(&mut events, &c_id).await;
    let down_at = tokio::time::Instant::now();
    noex_tests::remote::eventually("a forgets c", || a.nodes().iter().all(|(info, _)| info.node != c_id)).await;
    assert!(down_at.elapsed() >= forget_after - Duration::from_millis(100), "not before forget_after");
    // No dial loop is left behind: nothing comes to c's port any more.
    let listener = TcpListener::bind(("127.0.0.1", c_id.port())).await.expect("c's port is free again");
    assert!(!dialed_within(&listener, Duration::from_millis(1000)).await, "a still dials a forgotten node");
    assert_eq!(a.nodes().len(), 1, "only b is left: {:?}", a.nodes());
}
