//! The program's life: start the node, print the cluster's news while the REPL runs commands, and leave the
//! cluster gracefully on `/quit`, end of input, Ctrl+C or SIGTERM.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use noex_cluster::{ClusterEvent, NodeId};
use noex_observer::{ClusterObserver, LocalObserver};
use noex_registry::RegistryEvent;
use noex_remote::Node;
use tokio::sync::{broadcast, mpsc};

use crate::app::{App, Flow};
use crate::cli::Cli;
use crate::completion::Candidates;
use crate::counter;
use crate::messages;
use crate::output::Output;
use crate::repl::{Input, Repl};
use crate::watcher::CounterDown;

/// How long processes get to stop, in all, when the node leaves (the goodbye adds at most half a second).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs the program until the user leaves. Start failures are one line on stderr and exit status 1.
pub(crate) async fn run(cli: Cli) -> ExitCode {
    crate::output::print_stdout(&messages::banner());
    let config = cli.cluster_config();
    // Installed before anything is printed that a script could wait for, so that no SIGINT finds the default
    // action (death without leaving the cluster) in place.
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => return fatal(format_args!("cannot handle signals: {error}")),
    };
    // Bound, not yet joined: the behaviours and the observer service are installed before any peer can ask.
    let node = match Node::bind(config.clone()).await {
        Ok(node) => node,
        Err(error) => return fatal(error),
    };
    // So that an observer-node in the same cluster sees this node's processes too.
    let _observer = ClusterObserver::start(LocalObserver::new(node.runtime()), node.cluster());
    let events = node.cluster().events();
    let (mut repl, output) = Repl::start(candidates(&node)).await;
    let (app, downs) = match App::start(node.clone(), output.clone()).await {
        Ok(started) => started,
        Err(error) => {
            node.shutdown(SHUTDOWN_TIMEOUT).await;
            return fatal(format_args!("{error:#}"));
        }
    };
    node.open();
    output.line(messages::started(node.id(), &config.seeds));
    let news = [
        tokio::spawn(print_membership(events, node.cluster().connected(), output.clone())),
        tokio::spawn(print_downs(downs, output.clone())),
        tokio::spawn(print_conflicts(node.registry().events(), output.clone())),
    ];

    loop {
        let input = tokio::select! {
            input = repl.next() => input,
            () = signals.recv() => break,
        };
        match input {
            Input::Line(line) => {
                let flow = tokio::select! {
                    flow = app.handle(&line) => flow,
                    () = signals.recv() => Flow::Quit,
                };
                if flow == Flow::Quit {
                    break;
                }
            }
            Input::Interrupted | Input::Eof => break,
            // A line that is not text (invalid UTF-8, say) is bad input, not the end of the session.
            Input::Unreadable(error) => output.line(format!("Error: unreadable input: {error}")),
            Input::Failed(error) => {
                output.line(format!("Error: cannot read input: {error}"));
                break;
            }
        }
    }

    output.line("Shutting down...");
    for task in news {
        task.abort();
    }
    app.stop().await;
    node.shutdown(SHUTDOWN_TIMEOUT).await;
    output.flush(Duration::from_secs(1));
    repl.restore_terminal();
    ExitCode::SUCCESS
}

/// Completion candidates, read from the node at every completion.
fn candidates(node: &Node) -> Candidates {
    let registry = node.registry().clone();
    let counters =
        move || registry.names().iter().filter_map(|name| counter::counter_name(name)).map(str::to_owned).collect();
    let (local, cluster) = (node.id().clone(), node.cluster().clone());
    let nodes = move || {
        std::iter::once(local.clone())
            .chain(cluster.connected())
            .flat_map(|id| [id.name().to_owned(), id.to_string()])
            .collect()
    };
    Candidates { counters: Box::new(counters), nodes: Box::new(nodes) }
}

/// Prints nodes joining and leaving. `connected` are the nodes already up when `events` was subscribed: each is
/// announced once, whether it came before the subscription or after.
async fn print_membership(mut events: broadcast::Receiver<ClusterEvent>, connected: Vec<NodeId>, output: Output) {
    let mut up: HashSet<NodeId> = HashSet::new();
    for node in connected {
        output.line(format!("Node joined: {node}"));
        up.insert(node);
    }
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "membership events missed");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let new = match &event {
            ClusterEvent::NodeUp(info) => up.insert(info.node.clone()),
            ClusterEvent::NodeDown { node, .. } => {
                up.remove(&node.node);
                true
            }
            _ => true,
        };
        if let Some(line) = messages::cluster_event(&event).filter(|_| new) {
            output.line(line);
        }
    }
}

/// Says which counter the cluster kept when two nodes created one name at once (the other was stopped).
async fn print_conflicts(mut events: broadcast::Receiver<RegistryEvent>, output: Output) {
    loop {
        match events.recv().await {
            Ok(RegistryEvent::ConflictResolved { name, winner, .. }) => {
                if let Some(counter) = counter::counter_name(&name) {
                    output.line(messages::conflict(counter, &winner));
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn print_downs(mut downs: mpsc::UnboundedReceiver<CounterDown>, output: Output) {
    while let Some(down) = downs.recv().await {
        output.line(messages::counter_down(&down));
    }
}

fn fatal(error: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "Fatal error: {error}");
    ExitCode::FAILURE
}

/// The signals that end the program as `/quit` does: SIGINT (Ctrl+C while no line is being edited, or from
/// another process), SIGTERM, and SIGHUP (the terminal was closed: a leave, not a crash).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Signals {})
    }

    /// The next signal. Cancel safe.
    #[cfg(unix)]
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
