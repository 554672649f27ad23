//! A full node: it joins the cluster, starts a counter registered globally as `counter:<name>`, and whenever it
//! learns of another node's counter it adds 1 to it remotely and prints the new value. Ctrl+C leaves gracefully.
//!
//! `cargo run -p noex-remote --example counter_mesh -- [name] [port] [seed ...]`
//! (defaults: `node1 4369`; try `node2 4370 node1@127.0.0.1:4369` in a second terminal).

// An example program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use noex_cluster::{ClusterConfig, ClusterEvent};
use noex_core::{Context, GenServer};
use noex_registry::RegistryEvent;
use noex_remote::{Node, SpawnOptions};

/// Adds what it is called or cast with; a call returns the new value.
struct Counter(i64);

impl GenServer for Counter {
    type Call = i64;
    type Reply = i64;
    type Cast = i64;

    async fn handle_call(&mut self, by: i64, _ctx: &mut Context<Self>) -> i64 {
        self.0 += by;
        self.0
    }

    async fn handle_cast(&mut self, by: i64, _ctx: &mut Context<Self>) {
        self.0 += by;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "node1".into());
    let mut config = ClusterConfig::new(name.clone());
    if let Some(port) = args.next() {
        match port.parse() {
            Ok(port) => config.port = port,
            Err(_) => {
                eprintln!("error: port must be a number from 0 to 65535, got '{port}'");
                return std::process::ExitCode::from(2);
            }
        }
    }
    config.seeds = args.collect();
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    node.remote().behaviours().register("counter", |start: i64| Ok(Counter(start)));
    let mine = format!("counter:{name}");
    let mut names = node.registry().events();
    let mut cluster = node.cluster().events();
    if let Err(error) = node.remote().spawn("counter", node.id(), SpawnOptions::global(&mine)).await {
        eprintln!("error: cannot start {mine}: {error}");
    }
    println!("Started node {} with {mine} (Ctrl+C to leave)", node.id());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = cluster.recv() => match event {
                Ok(ClusterEvent::NodeUp(info)) => println!("Node joined: {}", info.node),
                Ok(ClusterEvent::NodeDown { node, reason }) => println!("Node left: {} ({reason})", node.node),
                Ok(ClusterEvent::DialRefused { node, refusal }) => println!("Cannot join {node}: {refusal}"),
                _ => {}
            },
            event = names.recv() => match event {
                Ok(RegistryEvent::Registered { name, pid }) if name != mine && name.starts_with("counter:") => {
                    let counter = node.runtime().remote_ref::<Counter>(&pid);
                    match counter.call_timeout(1, Duration::from_secs(5)).await {
                        Ok(value) => println!("{name} on {} is now {value}", pid.node()),
                        Err(error) => println!("{name}: {error}"),
                    }
                }
                Ok(RegistryEvent::Unregistered { name, reason, .. }) => println!("{name} is gone ({reason:?})"),
                _ => {}
            },
        }
    }
    println!("Shutting down...");
    node.shutdown(Duration::from_secs(5)).await;
    std::process::ExitCode::SUCCESS
}
