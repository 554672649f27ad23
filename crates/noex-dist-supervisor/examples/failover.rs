//! Failover across OS processes: three nodes host workers of a distributed supervisor; `kill -9` one of the other
//! nodes and the supervisor's node prints its workers starting again on the survivors.
//!
//! ```text
//! cargo run -p noex-dist-supervisor --example failover -- sup 4369                        # supervises 6 workers
//! cargo run -p noex-dist-supervisor --example failover -- b 4370 sup@127.0.0.1:4369       # hosts workers
//! cargo run -p noex-dist-supervisor --example failover -- c 4371 sup@127.0.0.1:4369       # hosts workers
//! ```
//!
//! Once `b` and `c` have joined, `sup` places two workers on each node (round robin). `kill -9` the process of `b`
//! (or `c`): `sup` prints the lost node and each of its workers moving to another node. Ctrl+C leaves.

// An example program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use noex_cluster::{ClusterConfig, ClusterEvent};
use noex_core::{Context, GenServer};
use noex_dist_supervisor::{DistChildSpec, DistEvent, DistSupervisor, DistSupervisorSpec, NodeSelector, Strategy};
use noex_remote::Node;

/// A worker that does nothing but exist (and answer where it runs).
struct Worker;

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}
}

const WORKERS: usize = 6;
const NODES: usize = 3;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "sup".into());
    let mut config = ClusterConfig::new(name);
    if let Some(port) = args.next() {
        let Ok(port) = port.parse() else {
            eprintln!("error: port must be a number from 0 to 65535, got '{port}'");
            return std::process::ExitCode::from(2);
        };
        config.port = port;
    }
    config.seeds = args.collect();
    // Quicker than the defaults (5 s / 15 s), so that a silent node is noticed within a second too.
    config.heartbeat_interval = Duration::from_millis(200);
    config.failure_timeout = Duration::from_secs(1);
    let supervises = config.seeds.is_empty();
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    node.remote().behaviours().register("worker", |(): ()| Ok(Worker));
    println!("Started node {} (Ctrl+C to leave)", node.id());
    let mut cluster = node.cluster().events();

    if supervises {
        println!("Waiting for {} more nodes...", NODES - 1);
        while node.cluster().node_count() < NODES - 1 {
            let _ = cluster.recv().await;
        }
        let mut spec = DistSupervisorSpec::new(Strategy::OneForOne).selector(NodeSelector::RoundRobin);
        spec.children = (1..=WORKERS).map(|i| DistChildSpec::new(format!("worker-{i}"), "worker")).collect();
        let supervisor = match DistSupervisor::start(&node, spec).await {
            Ok(supervisor) => supervisor,
            Err(error) => {
                eprintln!("error: {error}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut events = supervisor.events();
        for child in supervisor.which_children().await.unwrap_or_default() {
            println!("{} runs on {}", child.id, child.node.map_or("-".into(), |node| node.to_string()));
        }
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                event = events.recv() => match event {
                    Ok(DistEvent::NodeFailureDetected { node, affected }) => {
                        println!("Node {node} lost; restarting {} workers elsewhere", affected.len());
                    }
                    Ok(DistEvent::ChildMigrated { id, from, to, .. }) => println!("{id} moved from {from} to {to}"),
                    Ok(DistEvent::DuplicateStopped { id, node, .. }) => println!("{id}: stopped its old copy on {node}"),
                    Ok(other) => println!("{other:?}"),
                    Err(_) => break,
                },
            }
        }
    } else {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                event = cluster.recv() => match event {
                    Ok(ClusterEvent::NodeUp(info)) => println!("Node joined: {}", info.node),
                    Ok(ClusterEvent::NodeDown { node, reason }) => println!("Node left: {} ({reason})", node.node),
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
    }
    println!("Shutting down...");
    node.shutdown(Duration::from_secs(5)).await;
    std::process::ExitCode::SUCCESS
}
