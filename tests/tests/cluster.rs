//! Cluster membership with in-process nodes on ephemeral ports.

use std::time::{Duration, Instant};

use noex_cluster::{Cluster, ClusterConfig, ClusterEvent, Cookie, DownReason, NodeStatus, Refusal};
use noex_tests::cluster::{
    DEADLINE, MembershipCounter, bound_pair, config, free_port, node, wait_connected, wait_down, wait_for, wait_up,
};
use noex_tests::remote::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_other_quickly() {
    let a = node("a", &[]).await;
    let mut a_events = a.events();
    let started = Instant::now();
    let b = node("b", &[a.local()]).await;
    let mut b_events = b.events();
    if !b.is_connected(a.local()) {
        wait_up(&mut b_events, a.local()).await;
    }
    if !a.is_connected(b.local()) {
        wait_up(&mut a_events, b.local()).await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "join took {took:?}");
    assert_eq!(a.connected(), [b.local().clone()]);
    assert_eq!((a.node_count(), b.nodes()[0].1), (1, NodeStatus::Connected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_from_one_seed_form_a_full_mesh() {
    let seed = node("seed", &[]).await;
    let mut others = Vec::new();
    for i in 0..4 {
        others.push(node(&format!("n{i}"), &[seed.local()]).await);
    }
    wait_connected(&seed, 4).await;
    for other in &others {
        wait_connected(other, 4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_seed_does_not_block_start_and_is_joined_once_it_appears() {
    let port = free_port();
    let future_seed: noex_cluster::NodeId = format!("late@127.0.0.1:{port}").parse().unwrap();
    let early = node("early", &[&future_seed]).await;
    assert!(early.connected().is_empty());
    let mut events = early.events();
    let late = Cluster::start(ClusterConfig { port, ..config("late") }).await.unwrap();
    wait_up(&mut events, late.local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_is_reported_down_with_connection_closed_by_every_survivor() {
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    let c = node("c", &[a.local()]).await;
    for n in [&a, &b, &c] {
        wait_connected(n, 2).await;
    }
    let (mut a_events, mut b_events) = (a.events(), b.events());
    let started = Instant::now();
    c.crash().await;
    assert_eq!(wait_down(&mut a_events, c.local()).await, DownReason::ConnectionClosed);
    assert_eq!(wait_down(&mut b_events, c.local()).await, DownReason::ConnectionClosed);
    assert!(started.elapsed() < Duration::from_millis(500), "detected in {:?}", started.elapsed());
    assert!(a.nodes().iter().any(|(info, status)| info.node == *c.local() && *status == NodeStatus::Disconnected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_is_reported_as_graceful_shutdown() {
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    wait_connected(&a, 1).await;
    let mut events = a.events();
    b.shutdown().await;
    assert_eq!(wait_down(&mut events, b.local()).await, DownReason::GracefulShutdown);
    assert!(b.connected().is_empty(), "the leaving node forgets its connections");
    let redial = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    assert!(redial.is_err(), "a node that said goodbye is not redialed: {redial:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_frame_handler_loses_that_frame_but_not_the_connection() {
    use noex_cluster::FrameKind;
    use noex_proto::Frame;
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    wait_connected(&b, 1).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    a.set_handler(FrameKind::Observer, move |_: &noex_cluster::NodeId, frame: Frame| {
        if let Frame::ObserverQuery { query_id, .. } = frame {
            assert!(query_id != 0, "handler bug on query 0");
            let _ = seen_tx.send(query_id);
        }
    });
    b.send(a.local(), Frame::ObserverQuery { query_id: 0, query: bytes::Bytes::new() }).unwrap();
    b.send(a.local(), Frame::ObserverQuery { query_id: 1, query: bytes::Bytes::new() }).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await.unwrap();
    assert_eq!(next, Some(1));
    assert!(a.is_connected(b.local()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_comes_up_again_with_a_new_incarnation() {
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    wait_connected(&a, 1).await;
    let (port, old_creation) = (b.local().port(), b.creation());
    let mut events = a.events();
    b.crash().await;
    wait_down(&mut events, b.local()).await;
    let b2 = Cluster::start(ClusterConfig { port, seeds: vec![a.local().to_string()], ..config("b") }).await.unwrap();
    let up = wait_for(&mut events, |e| matches!(e, ClusterEvent::NodeUp(info) if info.node == *b2.local())).await;
    let ClusterEvent::NodeUp(info) = up else { unreachable!() };
    assert_ne!(info.creation, old_creation);
    assert_eq!(info.creation, b2.creation());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_leave_exactly_one_connection() {
    let (pa, pb) = (free_port(), free_port());
    let a_id = format!("a@127.0.0.1:{pa}");
    let b_id = format!("b@127.0.0.1:{pb}");
    let (a, b) = tokio::join!(
        Cluster::start(ClusterConfig { port: pa, seeds: vec![b_id], ..config("a") }),
        Cluster::start(ClusterConfig { port: pb, seeds: vec![a_id], ..config("b") }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    wait_connected(&a, 1).await;
    wait_connected(&b, 1).await;
    // Give any duplicate connection time to show up as a flap; none may.
    let mut events = a.events();
    let flap = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    assert!(flap.is_err(), "no further membership events: {flap:?}");
    assert_eq!((a.connected().len(), b.connected().len()), (1, 1));
}

/// What one node of a pair that dialed each other at once saw of the other.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    layer_ups: usize,
    layer_downs: usize,
    /// Membership events after the first `NodeUp`.
    later_events: Vec<ClusterEvent>,
}

/// Opens `pairs` pairs of nodes that seed each other in one burst; returns what each node of the pairs that
/// flapped saw, and how many peers each ended with.
async fn open_pairs_at_once(pairs: usize) -> Vec<((Seen, Seen), (usize, usize))> {
    use noex_cluster::{FrameKind, NodeInfo};
    // Long enough for a losing connection to be closed and noticed on either side (milliseconds on loopback).
    const QUIET: Duration = Duration::from_millis(500);
    let mut bound = Vec::new();
    for _ in 0..pairs {
        let (a, b) = bound_pair("a", "b").await;
        let counters = (MembershipCounter::default(), MembershipCounter::default());
        a.set_handler(FrameKind::Observer, counters.0.clone());
        b.set_handler(FrameKind::Observer, counters.1.clone());
        let events = (a.events(), b.events());
        bound.push((a, b, counters, events));
    }
    // All at once, and either node of a pair first: which dial or accept of a pair runs first is then up to a
    // crowded scheduler, so that many orderings occur.
    for (i, (a, b, ..)) in bound.iter().enumerate() {
        let (first, second) = if i % 2 == 0 { (a, b) } else { (b, a) };
        first.open();
        second.open();
    }
    let trials: Vec<_> = bound
        .into_iter()
        .map(|(a, b, counters, mut events)| {
            tokio::spawn(async move {
                let (a_first, b_first) = tokio::join!(
                    tokio::time::timeout(DEADLINE, events.0.recv()),
                    tokio::time::timeout(DEADLINE, events.1.recv()),
                );
                let up = |node: &Cluster| NodeInfo { node: node.local().clone(), creation: node.creation() };
                assert_eq!(a_first.expect("a joins").unwrap(), ClusterEvent::NodeUp(up(&b)));
                assert_eq!(b_first.expect("b joins").unwrap(), ClusterEvent::NodeUp(up(&a)));
                // Proving an absence: whatever a duplicate connection would cause shows within this window.
                tokio::time::sleep(QUIET).await;
                let seen = |counter: &MembershipCounter, events: &mut broadcast::Receiver<ClusterEvent>| Seen {
                    layer_ups: counter.ups(),
                    layer_downs: counter.downs(),
                    later_events: std::iter::from_fn(|| events.try_recv().ok()).collect(),
                };
                let seen = (seen(&counters.0, &mut events.0), seen(&counters.1, &mut events.1));
                let connected = (a.connected().len(), b.connected().len());
                a.crash().await;
                b.crash().await;
                (seen, connected)
            })
        })
        .collect();
    let mut flaps = Vec::new();
    for trial in trials {
        let (seen, connected) = trial.await.expect("trial ran");
        let calm = || Seen { layer_ups: 1, layer_downs: 0, later_events: Vec::new() };
        if seen != (calm(), calm()) || connected != (1, 1) {
            flaps.push((seen, connected));
        }
    }
    flaps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_tell_neither_the_layers_nor_the_events_of_a_flap() {
    // A double connection needs a narrow interleaving: with this many tries, 14 of 15 runs caught one before
    // simultaneous dials were settled in the handshake (a connection was swapped in on one side or both).
    const ROUNDS: usize = 8;
    const PAIRS: usize = 32;
    for round in 0..ROUNDS {
        let flaps = open_pairs_at_once(PAIRS).await;
        assert!(flaps.is_empty(), "round {round}: {} of {PAIRS} pairs flapped: {flaps:#?}", flaps.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_different_cookies_never_join_and_keep_running() {
    let a = node("a", &[]).await;
    let mut stranger_config = config("stranger");
    stranger_config.cookie = Some(Cookie::new("wrong"));
    stranger_config.seeds = vec![a.local().to_string()];
    let mut events = a.events();
    let stranger = Cluster::bind(stranger_config).await.unwrap();
    let mut told = stranger.events();
    stranger.open();
    // The stranger is told why, once, while it keeps dialing (with backoff from 200 ms).
    let refused = wait_for(&mut told, |e| matches!(e, ClusterEvent::DialRefused { .. })).await;
    assert_eq!(refused, ClusterEvent::DialRefused { node: a.local().clone(), refusal: Refusal::NotAllowed });
    let joined = tokio::time::timeout(Duration::from_millis(800), events.recv()).await;
    assert!(joined.is_err(), "no membership event: {joined:?}");
    assert!(told.try_recv().is_err(), "the refusal is told once, not at every retry");
    assert!(a.connected().is_empty() && stranger.connected().is_empty());
    let friend = node("friend", &[a.local()]).await;
    wait_connected(&friend, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_to_resolves_when_the_node_comes_up_and_fails_when_this_one_leaves() {
    let a = node("a", &[]).await;
    let b = Cluster::bind(ClusterConfig { seeds: vec![a.local().to_string()], ..config("b") }).await.unwrap();
    let waiting = tokio::spawn({
        let (a, b) = (a.clone(), b.local().clone());
        async move { a.connected_to(&b).await }
    });
    b.open();
    assert!(within("b up", async { waiting.await.unwrap() }).await, "b comes up");
    assert!(within("b up again", a.connected_to(b.local())).await, "at once when connected");
    let lone = node("lone", &[]).await;
    let ghost: noex_cluster::NodeId = format!("ghost@127.0.0.1:{}", free_port()).parse().unwrap();
    let never = tokio::spawn({
        let lone = lone.clone();
        async move { lone.connected_to(&ghost).await }
    });
    lone.shutdown().await;
    assert!(!within("the wait to end", async { never.await.unwrap() }).await, "false once this node leaves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_under_the_wrong_name_is_told_with_the_name_that_answers() {
    let a = node("a", &[]).await;
    let wrong = format!("wrong@{}", a.local().address());
    let mut config = config("b");
    config.seeds = vec![wrong.clone()];
    let b = Cluster::bind(config).await.unwrap();
    let mut told = b.events();
    b.open();
    let refused = wait_for(&mut told, |e| matches!(e, ClusterEvent::DialRefused { .. })).await;
    let found = a.local().to_string();
    assert_eq!(
        refused,
        ClusterEvent::DialRefused { node: wrong.parse().unwrap(), refusal: Refusal::WrongNode { found } }
    );
}

/// Opens a raw TCP connection to `cluster`, sends `bytes`, and reports whether the node closed it.
async fn closed_after(cluster: &Cluster, bytes: &[u8]) -> bool {
    let mut stream = tokio::net::TcpStream::connect(cluster.local().address()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a Reject frame, say
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_closes_that_connection_and_the_node_serves_others() {
    let a = node("a", &[]).await;
    let heartbeat_before_auth = [0, 0, 0, 2, 0x52, 0x00];
    let hello_with_a_bad_node_id = [0, 0, 0, 7, 0x0a, 0x05, 0x12, 0x03, b'b', b'a', b'd'];
    let unknown_kind = [0, 0, 0, 3, 0x9a, 0x06, 0x00];
    let cases: [(&str, &[u8]); 6] = [
        ("garbage", b"GET / HTTP/1.1\r\n\r\n"),
        ("huge length prefix", &[0xff, 0xff, 0xff, 0xff]),
        ("not a protobuf", &[0, 0, 0, 3, 0xff, 0xff, 0xff]),
        ("a protobuf with wrong fields", &hello_with_a_bad_node_id),
        ("an unknown message kind", &unknown_kind),
        ("a frame before authentication", &heartbeat_before_auth),
    ];
    for (what, bytes) in cases {
        assert!(closed_after(&a, bytes).await, "{what}: connection closed");
    }
    let b = node("b", &[a.local()]).await;
    wait_connected(&b, 1).await;
    assert_eq!(a.connected(), [b.local().clone()], "membership untouched by the hostile connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_the_handshake_is_cut_off() {
    let mut strict = config("strict");
    strict.preauth_timeout = Duration::from_millis(200);
    let a = Cluster::start(strict).await.unwrap();
    let started = Instant::now();
    assert!(closed_after(&a, &[0, 0]).await, "a truncated frame, then silence");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(2), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_reported_down_with_heartbeat_timeout() {
    // a reaches b only through the proxy.
    let (proxy, b) = noex_tests::cluster::behind_proxy("b").await;
    let a = node("a", &[b.local()]).await;
    wait_connected(&a, 1).await;
    let (mut a_events, mut b_events) = (a.events(), b.events());
    let silent_since = Instant::now();
    proxy.pause();
    assert_eq!(wait_down(&mut a_events, b.local()).await, DownReason::HeartbeatTimeout);
    assert_eq!(wait_down(&mut b_events, a.local()).await, DownReason::HeartbeatTimeout);
    let took = silent_since.elapsed();
    // The failure timeout is 1 s in the test config; the bound allows for a busy machine.
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "detected after {took:?}");
    proxy.resume();
    wait_up(&mut a_events, b.local()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cuts_the_links_of_one_dialer_and_spares_the_others() {
    use noex_tests::proxy::Link;
    // b is reachable only through the proxy, which learns each dialer's name from its Hello.
    let (proxy, b) = noex_tests::cluster::behind_proxy("b").await;
    let a = node("a", &[b.local()]).await;
    let c = node("c", &[b.local()]).await;
    for node in [&a, &b, &c] {
        wait_connected(node, 2).await;
    }
    let (mut a_events, mut c_events) = (a.events(), c.events());
    let cut_at = Instant::now();
    proxy.set_link("a", Link { cut: true, ..Link::default() });
    wait_down(&mut a_events, b.local()).await;
    // Closed at once, not found out by missed heartbeats (the failure timeout is 1 s).
    assert!(cut_at.elapsed() < Duration::from_secs(1), "cut noticed after {:?}", cut_at.elapsed());
    proxy.set_link("a", Link::default());
    wait_up(&mut a_events, b.local()).await;
    while let Ok(event) = c_events.try_recv() {
        assert!(!matches!(event, ClusterEvent::NodeDown { .. }), "c lost a node: {event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_application_threads_do_not_starve_heartbeats() {
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    wait_connected(&a, 1).await;
    wait_connected(&b, 1).await;
    let mut events = a.events();
    // Hog both worker threads of the application's runtime for longer than the failure timeout (1 s).
    let hogs: Vec<_> = (0..2)
        .map(|_| tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1500))))
        .chain((0..2).map(|_| tokio::spawn(async { std::thread::sleep(Duration::from_millis(1500)) })))
        .collect();
    for hog in hogs {
        hog.await.unwrap();
    }
    assert!(events.try_recv().is_err(), "no node went down while the application was busy");
    assert_eq!(a.connected(), [b.local().clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sender_delivers_in_order_and_fails_once_its_node_is_gone() {
    use noex_cluster::{FrameKind, SendError};
    use noex_proto::Frame;
    let a = node("a", &[]).await;
    let b = node("b", &[a.local()]).await;
    wait_connected(&a, 1).await;
    wait_connected(&b, 1).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    a.set_handler(FrameKind::Observer, move |_: &noex_cluster::NodeId, frame: Frame| {
        if let Frame::ObserverQuery { query_id, .. } = frame {
            let _ = seen_tx.send(query_id);
        }
    });
    let sender = b.sender(a.local()).expect("connected");
    for query_id in 0..1000 {
        sender.send(Frame::ObserverQuery { query_id, query: bytes::Bytes::new() }).unwrap();
    }
    for expected in 0..1000 {
        let got = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await.unwrap();
        assert_eq!(got, Some(expected));
    }
    let mut events = b.events();
    a.crash().await;
    wait_down(&mut events, a.local()).await;
    assert_eq!(
        sender.send(Frame::ObserverQuery { query_id: 1, query: bytes::Bytes::new() }),
        Err(SendError::NotConnected(a.local().clone())),
        "the handle fails at once, not into a dead buffer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_bound_before_it_opens_misses_no_frame_sent_the_moment_it_joins() {
    use noex_cluster::FrameKind;
    use noex_proto::Frame;
    let a = node("a", &[]).await;
    // `a` greets every node the instant it comes up.
    let mut a_events = a.events();
    let greeter = a.clone();
    tokio::spawn(async move {
        while let Ok(event) = a_events.recv().await {
            if let ClusterEvent::NodeUp(info) = event {
                let _ = greeter.send(&info.node, Frame::ObserverQuery { query_id: 42, query: bytes::Bytes::new() });
            }
        }
    });
    let b = Cluster::bind(ClusterConfig { seeds: vec![a.local().to_string()], ..config("b") }).await.unwrap();
    // Time enough to dial and authenticate many times over: a bound node must not have done it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.connected().is_empty() && b.connected().is_empty(), "a bound node does not dial before it opens");
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    b.set_handler(FrameKind::Observer, move |_: &noex_cluster::NodeId, frame: Frame| {
        if let Frame::ObserverQuery { query_id, .. } = frame {
            let _ = seen_tx.send(query_id);
        }
    });
    b.open();
    let greeting = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await.expect("the greeting arrives");
    assert_eq!(greeting, Some(42));
}
