//! A cluster node as its own OS process, for tests that kill a node for real.
//!
//! `cluster-node <name> [seed ...]`: starts a node on an ephemeral port with the test cookie, prints
//! `ready <node id>` on stdout, and runs until killed.

// A program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use noex_tests::cluster::config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: cluster-node <name> [seed ...]");
        return std::process::ExitCode::from(2);
    };
    let mut config = config(&name);
    config.seeds = args.collect();
    let cluster = match noex_cluster::Cluster::start(config).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("ready {}", cluster.local());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
    std::process::ExitCode::SUCCESS
}
