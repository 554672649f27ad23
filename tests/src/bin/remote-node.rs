//! A full node (runtime, cluster, registry, remote) as its own OS process, for tests that kill a node for real.
//!
//! `remote-node <name> [seed ...]`: starts a node on an ephemeral port with the test cookie and the test
//! behaviours, prints `ready <node id>` on stdout, and runs until killed.

// A program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use noex_tests::remote::full_node;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: remote-node <name> [seed ...]");
        return std::process::ExitCode::from(2);
    };
    let seeds: Vec<noex_cluster::NodeId> = match args.map(|seed| seed.parse()).collect() {
        Ok(seeds) => seeds,
        Err(error) => {
            eprintln!("bad seed: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let node = full_node(&name, &seeds.iter().collect::<Vec<_>>()).await;
    println!("ready {}", node.id());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
    std::process::ExitCode::SUCCESS
}
