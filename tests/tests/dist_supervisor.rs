//! The distributed supervisor across in-process nodes: placement by selector, failover of a lost node's children
//! (each exactly once), restart types, intensity, events.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use noex_core::{ExitReason, Restart};
use noex_dist_supervisor::{
    DistChildSpec, DistEvent, DistSupervisor, DistSupervisorError, DistSupervisorSpec, NodeSelector, Strategy,
};
use noex_tests::cluster::wait_connected;
use noex_tests::dist::{counters, prefer, spec, three_with_two_behind_proxies};
use noex_tests::remote::{eventually, mesh, within};
use noex_tests::servers::{Counter, CounterArgs, Request};
use tokio::sync::broadcast;

/// Children per node name.
async fn placement(supervisor: &noex_dist_supervisor::DistSupervisorRef) -> BTreeMap<String, usize> {
    supervisor.stats().await.unwrap().children_by_node
}

/// The next event of `events`, failing the test if none comes in time.
async fn next_event(events: &mut broadcast::Receiver<DistEvent>) -> DistEvent {
    within("a supervisor event", events.recv()).await.expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_children_round_robin_over_four_nodes_are_spread_evenly_and_answer() {
    let nodes = mesh(4).await;
    let supervisor =
        DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(50)))
            .await
            .unwrap();
    let spread: Vec<usize> = placement(&supervisor).await.into_values().collect();
    assert_eq!(spread.len(), 4, "every node hosts children: {spread:?}");
    assert!(spread.iter().all(|&n| n == 12 || n == 13), "{spread:?}");
    for child in supervisor.which_children().await.unwrap() {
        let counter = nodes[0].runtime().remote_ref::<Counter>(child.pid.as_ref().unwrap());
        assert_eq!(counter.call(Request::get()).await, Ok(0), "{} answers", child.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_selector_places_where_it_says() {
    let nodes = mesh(3).await;
    let local = nodes[0].id().to_string();
    let third = nodes[2].id().clone();
    let pick_third = {
        let third = third.clone();
        NodeSelector::Custom(std::sync::Arc::new(move |_, _| Some(third.clone())))
    };
    let cases = [
        (NodeSelector::LocalFirst, BTreeMap::from([(local.clone(), 3)])),
        (NodeSelector::Node(third.clone()), BTreeMap::from([(third.to_string(), 3)])),
        (pick_third, BTreeMap::from([(third.to_string(), 3)])),
    ];
    for (selector, expected) in cases {
        let supervisor =
            DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, selector.clone(), counters(3))).await.unwrap();
        assert_eq!(placement(&supervisor).await, expected, "{selector:?}");
        supervisor.stop(Duration::from_secs(5)).await.unwrap();
    }
    // Least loaded: one child per node before any node gets a second.
    let supervisor =
        DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::LeastLoaded, counters(6)))
            .await
            .unwrap();
    assert!(placement(&supervisor).await.values().all(|&n| n == 2), "{:?}", placement(&supervisor).await);
    // Random: every child somewhere connected.
    let random =
        DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::Random, counters(6))).await.unwrap();
    assert_eq!(placement(&random).await.values().sum::<usize>(), 6);
    // A node that is not connected: no candidate.
    let ghost: noex_cluster::NodeId = format!("ghost@127.0.0.1:{}", noex_tests::cluster::free_port()).parse().unwrap();
    let refused =
        DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::Node(ghost), counters(1))).await;
    assert!(matches!(refused, Err(DistSupervisorError::Start(_))), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_nodes_children_each_run_again_elsewhere_exactly_once() {
    let nodes = mesh(4).await;
    let mut children = counters(40);
    children[1] = DistChildSpec::new("temp", "counter").restart(Restart::Temporary);
    children[2] = DistChildSpec::new("trans", "counter").restart(Restart::Transient);
    let supervisor =
        DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::RoundRobin, children)).await.unwrap();
    let mut events = supervisor.events();
    let before = supervisor.which_children().await.unwrap();
    let lost = nodes[1].id().clone();
    let on_lost: Vec<_> = before.iter().filter(|c| c.node.as_ref() == Some(&lost)).map(|c| c.id.clone()).collect();
    assert_eq!(on_lost.len(), 10);

    nodes[1].crash().await;
    let DistEvent::NodeFailureDetected { node, affected } = next_event(&mut events).await else {
        panic!("the node failure comes first");
    };
    assert_eq!((node, &affected), (lost.clone(), &on_lost));
    // One event per affected child: migrated, or stopped if temporary; never twice.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..on_lost.len() {
        match next_event(&mut events).await {
            DistEvent::ChildMigrated { id, from, to, .. } => {
                assert_eq!(from, lost);
                assert_ne!(to, lost);
                *seen.entry(id.to_string()).or_default() += 1;
            }
            DistEvent::ChildStopped { id, reason } => {
                assert_eq!((&*id, reason), ("temp", ExitReason::NoConnection));
                *seen.entry(id.to_string()).or_default() += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let after = supervisor.which_children().await.unwrap();
    let temp_was_lost = on_lost.iter().any(|id| &**id == "temp");
    assert_eq!(after.len(), if temp_was_lost { 39 } else { 40 });
    assert!(
        after.iter().all(|c| c.pid.is_some() && c.node.as_ref() != Some(&lost)),
        "all run, none on the lost node: {after:#?}"
    );
    let stats = supervisor.stats().await.unwrap();
    assert_eq!(stats.node_failure_restarts as usize, on_lost.len() - usize::from(temp_was_lost));
    // Each child runs once cluster-wide: one process per child, all answering.
    for child in &after {
        let counter = nodes[0].runtime().remote_ref::<Counter>(child.pid.as_ref().unwrap());
        assert_eq!(counter.call(Request::get()).await, Ok(0));
    }
    // Nothing more happens: no late duplicate restart.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(events.try_recv().is_err(), "no event after the failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_child_restarts_and_too_many_crashes_stop_the_supervisor() {
    let nodes = mesh(2).await;
    let mut spec = spec(Strategy::OneForOne, NodeSelector::Node(nodes[1].id().clone()), counters(1));
    spec.max_restarts = 2;
    spec.children[0] = DistChildSpec::new("c0", "counter").args(&CounterArgs { initial: 5, ..Default::default() });
    let supervisor = DistSupervisor::start(&nodes[0], spec).await.unwrap();
    let mut events = supervisor.events();
    for attempt in 1..=2 {
        let pid = supervisor.which_children().await.unwrap()[0].pid.clone().unwrap();
        let counter = nodes[0].runtime().remote_ref::<Counter>(&pid);
        let _ = counter.call(Request::crash()).await;
        match next_event(&mut events).await {
            DistEvent::ChildRestarted { attempt: n, pid: new, node, .. } => {
                assert_eq!((n, &node), (attempt, nodes[1].id()));
                let restarted = nodes[0].runtime().remote_ref::<Counter>(&new);
                assert_eq!(restarted.call(Request::get()).await, Ok(5), "made again from its arguments");
            }
            other => panic!("expected a restart, got {other:?}"),
        }
    }
    let down = nodes[0].runtime().monitor(supervisor.pid());
    let pid = supervisor.which_children().await.unwrap()[0].pid.clone().unwrap();
    let _ = nodes[0].runtime().remote_ref::<Counter>(&pid).call(Request::crash()).await;
    assert_eq!(within("the supervisor to give up", down).await.reason, ExitReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_one_for_one_starts_children_from_its_template() {
    let nodes = mesh(2).await;
    let spec = DistSupervisorSpec::new(Strategy::SimpleOneForOne)
        .selector(NodeSelector::RoundRobin)
        .template(DistChildSpec::new("worker", "counter"));
    let supervisor = DistSupervisor::start(&nodes[0], spec).await.unwrap();
    for initial in [1, 2] {
        let (pid, _) = supervisor.start_templated(&CounterArgs { initial, ..Default::default() }).await.unwrap();
        assert_eq!(nodes[0].runtime().remote_ref::<Counter>(&pid).call(Request::get()).await, Ok(initial));
    }
    let ids: Vec<_> = supervisor.which_children().await.unwrap().into_iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["worker_1", "worker_2"]);
    assert!(matches!(
        supervisor.start_child(DistChildSpec::new("x", "counter")).await,
        Err(DistSupervisorError::Misuse(_))
    ));
    supervisor.terminate_child("worker_1").await.unwrap();
    assert_eq!(supervisor.count_children().await.unwrap(), (2, 1));
    assert!(matches!(supervisor.terminate_child("nobody").await, Err(DistSupervisorError::ChildNotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partition_heals_each_child_runs_once() {
    let (a, a_proxy, b, b_proxy, c) = three_with_two_behind_proxies().await;
    // Every child on b while b is there, else on c; a supervises.
    let prefer_b = prefer(b.id(), c.id());
    let supervisor = DistSupervisor::start(&a, spec(Strategy::OneForOne, prefer_b, counters(4))).await.unwrap();
    let mut events = supervisor.events();
    let on_b: Vec<_> = supervisor.which_children().await.unwrap().into_iter().map(|c| c.pid.unwrap()).collect();
    assert!(on_b.iter().all(|pid| *pid.node() == b.id().node_name()));

    // b is cut off from a (both proxies pause; whether a keeps c depends on who dialed whom).
    a_proxy.pause();
    b_proxy.pause();
    let DistEvent::NodeFailureDetected { affected, .. } = next_event(&mut events).await else {
        panic!("failure first")
    };
    assert_eq!(affected.len(), 4);
    // Apart, b's copies end too: they are linked to their supervisor, and the link breaks with `noconnection`.
    eventually("b's copies to end with their links", || on_b.iter().all(|pid| !b.runtime().is_alive(pid))).await;

    a_proxy.resume();
    b_proxy.resume();
    // Each child runs again (on c at once, or on b once it is back); b's old copies, ended already unless they trap
    // exits, are killed once b is back.
    let (mut stopped, mut migrated) = (Vec::new(), Vec::new());
    while stopped.len() < 4 || migrated.len() < 4 {
        match next_event(&mut events).await {
            DistEvent::DuplicateStopped { pid, .. } => stopped.push(pid),
            DistEvent::ChildMigrated { id, .. } => migrated.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    stopped.sort_by_key(|pid| pid.to_string());
    let mut expected = on_b.clone();
    expected.sort_by_key(|pid| pid.to_string());
    assert_eq!(stopped, expected, "exactly the old copies were stopped");
    migrated.sort();
    assert_eq!(migrated.len(), 4);
    migrated.dedup();
    assert_eq!(migrated.len(), 4, "each child moved once");
    eventually("the duplicates to be gone", || on_b.iter().all(|pid| !b.runtime().is_alive(pid))).await;
    let now: Vec<_> = supervisor.which_children().await.unwrap().into_iter().map(|c| c.pid.unwrap()).collect();
    let alive = |pid: &noex_core::Pid| [&a, &b, &c].iter().any(|node| node.runtime().is_alive(pid));
    assert!(now.iter().all(|pid| alive(pid) && !on_b.contains(pid)), "one live copy each, a new one");
    assert!(events.try_recv().is_err(), "nothing else happened");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_supervision_restarted_on_another_node_adopts_the_children_that_still_run() {
    let nodes = mesh(3).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(6)).name("jobs");
    let first = DistSupervisor::start(a, named()).await.unwrap();
    let before = first.which_children().await.unwrap();
    eventually("b to know every child's name", || {
        before.iter().all(|child| b.registry().whereis(&format!("dsup:jobs:{}", child.id)) == child.pid)
    })
    .await;

    // a dies: its supervisor and its two children with it; the four children on b and c run on.
    a.crash().await;
    a.runtime().shutdown(Duration::from_secs(1)).await;
    wait_connected(b.cluster(), 1).await;
    wait_connected(c.cluster(), 1).await;

    let second = DistSupervisor::start(b, named()).await.unwrap();
    let after = second.which_children().await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        if old.node.as_ref() == Some(a.id()) {
            assert_ne!(new.pid, old.pid, "{}: a's child started again", old.id);
            assert_ne!(new.node.as_ref(), Some(a.id()));
        } else {
            assert_eq!(new.pid, old.pid, "{}: adopted, not started again", old.id);
        }
    }
    // One copy each, and a crash of an adopted child is the new supervisor's to handle.
    let mut events = second.events();
    let adopted = after.iter().find(|child| child.node.as_ref() == Some(c.id())).unwrap();
    let counter = b.runtime().remote_ref::<Counter>(adopted.pid.as_ref().unwrap());
    let _ = counter.call(Request::crash()).await;
    match next_event(&mut events).await {
        DistEvent::ChildRestarted { id, .. } => assert_eq!(id, adopted.id),
        other => panic!("expected the restart, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owners_node_dies_the_next_replica_takes_over_and_no_child_starts_twice() {
    let nodes = mesh(3).await;
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(6)).name("replicated");
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    // n1's id sorts first: its replica owns the supervision, and only it.
    let owner = noex_tests::dist::one_owner(
        "replicated",
        &nodes.iter().collect::<Vec<_>>(),
        &replicas.iter().collect::<Vec<_>>(),
    )
    .await;
    assert!(replicas[1].supervisor().is_none() && replicas[2].supervisor().is_none(), "one owner");
    let before = noex_tests::dist::settled(&owner, "replicated", &nodes.iter().collect::<Vec<_>>()).await;
    let mut events = replicas[1].events();

    // n1 dies (its replica and supervisor with it): n2's replica takes over.
    nodes[0].crash().await;
    nodes[0].runtime().shutdown(Duration::from_secs(1)).await;
    let mut adopted = 0;
    let mut started = 0;
    while adopted + started < 6 {
        match next_event(&mut events).await {
            DistEvent::ChildAdopted { .. } => adopted += 1,
            // Started at once, or retried while n1's names still linger on a node (then as a restart).
            DistEvent::ChildStarted { node, .. } | DistEvent::ChildRestarted { node, .. } => {
                assert_ne!(&node, nodes[0].id());
                started += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((adopted, started), (4, 2), "the children on n2 and n3 ran on; n1's two started elsewhere");
    let second = within("n2's replica to own it", replicas[1].owned()).await.expect("n2's replica runs");
    let after = second.which_children().await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        if old.node.as_ref() != Some(nodes[0].id()) {
            assert_eq!(old.pid, new.pid, "{} adopted", old.id);
        }
    }
    assert!(replicas[2].supervisor().is_none(), "still one owner");
}

/// Polls the async `probe` until it gives a value, failing the test after the shared deadline.
async fn eventually_async<T, F, Fut>(what: &str, mut probe: F, found: &mut Option<T>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = probe().await {
                *found = Some(value);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_both_sides_of_a_healed_partition_leave_one_owner_and_one_copy_of_each_child() {
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(4)).name("split");
    let (a, b, on_a, on_b, link) = noex_tests::dist::two_replicas_behind_proxies(named).await;
    let owner = on_a.supervisor().expect("a's replica owns it");
    let first = owner.which_children().await.unwrap();
    let mut copies: Vec<_> = first.iter().filter_map(|child| child.pid.clone()).collect();

    // Apart, each side owns the supervision and runs every child: two copies of each.
    link.cut();
    let mut b_owner = None;
    eventually_async(
        "b's replica to own its side",
        || {
            let replica = on_b.clone();
            async move { replica.supervisor() }
        },
        &mut b_owner,
    )
    .await;
    for side in [on_a.clone(), on_b.clone()] {
        eventually_async(
            "every child to run on each side",
            || {
                let side = side.clone();
                async move {
                    let children = side.supervisor()?.which_children().await.ok()?;
                    children.iter().all(|child| child.pid.is_some()).then_some(children)
                }
            },
            &mut None,
        )
        .await;
        let children = side.supervisor().unwrap().which_children().await.unwrap();
        copies.extend(children.into_iter().filter_map(|child| child.pid));
    }

    // Healed: one owner (a, whose id sorts first), and of all the copies ever started, one live one per child,
    // the one both nodes' registries name.
    link.heal();
    eventually_async(
        "one owner and one live copy of each child",
        || {
            let (on_a, on_b, copies) = (on_a.clone(), on_b.clone(), copies.clone());
            let (a, b) = (a.clone(), b.clone());
            async move {
                if on_b.supervisor().is_some() {
                    return None;
                }
                let children = on_a.supervisor()?.which_children().await.ok()?;
                let alive = |pid: &noex_core::Pid| a.runtime().is_alive(pid) || b.runtime().is_alive(pid);
                let live: Vec<_> = copies.iter().filter(|pid| alive(pid)).cloned().collect();
                let named_alike = children.iter().all(|child| {
                    let name = format!("dsup:split:{}", child.id);
                    child.pid.is_some()
                        && a.registry().whereis(&name) == child.pid
                        && b.registry().whereis(&name) == child.pid
                });
                let current: Vec<_> = children.iter().filter_map(|child| child.pid.clone()).collect();
                let extra_alive = live.iter().any(|pid| !current.contains(pid));
                (named_alike && !extra_alive && current.iter().all(alive)).then_some(())
            }
        },
        &mut None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_places_by_the_nodes_process_counts() {
    use noex_tests::observer::{idle_servers, observed_node};
    let (n1, observer) = observed_node("n1", &[]).await;
    let (n2, _n2_observer) = observed_node("n2", &[n1.id()]).await;
    let (n3, _n3_observer) = observed_node("n3", &[n1.id()]).await;
    for node in [&n1, &n2, &n3] {
        noex_tests::servers::register_behaviours(node.remote().behaviours());
        wait_connected(node.cluster(), 2).await;
    }
    // n1 runs 20 processes (and the supervisor), n2 10, n3 none.
    let _busy = (idle_servers(&n1, 20).await, idle_servers(&n2, 10).await);
    let spec = spec(Strategy::OneForOne, NodeSelector::LeastLoaded, counters(12)).observer(observer);
    let supervisor = DistSupervisor::start(&n1, spec).await.unwrap();
    // n3 takes children until it runs as many processes as n2; then they alternate (ties go by node id).
    let expected = BTreeMap::from([(n2.id().to_string(), 1), (n3.id().to_string(), 11)]);
    assert_eq!(placement(&supervisor).await, expected);
}
