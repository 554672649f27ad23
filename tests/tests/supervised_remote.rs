//! Supervised children that other nodes reach (encodable children, global names held across restarts), and the
//! link and supervisor options of remote spawn.

use std::time::Duration;

use noex_core::{
    CallError, ChildSpec, ExitReason, Info, Restart, StartError, StartOptions, Strategy, Supervisor, SupervisorError,
    SupervisorSpec,
};
use noex_remote::{SpawnError, SpawnOptions};
use noex_tests::remote::{eventually, mesh, within};
use noex_tests::servers::{Counter, CounterArgs, Request, Watch, Watcher};

fn supervised_counter(node: &noex_remote::Node, name: &str) -> SupervisorSpec {
    let child = ChildSpec::encodable_worker("counter", || Counter::new(0)).registered(node.registry().registrar(name));
    SupervisorSpec::new(Strategy::OneForOne).intensity(1000, Duration::from_secs(60)).child(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_child_keeps_its_global_name_and_is_called_from_another_node_across_restarts() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let supervisor = Supervisor::start(b.runtime(), supervised_counter(b, "kv:counter"), StartOptions::default())
        .await
        .expect("the supervisor and its child start");

    let mut previous = None;
    for round in 0..20 {
        // The child of this round: the registration on node a names a process other than the one crashed before.
        eventually("node a to learn the current child", || {
            a.registry().whereis("kv:counter").is_some_and(|pid| Some(&pid) != previous.as_ref())
        })
        .await;
        let counter = a.whereis_global::<Counter>("kv:counter").expect("registered");
        assert!(counter.is_remote());
        counter.cast(5);
        assert_eq!(counter.call(Request::get()).await, Ok(5), "round {round}: a fresh child, reached from node a");
        // On its own node, the name names the supervisor's current child, never a dead predecessor.
        let children = supervisor.which_children().await.unwrap();
        assert_eq!(b.registry().whereis("kv:counter"), children[0].pid, "round {round}");

        let crashed = counter.call(Request::crash()).await;
        assert!(matches!(crashed, Err(CallError::Exited(_))), "round {round}: {crashed:?}");
        previous = Some(counter.pid().clone());
    }
    // Every restart took the name again: none failed (a failed restart would have been retried, and counted).
    eventually("the last restart", || {
        b.registry().whereis("kv:counter").is_some_and(|p| Some(&p) != previous.as_ref())
    })
    .await;
    assert!(supervisor.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_whose_global_name_is_held_by_a_live_process_fails_to_start() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let holder = a.runtime().start_encodable(Counter::new(0), StartOptions::default()).await.unwrap();
    a.registry().register("kv:held", holder.pid()).unwrap();
    eventually("node b to learn the name", || b.registry().is_registered("kv:held")).await;

    // Added to a running supervisor, the child's start error comes back as it is.
    let supervisor = Supervisor::start(b.runtime(), SupervisorSpec::new(Strategy::OneForOne), StartOptions::default())
        .await
        .unwrap();
    let child = supervised_counter(b, "kv:held").children.remove(0);
    match supervisor.start_child(child).await {
        Err(SupervisorError::Start(StartError::NameTaken { name, holder: held_by })) => {
            assert_eq!(name, "kv:held");
            assert_eq!(&held_by, holder.pid());
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(a.registry().whereis("kv:held").as_ref(), Some(holder.pid()), "the holder keeps its name");
    assert!(supervisor.which_children().await.unwrap().is_empty(), "no child was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_linked_to_a_process_of_the_requesting_node_propagates_exits_both_ways() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (watcher, mut infos) = Watcher::new();
    let watcher = a.runtime().start(watcher).await.unwrap();
    watcher.call(Watch::Trap(true)).await.unwrap();

    // The counter crashes: the trapping watcher gets its EXIT.
    let pid = a.remote().spawn("counter", b.id(), SpawnOptions::default().link(watcher.pid())).await.unwrap();
    let counter = a.runtime().remote_ref::<Counter>(&pid);
    let _ = counter.call(Request::crash()).await;
    match within("the EXIT of the linked counter", infos.recv()).await {
        Some(Info::Exit(exit)) => {
            assert_eq!(exit.from, pid);
            assert!(matches!(exit.reason, ExitReason::Error(_)), "{exit:?}");
        }
        other => panic!("expected an EXIT, got {other:?}"),
    }

    // The requester's process crashes: the counter on the other node, which does not trap, goes with it.
    let pid = a.remote().spawn("counter", b.id(), SpawnOptions::default().link(watcher.pid())).await.unwrap();
    let down = a.runtime().monitor(&pid);
    watcher.call(Watch::Trap(false)).await.unwrap();
    a.runtime().exit(watcher.pid(), ExitReason::error("watcher failed"));
    let down = within("the linked counter's end", down).await;
    assert_eq!(down.reason, ExitReason::error("watcher failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_may_only_link_processes_of_the_requesting_node() {
    let nodes = mesh(3).await;
    let third = nodes[2].runtime().start(Watcher::new().0).await.unwrap();
    let spawned = nodes[0].remote().spawn("counter", nodes[1].id(), SpawnOptions::default().link(third.pid())).await;
    assert!(matches!(spawned, Err(SpawnError::BadArguments(_))), "{spawned:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_under_a_remote_supervisor_is_restarted_there_under_its_global_name() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let supervisor = Supervisor::start(b.runtime(), SupervisorSpec::new(Strategy::OneForOne), StartOptions::default())
        .await
        .unwrap();
    let options = SpawnOptions::global("kv:supervised")
        .args(&CounterArgs { initial: 7, ..Default::default() })
        .supervised_by(supervisor.pid(), Restart::Permanent);
    let first = a.remote().spawn("counter", b.id(), options).await.expect("started as a child");
    let children = supervisor.which_children().await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].pid.as_ref(), Some(&first));

    let counter = a.whereis_global::<Counter>("kv:supervised").expect("registered");
    assert_eq!(counter.call(Request::get()).await, Ok(7));
    let _ = counter.call(Request::crash()).await;
    // Restarted by its supervisor with the same arguments, and registered again.
    eventually("the restarted child's name on node a", || {
        a.registry().whereis("kv:supervised").is_some_and(|pid| pid != first)
    })
    .await;
    let restarted = a.whereis_global::<Counter>("kv:supervised").unwrap();
    assert_eq!(restarted.call(Request::get()).await, Ok(7), "made again from the same init arguments");

    let not_a_supervisor =
        a.remote().spawn("counter", b.id(), SpawnOptions::default().supervised_by(&first, Restart::Permanent)).await;
    assert!(matches!(not_a_supervisor, Err(SpawnError::BadArguments(_))), "{not_a_supervisor:?}");
}
