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

/// `println!` that ignores a closed stdout (after SIGHUP the terminal is gone, and the node still leaves cleanly).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use noex_cluster::{ClusterConfig, ClusterEvent, Cookie};
use noex_observer::{
    ClusterObserver, ClusterObserverEvent, CountingAllocator, DEFAULT_QUERY_TIMEOUT, LocalObserver, SnapshotOptions,
    SnapshotQuery,
};
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
    say!("{}\n  Cluster Observer Example\n{}\n", rule('='), rule('='));
    let mut config = ClusterConfig::new(cli.name.clone());
    config.host = cli.host.clone();
    config.port = cli.port;
    config.seeds = cli.seeds.clone();
    config.cookie = cli.cookie.as_deref().map(Cookie::new);
    config.cookie_file = cli.cookie_file.clone();
    let node = Node::bind(config).await.context("cannot start the node")?;
    say!("Starting node: {}", node.id());
    let mut local = LocalObserver::new(node.runtime());
    if let Some(heap) = heap {
        local = local.with_heap(heap);
    }
    let observer = ClusterObserver::start(local.clone(), node.cluster());
    // Subscribed before joining: no join goes unprinted.
    let events = node.cluster().events();
    node.open();
    say!("Node ID: {}", node.id());
    tokio::spawn(print_membership(events));

    say!("\nCreating local processes...");
    let supervisor = match workers::start(node.runtime(), &cli.name, &local).await {
        Ok(supervisor) => supervisor,
        Err(error) => {
            // Joined already: leave gracefully, so that peers do not take it for a crash.
            node.shutdown(STOP_TIMEOUT).await;
            return Err(error.context("cannot start the workers"));
        }
    };
    say!("  Created supervisor with 3 workers");
    say!("  Generated initial activity on workers");

    say!("\n{}\nCluster Observer\n{}", rule('-'), rule('-'));
    say!("{}", print::local(&local.snapshot(SnapshotQuery::totals())));
    say!("\n{}\nNode is running. Press Ctrl+C to exit.\n{}", rule('='), rule('='));
    // The program prints figures only: each node is asked for its totals, whatever its size.
    let options = SnapshotOptions::fresh(DEFAULT_QUERY_TIMEOUT).with_query(SnapshotQuery::totals());
    let polling = observer.start_polling_with(cli.interval, options, |event| match event {
        ClusterObserverEvent::SnapshotUpdate(snapshot) => {
            say!("\n{}\nCluster Update\n{}{}", rule('-'), rule('-'), print::cluster(&snapshot));
        }
        ClusterObserverEvent::NodeTimeout(node) => say!("\n[WARN] Node {node} is not responding"),
        ClusterObserverEvent::NodeError { node, error } => say!("\n[ERROR] Node {node}: {error}"),
    });

    stopping.requested().await;
    say!("\nShutting down...");
    polling.stop();
    // The supervisor stops with every other process, its workers in reverse start order, before the goodbye.
    drop(supervisor);
    node.shutdown(STOP_TIMEOUT).await;
    say!("Shutdown complete.");
    Ok(())
}

/// A dial refused: one line, while the node keeps trying.
fn refused(node: &noex_cluster::NodeId, refusal: &noex_cluster::Refusal) -> String {
    format!("Cannot join {node}: {refusal}. Still trying.")
}

async fn print_membership(mut events: tokio::sync::broadcast::Receiver<ClusterEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(ClusterEvent::NodeUp(info)) => say!("\n[CLUSTER] Node joined: {}", info.node),
            Ok(ClusterEvent::NodeDown { node, reason }) => say!("\n[CLUSTER] Node left: {} ({reason})", node.node),
            Ok(ClusterEvent::DialRefused { node, refusal }) => say!("\n[CLUSTER] {}", refused(&node, &refusal)),
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => say!("\n[CLUSTER] ({missed} membership events missed)"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Ctrl+C (SIGINT), SIGTERM and SIGHUP, caught from the moment this is made: one that arrives while the node is still starting is
/// kept and ends the program as soon as it is running, never killing it without a goodbye.
struct Stopping {
    #[cfg(unix)]
    signals: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Stopping {
    fn install() -> Stopping {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            // SIGHUP too: a closed terminal is a leave, not a crash.
            match (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
                (Ok(interrupt), Ok(terminate), Ok(hangup)) => {
                    Stopping { signals: Some([interrupt, terminate, hangup]) }
                }
                (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
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
        if let Some([interrupt, terminate, hangup]) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
