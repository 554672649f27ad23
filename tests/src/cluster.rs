//! In-process cluster nodes for tests: port 0, a fixed cookie, fast timers, and event waits with deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use noex_cluster::{Cluster, ClusterConfig, ClusterEvent, Cookie, DownReason, FrameHandler, NodeId, NodeInfo};
use noex_proto::Frame;
use tokio::sync::broadcast;

/// The cookie every test node shares unless a test says otherwise.
pub const TEST_COOKIE: &str = "noex-test-cookie";

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A configuration for a test node: ephemeral port, test cookie, timers short enough for fast tests.
pub fn config(name: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(name);
    config.port = 0;
    config.cookie = Some(Cookie::new(TEST_COOKIE));
    config.heartbeat_interval = Duration::from_millis(100);
    config.failure_timeout = Duration::from_millis(1000);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(500);
    config
}

/// Starts a test node seeded with `seeds`.
pub async fn node(name: &str, seeds: &[&NodeId]) -> Cluster {
    let mut config = config(name);
    config.seeds = seeds.iter().map(|seed| seed.to_string()).collect();
    Cluster::start(config).await.expect("test node starts")
}

/// A test node reachable only through a proxy in front of it: it advertises the proxy's port and listens on
/// another, so every connection to it crosses the proxy (to pause, cut or slow).
pub async fn behind_proxy(name: &str) -> (crate::proxy::Proxy, Cluster) {
    let proxy = crate::proxy::Proxy::start().await;
    let config = ClusterConfig {
        port: proxy.address().port(),
        bind: Some("127.0.0.1:0".parse().expect("a socket address")),
        ..config(name)
    };
    let node = Cluster::start(config).await.expect("test node starts");
    proxy.set_target(node.listening_address());
    (proxy, node)
}

/// Two nodes bound on ports free a moment ago, each seeded with the other, neither open yet: opened together,
/// they dial each other at the same moment.
pub async fn bound_pair(a: &str, b: &str) -> (Cluster, Cluster) {
    // A port free a moment ago may be taken by then (as the local end of a connection, say): try others.
    for _ in 0..10 {
        let (a_port, b_port) = (free_port(), free_port());
        if a_port == b_port {
            continue;
        }
        let a_id = format!("{a}@127.0.0.1:{a_port}");
        let b_id = format!("{b}@127.0.0.1:{b_port}");
        let a = Cluster::bind(ClusterConfig { port: a_port, seeds: vec![b_id], ..config(a) });
        let b = Cluster::bind(ClusterConfig { port: b_port, seeds: vec![a_id], ..config(b) });
        match tokio::join!(a, b) {
            (Ok(a), Ok(b)) => return (a, b),
            (Ok(bound), Err(_)) | (Err(_), Ok(bound)) => bound.crash().await,
            (Err(_), Err(_)) => {}
        }
    }
    panic!("no two free ports for a pair of test nodes");
}

/// A frame handler that only counts the membership callbacks, to check what the layers above are told.
/// Install it for a kind of frame nothing else in the test uses. Clones share the counts.
#[derive(Clone, Default)]
pub struct MembershipCounter {
    ups: Arc<AtomicUsize>,
    downs: Arc<AtomicUsize>,
}

impl MembershipCounter {
    /// How many times `node_up` was called.
    pub fn ups(&self) -> usize {
        self.ups.load(Ordering::SeqCst)
    }

    /// How many times `node_down` was called.
    pub fn downs(&self) -> usize {
        self.downs.load(Ordering::SeqCst)
    }
}

impl FrameHandler for MembershipCounter {
    fn handle(&self, _: &NodeId, _: Frame) {}

    fn node_up(&self, _: &NodeInfo) {
        self.ups.fetch_add(1, Ordering::SeqCst);
    }

    fn node_down(&self, _: &NodeInfo, _: DownReason) {
        self.downs.fetch_add(1, Ordering::SeqCst);
    }
}

/// A port that was free a moment ago (for tests that must name a node before it exists).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// Waits for the first event that `wanted` accepts, failing the test after [`DEADLINE`].
pub async fn wait_for(
    events: &mut broadcast::Receiver<ClusterEvent>,
    mut wanted: impl FnMut(&ClusterEvent) -> bool,
) -> ClusterEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("timed out waiting for a cluster event")
}

/// Waits until `node` is reported up.
pub async fn wait_up(events: &mut broadcast::Receiver<ClusterEvent>, node: &NodeId) {
    wait_for(events, |e| matches!(e, ClusterEvent::NodeUp(info) if info.node == *node)).await;
}

/// Waits until `node` is reported down; returns the reason.
pub async fn wait_down(events: &mut broadcast::Receiver<ClusterEvent>, node: &NodeId) -> DownReason {
    match wait_for(events, |e| matches!(e, ClusterEvent::NodeDown { node: info, .. } if info.node == *node)).await {
        ClusterEvent::NodeDown { reason, .. } => reason,
        _ => unreachable!("filtered"),
    }
}

/// Waits until `cluster` is connected to exactly `count` nodes (re-checked at every membership event).
pub async fn wait_connected(cluster: &Cluster, count: usize) {
    let mut events = cluster.events();
    tokio::time::timeout(DEADLINE, async {
        while cluster.connected().len() != count {
            let _ = events.recv().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} has {:?}, wanted {count} peers", cluster.local(), cluster.connected()));
}
