//! Nodes as real OS processes: what survivors see when one is killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use noex_cluster::{DownReason, NodeId};
use noex_tests::cluster::{node, wait_down, wait_up};

/// Starts `cluster-node` and returns it with the node id it printed.
fn spawn_node(name: &str, seeds: &[&NodeId]) -> (Child, NodeId) {
    spawn_program(env!("CARGO_BIN_EXE_cluster-node"), name, seeds)
}

/// Starts a test node program and returns it with the node id it printed.
fn spawn_program(program: &str, name: &str, seeds: &[&NodeId]) -> (Child, NodeId) {
    started(node_command(program, name, seeds))
}

/// Starts `remote-node` as a replica of supervision `replica` (`<name>:<children>`).
fn spawn_replica_node(name: &str, seeds: &[&NodeId], replica: &str) -> (Child, NodeId) {
    let mut command = node_command(env!("CARGO_BIN_EXE_remote-node"), name, seeds);
    command.env("NOEX_TEST_REPLICA", replica);
    started(command)
}

/// `program <name> <seed>...`, its stdout piped.
fn node_command(program: &str, name: &str, seeds: &[&NodeId]) -> Command {
    let mut command = Command::new(program);
    command.arg(name).args(seeds.iter().map(|seed| seed.to_string())).stdout(Stdio::piped());
    command
}

/// Spawns `command` and reads the node id of its `ready <node id>` line.
fn started(mut command: Command) -> (Child, NodeId) {
    let mut child = command.spawn().expect("the node program starts");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_node_fails_a_thousand_in_flight_calls_within_a_second() {
    use noex_core::{CallError, ExitReason};
    use noex_remote::SpawnOptions;
    use noex_tests::remote::{eventually, full_node, within};
    use noex_tests::servers::{Counter, Request};

    let a = full_node("a", &[]).await;
    let mut events = a.cluster().events();
    let (mut child, b) = spawn_program(env!("CARGO_BIN_EXE_remote-node"), "b", &[a.id()]);
    wait_up(&mut events, &b).await;
    let pid = a.remote().spawn("counter", &b, SpawnOptions::global("victim")).await.expect("spawn on b");
    let counter = a.runtime().remote_ref::<Counter>(&pid);
    assert_eq!(counter.call(Request::add(1)).await, Ok(1));
    let down = a.runtime().monitor(&pid);

    // The first call makes the counter sleep; the other 999 queue behind it.
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move { counter.call_timeout(Request::sleep(60_000), Duration::from_secs(120)).await })
        })
        .collect();
    eventually("1000 calls are in flight", || a.remote().stats().pending == 1000).await;

    let killed_at = Instant::now();
    child.kill().expect("SIGKILL");
    for call in calls {
        assert_eq!(within("a failed call", call).await.unwrap(), Err(CallError::NoConnection(pid.node().clone())));
    }
    let took = killed_at.elapsed();
    let _ = child.wait();
    assert!(took < Duration::from_secs(1), "every call failed after {took:?}");
    assert_eq!(within("the monitor", down).await.reason, ExitReason::NoConnection);
    assert_eq!(a.remote().stats().pending, 0);
    assert_eq!(a.registry().whereis("victim"), None, "the dead node's names are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_supervisors_children_on_a_killed_process_run_elsewhere_once() {
    use noex_dist_supervisor::{DistChildSpec, DistEvent, DistSupervisor, DistSupervisorSpec, NodeSelector, Strategy};
    use noex_tests::remote::{full_node, within};

    let a = full_node("a", &[]).await;
    let c = full_node("c", &[a.id()]).await;
    let mut events = a.cluster().events();
    let (mut child, b) = spawn_program(env!("CARGO_BIN_EXE_remote-node"), "b", &[a.id()]);
    wait_up(&mut events, &b).await;
    noex_tests::cluster::wait_connected(c.cluster(), 2).await;

    let mut spec = DistSupervisorSpec::new(Strategy::OneForOne).selector(NodeSelector::RoundRobin);
    spec.children = (0..30).map(|i| DistChildSpec::new(format!("c{i}"), "counter")).collect();
    let supervisor = DistSupervisor::start(&a, spec).await.expect("children on a, b and c");
    let mut changes = supervisor.events();
    let on_b: Vec<_> =
        supervisor.which_children().await.unwrap().into_iter().filter(|c| c.node.as_ref() == Some(&b)).collect();
    assert_eq!(on_b.len(), 10);

    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let Some(DistEvent::NodeFailureDetected { node, affected }) = within("the failure", changes.recv()).await.ok()
    else {
        panic!("the failure first");
    };
    assert_eq!((node, affected.len()), (b.clone(), 10));
    let mut moved = Vec::new();
    for _ in 0..10 {
        match within("a migration", changes.recv()).await {
            Ok(DistEvent::ChildMigrated { id, to, .. }) => {
                assert_ne!(to, b);
                moved.push(id);
            }
            other => panic!("expected a migration, got {other:?}"),
        }
    }
    moved.sort();
    moved.dedup();
    assert_eq!(moved.len(), 10, "each child once");
    let children = supervisor.which_children().await.unwrap();
    assert!(children.iter().all(|child| child.node.as_ref().is_some_and(|n| n == a.id() || n == c.id())));
    assert_eq!(supervisor.stats().await.unwrap().children_by_node.values().sum::<usize>(), 30);
}

/// The owner of a replicated supervision is an OS process (its node, `a`, sorts first), killed with SIGKILL: the
/// next replica takes over, adopts the children that ran elsewhere, starts only the dead node's, and every child
/// runs once, under its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_process_is_replaced_and_no_child_runs_twice() {
    noex_tests::remote::log();
    use noex_dist_supervisor::DistSupervisor;
    use noex_tests::dist::{counters, settled, spec};
    use noex_tests::remote::{full_node, within};

    let b = full_node("b", &[]).await;
    let c = full_node("c", &[b.id()]).await;
    let mut events = b.cluster().events();
    let (mut child, a) = spawn_replica_node("a", &[b.id()], "owned:9");
    wait_up(&mut events, &a).await;
    noex_tests::cluster::wait_connected(c.cluster(), 2).await;
    let named = || {
        spec(noex_dist_supervisor::Strategy::OneForOne, noex_dist_supervisor::NodeSelector::RoundRobin, counters(9))
            .name("owned")
    };
    let on_b = DistSupervisor::start_replica(&b, named()).await.unwrap();
    let on_c = DistSupervisor::start_replica(&c, named()).await.unwrap();
    // a owns it: every child registered, and neither b's nor c's replica runs a supervisor.
    let registered =
        |node: &noex_remote::Node| (0..9).all(|i| node.registry().whereis(&format!("dsup:owned:c{i}")).is_some());
    noex_tests::remote::eventually("a's children to be registered", || {
        registered(&b) && registered(&c) && on_b.supervisor().is_none() && on_c.supervisor().is_none()
    })
    .await;
    let before: Vec<_> = (0..9).map(|i| b.registry().whereis(&format!("dsup:owned:c{i}")).unwrap()).collect();

    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let owner = within("b's replica to take over", on_b.owned()).await.expect("b's replica runs");
    let children = settled(&owner, "owned", &[&b, &c]).await;
    assert!(on_c.supervisor().is_none(), "one owner");
    for (i, child) in children.iter().enumerate() {
        let pid = child.pid.clone().expect("runs");
        assert_ne!(pid.node().as_str(), a.node_name().as_str(), "{} not on the dead node", child.id);
        if before[i].node().as_str() != a.node_name().as_str() {
            assert_eq!(pid, before[i], "{} adopted, not started again", child.id);
        }
        assert!(b.runtime().is_alive(&pid) || c.runtime().is_alive(&pid));
    }
}
