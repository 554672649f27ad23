//! The chaos run end to end: a short run keeps every invariant, and a run with invariants broken on purpose is
//! caught (so that a clean run means something).

use std::process::Command;

const PROGRAM: &str = env!("CARGO_BIN_EXE_e2e-noex-chaos");

/// Runs the chaos program with `args`; returns whether it succeeded and what it printed on stdout.
fn chaos(args: &[&str]) -> (bool, String) {
    let logs = std::env::temp_dir().join(format!("noex-chaos-test-{}-{}", std::process::id(), args.len()));
    let output = Command::new(PROGRAM)
        .args(args)
        .arg("--logs")
        .arg(&logs)
        .env_remove("RUST_LOG")
        .output()
        .expect("the chaos program runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.lines().any(|line| line.starts_with("chaos seed=")), "no summary line:\n{stdout}\n{stderr}");
    if output.status.success() {
        let _ = std::fs::remove_dir_all(&logs);
    }
    (output.status.success(), stdout)
}

/// The figure `key` of the summary line.
fn figure(stdout: &str, key: &str) -> String {
    let summary = stdout.lines().find(|line| line.starts_with("chaos seed=")).expect("a summary");
    let prefix = format!("{key}=");
    let word = summary.split(' ').find(|word| word.starts_with(&prefix)).unwrap_or_else(|| panic!("no {key}"));
    word[prefix.len()..].to_owned()
}

#[test]
fn a_short_chaos_run_keeps_every_invariant() {
    // Seed 11 draws a kill, pauses and partitions into these 8 seconds of faults.
    let (ok, stdout) = chaos(&["--nodes", "3", "--duration", "12s", "--interval", "1s", "--seed", "11"]);
    assert!(ok, "the run failed:\n{stdout}");
    assert_eq!(figure(&stdout, "violations"), "0");
    assert!(figure(&stdout, "ok").parse::<u64>().unwrap() > 0, "{stdout}");
    assert!(figure(&stdout, "downs").parse::<u64>().unwrap() > 0, "no monitor fired:\n{stdout}");
}

#[test]
fn broken_invariants_are_caught() {
    let args = ["--nodes", "3", "--duration", "12s", "--interval", "1s", "--seed", "11"];
    let (ok, stdout) =
        chaos(&[&args[..], &["--sabotage", "late-call,duplicate-down,missing-down,registry,panic"]].concat());
    assert!(!ok, "sabotage went unnoticed:\n{stdout}");
    assert_ne!(figure(&stdout, "late_calls"), "0", "{stdout}");
    assert_ne!(figure(&stdout, "duplicate_downs"), "0", "{stdout}");
    assert_ne!(figure(&stdout, "missing_downs"), "0", "{stdout}");
    assert_eq!(figure(&stdout, "registry_converged_ms"), "never", "{stdout}");
    assert!(stdout.contains("violation: registries differ"), "{stdout}");
    assert!(stdout.contains("violation: a worker panicked"), "{stdout}");
}
