//! `observer-node` end to end: three real OS processes form a cluster and print the seed's figures; one is
//! killed and the others list it as disconnected; Ctrl+C leaves gracefully.

use std::time::Duration;

use noex_tests::apps::{App, WAIT};

const PROGRAM: &str = env!("CARGO_BIN_EXE_e2e-observer-node");

fn start(name: &str, seed: Option<&str>) -> (App, String) {
    let mut args = vec!["--name", name, "--port", "0", "--cookie", "e2e-observer", "--interval", "200ms"];
    if let Some(seed) = seed {
        args.extend(["--seed", seed]);
    }
    let mut app = App::spawn(PROGRAM, args);
    let id = app.expect_prefixed("Node ID: ");
    (app, id)
}

/// Waits for a cluster update whose overview has exactly these lines, in order.
#[track_caller]
fn expect_overview(app: &mut App, lines: &[&str]) {
    app.expect_line(|line| line.starts_with("Cluster Overview ("), WAIT);
    // Later updates repeat the block: skip whole blocks until one matches.
    loop {
        let mut matched = true;
        for expected in lines {
            let line = app.expect_line(|line| line.starts_with(expected.split(':').next().unwrap()), WAIT);
            if line != *expected {
                matched = false;
                break;
            }
        }
        if matched {
            return;
        }
        app.expect_line(|line| line.starts_with("Cluster Overview ("), WAIT);
    }
}

#[test]
fn three_nodes_show_the_seed_figures_and_a_killed_one_as_disconnected() {
    let (mut a, a_id) = start("nodeA", None);
    a.expect("  Created supervisor with 3 workers");
    a.expect("  Processes: 4");
    a.expect("  Total messages: 30");
    let (mut b, b_id) = start("nodeB", Some(&a_id));
    let (mut c, c_id) = start("nodeC", Some(&a_id));
    for app in [&mut a, &mut b, &mut c] {
        expect_overview(
            app,
            &[
                "  Total nodes: 3",
                "  Connected nodes: 3",
                "  Total processes: 12",
                "  Total servers: 9",
                "  Total supervisors: 3",
                "  Total messages: 90",
                "  Total restarts: 0",
            ],
        );
    }
    a.expect(&format!("  {a_id} (local):"));
    b.expect(&format!("[CLUSTER] Node joined: {a_id}"));
    let memory = a.expect_prefixed("    Memory: ");
    assert!(memory.ends_with(" MB"), "memory is shown in MB: {memory}");

    c.kill();
    for app in [&mut a, &mut b] {
        app.expect(&format!("[CLUSTER] Node left: {c_id} (connection_closed)"));
        expect_overview(app, &["  Total nodes: 3", "  Connected nodes: 2", "  Total processes: 8"]);
        app.expect(&format!("  {c_id}:"));
        app.expect("    Status: disconnected");
    }

    b.interrupt();
    b.expect("Shutting down...");
    b.expect("Shutdown complete.");
    assert!(b.wait().success());
    a.expect(&format!("[CLUSTER] Node left: {b_id} (graceful_shutdown)"));
    a.interrupt();
    a.expect("Shutdown complete.");
    assert!(a.wait_timeout(Duration::from_secs(10)).success());
}

#[test]
fn a_bad_flag_is_one_line_and_a_usage_error() {
    let mut app = App::spawn(PROGRAM, ["--name", "x", "--interval", "soon"]);
    let status = app.wait();
    assert_eq!(status.code(), Some(2));
    let error = app.expect_stderr_line(|line| line.contains("--interval"), WAIT);
    assert!(error.contains("not a duration"), "{error}");
    let transcript = app.transcript();
    assert!(!transcript.contains("panicked"), "{transcript}");
}

#[test]
fn an_observer_node_sees_a_counter_node_and_its_counters() {
    let counter_program = env!("CARGO_BIN_EXE_e2e-counter-node");
    let mut counters = App::spawn(counter_program, ["--name", "counters", "--port", "0", "--cookie", "e2e-observer"]);
    let counters_id = counters.expect_prefixed("Starting node: ");
    counters.send_line("/create hits");
    counters.expect("Counter \"hits\" created locally with value 0.");
    let (mut observer, _) = start("watcher", Some(&counters_id));
    // The observer's own 4 processes plus the counter (the REPL's watcher is internal, not counted).
    expect_overview(&mut observer, &["  Total nodes: 2", "  Connected nodes: 2", "  Total processes: 5"]);
    observer.interrupt();
    assert!(observer.wait().success());
    counters.send_line("/quit");
    assert!(counters.wait().success());
}
