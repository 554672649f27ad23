//! Supervised children that other nodes reach: encodable children, global names held across restarts.

use std::time::Duration;

use noex_core::{
    CallError, ChildSpec, StartError, StartOptions, Strategy, Supervisor, SupervisorError, SupervisorSpec,
};
use noex_tests::remote::{eventually, mesh};
use noex_tests::servers::{Counter, Request};

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
