//! What a distributed supervision keeps across owners: children added with `start_child` and `start_templated`,
//! children stopped for good or deleted, and children started on either side of a healed partition (one owner and
//! one copy of each child after it). Also the bonds of an unnamed supervisor (its children end with it) and a group
//! restart that stops at its first failed start.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use noex_core::{ExitReason, Pid};
use noex_dist_supervisor::{DistChildSpec, DistEvent, DistSupervisor, DistSupervisorSpec, NodeSelector, Strategy};
use noex_tests::cluster::wait_connected;
use noex_tests::dist::{children_until, counters, crash, one_owner, spec, two_replicas_behind_proxies};
use noex_tests::remote::{full_node_behind_proxy, mesh, within};
use noex_tests::servers::{Counter, CounterArgs};
use tokio::sync::broadcast;

async fn next_event(events: &mut broadcast::Receiver<DistEvent>) -> DistEvent {
    within("a supervisor event", events.recv()).await.expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_and_stopped_children_survive_a_takeover() {
    let nodes = mesh(3).await;
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(2)).name("kept");
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    let owner = one_owner("kept", &nodes.iter().collect::<Vec<_>>(), &replicas.iter().collect::<Vec<_>>()).await;
    // Added after the start: one on n2 (it runs on through the takeover), one on n1 (it dies with n1).
    let (on_n2, _) = owner
        .start_child(DistChildSpec::new("added-n2", "counter").selector(NodeSelector::Node(n2.id().clone())))
        .await
        .unwrap();
    let (_, node) =
        owner.start_child(DistChildSpec::new("added-n1", "counter").selector(NodeSelector::LocalFirst)).await.unwrap();
    assert_eq!(&node, n1.id());
    // Stopped for good, and deleted: a new owner must neither start the one nor know the other.
    owner.terminate_child("c0").await.unwrap();
    owner.delete_child("c1").await.unwrap();

    crash(n1).await;
    let second = within("n2's replica to take over", replicas[1].owned()).await.unwrap();
    children_until(&second, |children| {
        let ids: Vec<&str> = children.iter().map(|child| &*child.id).collect();
        ids == ["c0", "added-n2", "added-n1"] && children[1..].iter().all(|child| child.pid.is_some())
    })
    .await;
    let children = second.which_children().await.unwrap();
    assert_eq!(children[0].pid, None, "c0 stays terminated");
    assert_eq!(children[1].pid.as_ref(), Some(&on_n2), "added-n2 adopted, not started again");
    assert_eq!(children[2].node.as_ref(), Some(n2.id()), "added-n1 started again, LocalFirst on the new owner");
    // And the new owner can still restart the terminated one.
    let (pid, _) = second.restart_child("c0").await.unwrap();
    assert!(n2.runtime().is_alive(&pid) || nodes[2].runtime().is_alive(&pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_children_survive_a_takeover_and_their_numbering_goes_on() {
    let nodes = mesh(3).await;
    let template = DistChildSpec::new("worker", "counter").args(&CounterArgs { initial: 7, ..Default::default() });
    let named = || {
        DistSupervisorSpec::new(Strategy::SimpleOneForOne)
            .selector(NodeSelector::Node(nodes[2].id().clone()))
            .template(template.clone())
            .name("pool")
    };
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    let owner = one_owner("pool", &nodes.iter().collect::<Vec<_>>(), &replicas.iter().collect::<Vec<_>>()).await;
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(owner.start_templated(&CounterArgs { initial: 1, ..Default::default() }).await.unwrap().0);
    }

    crash(&nodes[0]).await;
    let second = within("n2's replica to take over", replicas[1].owned()).await.unwrap();
    let children = second.which_children().await.unwrap();
    let ids: Vec<&str> = children.iter().map(|child| &*child.id).collect();
    assert_eq!(ids, ["worker_1", "worker_2", "worker_3"]);
    let pids: Vec<Pid> = children.into_iter().map(|child| child.pid.expect("adopted")).collect();
    assert_eq!(pids, before, "each adopted where it ran, on n3");
    // The next one is worker_4, not a second worker_1 (whose global name is taken).
    let (pid, _) = second.start_templated(&CounterArgs { initial: 1, ..Default::default() }).await.unwrap();
    let ids: Vec<String> = second.which_children().await.unwrap().iter().map(|child| child.id.to_string()).collect();
    assert_eq!(ids.last().map(String::as_str), Some("worker_4"));
    let counter = nodes[1].runtime().remote_ref::<Counter>(&pid);
    assert_eq!(counter.call(noex_tests::servers::Request::get()).await, Ok(1), "its own arguments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_added_on_the_smaller_side_of_a_partition_is_merged_when_it_heals() {
    noex_tests::remote::log();
    let named = || spec(Strategy::OneForOne, NodeSelector::LocalFirst, counters(1)).name("merged");
    let (_a, b, on_a, on_b, link) = two_replicas_behind_proxies(named).await;

    link.cut();
    let b_side = within("b's replica to own its side", on_b.owned()).await.unwrap();
    let (only_b, _) = b_side.start_child(DistChildSpec::new("only-b", "counter")).await.unwrap();

    link.heal();
    // a owns the supervision again, knows b's child, and runs it once: the one b started, adopted.
    let mut merged = None;
    within("a to take on b's child", async {
        loop {
            if on_b.supervisor().is_none()
                && let Some(owner) = on_a.supervisor()
                && let Ok(children) = owner.which_children().await
                && let Some(child) = children.iter().find(|child| &*child.id == "only-b")
                && child.pid.is_some()
            {
                merged = child.pid.clone();
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(merged.as_ref(), Some(&only_b), "adopted, not started again");
    assert!(b.runtime().is_alive(&only_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unnamed_supervisors_children_end_with_it_wherever_they_run() {
    let nodes = mesh(2).await;
    let there = NodeSelector::Node(nodes[1].id().clone());
    let supervisor = DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, there, counters(3))).await.unwrap();
    let children: Vec<Pid> =
        supervisor.which_children().await.unwrap().into_iter().map(|child| child.pid.unwrap()).collect();
    let downs: Vec<_> = children.iter().map(|pid| nodes[1].runtime().monitor(pid)).collect();

    // Killed: no `terminate`, so nothing stops the children but their links.
    nodes[0].runtime().kill(supervisor.pid());
    for down in downs {
        let down = within("a child to end with its supervisor", down).await;
        assert_eq!(down.reason, ExitReason::Killed, "the supervisor's reason, through the link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_restart_stops_at_its_first_failed_start_and_retries_the_group() {
    let nodes = mesh(2).await;
    // `flaky` fails its start as many times as `failures` says, then starts.
    let failures = Arc::new(AtomicUsize::new(0));
    for node in &nodes {
        let failures = failures.clone();
        node.remote().behaviours().register("flaky", move |_: CounterArgs| {
            match failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
                Ok(_) => Err("not now".to_string()),
                Err(_) => Ok(Counter::default()),
            }
        });
    }
    let children = vec![
        DistChildSpec::new("first", "counter"),
        DistChildSpec::new("second", "flaky"),
        DistChildSpec::new("third", "counter"),
    ];
    let supervisor =
        DistSupervisor::start(&nodes[0], spec(Strategy::OneForAll, NodeSelector::RoundRobin, children)).await.unwrap();
    let mut events = supervisor.events();
    let first = supervisor.which_children().await.unwrap()[0].pid.clone().unwrap();

    failures.store(1, Ordering::SeqCst);
    nodes[0].runtime().exit(&first, ExitReason::error("boom"));
    // first restarts, second fails: third is not started; the retry restarts the group, in order.
    let mut restarted = Vec::new();
    while restarted.len() < 4 {
        if let DistEvent::ChildRestarted { id, .. } = next_event(&mut events).await {
            restarted.push(id.to_string());
        }
    }
    assert_eq!(restarted, ["first", "first", "second", "third"]);
    let children = supervisor.which_children().await.unwrap();
    assert!(children.iter().all(|child| child.pid.is_some()), "all run again");
}

/// Apart, a (the owner by the rule) terminates c0 and deletes c1, while b's side, owning its half, runs a copy of
/// each. Healed, b's supervisor hands over and a's decisions win: b's copies end (neither runs unsupervised), c1
/// stays deleted and c0 terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_stopped_on_the_owners_side_of_a_partition_do_not_run_on_after_it_heals() {
    noex_tests::remote::log();
    let named = || spec(Strategy::OneForOne, NodeSelector::LocalFirst, counters(2)).name("undone");
    let (_a, b, on_a, on_b, link) = two_replicas_behind_proxies(named).await;
    let a_side = on_a.supervisor().expect("a's replica owns it");

    link.cut();
    let b_side = within("b's replica to own its side", on_b.owned()).await.unwrap();
    children_until(&b_side, |children| children.len() == 2 && children.iter().all(|child| child.pid.is_some())).await;
    let b_copies: Vec<Pid> = b_side.which_children().await.unwrap().into_iter().map(|c| c.pid.unwrap()).collect();
    assert!(b_copies.iter().all(|pid| b.runtime().is_alive(pid)));
    a_side.terminate_child("c0").await.unwrap();
    a_side.delete_child("c1").await.unwrap();

    link.heal();
    noex_tests::remote::eventually("b's supervisor to hand over", || !b_side.is_alive()).await;
    noex_tests::remote::eventually("b's copies of the stopped children to end", || {
        b_copies.iter().all(|pid| !b.runtime().is_alive(pid))
    })
    .await;
    let children = a_side.which_children().await.unwrap();
    let ids: Vec<&str> = children.iter().map(|child| &*child.id).collect();
    assert_eq!(ids, ["c0"], "c1 stays deleted");
    assert_eq!(children[0].pid, None, "c0 stays terminated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_node_cluster_split_one_against_three_heals_to_one_owner_and_one_copy_of_each_child() {
    use noex_tests::proxy::Link;
    let (a, a_proxy) = full_node_behind_proxy("a", &[]).await;
    let mut nodes = vec![a];
    let mut proxies = vec![a_proxy];
    for name in ["b", "c", "d"] {
        let (node, proxy) = full_node_behind_proxy(name, &[nodes[0].id()]).await;
        nodes.push(node);
        proxies.push(proxy);
    }
    for node in &nodes {
        wait_connected(node.cluster(), 3).await;
    }
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(8)).name("wide");
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    let owner = one_owner("wide", &nodes.iter().collect::<Vec<_>>(), &replicas.iter().collect::<Vec<_>>()).await;
    let mut seen: Vec<Pid> = owner.which_children().await.unwrap().into_iter().filter_map(|c| c.pid).collect();

    // a alone against b, c and d: whoever dialed whom, every link between the sides is cut.
    let set_split = |link: Link| {
        for (i, name) in ["b", "c", "d"].iter().enumerate() {
            proxies[0].set_link(name, link);
            proxies[i + 1].set_link("a", link);
        }
    };
    set_split(Link { cut: true, ..Link::default() });
    let b_side = within("b's replica to own the larger side", replicas[1].owned()).await.unwrap();
    let (late, _) = b_side.start_child(DistChildSpec::new("late", "counter")).await.unwrap();
    for side in [&owner, &b_side] {
        children_until(side, |children| children.iter().all(|child| child.pid.is_some())).await;
        seen.extend(side.which_children().await.unwrap().into_iter().filter_map(|c| c.pid));
    }

    set_split(Link::default());
    let alive = |pid: &Pid| nodes.iter().any(|node| node.runtime().is_alive(pid));
    within("one owner, and one live copy of each child, named alike everywhere", async {
        loop {
            let owners = replicas.iter().filter(|replica| replica.supervisor().is_some()).count();
            if owners == 1
                && let Some(owner) = replicas[0].supervisor()
                && let Ok(children) = owner.which_children().await
            {
                let current: Vec<Pid> = children.iter().filter_map(|child| child.pid.clone()).collect();
                let named_alike = children.iter().all(|child| {
                    let name = format!("dsup:wide:{}", child.id);
                    child.pid.is_some() && nodes.iter().all(|node| node.registry().whereis(&name) == child.pid)
                });
                let extra = seen.iter().any(|pid| alive(pid) && !current.contains(pid));
                if children.len() == 9 && named_alike && !extra && current.iter().all(alive) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let children = replicas[0].supervisor().unwrap().which_children().await.unwrap();
    let late_now = children.iter().find(|child| &*child.id == "late").and_then(|child| child.pid.clone());
    assert_eq!(late_now, Some(late), "the child added on the larger side was kept, not started again");
}
