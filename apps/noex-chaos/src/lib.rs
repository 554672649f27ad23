//! `noex-chaos`: a chaos run. It starts N nodes as OS processes, injects faults on a seeded schedule for a bounded
//! time, checks the stack's invariants all along and at the end, and prints one summary line.
//!
//! One binary, two modes. The orchestrator (`noex-chaos [--nodes 5] [--duration 2m] [--seed S]`) starts each
//! node as `noex-chaos worker ...` (its own executable), with a cookie of its own through `NOEX_COOKIE`. Each
//! worker is a [`noex_remote::Node`] listening on an ephemeral port and advertising the address of a
//! [`proxy::Proxy`] the orchestrator runs in front of it: every connection between two nodes goes through the
//! proxy of the node dialed, which reads the dialer's name from its `Hello` and can so cut, silence or slow the
//! links of chosen pairs.
//!
//! ```text
//!             orchestrator (schedule from --seed, proxies, checks, summary)
//!              | stdin: commands      ^ stdout: reports, one per line (control.rs)
//!              v                      |
//!   worker n0 --dials--> [proxy of n1] --> worker n1 (listening on 127.0.0.1:ephemeral)
//!   (advertises n0@127.0.0.1:<port of its proxy>)
//! ```
//!
//! Each worker registers counters globally (`c:<node>:<i>`), claims the contended names `shared:0..2` whenever
//! it sees them free (partitions then end in name conflicts, whose losers are killed), calls random registered
//! processes of other nodes with a 2 s timeout (at most 8 in flight), monitors them through a process (at most 64
//! waiting), and floods a node with awaited casts when told. The orchestrator lets the workload warm up (a sixth of the run,
//! 3 to 30 s), samples the long-lived nodes, then injects the faults of [`schedule::schedule`]: `kill -9` and
//! restart (a new incarnation), SIGSTOP/SIGCONT, partitions (cut or silent), slow links, floods.
//!
//! Invariants, and where they are checked ([`ledger`] holds the bookkeeping):
//! - every call ends with a reply or a typed error within its timeout + 1 s + the time the caller itself was
//!   frozen or starved (measured by a thread in the worker): the worker books each outcome;
//! - each monitor gets exactly one `DOWN` (a second one, or one for an unknown monitor, is reported at once), and
//!   at the end every monitor that had to fire did: on a process of a dead incarnation, or of a node reported
//!   down after the monitor was set up (5 s of grace), or on a process a call now finds gone (2 s more);
//! - after the last fault, every node sees every other within 30 s, then every replica of the global registry is
//!   identical and complete within 10 s, and names no process of a dead incarnation nor a dead local process;
//! - on long-lived nodes, between warm-up and the end (workload quiesced): fds grow by at most 16 or half, RSS by
//!   at most 64 MiB or its size, runtime tasks by at most 64 or their number, processes only by the holders of
//!   the shared names, and no request is pending;
//! - no worker ends unless killed or told to stop, none logs a panic, and each leaves gracefully within 10 s when
//!   told.
//!
//! Each violation is printed on its own line (`violation: n3#2: ...`, node and incarnation), then the summary
//! line; the exit code is non-zero if any invariant broke. `--seed` replays the fault schedule (the same faults
//! at the same times), not the interleavings of the OS.
//! `--sabotage late-call,duplicate-down,missing-down,registry,panic,exit` breaks invariants on purpose, to show
//! that the checks catch them.

// A program owns its output: the summary and the violations go to stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod control;
mod fleet;
pub mod ledger;
pub mod proxy;
mod run;
pub mod schedule;
mod servers;
mod stalls;
mod worker;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "noex-chaos", about = "Runs nodes as OS processes under faults and checks the invariants")]
struct Cli {
    #[command(subcommand)]
    worker: Option<Mode>,
    #[command(flatten)]
    run: run::RunArgs,
    /// Log filter (`RUST_LOG` syntax); workers log to files in the logs folder.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One node, driven by the orchestrator through stdin and stdout (not for direct use).
    Worker(worker::WorkerArgs),
}

/// Parses a duration: bare numbers are seconds, anything else has units (`90s`, `2m`, `1h`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text).map_err(|e| format!("not a duration ({e})")),
    }
}

/// The program: parses the command line and runs the orchestrator or a worker.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.worker {
        Some(Mode::Worker(args)) => worker::run(args).map(|()| std::process::ExitCode::SUCCESS),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run::run(cli.run))),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        std::process::ExitCode::from(2)
    })
}
