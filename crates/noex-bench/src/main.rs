//! The noex-rs benchmark program.
//!
//! `noex-bench <case|all>` prints one line per case as `key=value` pairs: the case's figures, the same figures for
//! a baseline measured in the same run on the same tokio runtime, and `ratio=` (ours / baseline) of the time
//! figure, so lower is better and 1.0 is parity.

// A program owns its output; the print lints guard library crates.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cases;
mod cluster_cases;
mod codec_cases;
mod concurrency_cases;
mod failover_cases;
mod flow_cases;
mod mesh_cases;
mod observer_cases;
mod registry_cases;
mod remote_cases;
mod report;

use std::process::ExitCode;

const USAGE: &str = "usage: noex-bench <case|all>   (cases: local_call local_cast spawn idle_memory frame_rtt mesh_16 mesh_128 remote_call remote_cast remote_call_concurrent remote_cast_backpressure overload_signals registry_register registry_sync cluster_snapshot_3 cluster_snapshot_16 cluster_snapshot_32x10k codec)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The memory case measures each side in a fresh child process; this is the child's entry point.
    if let [flag, side] = args.as_slice() {
        if flag == cases::IDLE_MEMORY_CHILD {
            return cases::idle_memory_child(side);
        }
    }
    let [case] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let selected: Vec<&str> = match case.as_str() {
        "all" => cases::ALL.to_vec(),
        name if cases::ALL.contains(&name) => vec![name],
        other => {
            eprintln!("unknown case '{other}'; {USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    for name in selected {
        let line = runtime.block_on(cases::run(name));
        println!("{line}");
    }
    ExitCode::SUCCESS
}
