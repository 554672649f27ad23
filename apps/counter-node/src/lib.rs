//! `counter-node`: the Distributed Counter example of noex-rs. Each instance is one node of a cluster; from its
//! REPL you create counters on any node, change and read them wherever they live, and watch them: when a
//! counter's node dies, the watching node prints the counter's `DOWN` (reason `noconnection`) and the node's
//! departure.
//!
//! Run three nodes in three terminals (they share the cookie in `~/.noex.cookie`, or pass `--cookie-file`):
//!
//! ```text
//! cargo run -p counter-node -- --name node1 --port 4369
//! cargo run -p counter-node -- --name node2 --port 4370 --seed node1@127.0.0.1:4369
//! cargo run -p counter-node -- --name node3 --port 4371 --seed node1@127.0.0.1:4369
//! ```
//!
//! then, on node1, `/create my-counter on node2`, `/watch my-counter`, `/inc my-counter 10`, and stop node2
//! (Ctrl+C, or kill it). `/help` lists the commands.
//!
//! The program: `cli` (flags), `session` (start, main loop, leave), `repl` and `completion` (the line editor on
//! its own thread), `command` (parsing a line), `app` (running a command against the node), `counter` and
//! `watcher` (the two kinds of process), `messages` (every line printed), `output` (where lines go).

// A program owns its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod cli;
mod command;
mod completion;
mod counter;
mod messages;
mod output;
mod repl;
mod session;
mod watcher;

use std::process::ExitCode;

use clap::Parser;

/// The whole program: parses the flags (clap prints its own error and exits on bad ones), sets up logging to
/// stderr, and runs the node on its own tokio runtime until the user leaves.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(warning) = cli.warning() {
        eprintln!("{warning}");
    }
    tracing_subscriber::fmt().with_env_filter(cli.log_filter()).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Fatal error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(session::run(cli));
    // Whatever is still running (the node has left) is not waited for long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
