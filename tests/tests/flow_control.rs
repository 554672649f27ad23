//! Overload between in-process nodes: the cast window (refused, awaited, never a gap), the hard bound that takes
//! an overloaded peer down, signals that get through a flood, and busy consumers that do not look like dead nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use noex_cluster::{ClusterConfig, ClusterEvent, DownReason};
use noex_core::{CastError, Context, ExitReason, GenServer, Info};
use noex_remote::Node;
use noex_tests::cluster::{config, wait_connected, wait_down};
use noex_tests::proxy::Proxy;
use noex_tests::remote::{eventually, full_node_with, within};
use noex_tests::servers::{Busy, Counter, Gated, Watch, Watched, Watcher};

/// Held by the test that keeps every core busy, and by the one that measures how long signals take: they must
/// not run at the same time (`cargo test` runs a file's tests in parallel).
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A node whose cast window is `window` bytes, seeded with `seeds`.
fn with_window(name: &str, window: usize, seeds: &[&Node]) -> ClusterConfig {
    ClusterConfig { cast_window: window, seeds: seeds.iter().map(|n| n.id().to_string()).collect(), ..config(name) }
}

/// A node `b` that others reach only through `proxy` (it advertises the proxy's port).
async fn behind(proxy: &Proxy, config: ClusterConfig) -> Node {
    let node = full_node_with(ClusterConfig {
        port: proxy.address().port(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..config
    })
    .await;
    proxy.set_target(node.cluster().listening_address());
    node
}

/// The membership events of some nodes from now on, kept (the channels buffer them) to check at the end that
/// none of them was reported down.
struct Membership(Vec<tokio::sync::broadcast::Receiver<ClusterEvent>>);

impl Membership {
    fn watch(nodes: [&Node; 2]) -> Membership {
        Membership(nodes.iter().map(|node| node.cluster().events()).collect())
    }

    fn assert_no_node_down(mut self) {
        for events in &mut self.0 {
            loop {
                match events.try_recv() {
                    Ok(event @ ClusterEvent::NodeDown { .. }) => panic!("a healthy peer was reported down: {event:?}"),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                    Err(other) => panic!("membership events not all seen: {other:?}"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_cast_window_refuses_try_cast_and_holds_cast_await_and_nothing_is_lost() {
    let a = full_node_with(with_window("a", 4096, &[])).await;
    let b = full_node_with(with_window("b", 4096, &[&a])).await;
    wait_connected(a.cluster(), 1).await;
    let (gated, gate, mut seen) = Gated::new();
    let consumer = b.runtime().start_encodable(gated, Default::default()).await.unwrap();
    let remote = a.runtime().remote_ref::<Gated>(consumer.pid());

    // The consumer takes nothing: the window fills, then try_cast says so and sends nothing.
    let mut sent = 0i64;
    loop {
        match remote.try_cast(sent) {
            Ok(()) => sent += 1,
            Err(CastError::Full(pid)) => break assert_eq!(&pid, consumer.pid()),
            Err(other) => panic!("unexpected: {other}"),
        }
        assert!(sent < 1000, "the window never filled");
    }
    assert!(sent >= 10, "a 4 KiB window takes more than {sent} small casts");
    let stats = a.cluster().connection_stats(b.id()).unwrap();
    assert_eq!((stats.casts_out, stats.casts_refused), (sent as u64, 1));
    assert!(stats.cast_window_used >= 4096, "{stats:?}");

    // An awaited cast waits for room rather than failing or overtaking.
    let waiting = tokio::spawn({
        let remote = remote.clone();
        async move { remote.cast_await(sent).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // a bounded window in which it must not finish
    assert!(!waiting.is_finished(), "cast_await did not wait for room");
    gate.add_permits(1_000_000);
    within("the awaited cast", waiting).await.unwrap().unwrap();
    for value in sent + 1..=sent + 500 {
        remote.cast_await(value).await.unwrap();
    }
    // Nothing lost, nothing reordered.
    for expected in 0..=sent + 500 {
        assert_eq!(within("a cast", seen.recv()).await, Some(expected));
    }
    let stats = a.cluster().connection_stats(b.id()).unwrap();
    assert_eq!(stats.casts_out, sent as u64 + 501);
    assert!(stats.casts_waited >= 1 && stats.full_episodes >= 1 && stats.full_time > Duration::ZERO, "{stats:?}");
    eventually("the consumed casts are credited back", || {
        a.cluster().connection_stats(b.id()).unwrap().cast_window_used < 4096 / 4
    })
    .await;
    let received = b.cluster().connection_stats(a.id()).unwrap();
    assert!(received.frames_in >= stats.casts_out && received.bytes_in > 0, "{received:?}");
    assert!(stats.bytes_out > 0 && received.frames_out > 0, "credit flows back");
}

/// Takes casts of any size and drops them.
struct Sink;

impl GenServer for Sink {
    type Call = ();
    type Reply = ();
    type Cast = Vec<u8>;

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_different_cast_windows_keep_casting() {
    // The receiver's own window is far larger than the sender's: it must grant in steps the sender can use.
    let a = full_node_with(with_window("a", 4096, &[])).await;
    let b = full_node_with(with_window("b", 1 << 20, &[&a])).await;
    wait_connected(a.cluster(), 1).await;
    let (gated, gate, mut seen) = Gated::new();
    gate.add_permits(1_000_000);
    let consumer = b.runtime().start_encodable(gated, Default::default()).await.unwrap();
    let remote = a.runtime().remote_ref::<Gated>(consumer.pid());
    within("2000 awaited casts through a 4 KiB window", async {
        for value in 0..2000 {
            remote.cast_await(value).await.unwrap();
        }
    })
    .await;
    for expected in 0..2000 {
        assert_eq!(within("a cast", seen.recv()).await, Some(expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_casts_past_the_hard_bound_take_the_peer_down_as_overloaded() {
    let proxy = Proxy::start().await;
    // Long failure timeout: only the hard bound may take the peer down here.
    let slow_failure = |name| ClusterConfig { failure_timeout: Duration::from_secs(20), ..config(name) };
    let b = behind(&proxy, slow_failure("b")).await;
    let a = full_node_with(ClusterConfig {
        outbound_buffer: 1 << 20,
        seeds: vec![b.id().to_string()],
        ..slow_failure("a")
    })
    .await;
    wait_connected(a.cluster(), 1).await;
    let sink = b.runtime().start_encodable(Sink, Default::default()).await.unwrap();
    let remote = a.runtime().remote_ref::<Sink>(sink.pid());
    let watched = a.runtime().monitor(sink.pid());
    let mut events = a.cluster().events();

    proxy.pause(); // b stops reading: the kernel's buffers fill, then a's outbound bytes pass the hard bound
    let payload = vec![7u8; 64 << 10];
    let mut casts = 0;
    while a.cluster().is_connected(b.id()) {
        remote.cast(payload.clone());
        casts += 1;
        assert!(casts < 10_000, "{} MiB sent and the connection is still up", casts / 16);
        tokio::task::yield_now().await;
    }
    assert_eq!(wait_down(&mut events, b.id()).await, DownReason::Overloaded);
    // Every monitor on the overloaded node's processes fired: nothing waits on it silently.
    assert_eq!(within("the DOWN", watched).await.reason, ExitReason::NoConnection);
    assert_eq!(remote.try_cast(Vec::new()), Err(CastError::NoConnection(sink.pid().clone())));
    proxy.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_get_through_a_flood_over_a_slow_link() {
    let _timing = TIMING.lock().await;
    let proxy = Proxy::start().await;
    proxy.throttle(2 << 20);
    let b = behind(&proxy, with_window("b", 16 << 10, &[])).await;
    let a = full_node_with(with_window("a", 16 << 10, &[&b])).await;
    wait_connected(a.cluster(), 1).await;
    let membership = Membership::watch([&a, &b]);

    // On the flooding node: processes the peer monitors, one it links to, one with a global name.
    let mut monitored = Vec::new();
    for _ in 0..6 {
        let counter = a.runtime().start(Counter::new(0)).await.unwrap();
        monitored.push((counter.pid().clone(), b.runtime().monitor(counter.pid())));
    }
    let linked = a.runtime().start(Counter::new(0)).await.unwrap();
    let (watcher, mut infos) = Watcher::new();
    let watcher = b.runtime().start(watcher).await.unwrap();
    watcher.call(Watch::Trap(true)).await.unwrap();
    assert_eq!(watcher.call(Watch::Link(linked.pid().clone())).await, Ok(Watched::Linked(Ok(()))));
    // A round trip from b to a: a has handled the monitors and the link b sent before it (one connection keeps
    // order), so they are in place before the kills below (the answer itself does not matter).
    let _ = b.runtime().remote_ref::<Counter>(linked.pid()).call(noex_tests::servers::Request::get()).await;
    let named = a.runtime().start(Counter::new(0)).await.unwrap();
    a.registry().register("victim", named.pid()).unwrap();
    eventually("b knows the name", || b.registry().whereis("victim").is_some()).await;

    // The flood: awaited casts, as fast as the link and the window allow.
    let (gated, gate, mut seen) = Gated::new();
    gate.add_permits(10_000_000);
    let consumer = b.runtime().start_encodable(gated, Default::default()).await.unwrap();
    let remote = a.runtime().remote_ref::<Gated>(consumer.pid());
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = tokio::spawn({
        let (remote, flooding) = (remote.clone(), flooding.clone());
        async move {
            let mut sent = 0;
            while flooding.load(Ordering::Relaxed) {
                remote.cast_await(sent).await.unwrap();
                sent += 1;
            }
            sent
        }
    });
    eventually("the window is full", || a.cluster().connection_stats(b.id()).unwrap().casts_waited > 0).await;

    let died = Instant::now();
    for (pid, _) in &monitored {
        a.runtime().kill(pid);
    }
    a.runtime().kill(linked.pid());
    a.runtime().kill(named.pid());
    for (pid, down) in monitored {
        let down = within("a DOWN through the flood", down).await;
        assert_eq!((down.pid, down.reason), (pid, ExitReason::Killed));
    }
    match within("the EXIT through the flood", infos.recv()).await {
        Some(Info::Exit(exit)) => assert_eq!((&exit.from, exit.reason), (linked.pid(), ExitReason::Killed)),
        other => panic!("expected the linked process's EXIT, got {other:?}"),
    }
    eventually("the dead process's name is gone on the peer", || b.registry().whereis("victim").is_none()).await;
    let took = died.elapsed();
    assert!(took < Duration::from_secs(1), "signals took {took:?} to get through the flood");

    flooding.store(false, Ordering::Relaxed);
    let sent = within("the flood's end", flood).await.unwrap();
    for expected in 0..sent {
        assert_eq!(within("a flooded cast", seen.recv()).await, Some(expected), "a gap in the flood");
    }
    membership.assert_no_node_down();
}

/// One worker thread for both nodes, as a node on a small runtime (or a `current_thread` one) has: a process
/// that never yielded would starve every connection reader of the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_slow_consumer_under_a_flood_with_both_cores_busy_is_not_a_dead_node() {
    let _timing = TIMING.lock().await;
    let a = full_node_with(config("a")).await;
    let b = full_node_with(ClusterConfig { seeds: vec![a.id().to_string()], ..config("b") }).await;
    wait_connected(a.cluster(), 1).await;
    let handled = Arc::new(AtomicU64::new(0));
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let holding = Arc::new(AtomicBool::new(false));
    let busy = Busy {
        per_message: Duration::from_micros(100),
        handled: handled.clone(),
        hold: hold.clone(),
        holding: holding.clone(),
    };
    let consumer = b.runtime().start_encodable(busy, Default::default()).await.unwrap();
    let remote = a.runtime().remote_ref::<Busy>(consumer.pid());
    // Every core busy for the whole test, besides the nodes' own work.
    let busy_cores = noex_tests::load::BusyCores::all();

    // The whole flood is queued while the consumer is held in a call: 5 s of work in one batch, more than the
    // failure timeout's grace (3 x 1 s).
    const FLOOD: u64 = 50_000;
    let held = tokio::spawn({
        let remote = remote.clone();
        async move { remote.call_timeout((), Duration::from_secs(60)).await }
    });
    eventually("the consumer is held", || holding.load(Ordering::Relaxed)).await;
    for value in 0..FLOOD as i64 {
        remote.cast(value);
    }
    eventually("the flood is queued", || consumer.mailbox_len() == FLOOD).await;
    let membership = Membership::watch([&a, &b]);
    hold.add_permits(1);
    assert_eq!(within("the held call", held).await.unwrap(), Ok(0));
    // The time in which a starved reader would have the peer declared dead (3 x the 1 s failure timeout).
    tokio::time::sleep(Duration::from_secs(4)).await;
    membership.assert_no_node_down();
    assert!(a.cluster().is_connected(b.id()) && b.cluster().is_connected(a.id()));
    assert!(handled.load(Ordering::Relaxed) > 0);
    drop(busy_cores);
}
