//! Nodes as real OS processes: what survivors see when one is killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use noex_cluster::{DownReason, NodeId};
use noex_tests::cluster::{node, wait_down, wait_up};

/// Starts `cluster-node` and returns it with the node id it printed.
fn spawn_node(name: &str, seeds: &[&NodeId]) -> (Child, NodeId) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cluster-node"))
        .arg(name)
        .args(seeds.iter().map(|seed| seed.to_string()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("cluster-node starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a ready line");
    let id = line.trim().strip_prefix("ready ").expect("ready <node id>").parse().expect("a node id");
    (child, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_see_a_killed_process_down_well_under_a_second() {
    let a = node("a", &[]).await;
    let c = node("c", &[a.local()]).await;
    let (mut a_events, mut c_events) = (a.events(), c.events());
    let (mut child, b) = spawn_node("b", &[a.local()]);
    wait_up(&mut a_events, &b).await;
    wait_up(&mut c_events, &b).await;

    let killed_at = Instant::now();
    child.kill().expect("SIGKILL");
    assert_eq!(wait_down(&mut a_events, &b).await, DownReason::ConnectionClosed);
    assert_eq!(wait_down(&mut c_events, &b).await, DownReason::ConnectionClosed);
    let took = killed_at.elapsed();
    let _ = child.wait();
    assert!(took < Duration::from_millis(500), "detected after {took:?}");
}
