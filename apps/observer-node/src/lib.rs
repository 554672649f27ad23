//! `observer-node`: the seed's cluster observer example. A cluster node that runs a `one_for_one` supervisor
//! with three workers, gives them some work, and prints its own figures, then the whole cluster's (totals and a
//! per-node breakdown) right away and every `--interval`, with a line for every node that joins, leaves, does
//! not answer or answers with an error. Ctrl+C leaves the cluster gracefully.
//!
//! ```text
//! cargo run -p observer-node -- --name nodeA --port 4369
//! cargo run -p observer-node -- --name nodeB --port 4370 --seed nodeA@127.0.0.1:4369
//! ```

// A program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod print;
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use noex_cluster::{ClusterConfig, ClusterEvent, Cookie};
use noex_observer::{ClusterObserver, ClusterObserverEvent, CountingAllocator, LocalObserver};
use noex_remote::Node;

use crate::cli::Cli;
use crate::print::rule;

/// How long processes get to stop, in all, when the node shuts down (the goodbye adds at most half a second):
/// Ctrl+C prints `Shutdown complete.` within 2 s whatever the peers do.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs the program; `heap` is the program's global allocator, if it counts (see `main.rs`).
pub fn main(heap: Option<&'static CountingAllocator>) -> ExitCode {
    let cli = Cli::parse();
    if let Some(warning) = cli.warning() {
        eprintln!("{warning}");
    }
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: invalid --log filter {:?}: {error}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Fatal error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, heap)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Fatal error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli, heap: Option<&'static CountingAllocator>) -> anyhow::Result<()> {
    let mut stopping = Stopping::install();
    println!("{}\n  Cluster Observer Example\n{}\n", rule('='), rule('='));
    let mut config = ClusterConfig::new(cli.name.clone());
    config.host = cli.host.clone();
    config.port = cli.port;
    config.seeds = cli.seeds.clone();
    config.cookie = cli.cookie.as_deref().map(Cookie::new);
    config.cookie_file = cli.cookie_file.clone();
    let node = Node::bind(config).await.context("cannot start the node")?;
    println!("Starting node: {}", node.id());
    let mut local = LocalObserver::new(node.runtime());
    if let Some(heap) = heap {
        local = local.with_heap(heap);
    }
    let observer = ClusterObserver::start(local.clone(), node.cluster());
    // Subscribed before joining: no join goes unprinted.
    let events = node.cluster().events();
    node.open();
    println!("Node ID: {}", node.id());
    tokio::spawn(print_membership(events));

    println!("\nCreating local processes...");
    let supervisor = match workers::start(node.runtime(), &cli.name, &local).await {
        Ok(supervisor) => supervisor,
        Err(error) => {
            // Joined already: leave gracefully, so that peers do not take it for a crash.
            node.shutdown(STOP_TIMEOUT).await;
            return Err(error.context("cannot start the workers"));
        }
    };
    println!("  Created supervisor with 3 workers");
    println!("  Generated initial activity on workers");

    println!("\n{}\nCluster Observer\n{}", rule('-'), rule('-'));
    println!("{}", print::local(&local.snapshot()));
    println!("\n{}\nNode is running. Press Ctrl+C to exit.\n{}", rule('='), rule('='));
    let polling = observer.start_polling(cli.interval, |event| match event {
        ClusterObserverEvent::SnapshotUpdate(snapshot) => {
            println!("\n{}\nCluster Update\n{}{}", rule('-'), rule('-'), print::cluster(&snapshot));
        }
        ClusterObserverEvent::NodeTimeout(node) => println!("\n[WARN] Node {node} is not responding"),
        ClusterObserverEvent::NodeError { node, error } => println!("\n[ERROR] Node {node}: {error}"),
    });

    stopping.requested().await;
    println!("\nShutting down...");
    polling.stop();
    // The supervisor stops with every other process, its workers in reverse start order, before the goodbye.
    drop(supervisor);
    node.shutdown(STOP_TIMEOUT).await;
    println!("Shutdown complete.");
    Ok(())
}

async fn print_membership(mut events: tokio::sync::broadcast::Receiver<ClusterEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(ClusterEvent::NodeUp(info)) => println!("\n[CLUSTER] Node joined: {}", info.node),
            Ok(ClusterEvent::NodeDown { node, reason }) => println!("\n[CLUSTER] Node left: {} ({reason})", node.node),
            Err(RecvError::Lagged(missed)) => println!("\n[CLUSTER] ({missed} membership events missed)"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Ctrl+C (SIGINT) or SIGTERM.
/// Ctrl+C and SIGTERM, caught from the moment this is made: one that arrives while the node is still starting is
/// kept and ends the program as soon as it is running, never killing it without a goodbye.
struct Stopping {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Stopping {
    fn install() -> Stopping {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(interrupt), Ok(terminate)) => Stopping { signals: Some((interrupt, terminate)) },
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "signals not handled");
                    Stopping { signals: None }
                }
            }
        }
        #[cfg(not(unix))]
        Stopping {}
    }

    async fn requested(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
