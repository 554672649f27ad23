//! The global registry across in-process nodes: one owner per name everywhere, removal on unregister, process
//! exit and node loss, and a full table for a node that joins late.

use std::time::Duration;

use noex_core::{ChildSpec, Context, ExitReason, GenServer, Pid, StartOptions, Strategy, Supervisor, SupervisorSpec};
use noex_registry::{GlobalRegistry, RegisterError, RegistryEvent, UnregisterReason};
use noex_remote::{Node, SpawnOptions};
use noex_tests::remote::{eventually, full_node, mesh, within};
use noex_tests::servers::{Counter, Request};

async fn counter_pid(node: &Node) -> Pid {
    let options = noex_core::StartOptions::default();
    node.runtime().start_encodable(Counter::new(0), options).await.unwrap().pid().clone()
}

async fn everywhere(nodes: &[Node], name: &str, expected: Option<&Pid>) {
    for node in nodes {
        let registry = node.registry().clone();
        let what = format!("{} sees {name} -> {expected:?}", node.id());
        eventually(&what, || registry.whereis(name).as_ref() == expected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_seen_everywhere_and_taken_names_are_refused() {
    let nodes = mesh(3).await;
    let pid = counter_pid(&nodes[0]).await;
    nodes[0].registry().register("svc", &pid).unwrap();
    assert_eq!(nodes[0].registry().register("svc", &pid), Ok(()), "the same registration again is a no-op");
    everywhere(&nodes, "svc", Some(&pid)).await;

    let other = counter_pid(&nodes[1]).await;
    assert_eq!(
        nodes[1].registry().register("svc", &other),
        Err(RegisterError::NameTaken { name: "svc".into(), holder: pid.clone() })
    );
    assert_eq!(nodes[2].registry().names(), vec!["svc".to_string()]);

    // A remote process can be registered too; it is reached through the name.
    nodes[2].registry().register("remote-svc", &other).unwrap();
    everywhere(&nodes, "remote-svc", Some(&other)).await;
    let found = nodes[0].registry().whereis("remote-svc").unwrap();
    assert_eq!(nodes[0].runtime().remote_ref::<Counter>(&found).call(Request::add(4)).await, Ok(4));

    let dead = counter_pid(&nodes[0]).await;
    nodes[0].runtime().kill(&dead);
    eventually("the process is gone", || !nodes[0].runtime().is_alive(&dead)).await;
    assert_eq!(nodes[0].registry().register("ghost", &dead), Err(RegisterError::NoProc(dead.clone())));
}

/// A supervised child that registers a global name in its `init`: killed again and again, each restart takes the
/// name back at once (the name of a local process that ended is free for its successor, even while the registry
/// has not yet processed that process's DOWN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_child_takes_its_global_name_back_at_once() {
    struct Registrant(GlobalRegistry);
    impl GenServer for Registrant {
        type Call = ();
        type Reply = ();
        type Cast = ();
        async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
            self.0.register("restarted", ctx.pid()).map_err(|error| ExitReason::error(error.to_string()))
        }
        async fn handle_call(&mut self, (): (), _: &mut Context<Self>) {}
        async fn handle_cast(&mut self, (): (), _: &mut Context<Self>) {}
    }

    let nodes = mesh(2).await;
    let registry = nodes[0].registry().clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(100, Duration::from_secs(60))
        .child(ChildSpec::worker("registrant", move || Registrant(registry.clone())));
    let supervisor = Supervisor::start(nodes[0].runtime(), spec, StartOptions::default()).await.unwrap();
    let mut holder = nodes[0].registry().whereis("restarted").expect("registered by init");
    for round in 0..20 {
        nodes[0].runtime().kill(&holder);
        let what = format!("round {round}: a successor holds the name");
        eventually(&what, || nodes[0].registry().whereis("restarted").is_some_and(|pid| pid != holder)).await;
        holder = nodes[0].registry().whereis("restarted").unwrap();
        assert!(nodes[0].runtime().is_alive(&holder), "round {round}: the holder is the live successor");
    }
    everywhere(&nodes, "restarted", Some(&holder)).await;
    drop(supervisor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_exit_and_node_loss_free_the_name_everywhere() {
    let nodes = mesh(3).await;
    let mut events = nodes[2].registry().events();

    let pid = counter_pid(&nodes[0]).await;
    nodes[0].registry().register("a", &pid).unwrap();
    everywhere(&nodes, "a", Some(&pid)).await;
    assert!(!nodes[1].registry().unregister("a"), "only the registering node frees a name");
    assert!(nodes[0].registry().unregister("a"));
    everywhere(&nodes, "a", None).await;

    let pid = counter_pid(&nodes[0]).await;
    nodes[0].registry().register("b", &pid).unwrap();
    everywhere(&nodes, "b", Some(&pid)).await;
    nodes[0].runtime().stop(&pid, ExitReason::Normal, Duration::from_secs(5)).await.unwrap();
    everywhere(&nodes, "b", None).await;

    let pid = counter_pid(&nodes[1]).await;
    nodes[1].registry().register("c", &pid).unwrap();
    everywhere(&nodes, "c", Some(&pid)).await;
    nodes[1].crash().await;
    everywhere(&[nodes[0].clone(), nodes[2].clone()], "c", None).await;

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let RegistryEvent::Unregistered { name, reason, .. } = event {
            seen.push((name, reason));
        }
    }
    assert_eq!(
        seen,
        vec![
            ("a".into(), UnregisterReason::Unregistered),
            ("b".into(), UnregisterReason::Unregistered),
            ("c".into(), UnregisterReason::NodeDown),
        ],
        "b is announced by its node as a plain removal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_registrations_converge_on_one_owner_and_the_losers_are_told() {
    let nodes = mesh(3).await;
    let mut pids = Vec::new();
    for node in &nodes {
        pids.push(counter_pid(node).await);
    }
    let mut downs = Vec::new();
    for (node, pid) in nodes.iter().zip(&pids) {
        downs.push(node.runtime().monitor(pid));
    }
    // All three register before any sync can arrive.
    let results: Vec<_> = nodes.iter().zip(&pids).map(|(node, pid)| node.registry().register("leader", pid)).collect();
    assert!(results.iter().filter(|r| r.is_ok()).count() >= 1);

    let winner = within("a winner everywhere", async {
        loop {
            let seen: Vec<Option<Pid>> = nodes.iter().map(|n| n.registry().whereis("leader")).collect();
            if seen.iter().all(|p| p.is_some() && *p == seen[0]) {
                return seen[0].clone().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Every process that registered and lost got the conflict exit; the winner lives.
    for ((pid, down), result) in pids.iter().zip(downs).zip(&results) {
        if *pid == winner || result.is_err() {
            continue;
        }
        let reason = within("the loser's end", down).await.reason;
        assert_eq!(reason, ExitReason::error("global name conflict: leader"));
    }
    assert!(nodes.iter().any(|n| n.runtime().is_alive(&winner)));
    // Still one owner once the losers are gone.
    everywhere(&nodes, "leader", Some(&winner)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_sees_every_name_and_announces_its_own() {
    let nodes = mesh(2).await;
    let first = counter_pid(&nodes[0]).await;
    let second = counter_pid(&nodes[1]).await;
    nodes[0].registry().register("first", &first).unwrap();
    nodes[1].registry().register("second", &second).unwrap();
    let spawned = nodes[0].remote().spawn("counter", nodes[1].id(), SpawnOptions::global("spawned")).await.unwrap();

    let late = full_node("late", &[nodes[0].id()]).await;
    let mine = counter_pid(&late).await;
    late.registry().register("late-name", &mine).unwrap();
    let all = vec![nodes[0].clone(), nodes[1].clone(), late.clone()];
    everywhere(&all, "first", Some(&first)).await;
    everywhere(&all, "second", Some(&second)).await;
    everywhere(&all, "spawned", Some(&spawned)).await;
    everywhere(&all, "late-name", Some(&mine)).await;
    assert_eq!(late.registry().len(), 4);
}

/// A full node that other nodes reach only through a pausable proxy.
async fn behind_proxy(name: &str, seeds: &[&noex_cluster::NodeId]) -> (Node, noex_tests::proxy::Proxy) {
    let proxy = noex_tests::proxy::Proxy::start().await;
    let config = noex_cluster::ClusterConfig {
        port: proxy.address().port(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
        seeds: seeds.iter().map(|seed| seed.to_string()).collect(),
        ..noex_tests::cluster::config(name)
    };
    let node = Node::start(config).await.unwrap();
    proxy.set_target(node.cluster().listening_address());
    (node, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_registered_on_both_sides_of_a_partition_converge_when_it_heals() {
    use noex_tests::cluster::wait_connected;
    let (b, b_proxy) = behind_proxy("b", &[]).await;
    let (a, a_proxy) = behind_proxy("a", &[b.id()]).await;
    wait_connected(a.cluster(), 1).await;

    a_proxy.pause();
    b_proxy.pause();
    wait_connected(a.cluster(), 0).await;
    wait_connected(b.cluster(), 0).await;
    let on_a = counter_pid(&a).await;
    a.registry().register("leader", &on_a).unwrap();
    let on_b = counter_pid(&b).await;
    let b_down = b.runtime().monitor(&on_b);
    // Later by the clock, and it makes no difference: the rule looks at no clock, only at the registrars, and
    // a's id sorts before b's.
    b.registry().register("leader", &on_b).unwrap();
    let mut b_events = b.registry().events();

    a_proxy.resume();
    b_proxy.resume();
    everywhere(&[a.clone(), b.clone()], "leader", Some(&on_a)).await;
    assert_eq!(within("the loser's end", b_down).await.reason, ExitReason::error("global name conflict: leader"));
    assert!(a.runtime().is_alive(&on_a));
    let conflict = within("the conflict event", async {
        loop {
            if let Ok(RegistryEvent::ConflictResolved { winner, loser, .. }) = b_events.recv().await {
                return (winner, loser);
            }
        }
    })
    .await;
    assert_eq!(conflict, (on_a.clone(), on_b));
    everywhere(&[a, b], "leader", Some(&on_a)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_started_on_an_already_connected_node_asks_its_peers_for_their_tables() {
    use noex_core::{Runtime, RuntimeConfig};
    use noex_registry::GlobalRegistry;

    let a = full_node("a", &[]).await;
    // `b` joins with no registry: `a`'s full table and its later registration reach nobody there.
    let b = noex_tests::cluster::node("b", &[a.id()]).await;
    noex_tests::cluster::wait_connected(&b, 1).await;
    let early = counter_pid(&a).await;
    a.registry().register("early", &early).unwrap();

    let runtime = Runtime::with_config(RuntimeConfig {
        node: b.local().node_name(),
        creation: b.creation(),
        ..RuntimeConfig::default()
    });
    let registry = GlobalRegistry::start(&runtime, &b);
    eventually("b learns a's table", || registry.whereis("early") == Some(early.clone())).await;
    let late = runtime.start(Counter::new(0)).await.unwrap().pid().clone();
    registry.register("late", &late).unwrap();
    let a_registry = a.registry().clone();
    eventually("a learns b's registration", || a_registry.whereis("late") == Some(late.clone())).await;
    b.shutdown().await;
}

/// Registers `count` names of about `len` bytes on `node`, spread over a few of its processes.
async fn register_many(node: &Node, count: usize, len: usize) -> Vec<(String, Pid)> {
    let mut pids = Vec::new();
    for _ in 0..8 {
        pids.push(counter_pid(node).await);
    }
    let names: Vec<(String, Pid)> =
        (0..count).map(|i| (format!("{i:08}-{}", "n".repeat(len.saturating_sub(9))), pids[i % 8].clone())).collect();
    for (name, pid) in &names {
        node.registry().register(name, pid).unwrap();
    }
    names
}

fn holds_all(node: &Node, names: &[(String, Pid)]) -> bool {
    let registry = node.registry();
    registry.len() == names.len() && names.iter().all(|(name, pid)| registry.whereis(name).as_ref() == Some(pid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_larger_than_a_frame_reaches_a_joiner_whole() {
    let a = full_node("a", &[]).await;
    // 10 MB of names: more than one frame (8 MiB) can carry.
    let names = register_many(&a, 12_000, 850).await;
    let joiner = full_node("joiner", &[a.id()]).await;
    eventually("the joiner holds every name", || holds_all(&joiner, &names)).await;
    let stats = a.cluster().connection_stats(joiner.id()).unwrap();
    assert!(stats.bytes_out > noex_proto::DEFAULT_MAX_FRAME as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cut_by_a_lost_connection_is_completed_by_the_next_one() {
    use noex_tests::cluster::wait_connected;
    let (a, a_proxy) = behind_proxy("a", &[]).await;
    let mut names = register_many(&a, 12_000, 850).await;
    // Slow enough that the sync (10 MB) is caught half way.
    a_proxy.throttle(8 << 20);
    let (b, b_proxy) = behind_proxy("b", &[a.id()]).await;
    b_proxy.throttle(8 << 20);
    let registry = b.registry().clone();
    eventually("b has part of a's table", || registry.len() > 100).await;
    a_proxy.pause();
    b_proxy.pause();
    assert!(registry.len() < names.len(), "the sync was not cut: throttle harder");
    wait_connected(b.cluster(), 0).await;
    wait_connected(a.cluster(), 0).await;
    // Meanwhile a frees a name and registers another: the next full sync must say so.
    let (gone, _) = names.remove(0);
    assert!(a.registry().unregister(&gone));
    let pid = counter_pid(&a).await;
    a.registry().register("while-apart", &pid).unwrap();
    names.push(("while-apart".into(), pid));
    a_proxy.throttle(0);
    b_proxy.throttle(0);
    a_proxy.resume();
    b_proxy.resume();
    eventually("b holds a's whole table", || holds_all(&b, &names)).await;
    assert_eq!(b.registry().whereis(&gone), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_s_many_names_are_gone_when_it_is_reported_down_and_membership_goes_on() {
    use noex_cluster::ClusterEvent;
    let a = full_node("a", &[]).await;
    let names = register_many(&a, 50_000, 12).await;
    let b = full_node("b", &[a.id()]).await;
    eventually("b holds a's table", || holds_all(&b, &names)).await;
    let mut b_events = b.cluster().events();
    let mut registry_events = b.registry().events();
    a.crash().await;
    let c = full_node("c", &[b.id()]).await;
    // The node down and the next node up both reach b; the names did not hold the membership lock meanwhile.
    let mut seen = (false, false);
    within("a down and c up on b", async {
        while seen != (true, true) {
            match b_events.recv().await.unwrap() {
                ClusterEvent::NodeDown { node, .. } if node.node == *a.id() => {
                    // From the moment a is reported down, none of its names is seen, and they are free.
                    assert_eq!(b.registry().whereis(&names[0].0), None);
                    let mine = counter_pid(&b).await;
                    assert_eq!(b.registry().register(&names[1].0, &mine), Ok(()));
                    seen.0 = true;
                }
                ClusterEvent::NodeUp(info) if info.node == *c.id() => seen.1 = true,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(b.registry().len(), 1);
    let mut freed = 0;
    loop {
        match registry_events.try_recv() {
            Ok(RegistryEvent::Unregistered { reason: UnregisterReason::NodeDown, .. }) => freed += 1,
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    assert!(freed > 0, "the removals are events too (the last ones, at least: the channel holds 1024)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_take_a_held_name_by_what_its_frames_claim() {
    use noex_proto::{Frame, FullSync, RegistryEntry, RegistrySync};
    let a = full_node("a", &[]).await;
    let held = counter_pid(&a).await;
    a.registry().register("x", &held).unwrap();
    let mut events = a.registry().events();
    // A peer that speaks the protocol by hand: its id sorts after a's, whatever pid and however it announces.
    let z = noex_tests::cluster::node("z", &[a.id()]).await;
    noex_tests::cluster::wait_connected(&z, 1).await;
    let claimed = noex_core::Pid::new(a.id().node_name(), a.cluster().creation(), 1);
    for full in [None, Some(FullSync { id: 1, first: true, last: true })] {
        let entries = vec![RegistryEntry { name: "x".into(), pid: claimed.clone() }];
        let sync = RegistrySync { full, entries, removed: vec!["x".into()], answer_wanted: false };
        z.send(a.id(), Frame::RegistrySync(sync)).unwrap();
        let (winner, loser) = within("the conflict", async {
            loop {
                if let Ok(RegistryEvent::ConflictResolved { winner, loser, .. }) = events.recv().await {
                    return (winner, loser);
                }
            }
        })
        .await;
        assert_eq!((winner, loser), (held.clone(), claimed.clone()));
    }
    assert_eq!(a.registry().whereis("x"), Some(held.clone()));
    assert!(a.runtime().is_alive(&held));
    z.shutdown().await;
}
