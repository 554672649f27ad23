//! `counter-node` end to end: real OS processes with piped stdin, on ephemeral ports, sharing a cookie. The
//! seed's demo (a counter created on node2, watched from node1, node2 killed or interrupted), and bad input.

use noex_tests::apps::App;

/// The cookie the test nodes share (so no test reads or creates `~/.noex.cookie`).
const COOKIE: &str = "counter-node-e2e";

/// Starts a node called `name`, seeded with `seeds`; returns it with its node id.
fn start(name: &str, seeds: &[&str]) -> (App, String) {
    start_with_cookie(name, seeds, COOKIE)
}

fn start_with_cookie(name: &str, seeds: &[&str], cookie: &str) -> (App, String) {
    let mut args = vec!["--name", name, "--port", "0", "--cookie", cookie];
    for seed in seeds {
        args.extend(["--seed", seed]);
    }
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-counter-node"));
    command.args(args).env_remove("RUST_LOG");
    let mut node = App::start(command);
    let id = node.expect_prefixed("Starting node: ");
    node.expect("Type /help for available commands.");
    (node, id)
}

/// node1 and node2 (seeded with node1), each seeing the other join; node1 has created `my-counter` on node2,
/// watches it and has set it to 10.
fn seed_demo() -> (App, String, App, String) {
    let (mut node1, id1) = start("node1", &[]);
    let (mut node2, id2) = start("node2", &[&id1]);
    node1.expect(&format!("Node joined: {id2}"));
    node2.expect(&format!("Node joined: {id1}"));

    node1.send_line("/create my-counter on node2");
    node1.expect(&format!("Creating counter \"my-counter\" on {id2}..."));
    node1.expect(&format!("Counter \"my-counter\" created on {id2} with value 0."));
    node1.send_line("/watch my-counter");
    node1.expect(&format!("Now watching counter \"my-counter\" on {id2}"));
    node1.send_line("/inc my-counter 10");
    node1.expect("Counter \"my-counter\" incremented by 10. New value: 10");
    (node1, id1, node2, id2)
}

#[test]
fn the_seed_demo_a_killed_node_takes_its_watched_counter_down() {
    let (mut node1, _, mut node2, id2) = seed_demo();

    node2.kill();
    // The two lines come from two sources (the watcher's monitor, the cluster's membership), in either order.
    node1.expect(&format!("Counter \"my-counter\" on {id2} went DOWN! Reason: noconnection"));
    node1.expect(&format!("Node left: {id2} (connection_closed)"));

    node1.send_line("/counters");
    node1.expect("No counters available. Use /create <name> to create one.");
    node1.send_line("/quit");
    node1.expect("Shutting down...");
    assert!(node1.wait().success(), "{}", node1.transcript());
}

/// A node whose cookie differs from its seed's says so on the terminal (not only in the log), and keeps trying.
#[test]
fn a_node_refused_by_its_seed_says_why() {
    let (mut node1, id1) = start("node1", &[]);
    let (mut node2, _) = start_with_cookie("node2", &[&id1], "another-cookie");
    node2.expect(&format!(
        "Cannot join {id1}: it refused this node (do both nodes have the same cookie?). Still trying."
    ));
    node2.send_line("/nodes");
    node2.expect("Total: 1 nodes");
    for node in [&mut node1, &mut node2] {
        node.close_stdin();
        assert!(node.wait().success(), "{}", node.transcript());
    }
}

/// Closing the terminal (SIGHUP) is a leave, not a crash.
#[test]
fn a_hung_up_node_leaves_gracefully() {
    let (mut node1, _, mut node2, id2) = seed_demo();
    node2.signal("HUP");
    assert!(node2.wait().success(), "{}", node2.transcript());
    node1.expect(&format!("Node left: {id2} (graceful_shutdown)"));
    node1.close_stdin();
    assert!(node1.wait().success(), "{}", node1.transcript());
}

#[test]
fn an_interrupted_node_leaves_gracefully() {
    let (mut node1, _, mut node2, id2) = seed_demo();

    node2.interrupt();
    node2.expect("Shutting down...");
    assert!(node2.wait().success(), "{}", node2.transcript());
    // A graceful leave stops the counter before the goodbye: its watcher sees the real reason.
    node1.expect(&format!("Counter \"my-counter\" on {id2} went DOWN! Reason: shutdown"));
    node1.expect(&format!("Node left: {id2} (graceful_shutdown)"));

    node1.close_stdin();
    node1.expect("Shutting down...");
    assert!(node1.wait().success(), "{}", node1.transcript());
}

#[test]
fn bad_input_is_one_line_and_the_node_goes_on() {
    let (mut node, id) = start("solo", &[]);

    node.send_line("/create x on nowhere");
    node.expect("Node not found: nowhere. Available nodes:");
    node.expect(&format!("  - {id}"));
    node.send_line("/inc x abc");
    node.expect("Invalid amount: abc (expected an integer)");
    node.send_line("/frobnicate");
    node.expect("Unknown command: /frobnicate. Type /help for available commands.");
    node.send_line("hello");
    node.expect("Unknown command: hello. Type /help for available commands.");
    node.send_line("/create");
    node.expect("Usage: /create <name> [on <node>]");
    node.send_line("/get x");
    node.expect("Counter \"x\" not found.");

    // Still serving: a local counter, watched (local counters can be watched too).
    node.send_line("/create x");
    node.expect("Counter \"x\" created locally with value 0.");
    node.send_line("/watch x");
    node.expect(&format!("Now watching counter \"x\" on {id}"));
    node.send_line("/quit");
    node.expect("Shutting down...");
    assert!(node.wait().success(), "{}", node.transcript());
    let transcript = node.transcript();
    assert!(!transcript.contains("panicked"), "{transcript}");
}

#[test]
fn a_start_failure_is_one_fatal_line_and_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let mut node =
        App::spawn(env!("CARGO_BIN_EXE_e2e-counter-node"), ["--name", "late", "--port", &port, "--cookie", COOKIE]);
    let fatal = node.expect_stderr_line(|line| line.starts_with("Fatal error: "), noex_tests::apps::WAIT);
    assert!(fatal.contains(&port), "{fatal}");
    assert_eq!(node.wait().code(), Some(1));

    let mut unnamed = App::spawn(env!("CARGO_BIN_EXE_e2e-counter-node"), ["--port", "0"]);
    unnamed.expect_stderr_line(|line| line.contains("--name"), noex_tests::apps::WAIT);
    assert_eq!(unnamed.wait().code(), Some(2), "clap's status for bad flags");
}

/// Ctrl+C right after a peer was killed with `kill -9`, every core busy: the node still leaves within 2 s.
#[test]
fn ctrl_c_right_after_a_peers_kill_9_with_every_core_busy_leaves_within_2_s() {
    let (mut node1, _, mut node2, _) = seed_demo();
    let busy = noex_tests::load::BusyCores::all();
    node2.kill();
    let interrupted = std::time::Instant::now();
    node1.interrupt();
    node1.expect("Shutting down...");
    assert!(node1.wait_timeout(std::time::Duration::from_secs(2)).success(), "{}", node1.transcript());
    let took = interrupted.elapsed();
    drop(busy);
    assert!(took < std::time::Duration::from_secs(2), "Ctrl+C took {took:?}");
}

/// What `--cookie` prints on stderr (a process's arguments are readable by every local user).
const COOKIE_FLAG_WARNING: &str =
    "Warning: --cookie is visible to every user of this machine (ps, /proc); prefer --cookie-file or NOEX_COOKIE";

/// A node started with `args` and `environment`, NOEX_COOKIE and RUST_LOG unset unless given.
fn start_with(args: &[&str], environment: &[(&str, &str)]) -> App {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-counter-node"));
    command.args(args).env_remove("RUST_LOG").env_remove("NOEX_COOKIE").envs(environment.iter().copied());
    App::start(command)
}

#[cfg(unix)]
#[test]
fn the_cookie_comes_from_a_private_file_or_the_environment_and_the_flag_is_warned_about() {
    let scratch = noex_tests::apps::ScratchDir::new("counter-cookie-sources");
    let file = scratch.file("cookie", &format!("{COOKIE}\n"), 0o600);
    let file = file.to_str().unwrap();
    let mut filed = start_with(&["--name", "filed", "--port", "0", "--cookie-file", file], &[]);
    let filed_id = filed.expect_prefixed("Starting node: ");
    let mut from_env = start_with(&["--name", "env", "--port", "0", "--seed", &filed_id], &[("NOEX_COOKIE", COOKIE)]);
    from_env.expect(&format!("Node joined: {filed_id}"));
    let (mut flagged, flagged_id) = start("flagged", &[&filed_id]);
    flagged.expect_stderr_line(|line| line == COOKIE_FLAG_WARNING, noex_tests::apps::WAIT);
    filed.expect(&format!("Node joined: {flagged_id}"));

    for node in [&mut filed, &mut from_env, &mut flagged] {
        node.send_line("/quit");
        assert!(node.wait().success(), "{}", node.transcript());
    }
    for node in [&mut filed, &mut from_env] {
        let transcript = node.transcript();
        assert!(!transcript.contains("Warning"), "no warning without --cookie: {transcript}");
    }
}

#[cfg(unix)]
#[test]
fn a_cookie_file_others_can_read_is_refused_in_one_line_with_the_fix() {
    let scratch = noex_tests::apps::ScratchDir::new("counter-cookie-exposed");
    let given = scratch.file("cookie", "secret\n", 0o644);
    // The default file, in a home directory of the test's own.
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let default = scratch.file("home/.noex.cookie", "secret\n", 0o640);
    let cases = [
        (
            start_with(&["--name", "a", "--port", "0", "--cookie-file", given.to_str().unwrap()], &[]),
            &given,
            "others (mode 0644)",
        ),
        (
            start_with(&["--name", "b", "--port", "0"], &[("HOME", home.to_str().unwrap())]),
            &default,
            "its group (mode 0640)",
        ),
    ];
    for (mut node, path, exposure) in cases {
        let path = path.display();
        let expected = format!(
            "Fatal error: cannot obtain the cluster cookie: cookie file {path} is readable by {exposure}; run: chmod 600 {path}"
        );
        node.expect_stderr_line(|line| line == expected, noex_tests::apps::WAIT);
        assert_eq!(node.wait().code(), Some(1));
        let transcript = node.transcript();
        let stderr = transcript.split("--- stderr\n").nth(1).unwrap_or_default();
        assert_eq!(stderr.lines().count(), 2, "one line, then the transcript's end marker: {transcript}");
        assert!(!transcript.contains("panicked"), "{transcript}");
    }
}
