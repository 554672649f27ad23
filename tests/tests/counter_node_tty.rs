//! `counter-node` at a terminal (a pseudo-terminal): the prompt, tab completion, a cluster event printed while
//! a line is being typed (the typed text survives), and Ctrl+C at the prompt leaving gracefully.
#![cfg(unix)]

use std::process::Command;

use noex_tests::apps::App;

const PROGRAM: &str = env!("CARGO_BIN_EXE_e2e-counter-node");
const COOKIE: &str = "e2e-tty";

#[test]
fn at_a_terminal_the_prompt_completion_live_lines_and_ctrl_c_work() {
    let mut command = Command::new(PROGRAM);
    command.args(["--name", "tty", "--port", "0", "--cookie", COOKIE]).env("TERM", "xterm");
    let mut tty = rexpect::session::spawn_command(command, Some(10_000)).expect("a pseudo-terminal");
    let (_, id) = tty.exp_regex(r"Starting node: tty@127\.0\.0\.1:\d+").expect("the node starts");
    let id = id.trim_start_matches("Starting node: ").to_owned();
    tty.exp_string("Type /help for available commands.").unwrap();
    tty.exp_string("> ").expect("the prompt");

    tty.send_line("/create hits").unwrap();
    tty.exp_string("Counter \"hits\" created locally with value 0.").unwrap();

    // Tab completes the only command that starts so.
    tty.send("/cou\t").unwrap();
    tty.send("\r").unwrap();
    tty.flush().unwrap();
    tty.exp_string("Available counters:").expect("/cou<Tab> completed to /counters");

    // Half a command typed when another node joins: the news is printed, the typed text is kept.
    tty.send("/get hi").unwrap();
    tty.flush().unwrap();
    let mut other = App::spawn(PROGRAM, ["--name", "other", "--port", "0", "--cookie", COOKIE, "--seed", &id]);
    let other_id = other.expect_prefixed("Starting node: ");
    tty.exp_string(&format!("Node joined: {other_id}")).expect("the join is printed while typing");
    tty.send("ts\r").unwrap();
    tty.flush().unwrap();
    tty.exp_string("Counter \"hits\": value=0").expect("the line typed around the news still works");

    // Ctrl+C at the prompt leaves the cluster gracefully.
    tty.send_control('c').unwrap();
    tty.exp_string("Shutting down...").unwrap();
    tty.exp_eof().unwrap();
    other.expect(&format!("Node left: {id} (graceful_shutdown)"));
    other.send_line("/quit");
    assert!(other.wait().success());
}
