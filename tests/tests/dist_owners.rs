//! A distributed supervision's owners on a bad day: an owner lost during its own takeover or in the middle of a
//! `start_child`, the owner's replica killed, its node shut down gracefully, a node sorting first joining while
//! another owns, and forged replica messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use noex_core::{ExitReason, Pid};
use noex_dist_supervisor::{
    DistChildSpec, DistSupervisor, DistSupervisorError, DistSupervisorSpec, NodeSelector, Strategy,
};
use noex_tests::dist::{children_until, counters, crash, one_owner, spec};
use noex_tests::remote::{mesh, within};
use noex_tests::servers::CounterArgs;

/// A counter whose `init` waits, on the nodes where `block_here`, for as long as `slow` holds: a spawn that is
/// in progress for as long as the test wants. `entered` is told each time an `init` begins to wait.
struct Gated {
    wait: bool,
    slow: Arc<std::sync::atomic::AtomicBool>,
    entered: Arc<tokio::sync::Notify>,
    /// How many have started and not ended (killed ones included: `Drop` runs for them too).
    live: Arc<AtomicUsize>,
    started: bool,
}

impl Drop for Gated {
    fn drop(&mut self) {
        if self.started {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl noex_core::GenServer for Gated {
    type Call = noex_tests::servers::Request;
    type Reply = i64;
    type Cast = i64;

    async fn init(&mut self, _ctx: &mut noex_core::Context<Self>) -> Result<(), ExitReason> {
        if self.wait && self.slow.load(Ordering::SeqCst) {
            self.entered.notify_one();
            while self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.started = true;
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn handle_call(&mut self, _: noex_tests::servers::Request, _: &mut noex_core::Context<Self>) -> i64 {
        0
    }

    async fn handle_cast(&mut self, _: i64, _: &mut noex_core::Context<Self>) {}
}

/// n1 owns; c0 is terminated and `added` added. n1 is lost, and n2 is lost too while its supervisor is still in
/// its `init` (a spawn in progress), before it sent the replicas its state. n3 must still start from what n1
/// told it (c0 stopped, `added` kept), not from the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_lost_during_its_takeover_does_not_send_the_next_back_to_the_configuration() {
    noex_tests::remote::log();
    let nodes = mesh(3).await;
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let entered = Arc::new(tokio::sync::Notify::new());
    for (i, node) in nodes.iter().enumerate() {
        let (slow, entered) = (slow.clone(), entered.clone());
        node.remote().behaviours().register("gated", move |_: CounterArgs| {
            let live = Arc::new(AtomicUsize::new(0));
            Ok(Gated { wait: i == 1, slow: slow.clone(), entered: entered.clone(), live, started: false })
        });
    }
    let named = || {
        spec(
            Strategy::OneForOne,
            NodeSelector::RoundRobin,
            vec![
                DistChildSpec::new("c0", "counter"),
                DistChildSpec::new("g", "gated").selector(NodeSelector::LocalFirst),
            ],
        )
        .name("twice")
    };
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    let owner = one_owner("twice", &nodes.iter().collect::<Vec<_>>(), &replicas.iter().collect::<Vec<_>>()).await;
    owner.terminate_child("c0").await.unwrap();
    owner
        .start_child(DistChildSpec::new("added", "counter").selector(NodeSelector::Node(nodes[2].id().clone())))
        .await
        .unwrap();

    slow.store(true, Ordering::SeqCst);
    crash(&nodes[0]).await;
    // n2's supervisor is in its `init`, starting g (it ran on n1) on n2: lost now.
    within("n2's supervisor to start g", entered.notified()).await;
    crash(&nodes[1]).await;
    slow.store(false, Ordering::SeqCst);

    let third = within("n3's replica to take over", replicas[2].owned()).await.unwrap();
    // g (lost with n2) runs again once the new owner has settled.
    children_until(&third, |children| children.iter().any(|child| &*child.id == "g" && child.pid.is_some())).await;
    let children = third.which_children().await.unwrap();
    let ids: Vec<&str> = children.iter().map(|child| &*child.id).collect();
    assert_eq!(ids, ["c0", "g", "added"], "the added child is kept");
    assert_eq!(children[0].pid, None, "c0 stays terminated");
}

/// The owner's replica is killed (no `terminate`): the next replica takes over, and the killed one's supervisor
/// must not run on beside it (two supervisors of one supervision, each restarting what the other stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_replica_takes_its_supervisor_with_it() {
    let nodes = mesh(2).await;
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(2)).name("killed");
    let first = DistSupervisor::start_replica(&nodes[0], named()).await.unwrap();
    let second = DistSupervisor::start_replica(&nodes[1], named()).await.unwrap();
    let owner = one_owner("killed", &nodes.iter().collect::<Vec<_>>(), &[&first, &second]).await;

    nodes[0].runtime().kill(first.pid());
    within("n2's replica to take over", second.owned()).await.unwrap();
    noex_tests::remote::eventually("the killed replica's supervisor to end", || !owner.is_alive()).await;
}

/// A graceful shutdown of the owner's node (no crash): its replica hands over, as `ReplicaRef::stop` does, and the
/// children on the other nodes run on (adopted), instead of being stopped by the supervisor's `terminate` and
/// started again by the next owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_of_the_owners_node_leaves_the_other_nodes_children_running() {
    let nodes = mesh(3).await;
    let there = NodeSelector::Node(nodes[2].id().clone());
    let named = || spec(Strategy::OneForOne, there.clone(), counters(2)).name("graceful");
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    let owner = one_owner("graceful", &nodes.iter().collect::<Vec<_>>(), &replicas.iter().collect::<Vec<_>>()).await;
    let before: Vec<Pid> = owner.which_children().await.unwrap().into_iter().map(|c| c.pid.unwrap()).collect();

    nodes[0].runtime().shutdown(Duration::from_secs(5)).await;
    let second = within("n2's replica to take over", replicas[1].owned()).await.unwrap();
    children_until(&second, |children| children.iter().all(|child| child.pid.is_some())).await;
    let after: Vec<Pid> = second.which_children().await.unwrap().into_iter().map(|c| c.pid.unwrap()).collect();
    assert_eq!(after, before, "the children on n3 adopted, not stopped and started again");
}

/// The node whose id sorts first starts its replica while another owns the supervision: the owner hands over at
/// once. Without a bound on it, a cycle of calls (the old supervisor sending the new replica its state, the new
/// replica in its supervisor's `init` sending the old replica its state, the old replica waiting for its
/// supervisor's release) holds both supervisors for the 5 s replication timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_the_first_node_takes_over_without_a_stall() {
    let nodes = mesh(3).await;
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, counters(2)).name("rejoin");
    let second = DistSupervisor::start_replica(&nodes[1], named()).await.unwrap();
    let third = DistSupervisor::start_replica(&nodes[2], named()).await.unwrap();
    // The cycle is a race (it needs the old supervisor to send the new replica its state before it is released):
    // a few rounds of it, each a new replica on n1 that takes over and is stopped again.
    for round in 0..10 {
        let old = within("n2's replica to own it", second.owned()).await.unwrap();
        let started = std::time::Instant::now();
        let first = DistSupervisor::start_replica(&nodes[0], named()).await.unwrap();
        within("n1's replica to take over", first.owned()).await.unwrap();
        noex_tests::remote::eventually("n2's supervisor to let go", || !old.is_alive()).await;
        let took = started.elapsed();
        assert!(third.supervisor().is_none());
        // A handover is a few messages; 5 s is the replication timeout, which only a cycle of waits reaches.
        assert!(took < Duration::from_secs(3), "round {round}: the handover took {took:?}");
        first.stop(Duration::from_secs(10)).await.unwrap();
    }
}

/// The owner's node is lost in the middle of a `start_child` (the child's `init` on n3 still running): the next
/// owner runs the child once, or not at all, whether the first spawn completes or is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_lost_in_the_middle_of_start_child_leaves_one_copy_of_the_child() {
    let nodes = mesh(3).await;
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let entered = Arc::new(tokio::sync::Notify::new());
    let live = Arc::new(AtomicUsize::new(0));
    for (i, node) in nodes.iter().enumerate() {
        let (slow, entered, live) = (slow.clone(), entered.clone(), live.clone());
        node.remote().behaviours().register("gated", move |_: CounterArgs| {
            Ok(Gated { wait: i == 2, slow: slow.clone(), entered: entered.clone(), live: live.clone(), started: false })
        });
    }
    let named = || spec(Strategy::OneForOne, NodeSelector::RoundRobin, vec![]).name("midway");
    let mut replicas = Vec::new();
    for node in &nodes {
        replicas.push(DistSupervisor::start_replica(node, named()).await.unwrap());
    }
    let owner = one_owner("midway", &nodes.iter().collect::<Vec<_>>(), &replicas.iter().collect::<Vec<_>>()).await;
    let on_n3 = NodeSelector::Node(nodes[2].id().clone());
    let starting =
        tokio::spawn(async move { owner.start_child(DistChildSpec::new("mid", "gated").selector(on_n3)).await });
    within("the child's init to begin on n3", entered.notified()).await;
    crash(&nodes[0]).await;
    assert!(starting.await.unwrap().is_err(), "the caller's node is gone");
    slow.store(false, Ordering::SeqCst);

    // The call failed, so either outcome is right: the child runs once (the replicas heard of it before the
    // spawn), or not at all (a replica whose state from n1 was still on its way starts from the configuration,
    // and the abandoned spawn is undone). Never two copies, and never a copy nobody supervises.
    let second = within("n2's replica to take over", replicas[1].owned()).await.unwrap();
    let settled = |children: &[noex_dist_supervisor::DistChildInfo]| {
        let mid = children.iter().find(|child| &*child.id == "mid");
        let live = live.load(Ordering::SeqCst);
        match mid {
            Some(child) => child.pid.is_some() && live == 1,
            None => live == 0,
        }
    };
    children_until(&second, settled).await;
    let mid = second.which_children().await.unwrap().into_iter().find(|c| &*c.id == "mid").and_then(|c| c.pid);
    // (An ended copy's registration is removed after it ends.)
    noex_tests::remote::eventually("the registered copy to be the supervised one", || {
        nodes[2].registry().whereis("dsup:midway:mid") == mid
    })
    .await;
    assert!(live.load(Ordering::SeqCst) <= 1, "one copy at most");
}

/// The replicas' wire messages as a hostile cluster node writes them (the same serde shape as the crate's
/// private `ReplicaMessage`: postcard numbers the variants in order).
#[derive(serde::Serialize, serde::Deserialize)]
enum Forged {
    Recheck,
    State,
    Change,
    Resend,
    Merge(ForgedSnapshot),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ForgedSnapshot {
    owner: String,
    epoch: u64,
    seq: u64,
    children: Vec<ForgedChild>,
    next_template_id: u64,
    removed: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum ForgedKind {
    Static,
    Templated,
    Added,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ForgedChild {
    id: String,
    kind: ForgedKind,
    behaviour: String,
    args: Vec<u8>,
    restart: u8,
    selector: Option<u8>,
    shutdown_ms: u64,
    stopped: bool,
    running: Option<u8>,
}

noex_core::serde_encodable!(Forged);

/// Sends forged messages (only its pid's type matters to `remote_ref`).
struct Forger;

impl noex_core::GenServer for Forger {
    type Call = Forged;
    type Reply = ();
    type Cast = Forged;

    async fn handle_call(&mut self, _: Forged, _: &mut noex_core::Context<Self>) {}

    async fn handle_cast(&mut self, _: Forged, _: &mut noex_core::Context<Self>) {}
}

/// A replica takes a `Merge` only in the name of a node that runs a replica; a forged one in the name of another
/// node is ignored, and a forged template counter at its end must not make the owner's supervisor panic (and stop
/// every child in its `terminate`) at the next `start_templated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_merge_does_not_break_the_supervisor() {
    let nodes = mesh(2).await;
    let named = || {
        DistSupervisorSpec::new(Strategy::SimpleOneForOne)
            .template(DistChildSpec::new("worker", "counter"))
            .name("forged")
    };
    let first = DistSupervisor::start_replica(&nodes[0], named()).await.unwrap();
    let _second = DistSupervisor::start_replica(&nodes[1], named()).await.unwrap();
    let owner = one_owner("forged", &nodes.iter().collect::<Vec<_>>(), &[&first, &_second]).await;
    let (worker, _) = owner.start_templated(&CounterArgs::default()).await.unwrap();

    let intruder = |id: &str| ForgedChild {
        id: id.into(),
        kind: ForgedKind::Added,
        behaviour: "counter".into(),
        args: vec![],
        restart: 2,
        selector: None,
        shutdown_ms: 1000,
        stopped: true,
        running: None,
    };
    let merge = |owner: String, id: &str| {
        Forged::Merge(ForgedSnapshot {
            owner,
            epoch: 1,
            seq: 0,
            children: vec![intruder(id)],
            next_template_id: u64::MAX,
            removed: vec![],
        })
    };
    let forger = nodes[1].runtime().remote_ref::<Forger>(first.pid());
    forger.cast(merge("x@h:1".into(), "stranger"));
    forger.cast(merge(nodes[1].id().node_name().as_str().to_string(), "insider"));
    children_until(&owner, |children| children.iter().any(|child| &*child.id == "insider")).await;
    let ids: Vec<String> = owner.which_children().await.unwrap().iter().map(|c| c.id.to_string()).collect();
    assert!(!ids.contains(&"stranger".to_string()), "a merge in the name of a node without a replica: {ids:?}");

    // The counter is used up: a typed error, not a panic.
    let next = owner.start_templated(&CounterArgs::default()).await;
    assert!(matches!(next, Err(DistSupervisorError::Misuse(_))), "{next:?}");
    assert!(owner.is_alive() && nodes[0].runtime().is_alive(&worker), "the supervisor and its worker run on");
    let _ = (ForgedKind::Static, ForgedKind::Templated, Forged::Recheck, Forged::State, Forged::Change, Forged::Resend);
}
