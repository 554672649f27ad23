//! A cluster node that prints nodes joining and leaving, until Ctrl+C (then it leaves gracefully).
//!
//! `cargo run -p noex-cluster --example membership -- [name] [port] [seed ...]`
//! (defaults: `node1 4369`; try `node2 4370 node1@127.0.0.1:4369` in a second terminal).

// An example program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use noex_cluster::{Cluster, ClusterConfig, ClusterEvent};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config = ClusterConfig::new(args.next().unwrap_or_else(|| "node1".into()));
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
    let cluster = match Cluster::start(config).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("Started node {} (Ctrl+C to leave)", cluster.local());
    let mut events = cluster.events();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(ClusterEvent::NodeUp(info)) => println!("Node joined: {}", info.node),
                Ok(ClusterEvent::NodeDown { node, reason }) => println!("Node left: {} ({reason})", node.node),
                Ok(ClusterEvent::DialRefused { node, refusal }) => println!("Cannot join {node}: {refusal}"),
                _ => {}
            },
        }
    }
    println!("Shutting down...");
    cluster.shutdown().await;
    std::process::ExitCode::SUCCESS
}
