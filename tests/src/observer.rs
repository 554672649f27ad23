//! In-process nodes with an observer service, set up like the seed's observer nodes: a `one_for_one`
//! supervisor of three workers that have handled ten messages each.

use noex_cluster::{ClusterConfig, NodeId};
use noex_core::{ChildSpec, Context, GenServer, StartOptions, Strategy, Supervisor, SupervisorSpec};
use noex_observer::{ClusterObserver, LocalObserver, SnapshotQuery};
use noex_remote::Node;

use crate::cluster::config;
use crate::remote::eventually;

/// A worker that counts the work it was given.
#[derive(Default)]
pub struct Worker(u64);

impl GenServer for Worker {
    type Call = ();
    type Reply = u64;
    type Cast = ();

    async fn handle_call(&mut self, (): (), _: &mut Context<Self>) -> u64 {
        self.0
    }

    async fn handle_cast(&mut self, (): (), _: &mut Context<Self>) {
        self.0 += 1;
    }
}

/// Starts a node seeded with `seeds` whose observer service is installed before it joins.
pub async fn observed_node(name: &str, seeds: &[&NodeId]) -> (Node, ClusterObserver) {
    let mut config = config(name);
    config.seeds = seeds.iter().map(|seed| seed.to_string()).collect();
    observed_node_with(config).await
}

/// [`observed_node`] from `config` (start from [`config`](crate::cluster::config)).
pub async fn observed_node_with(config: ClusterConfig) -> (Node, ClusterObserver) {
    let node = Node::bind(config).await.expect("test node binds");
    let observer = ClusterObserver::start(LocalObserver::new(node.runtime()), node.cluster());
    node.open();
    (node, observer)
}

/// Gives `node` the seed's processes: a supervisor with three workers, ten casts to each, all handled.
pub async fn seed_workload(node: &Node, observer: &ClusterObserver) {
    let spec = (1..=3).fold(SupervisorSpec::new(Strategy::OneForOne), |spec, i| {
        spec.child(ChildSpec::worker(format!("worker-{i}"), Worker::default).named(format!("worker-{i}")))
    });
    Supervisor::start(node.runtime(), spec, StartOptions::named("supervisor")).await.expect("supervisor starts");
    for i in 1..=3 {
        let pid = node.runtime().whereis(&format!("worker-{i}")).expect("a named worker");
        let worker = node.runtime().server_ref::<Worker>(&pid).expect("a worker");
        for _ in 0..10 {
            worker.cast(());
        }
    }
    // A call would count as a message too: watch the count instead.
    eventually("the workers handled their 30 casts", || {
        observer.local().snapshot(SnapshotQuery::totals()).total_messages == 30
    })
    .await;
}

/// Starts `count` idle servers on `node` and returns them (they stop when dropped with their node).
pub async fn idle_servers(node: &Node, count: usize) -> Vec<noex_core::ServerRef<Worker>> {
    let mut servers = Vec::with_capacity(count);
    for _ in 0..count {
        servers.push(node.runtime().start(Worker::default()).await.expect("an idle server starts"));
    }
    servers
}

/// A server whose first cast waits until the gate opens: the casts after it wait in its mailbox.
pub struct Held(pub tokio::sync::watch::Receiver<bool>);

impl GenServer for Held {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn handle_call(&mut self, (): (), _: &mut Context<Self>) {}

    async fn handle_cast(&mut self, (): (), _: &mut Context<Self>) {
        let _ = self.0.wait_for(|open| *open).await;
    }
}
