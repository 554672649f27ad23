//! Remote monitors and links between in-process nodes: one DOWN per monitor with the real reason, `noconnection`
//! when the node is lost, demonitor, and links that behave as local ones.

use std::time::Duration;

use noex_core::{ExitReason, Info, LifecycleEvent, NodeName, Pid, ServerRef};
use noex_remote::{Node, SpawnOptions};
use noex_tests::cluster::free_port;
use noex_tests::remote::{eventually, mesh, within};
use noex_tests::servers::{Counter, Request, Watch, Watched, Watcher};
use tokio::sync::mpsc::UnboundedReceiver;

async fn counter_on(from: &Node, on: &Node) -> ServerRef<Counter> {
    let pid = from.remote().spawn("counter", on.id(), SpawnOptions::default()).await.expect("spawn");
    from.runtime().remote_ref::<Counter>(&pid)
}

async fn watcher_on(node: &Node) -> (ServerRef<Watcher>, UnboundedReceiver<Info>) {
    let (watcher, infos) = Watcher::new();
    (node.runtime().start(watcher).await.expect("watcher starts"), infos)
}

async fn monitor(watcher: &ServerRef<Watcher>, pid: &Pid) -> noex_core::MonitorRef {
    match watcher.call(Watch::Monitor(pid.clone())).await.unwrap() {
        Watched::Monitor(monitor) => monitor,
        other => panic!("{other:?}"),
    }
}

async fn next_down(infos: &mut UnboundedReceiver<Info>) -> noex_core::ProcessDown {
    match within("a DOWN", infos.recv()).await {
        Some(Info::Down(down)) => down,
        other => panic!("expected a DOWN, got {other:?}"),
    }
}

async fn next_exit(infos: &mut UnboundedReceiver<Info>) -> noex_core::ExitSignal {
    match within("an EXIT", infos.recv()).await {
        Some(Info::Exit(exit)) => exit,
        other => panic!("expected an EXIT, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_monitor_reports_how_the_process_ended() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (watcher, mut infos) = watcher_on(a).await;

    let normal = counter_on(a, b).await;
    let monitor_ref = monitor(&watcher, normal.pid()).await;
    normal.call(Request::stop()).await.unwrap();
    let down = next_down(&mut infos).await;
    assert_eq!((down.monitor, &down.pid, down.reason), (monitor_ref, normal.pid(), ExitReason::Normal));

    let crashing = counter_on(a, b).await;
    monitor(&watcher, crashing.pid()).await;
    let _ = crashing.call(Request::crash()).await;
    assert!(matches!(next_down(&mut infos).await.reason, ExitReason::Error(m) if m.contains("asked to crash")));

    let killed = counter_on(a, b).await;
    monitor(&watcher, killed.pid()).await;
    a.runtime().kill(killed.pid());
    assert_eq!(next_down(&mut infos).await.reason, ExitReason::Killed);

    let stopped = counter_on(a, b).await;
    monitor(&watcher, stopped.pid()).await;
    stopped.stop(ExitReason::Shutdown, Duration::from_secs(5)).await.unwrap();
    assert_eq!(next_down(&mut infos).await.reason, ExitReason::Shutdown);

    // Already gone: noproc at once.
    monitor(&watcher, normal.pid()).await;
    assert_eq!(next_down(&mut infos).await.reason, ExitReason::NoProc);
    // A node that is not connected: noconnection at once.
    let ghost = Pid::new(NodeName::new(format!("ghost@127.0.0.1:{}", free_port())), 1, 1);
    monitor(&watcher, &ghost).await;
    assert_eq!(next_down(&mut infos).await.reason, ExitReason::NoConnection);

    assert_eq!(a.remote().stats().outgoing_monitors, 0, "fired monitors are forgotten");
    eventually("b forgets the fired monitors", || b.remote().stats().incoming_monitors == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_fires_its_monitors_with_noconnection_and_a_lifecycle_event() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (watcher, mut infos) = watcher_on(a).await;
    let counter = counter_on(a, b).await;
    let mut events = a.runtime().lifecycle_events();
    let monitor_ref = monitor(&watcher, counter.pid()).await;
    // Also from outside any process.
    let outside = a.runtime().monitor(counter.pid());

    b.crash().await;
    let down = next_down(&mut infos).await;
    assert_eq!((&down.monitor, down.reason.clone()), (&monitor_ref, ExitReason::NoConnection));
    assert_eq!(within("the outside monitor", outside).await.reason, ExitReason::NoConnection);
    let event = within("the lifecycle event", async {
        loop {
            if let Ok(LifecycleEvent::ProcessDown { watcher: who, down }) = events.recv().await {
                return (who, down);
            }
        }
    })
    .await;
    assert_eq!(event.0, *watcher.pid());
    assert_eq!((event.1.pid, event.1.reason), (counter.pid().clone(), ExitReason::NoConnection));
    assert!(within("no second DOWN", async { infos.try_recv().is_err() }).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_down_after_demonitor_and_a_dead_watcher_leaves_no_monitor_behind() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (watcher, mut infos) = watcher_on(a).await;
    let counter = counter_on(a, b).await;

    let monitor_ref = monitor(&watcher, counter.pid()).await;
    eventually("b holds the monitor", || b.remote().stats().incoming_monitors == 1).await;
    assert_eq!(watcher.call(Watch::Demonitor(monitor_ref)).await.unwrap(), Watched::Demonitored(true));
    eventually("b drops the monitor", || b.remote().stats().incoming_monitors == 0).await;
    counter.call(Request::stop()).await.unwrap();
    // A second watcher that outlives the first proves the DOWN had time to arrive.
    let (witness, mut witness_infos) = watcher_on(a).await;
    monitor(&witness, counter.pid()).await;
    assert_eq!(next_down(&mut witness_infos).await.reason, ExitReason::NoProc);
    assert!(infos.try_recv().is_err(), "no DOWN after demonitor");

    let other = counter_on(a, b).await;
    monitor(&watcher, other.pid()).await;
    eventually("b holds the monitor", || b.remote().stats().incoming_monitors == 1).await;
    watcher.stop(ExitReason::Normal, Duration::from_secs(5)).await.unwrap();
    eventually("the dead watcher's monitor is removed on b", || b.remote().stats().incoming_monitors == 0).await;
    assert_eq!(a.remote().stats().outgoing_monitors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_link_propagates_abnormal_exits_both_ways() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    // Remote crash kills the local linked process (no trap).
    let (watcher, _infos) = watcher_on(a).await;
    let counter = counter_on(a, b).await;
    assert_eq!(watcher.call(Watch::Link(counter.pid().clone())).await.unwrap(), Watched::Linked(Ok(())));
    eventually("b knows the link", || b.remote().stats().links == 1).await;
    let down = a.runtime().monitor(watcher.pid());
    let _ = counter.call(Request::crash()).await;
    assert!(
        matches!(within("the watcher's end", down).await.reason, ExitReason::Error(m) if m.contains("asked to crash"))
    );

    // Trapping: the exit arrives as a message.
    let (trapper, mut infos) = watcher_on(a).await;
    trapper.call(Watch::Trap(true)).await.unwrap();
    let counter = counter_on(a, b).await;
    trapper.call(Watch::Link(counter.pid().clone())).await.unwrap();
    eventually("b knows the link", || b.remote().stats().links == 1).await;
    a.runtime().exit(counter.pid(), ExitReason::error("boom"));
    let exit = next_exit(&mut infos).await;
    assert_eq!((&exit.from, exit.reason), (counter.pid(), ExitReason::error("boom")));
    assert!(trapper.is_alive());

    // A local crash kills the remote linked process.
    let counter = counter_on(a, b).await;
    let (doomed, _infos) = watcher_on(a).await;
    doomed.call(Watch::Link(counter.pid().clone())).await.unwrap();
    eventually("b knows the link", || b.remote().stats().links == 1).await;
    let counter_down = a.runtime().monitor(counter.pid());
    a.runtime().exit(doomed.pid(), ExitReason::error("local failure"));
    assert_eq!(within("the remote end", counter_down).await.reason, ExitReason::error("local failure"));

    // A normal exit does not propagate; unlink stops propagation.
    let counter = counter_on(a, b).await;
    let (calm, _infos) = watcher_on(a).await;
    calm.call(Watch::Link(counter.pid().clone())).await.unwrap();
    eventually("b knows the link", || b.remote().stats().links == 1).await;
    calm.call(Watch::Unlink(counter.pid().clone())).await.unwrap();
    eventually("b forgets the link", || b.remote().stats().links == 0).await;
    let _ = counter.call(Request::crash()).await;
    assert!(calm.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_missing_or_lost_process_exits_with_noproc_or_noconnection() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (trapper, mut infos) = watcher_on(a).await;
    trapper.call(Watch::Trap(true)).await.unwrap();

    let gone = counter_on(a, b).await;
    gone.call(Request::stop()).await.unwrap();
    trapper.call(Watch::Link(gone.pid().clone())).await.unwrap();
    let exit = next_exit(&mut infos).await;
    assert_eq!((&exit.from, exit.reason), (gone.pid(), ExitReason::NoProc));

    let counter = counter_on(a, b).await;
    trapper.call(Watch::Link(counter.pid().clone())).await.unwrap();
    eventually("b knows the link", || b.remote().stats().links == 1).await;
    b.crash().await;
    let exit = next_exit(&mut infos).await;
    assert_eq!((&exit.from, exit.reason), (counter.pid(), ExitReason::NoConnection));
    assert_eq!(a.remote().stats().links, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_stops_processes_before_the_goodbye_and_peers_see_the_real_reasons() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // On the leaving node: a counter that b watches and links to, and a process linked to a counter on b.
    let leaving_counter = counter_on(b, a).await;
    let (linked_out, _) = watcher_on(a).await;
    let peer_counter = counter_on(a, b).await;
    assert_eq!(linked_out.call(Watch::Link(peer_counter.pid().clone())).await, Ok(Watched::Linked(Ok(()))));
    // On the peer: a trapping watcher linked to and monitoring the leaving node's counter.
    let (watcher, mut infos) = watcher_on(b).await;
    watcher.call(Watch::Trap(true)).await.unwrap();
    assert_eq!(watcher.call(Watch::Link(leaving_counter.pid().clone())).await, Ok(Watched::Linked(Ok(()))));
    monitor(&watcher, leaving_counter.pid()).await;
    let peer_counter_down = b.runtime().monitor(peer_counter.pid());
    // Requests still in flight when a node leaves rightly end with `noconnection`: let them arrive first.
    eventually("the leaving node holds the links and the monitor", || {
        let stats = a.remote().stats();
        stats.links == 2 && stats.incoming_monitors == 1
    })
    .await;
    let mut lifecycle = a.runtime().lifecycle_events();
    let mut membership = b.cluster().events();

    within("a's shutdown", a.shutdown(Duration::from_secs(2))).await;

    // The leaving node's processes ended with `shutdown`, not `noconnection`: the node was still connected.
    let mut reasons = std::collections::HashMap::new();
    while reasons.len() < 2 {
        if let Ok(LifecycleEvent::Terminated { pid, reason, .. }) = within("terminations", lifecycle.recv()).await {
            reasons.insert(pid, reason);
        }
    }
    assert_eq!(reasons.get(linked_out.pid()), Some(&ExitReason::Shutdown));
    assert_eq!(reasons.get(leaving_counter.pid()), Some(&ExitReason::Shutdown));
    // The peer saw the real reasons (its DOWN and its EXIT, in the order the process sent them).
    for _ in 0..2 {
        match within("the DOWN and the EXIT", infos.recv()).await {
            Some(Info::Exit(exit)) => {
                assert_eq!((&exit.from, exit.reason), (leaving_counter.pid(), ExitReason::Shutdown))
            }
            Some(Info::Down(down)) => {
                assert_eq!((&down.pid, down.reason), (leaving_counter.pid(), ExitReason::Shutdown))
            }
            other => panic!("expected a DOWN and an EXIT, got {other:?}"),
        }
    }
    let linked_exit = within("the linked peer counter's DOWN", peer_counter_down).await;
    assert_eq!(linked_exit.reason, ExitReason::Shutdown, "the link carried `shutdown`");
    let reason = noex_tests::cluster::wait_down(&mut membership, a.id()).await;
    assert_eq!(reason, noex_cluster::DownReason::GracefulShutdown);
}

/// What a [`Witness`] saw, in the order it saw it.
#[derive(Debug)]
enum Seen {
    Cast(i64),
    Info(Info),
}

/// Traps exits, monitors and links to a process, and records casts and info messages in one stream, so that
/// their order shows.
struct Witness(tokio::sync::mpsc::UnboundedSender<Seen>, Pid);

impl noex_core::GenServer for Witness {
    type Call = ();
    type Reply = ();
    type Cast = i64;

    async fn init(&mut self, ctx: &mut noex_core::Context<Self>) -> Result<(), ExitReason> {
        ctx.trap_exits(true);
        ctx.monitor(&self.1);
        ctx.link(&self.1).map_err(|_| ExitReason::NoProc)
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut noex_core::Context<Self>) {}

    async fn handle_cast(&mut self, value: i64, _ctx: &mut noex_core::Context<Self>) {
        let _ = self.0.send(Seen::Cast(value));
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut noex_core::Context<Self>) {
        let _ = self.0.send(Seen::Info(info));
    }
}

/// Casts a farewell to another node's process (told by a call) from its `terminate`.
struct Farewell(Option<ServerRef<Witness>>);

impl noex_core::GenServer for Farewell {
    type Call = ServerRef<Witness>;
    type Reply = ();
    type Cast = ();

    async fn handle_call(&mut self, witness: ServerRef<Witness>, _ctx: &mut noex_core::Context<Self>) {
        self.0 = Some(witness);
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut noex_core::Context<Self>) {
        for value in 0..100 {
            if let Some(witness) = &self.0 {
                witness.cast(value);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_process_sends_from_terminate_arrives_before_its_down_and_exit() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for _ in 0..10 {
        let farewell = a.runtime().start(Farewell(None)).await.unwrap();
        let (seen, mut saw) = tokio::sync::mpsc::unbounded_channel();
        let witness = Witness(seen, farewell.pid().clone());
        let witness = b.runtime().start_encodable(witness, Default::default()).await.unwrap();
        farewell.call(a.runtime().remote_ref::<Witness>(witness.pid())).await.unwrap();
        eventually("the monitor and the link are in place", || {
            let stats = a.remote().stats();
            stats.incoming_monitors == 1 && stats.links == 1
        })
        .await;
        farewell.stop(ExitReason::Shutdown, Duration::from_secs(5)).await.unwrap();
        for expected in 0..100 {
            match within("a farewell cast", saw.recv()).await {
                Some(Seen::Cast(value)) => assert_eq!(value, expected),
                other => panic!("expected farewell cast {expected}, got {other:?}: a signal overtook it"),
            }
        }
        for _ in 0..2 {
            match within("the DOWN and the EXIT", saw.recv()).await {
                Some(Seen::Info(Info::Down(down))) => assert_eq!(down.reason, ExitReason::Shutdown),
                Some(Seen::Info(Info::Exit(exit))) => assert_eq!(exit.reason, ExitReason::Shutdown),
                other => panic!("expected the DOWN and the EXIT, got {other:?}"),
            }
        }
        witness.stop(ExitReason::Normal, Duration::from_secs(5)).await.unwrap();
    }
}

/// Starts a `Counter` linked to itself in `init`, and tells its pid.
struct Parent(Option<tokio::sync::oneshot::Sender<Pid>>);

impl noex_core::GenServer for Parent {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn init(&mut self, ctx: &mut noex_core::Context<Self>) -> Result<(), ExitReason> {
        let child = ctx.start_link(Counter::new(0), Default::default()).await.map_err(|_| ExitReason::NoProc)?;
        if let Some(tell) = self.0.take() {
            let _ = tell.send(child.pid().clone());
        }
        Ok(())
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut noex_core::Context<Self>) {}
}

/// A child that dies with its parent during a graceful leave sends its DOWN and EXIT before the goodbye, even
/// though it leaves the process table before it sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_waits_for_the_signals_of_children_that_die_with_their_parents() {
    for _ in 0..10 {
        let nodes = mesh(2).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let (tell, told) = tokio::sync::oneshot::channel();
        a.runtime().start(Parent(Some(tell))).await.unwrap();
        let child = told.await.unwrap();
        let (seen, mut saw) = tokio::sync::mpsc::unbounded_channel();
        b.runtime().start_encodable(Witness(seen, child.clone()), Default::default()).await.unwrap();
        eventually("the monitor and the link are in place", || {
            let stats = a.remote().stats();
            stats.incoming_monitors == 1 && stats.links == 1
        })
        .await;
        within("a's shutdown", a.shutdown(Duration::from_secs(2))).await;
        for _ in 0..2 {
            match within("the child's DOWN and EXIT", saw.recv()).await {
                Some(Seen::Info(Info::Down(down))) => assert_eq!(down.reason, ExitReason::Shutdown),
                Some(Seen::Info(Info::Exit(exit))) => assert_eq!(exit.reason, ExitReason::Shutdown),
                other => panic!("expected the child's DOWN and EXIT, got {other:?}"),
            }
        }
        b.shutdown(Duration::from_secs(1)).await;
    }
}
