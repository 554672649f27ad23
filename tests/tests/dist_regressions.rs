//! Regressions found in review: the distributed supervisor and remote spawn under the situations that broke them
//! (a child's `noconnection` on a live node, spawns on the own node, a slow supervised init, group restarts with
//! temporary siblings, retries racing a terminate, stops during a partition, the forwarding task's lifetime).

use std::time::Duration;

use noex_core::{ExitReason, Restart, StartOptions, Strategy, Supervisor, SupervisorSpec};
use noex_dist_supervisor::{DistChildSpec, DistSupervisor, DistSupervisorSpec, NodeSelector};
use noex_remote::SpawnOptions;
use noex_tests::remote::{mesh, within};
use noex_tests::servers::CounterArgs;

/// A child that dies of `noconnection` (a link to a process of a lost node, say) while its own node is fine is one
/// child's end, not a lost node: only it restarts (its siblings were once started again elsewhere, and their old
/// copies ran on forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_ending_with_noconnection_on_a_live_node_does_not_duplicate_its_siblings() {
    let nodes = mesh(2).await;
    let spec = DistSupervisorSpec::new(noex_dist_supervisor::Strategy::OneForOne)
        .selector(NodeSelector::LocalFirst)
        .intensity(10, Duration::from_secs(5))
        .child(DistChildSpec::new("c0", "counter"))
        .child(DistChildSpec::new("c1", "counter"));
    let supervisor = DistSupervisor::start(&nodes[0], spec).await.unwrap();
    let mut events = supervisor.events();
    let before = supervisor.which_children().await.unwrap();
    let c0 = before[0].pid.clone().unwrap();

    // What a link to a process of a lost node does to a child that does not trap exits.
    nodes[0].runtime().exit(&c0, ExitReason::NoConnection);
    match within("c0's restart", events.recv()).await {
        Ok(noex_dist_supervisor::DistEvent::ChildRestarted { id, .. }) => assert_eq!(&*id, "c0"),
        other => panic!("expected c0's restart alone, got {other:?}"),
    }
    let after = supervisor.which_children().await.unwrap();
    assert_eq!(after[1].pid, before[1].pid, "c1 untouched: its node was never lost");
    assert!(events.try_recv().is_err(), "nothing else happened");
}

/// Two supervised spawns of one behaviour on the requester's own node get two child ids (they once shared
/// `spawn_id` 0, and the second was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_supervised_spawns_on_the_own_node_both_start() {
    let nodes = mesh(2).await;
    let a = &nodes[0];
    let supervisor = Supervisor::start(a.runtime(), SupervisorSpec::new(Strategy::OneForOne), StartOptions::default())
        .await
        .unwrap();
    let options = || SpawnOptions::default().supervised_by(supervisor.pid(), Restart::Permanent);
    let first = a.remote().spawn("counter", a.id(), options()).await;
    assert!(first.is_ok(), "{first:?}");
    let second = a.remote().spawn("counter", a.id(), options()).await;
    assert!(second.is_ok(), "{second:?}");
}

mod dist {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use noex_core::Restart;
    use noex_dist_supervisor::{DistChildSpec, DistSupervisor, NodeSelector, Strategy};
    use noex_tests::cluster::wait_connected;
    use noex_tests::dist::{prefer, spec, three_with_two_behind_proxies};
    use noex_tests::remote::mesh;
    use noex_tests::servers::{Counter, Request};

    /// OTP (and noex-core's supervisor) do not restart temporary siblings stopped for a group restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_for_all_does_not_restart_a_temporary_sibling() {
        let nodes = mesh(2).await;
        let children =
            vec![DistChildSpec::new("c0", "counter"), DistChildSpec::new("t1", "counter").restart(Restart::Temporary)];
        let supervisor =
            DistSupervisor::start(&nodes[0], spec(Strategy::OneForAll, NodeSelector::LocalFirst, children))
                .await
                .unwrap();
        let before = supervisor.which_children().await.unwrap();
        let c0 = before[0].pid.clone().unwrap();
        let _ = nodes[0].runtime().remote_ref::<Counter>(&c0).call(Request::crash()).await;
        let mut after = Vec::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            after = supervisor.which_children().await.unwrap();
            if after[0].pid.as_ref().is_some_and(|pid| *pid != c0) {
                break;
            }
        }
        assert!(after.iter().all(|child| &*child.id != "t1"), "the temporary sibling was restarted: {after:?}");
    }

    /// A RetryStart pending when the child is terminated on request starts it again anyway.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_terminated_while_its_restart_is_retried_stays_terminated() {
        let nodes = mesh(2).await;
        let local = nodes[0].id().clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let selector = NodeSelector::Custom(Arc::new(move |_: &[noex_cluster::NodeId], _: &str| {
            // The start, then a failed restart (no node), then any retry succeeds.
            (calls.fetch_add(1, Ordering::SeqCst) != 1).then(|| local.clone())
        }));
        let children = vec![DistChildSpec::new("c0", "counter").selector(selector)];
        let supervisor =
            DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::LocalFirst, children))
                .await
                .unwrap();
        let c0 = supervisor.which_children().await.unwrap()[0].pid.clone().unwrap();
        let _ = nodes[0].runtime().remote_ref::<Counter>(&c0).call(Request::crash()).await;
        tokio::time::sleep(Duration::from_millis(30)).await; // the DOWN is handled: the restart failed
        supervisor.terminate_child("c0").await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await; // the retry (100 ms) has come
        let child = &supervisor.which_children().await.unwrap()[0];
        assert!(child.pid.is_none(), "terminated on request, then started again by the pending retry: {child:?}");
    }

    /// The cluster-event forwarding task outlives its supervisor until the next NodeUp.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_supervisor_leaves_no_task_behind() {
        let nodes = mesh(2).await;
        let metrics = tokio::runtime::Handle::current().metrics();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = metrics.num_alive_tasks();
        for _ in 0..20 {
            let supervisor =
                DistSupervisor::start(&nodes[0], spec(Strategy::OneForOne, NodeSelector::LocalFirst, vec![]))
                    .await
                    .unwrap();
            supervisor.stop(Duration::from_secs(5)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = metrics.num_alive_tasks();
        assert!(after < before + 5, "tasks alive: {before} before, {after} after 20 supervisors came and went");
    }

    /// A group restart during a partition, before it is detected: the sibling on the cut-off node cannot be
    /// stopped, so it is kept as an orphan and stopped once its node is back (it once ran on beside its
    /// replacement).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sibling_that_could_not_be_stopped_in_a_partition_is_stopped_when_it_heals() {
        let (a, a_proxy, b, b_proxy, c) = three_with_two_behind_proxies().await;
        let prefer_b = prefer(b.id(), c.id());
        let children = vec![
            DistChildSpec::new("c0", "counter").selector(NodeSelector::Node(c.id().clone())),
            DistChildSpec::new("c1", "counter").selector(prefer_b),
        ];
        let supervisor =
            DistSupervisor::start(&a, spec(Strategy::OneForAll, NodeSelector::LocalFirst, children)).await.unwrap();
        let before = supervisor.which_children().await.unwrap();
        let (c0, c1_old) = (before[0].pid.clone().unwrap(), before[1].pid.clone().unwrap());
        assert_eq!(*c1_old.node(), b.id().node_name());

        a_proxy.pause();
        b_proxy.pause();
        let _ = a.runtime().remote_ref::<Counter>(&c0).call(Request::crash()).await;
        let mut moved = false;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = supervisor.which_children().await.unwrap();
            if now[1].pid.as_ref().is_some_and(|pid| *pid != c1_old) {
                moved = true;
                break;
            }
        }
        assert!(moved, "c1 restarted elsewhere");
        a_proxy.resume();
        b_proxy.resume();
        wait_connected(a.cluster(), 2).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!b.runtime().is_alive(&c1_old), "c1's old copy still runs on b, unsupervised, beside the new one");
        drop(c);
    }
}

/// A supervised spawn's `init` is bounded by the request's timeout: a child whose init takes long (here from the
/// peer's own arguments) cannot keep the target node's supervisor from its calls and its other children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_spawn_cannot_block_the_supervisor_past_its_timeout() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let supervisor = Supervisor::start(b.runtime(), SupervisorSpec::new(Strategy::OneForOne), StartOptions::default())
        .await
        .unwrap();
    let options = SpawnOptions::default()
        .args(&CounterArgs { init_delay_ms: 600_000, ..Default::default() })
        .timeout(Duration::from_millis(200))
        .supervised_by(supervisor.pid(), Restart::Permanent);
    let spawned = a.remote().spawn("counter", b.id(), options).await;
    assert!(spawned.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = tokio::time::timeout(Duration::from_secs(3), supervisor.which_children()).await;
    assert!(matches!(answered, Ok(Ok(_))), "the supervisor is still blocked in the child's init: {answered:?}");
}

/// A supervised spawn whose requester stopped waiting is undone by its supervisor (terminated and deleted), not
/// killed: a kill was a crash, restarted (the child stayed) and counted against the supervisor's intensity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_supervised_spawn_leaves_no_child_and_does_not_count_as_crashes() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let supervisor = Supervisor::start(b.runtime(), SupervisorSpec::new(Strategy::OneForOne), StartOptions::default())
        .await
        .unwrap();
    for _ in 0..4 {
        let options = SpawnOptions::default()
            .args(&CounterArgs { init_delay_ms: 300, ..Default::default() })
            .supervised_by(supervisor.pid(), Restart::Permanent);
        // The requester gives up (its own deadline, a dropped future) before the child has started.
        let abandoned = tokio::time::timeout(Duration::from_millis(50), a.remote().spawn("counter", b.id(), options));
        assert!(abandoned.await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(supervisor.is_alive(), "the supervisor went past its intensity for orphans killed by the requester");
    let children = supervisor.which_children().await.unwrap();
    assert!(children.is_empty(), "abandoned children kept (restarted after the orphan kill): {children:?}");
}

/// A linked spawn whose requester stopped waiting is unlinked before it is killed: the kill once travelled the link
/// to the requester's own process, which had already been told the spawn failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_linked_spawn_does_not_kill_the_requesters_process() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (watcher, _infos) = noex_tests::servers::Watcher::new();
    let watcher = a.runtime().start(watcher).await.unwrap(); // does not trap exits
    let options =
        SpawnOptions::default().args(&CounterArgs { init_delay_ms: 300, ..Default::default() }).link(watcher.pid());
    let abandoned = tokio::time::timeout(Duration::from_millis(50), a.remote().spawn("counter", b.id(), options));
    assert!(abandoned.await.is_err());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(watcher.is_alive(), "the requester's process was killed by the orphan's kill, over the link");
}
