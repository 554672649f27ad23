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

/// The next cluster update the program printed: its lines from `Cluster Overview (...)` to the end of the
/// per-node breakdown. Lines are read in order, and the lines before the block are used up: expect them first.
/// (A block is printed at once, so no other line falls inside it.)
#[track_caller]
fn next_update(app: &mut App) -> Vec<String> {
    while !app.expect_line(|_| true, WAIT).starts_with("Cluster Overview (") {}
    let mut block = Vec::new();
    let mut in_breakdown = false;
    loop {
        let line = app.expect_line(|_| true, WAIT);
        if line.is_empty() && in_breakdown {
            return block;
        }
        in_breakdown |= line == "Per-node breakdown:";
        block.push(line);
    }
}

/// Waits for a cluster update that holds every one of `lines` (consecutive lines given together must be
/// consecutive in the update), and returns it.
#[track_caller]
fn expect_update(app: &mut App, lines: &[&[&str]]) -> Vec<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let block = next_update(app);
        let holds = |run: &&[&str]| block.windows(run.len()).any(|window| window.iter().eq(run.iter()));
        if lines.iter().all(holds) {
            return block;
        }
        assert!(std::time::Instant::now() < deadline, "no update with {lines:?}; the last was {block:#?}");
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
    let totals: &[&str] = &[
        "  Total nodes: 3",
        "  Connected nodes: 3",
        "  Total processes: 12",
        "  Total servers: 9",
        "  Total supervisors: 3",
        "  Total messages: 90",
        "  Total restarts: 0",
    ];
    let local = format!("  {a_id} (local):");
    let block =
        expect_update(&mut a, &[totals, &[&local, "    Status: connected", "    Processes: 4", "    Messages: 30"]]);
    assert!(block.iter().any(|line| line.starts_with("    Memory: ") && line.ends_with(" MB")), "{block:#?}");
    // Before reading b's updates, which skip what comes before them.
    b.expect(&format!("[CLUSTER] Node joined: {a_id}"));
    for app in [&mut b, &mut c] {
        expect_update(app, &[totals]);
    }

    c.kill();
    let lost = format!("  {c_id}:");
    for app in [&mut a, &mut b] {
        app.expect(&format!("[CLUSTER] Node left: {c_id} (connection_closed)"));
        let after = ["  Total nodes: 3", "  Connected nodes: 2", "  Total processes: 8"];
        expect_update(app, &[&after, &[&lost, "    Status: disconnected"]]);
    }

    // A closed terminal (SIGHUP) is a leave, as Ctrl+C is.
    b.signal("HUP");
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
    expect_update(&mut observer, &[&["  Total nodes: 2", "  Connected nodes: 2", "  Total processes: 5"]]);
    observer.interrupt();
    assert!(observer.wait().success());
    counters.send_line("/quit");
    assert!(counters.wait().success());
}

/// Ctrl+C right after a peer was killed with `kill -9`, every core busy: the node still leaves within 2 s.
#[test]
fn ctrl_c_right_after_a_peers_kill_9_with_every_core_busy_completes_within_2_s() {
    for _ in 0..3 {
        let (mut a, a_id) = start("nodeA", None);
        let (mut b, b_id) = start("nodeB", Some(&a_id));
        a.expect(&format!("[CLUSTER] Node joined: {b_id}"));
        let busy = noex_tests::load::BusyCores::all();
        b.kill();
        let interrupted = std::time::Instant::now();
        a.interrupt();
        a.expect_line(|line| line == "Shutdown complete.", Duration::from_secs(2));
        assert!(a.wait_timeout(Duration::from_secs(2)).success());
        let took = interrupted.elapsed();
        drop(busy);
        assert!(took < Duration::from_secs(2), "Ctrl+C took {took:?}");
    }
}

#[cfg(unix)]
#[test]
fn the_cookie_flag_is_warned_about_and_a_cookie_file_others_can_read_is_refused() {
    let (mut flagged, _) = start("flagged", None);
    let warning =
        "Warning: --cookie is visible to every user of this machine (ps, /proc); prefer --cookie-file or NOEX_COOKIE";
    flagged.expect_stderr_line(|line| line == warning, WAIT);
    flagged.interrupt();
    assert!(flagged.wait().success());

    let scratch = noex_tests::apps::ScratchDir::new("observer-cookie-exposed");
    let file = scratch.file("cookie", "e2e-observer\n", 0o604);
    let mut refused = App::spawn(PROGRAM, ["--name", "x", "--port", "0", "--cookie-file", file.to_str().unwrap()]);
    let path = file.display();
    let expected = format!(
        "Fatal error: cannot start the node: cannot obtain the cluster cookie: cookie file {path} is readable by others \
         (mode 0604); run: chmod 600 {path}"
    );
    refused.expect_stderr_line(|line| line == expected, WAIT);
    assert_eq!(refused.wait().code(), Some(1));
    let transcript = refused.transcript();
    assert!(!transcript.contains("panicked") && !transcript.contains("Warning"), "{transcript}");

    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut private = App::spawn(PROGRAM, ["--name", "y", "--port", "0", "--cookie-file", file.to_str().unwrap()]);
    private.expect_prefixed("Node ID: ");
    private.interrupt();
    assert!(private.wait().success(), "{}", private.transcript());
}
