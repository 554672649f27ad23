//! Remote call, cast, stop and spawn between in-process nodes.

use std::future::Future;
use std::time::{Duration, Instant};

use noex_core::{CallError, Callee, ExitReason, NodeName, Pid, ServerRef, StopError};
use noex_remote::{Registration, SpawnError, SpawnOptions};
use noex_tests::cluster::free_port;
use noex_tests::remote::{eventually, mesh, within};
use noex_tests::servers::{Counter, CounterArgs, Recorded, Recorder, Request};

type Counters = ServerRef<Counter>;

async fn spawn_counter(from: &noex_remote::Node, on: &noex_remote::Node, options: SpawnOptions) -> Counters {
    from.remote().spawn_ref::<Counter>("counter", on.id(), options).await.expect("spawn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_then_a_call_to_another_node_arrive_in_order() {
    let nodes = mesh(2).await;
    let counter = spawn_counter(&nodes[0], &nodes[1], SpawnOptions::default()).await;
    assert!(counter.is_remote());
    assert_eq!(counter.pid().node(), &nodes[1].id().node_name());
    for _ in 0..100 {
        counter.cast(1);
    }
    assert_eq!(counter.call(Request::get()).await, Ok(100), "every cast was applied before the call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_from_two_nodes_give_the_exact_count() {
    let nodes = mesh(3).await;
    let pid = nodes[0].remote().spawn("counter", nodes[2].id(), SpawnOptions::default()).await.unwrap();
    let mut calls = Vec::new();
    for node in &nodes[..2] {
        let counter = node.runtime().remote_ref::<Counter>(&pid);
        for _ in 0..50 {
            let counter = counter.clone();
            calls.push(tokio::spawn(async move { counter.call(Request::add(1)).await }));
        }
    }
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
    let local = nodes[2].runtime().remote_ref::<Counter>(&pid);
    assert!(!local.is_remote(), "on its own node the reference is local");
    assert_eq!(local.call(Request::get()).await, Ok(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_with_typed_errors() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let counter = spawn_counter(a, b, SpawnOptions::default()).await;

    // By name: unknown, then known.
    let second = Duration::from_secs(1);
    let unknown = a.remote().call_named::<Request, i64>(b.id(), "nobody", &Request::get(), second).await;
    assert_eq!(unknown, Err(CallError::NoProc(Callee::Name { name: "nobody".into(), node: b.id().node_name() })));
    b.runtime().register("known", counter.pid()).unwrap();
    let known = a.remote().call_named::<Request, i64>(b.id(), "known", &Request::add(2), second).await;
    assert_eq!(known, Ok(2));

    // A process started with `start` (not `start_encodable`) takes no calls from other nodes: said as such.
    let local_only = b.runtime().start(Counter::new(0)).await.unwrap();
    assert_eq!(local_only.call(Request::get()).await, Ok(0), "its own node calls it");
    let from_a = a.runtime().remote_ref::<Counter>(local_only.pid()).call(Request::get()).await;
    assert_eq!(from_a, Err(CallError::NotEncodable));

    // A process of another incarnation of b is never reached.
    let stale = Pid::new(counter.pid().node().clone(), counter.pid().creation().wrapping_add(1), counter.pid().id());
    let stale_call = a.runtime().remote_ref::<Counter>(&stale).call(Request::get()).await;
    assert_eq!(stale_call, Err(CallError::NoProc(Callee::Pid(stale.clone()))));

    // A node that is not connected.
    let nowhere = Pid::new(NodeName::new(format!("ghost@127.0.0.1:{}", free_port())), 1, 1);
    let ghost_call = a.runtime().remote_ref::<Counter>(&nowhere).call(Request::get()).await;
    assert_eq!(ghost_call, Err(CallError::NoConnection(nowhere.node().clone())));

    // The server dies while handling the call.
    match counter.call(Request::crash()).await {
        Err(CallError::Exited(ExitReason::Error(message))) => assert!(message.contains("asked to crash"), "{message}"),
        other => panic!("expected Exited(error), got {other:?}"),
    }
    assert_eq!(
        counter.call(Request::get()).await,
        Err(CallError::NoProc(Callee::Pid(counter.pid().clone()))),
        "dead now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_leaves_nothing_pending_and_the_late_reply_is_dropped() {
    let nodes = mesh(2).await;
    let counter = spawn_counter(&nodes[0], &nodes[1], SpawnOptions::default()).await;
    let timeout = Duration::from_millis(100);
    assert_eq!(counter.call_timeout(Request::sleep(400), timeout).await, Err(CallError::Timeout(timeout)));
    assert_eq!(nodes[0].remote().stats().pending, 0, "the timed-out call is forgotten at once");
    // The late reply arrives and is dropped; the server is still usable.
    assert_eq!(counter.call(Request::add(1)).await, Ok(1));
    assert_eq!(nodes[0].remote().stats().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_fails_every_pending_call_at_once() {
    let nodes = mesh(2).await;
    let counter = spawn_counter(&nodes[0], &nodes[1], SpawnOptions::default()).await;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let counter = counter.clone();
        calls.push(tokio::spawn(
            async move { counter.call_timeout(Request::sleep(30_000), Duration::from_secs(60)).await },
        ));
    }
    eventually("the calls are in flight", || nodes[0].remote().stats().pending == 20).await;
    let lost = nodes[1].id().node_name();
    let crashed_at = Instant::now();
    nodes[1].crash().await;
    for call in calls {
        assert_eq!(within("a failed call", call).await.unwrap(), Err(CallError::NoConnection(lost.clone())));
    }
    let took = crashed_at.elapsed();
    assert!(took < Duration::from_secs(2), "calls failed after {took:?}");
    assert_eq!(nodes[0].remote().stats().pending, 0);
    assert_eq!(counter.call(Request::get()).await, Err(CallError::NoConnection(lost)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_stop_runs_terminate_and_reports_noproc_after() {
    let nodes = mesh(2).await;
    let counter = spawn_counter(&nodes[0], &nodes[1], SpawnOptions::named("stoppable")).await;
    assert_eq!(counter.stop(ExitReason::Shutdown, Duration::from_secs(5)).await, Ok(()));
    assert_eq!(nodes[1].runtime().whereis("stoppable"), None, "the name is free once stop returns");
    assert_eq!(counter.stop(ExitReason::Shutdown, Duration::from_secs(5)).await, Err(StopError::NoProc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_spawn_registers_as_asked() {
    let nodes = mesh(3).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    let anonymous =
        spawn_counter(a, b, SpawnOptions::default().args(&CounterArgs { initial: 7, ..Default::default() })).await;
    assert_eq!(anonymous.call(Request::get()).await, Ok(7), "init arguments reach the factory");

    let local = spawn_counter(a, b, SpawnOptions::named("local-counter")).await;
    assert_eq!(b.runtime().whereis("local-counter").as_ref(), Some(local.pid()));
    assert_eq!(a.registry().whereis("local-counter"), None, "a local name is not global");

    let global = spawn_counter(a, b, SpawnOptions::global("global-counter")).await;
    assert_eq!(b.runtime().whereis("global-counter"), None, "a global name is not local");
    for node in &nodes {
        let registry = node.registry().clone();
        let pid = global.pid().clone();
        eventually("every node knows the global name", move || registry.whereis("global-counter") == Some(pid.clone()))
            .await;
    }

    let unnamed = SpawnOptions { name: Some("ignored".into()), registration: Registration::None, ..Default::default() };
    spawn_counter(a, c, unnamed).await;
    assert_eq!(c.runtime().whereis("ignored"), None);

    let on_self = spawn_counter(a, a, SpawnOptions::named("mine")).await;
    assert!(!on_self.is_remote());
    assert_eq!(a.runtime().whereis("mine").as_ref(), Some(on_self.pid()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_spawn_fails_with_typed_errors_and_leaves_no_orphan() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let spawn = |behaviour: &'static str, options: SpawnOptions| async move {
        a.remote().spawn(behaviour, b.id(), options).await
    };
    assert_eq!(spawn("nope", SpawnOptions::default()).await, Err(SpawnError::UnknownBehaviour("nope".into())));

    let failing = SpawnOptions::default().args(&CounterArgs { fail_init: "no luck".into(), ..Default::default() });
    match spawn("counter", failing).await {
        Err(SpawnError::InitFailed(message)) => assert!(message.contains("no luck"), "{message}"),
        other => panic!("expected InitFailed, got {other:?}"),
    }

    let garbage = SpawnOptions { init_args: bytes::Bytes::from_static(&[0xff, 0xff]), ..Default::default() };
    assert!(matches!(spawn("counter", garbage).await, Err(SpawnError::BadArguments(_))));

    spawn("counter", SpawnOptions::named("taken")).await.unwrap();
    assert_eq!(spawn("counter", SpawnOptions::named("taken")).await, Err(SpawnError::NameTaken("taken".into())));
    spawn("counter", SpawnOptions::global("g-taken")).await.unwrap();
    eventually("a knows the global name", || a.registry().is_registered("g-taken")).await;
    assert_eq!(spawn("counter", SpawnOptions::global("g-taken")).await, Err(SpawnError::NameTaken("g-taken".into())));

    let ghost: noex_cluster::NodeId = format!("ghost@127.0.0.1:{}", free_port()).parse().unwrap();
    assert_eq!(a.remote().spawn("counter", &ghost, SpawnOptions::default()).await, Err(SpawnError::NoConnection));

    let before = b.runtime().process_count();
    let slow = SpawnOptions::named("slow")
        .args(&CounterArgs { init_delay_ms: 300, ..Default::default() })
        .timeout(Duration::from_millis(50));
    assert_eq!(spawn("counter", slow).await, Err(SpawnError::Timeout(Duration::from_millis(50))));
    // Forgotten when the requester gives up, not when (or if) the late answer comes.
    assert_eq!(a.remote().stats().pending, 0);
    eventually("the late process is stopped, not orphaned", || {
        b.runtime().whereis("slow").is_none() && b.runtime().process_count() == before
    })
    .await;
    assert_eq!(a.remote().stats().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_travels_inside_a_message() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Envelope {
        #[prost(message, optional, tag = "1")]
        counter: Option<Pid>,
    }
    let nodes = mesh(2).await;
    let counter = spawn_counter(&nodes[0], &nodes[1], SpawnOptions::default()).await;
    let bytes = prost::Message::encode_to_vec(&Envelope { counter: Some(counter.pid().clone()) });
    let received: Envelope = prost::Message::decode(bytes.as_slice()).unwrap();
    let again = nodes[0].runtime().remote_ref::<Counter>(&received.counter.unwrap());
    assert_eq!(again.call(Request::add(3)).await, Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_leave_nothing_pending_and_no_orphan() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let counter = spawn_counter(a, b, SpawnOptions::named("sleepy")).await;

    // A by-name call whose future is dropped before the answer.
    let sleep = Request::sleep(300);
    let call = a.remote().call_named::<Request, i64>(b.id(), "sleepy", &sleep, Duration::from_secs(5));
    assert!(tokio::time::timeout(Duration::from_millis(50), call).await.is_err());
    assert_eq!(a.remote().stats().pending, 0, "the dropped call is forgotten");
    // A plain call dropped the same way.
    assert!(tokio::time::timeout(Duration::from_millis(50), counter.call(Request::sleep(300))).await.is_err());
    assert_eq!(a.remote().stats().pending, 0);

    // A spawn on this very node that outlives its timeout is not left behind.
    let before = a.runtime().process_count();
    let slow = SpawnOptions::named("slow-here")
        .args(&CounterArgs { init_delay_ms: 200, ..Default::default() })
        .timeout(Duration::from_millis(20));
    assert_eq!(a.remote().spawn("counter", a.id(), slow).await, Err(SpawnError::Timeout(Duration::from_millis(20))));
    eventually("the late local process is stopped", || {
        a.runtime().whereis("slow-here").is_none() && a.runtime().process_count() == before
    })
    .await;
    // A remote spawn whose future is dropped: its process is stopped when the late answer comes.
    let mut events = b.runtime().lifecycle_events();
    let dropped = SpawnOptions::named("dropped").args(&CounterArgs { init_delay_ms: 100, ..Default::default() });
    let spawn = a.remote().spawn("counter", b.id(), dropped);
    assert!(tokio::time::timeout(Duration::from_millis(20), spawn).await.is_err());
    assert_eq!(a.remote().stats().pending, 0);
    let reason = within("the abandoned process's end", async {
        loop {
            if let Ok(noex_core::LifecycleEvent::Terminated { name: Some(name), reason, .. }) = events.recv().await {
                if &*name == "dropped" {
                    return reason;
                }
            }
        }
    })
    .await;
    assert_eq!(reason, ExitReason::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_stop_keeps_its_place_among_the_frames_of_its_sender() {
    let nodes = mesh(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for _ in 0..20 {
        let (recorder, mut seen) = Recorder::new();
        let local = b.runtime().start_encodable(recorder, Default::default()).await.unwrap();
        let remote = a.runtime().remote_ref::<Recorder>(local.pid());
        remote.cast(1);
        let stop = remote.stop(ExitReason::Shutdown, Duration::from_secs(5));
        tokio::pin!(stop);
        // Polled once: the stop frame is queued now, before the cast that follows it (the stop may even be done).
        let stopped = match std::future::poll_fn(|cx| std::task::Poll::Ready(stop.as_mut().poll(cx))).await {
            std::task::Poll::Ready(done) => done,
            std::task::Poll::Pending => {
                remote.cast(2);
                within("the stop", stop).await
            }
        };
        assert_eq!(stopped, Ok(()));
        assert_eq!(within("the cast", seen.recv()).await, Some(Recorded::Cast(1)));
        let terminated = within("terminate", seen.recv()).await;
        assert_eq!(terminated, Some(Recorded::Terminated(ExitReason::Shutdown)), "stop overtaken");
        assert_eq!(within("the end", seen.recv()).await, None, "nothing handled after the stop");
    }
}

/// Casts straight from a bare cluster node, as any peer could send them: only those that name the peer's own
/// node as their sender, and this incarnation of the target, are delivered (the reader's fast path included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_casts_only_as_itself_and_only_to_this_incarnation() {
    use noex_core::Encodable;
    use noex_proto::{Cast, Frame, Target};
    let node = noex_tests::remote::full_node("n", &[]).await;
    let (recorder, mut seen) = Recorder::new();
    let local = node.runtime().start_encodable(recorder, Default::default()).await.unwrap();
    let raw = noex_tests::cluster::node("raw", &[node.id()]).await;
    noex_tests::cluster::wait_connected(&raw, 1).await;
    let me = Pid::new(raw.local().node_name(), raw.creation(), 0);
    let stranger: noex_cluster::NodeId = "stranger@127.0.0.1:1".parse().unwrap();
    let stranger = Pid::new(stranger.node_name(), 1, 0);
    let stale = Pid::new(local.pid().node().clone(), local.pid().creation() ^ 1, local.pid().id());
    let cast = |target: &Pid, from: &Pid, value: i64| {
        Frame::Cast(Cast { target: Target::Pid(target.clone()), from: from.clone(), payload: value.encode_wire() })
    };
    raw.send(node.id(), cast(local.pid(), &stranger, 1)).unwrap();
    raw.send(node.id(), cast(&stale, &me, 2)).unwrap();
    raw.send(node.id(), cast(local.pid(), &me, 3)).unwrap();
    let by_name = Cast { target: Target::Name("nobody".into()), from: me.clone(), payload: 4i64.encode_wire() };
    raw.send(node.id(), Frame::Cast(by_name)).unwrap();
    raw.send(node.id(), cast(local.pid(), &me, 5)).unwrap();
    assert_eq!(within("the genuine cast", seen.recv()).await, Some(Recorded::Cast(3)));
    assert_eq!(within("the next genuine cast", seen.recv()).await, Some(Recorded::Cast(5)));
}

/// A peer that keeps more stops (or spawns) in progress than a node bounds is flooding it with work it cannot
/// refuse one by one: its connection is closed as overloaded, and the requests already queued still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_too_many_requests_in_progress_is_disconnected_as_overloaded() {
    use noex_core::Encodable;
    use noex_proto::{Cast, Frame, Stop, Target};
    let node = noex_tests::remote::full_node("n", &[]).await;
    let mut events = node.cluster().events();
    let (gated, gate, mut seen) = noex_tests::servers::Gated::new();
    let local = node.runtime().start_encodable(gated, Default::default()).await.unwrap();
    let raw = noex_tests::cluster::node("raw", &[node.id()]).await;
    noex_tests::cluster::wait_connected(&raw, 1).await;
    let me = Pid::new(raw.local().node_name(), raw.creation(), 0);
    // The process is held in a cast, so no stop can finish.
    let cast = Cast { target: Target::Pid(local.pid().clone()), from: me.clone(), payload: 1i64.encode_wire() };
    raw.send(node.id(), Frame::Cast(cast)).unwrap();
    for call_id in 0..=noex_remote::MAX_REQUESTS_PER_PEER as u64 {
        let stop = Stop {
            call_id,
            target: local.pid().clone(),
            from: me.clone(),
            reason: ExitReason::Normal,
            timeout: Duration::from_secs(3600),
        };
        if raw.send(node.id(), Frame::Stop(stop)).is_err() {
            break; // closed already
        }
    }
    let reason = within("the flooding peer is dropped", noex_tests::cluster::wait_down(&mut events, raw.local())).await;
    assert_eq!(reason, noex_cluster::DownReason::Overloaded);
    // What was queued before still runs: the cast, then the first stop.
    gate.add_permits(1);
    assert_eq!(within("the held cast", seen.recv()).await, Some(1));
    eventually("the process stopped", || !local.is_alive()).await;
}
