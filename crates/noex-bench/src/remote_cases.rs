//! Cases for remote operations: calls and casts between two nodes in one process, and global registration.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use noex_cluster::{ClusterConfig, Cookie, NodeId};
use noex_core::{Pid, StartOptions};
use noex_proto::{Call, Cast, Frame, FrameCodec, Target};
use noex_remote::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Encoder;

use crate::cases::Echo;
use crate::cluster_cases::tcp_ping_pong;
use crate::report::{Figures, latency_line};

const CALLS: usize = 20_000;
const CASTS: usize = 1_000_000;
const REGISTRATIONS: usize = 500;

pub(crate) fn config(name: &str, seeds: &[&NodeId]) -> ClusterConfig {
    let mut config = ClusterConfig::new(name);
    config.port = 0;
    config.cookie = Some(Cookie::new("noex-bench"));
    config.seeds = seeds.iter().map(|seed| seed.to_string()).collect();
    config
}

pub(crate) async fn pair() -> (Node, Node) {
    let server = Node::start(config("server", &[])).await.expect("server node");
    let client = Node::start(config("client", &[server.id()])).await.expect("client node");
    let mut events = client.cluster().events();
    while !client.cluster().is_connected(server.id()) {
        let _ = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("nodes connect");
    }
    (server, client)
}

/// The size on the wire of a call or cast frame from `from` to `to` carrying `payload`.
fn frame_size(frame: Frame) -> usize {
    let mut buffer = BytesMut::new();
    FrameCodec::with_limit(1 << 20).encode(frame, &mut buffer).expect("encodes");
    buffer.len()
}

fn payload(n: u64) -> Bytes {
    noex_core::Encodable::encode_wire(&n)
}

/// Sequential calls to a server on another node, against raw TCP ping-pong of frames of the same size.
pub(crate) async fn remote_call() -> String {
    let (server, client) = pair().await;
    let echo = server.runtime().start_encodable(Echo(0), StartOptions::default()).await.expect("echo");
    let remote = client.runtime().remote_ref::<Echo>(echo.pid());
    for i in 0..(CALLS / 10) as u64 {
        remote.call(i).await.expect("warm-up call");
    }
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS as u64 {
        let start = Instant::now();
        let reply = remote.call(i).await.expect("call");
        samples.push(start.elapsed());
        assert_eq!(reply, i + 1);
    }
    let ours = Figures::from_latencies(samples);
    let size = frame_size(Frame::Call(Call {
        call_id: CALLS as u64,
        target: Target::Pid(echo.pid().clone()),
        from: Pid::new(client.id().node_name(), client.cluster().creation(), 0),
        payload: payload(CALLS as u64),
        timeout: Duration::from_secs(5),
    }));
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    let base = tcp_ping_pong(size).await;
    format!("{} frame_bytes={size}", latency_line("remote_call", CALLS, &ours, &base))
}

/// 1M pipelined casts, then one call that confirms they all arrived; against a raw TCP stream of length-prefixed
/// frames of the same size.
pub(crate) async fn remote_cast() -> String {
    let (server, client) = pair().await;
    let echo = server.runtime().start_encodable(Echo(0), StartOptions::default()).await.expect("echo");
    let remote = client.runtime().remote_ref::<Echo>(echo.pid());
    let start = Instant::now();
    for _ in 0..CASTS {
        remote.cast(1);
    }
    // The answer to `0` is 1 plus the sum of the casts: here, how many arrived.
    let arrived = remote.call_timeout(0, Duration::from_secs(120)).await.expect("count") - 1;
    let ours = start.elapsed();
    // The awaited form, to the same server: waits for room in the cast window instead of queueing ahead.
    let start = Instant::now();
    for _ in 0..CASTS {
        remote.cast_await(1).await.expect("awaited cast");
    }
    let arrived_awaited = remote.call_timeout(0, Duration::from_secs(120)).await.expect("count") - 1 - arrived;
    let awaited = start.elapsed();
    let size = frame_size(Frame::Cast(Cast {
        target: Target::Pid(echo.pid().clone()),
        from: Pid::new(client.id().node_name(), client.cluster().creation(), 0),
        payload: payload(CASTS as u64),
    }));
    let dropped = client.remote().stats().dropped_casts;
    // How close the fire-and-forget burst came to the hard bound (64 MiB), past which the peer would be dropped.
    let peak_outbound = client.cluster().connection_stats(server.id()).map_or(0, |s| s.peak_queued_bytes);
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    let base = tcp_stream(size, CASTS).await;
    let per_sec = |d: Duration| CASTS as f64 / d.as_secs_f64();
    format!(
        "case=remote_cast n={CASTS} per_sec={:.0} ns_per_msg={:.1} lost={} dropped={dropped} base_per_sec={:.0} base_ns_per_msg={:.1} ratio={:.2} await_ns_per_msg={:.1} await_lost={} await_ratio={:.2} frame_bytes={size} peak_outbound_mb={:.1}",
        per_sec(ours),
        ours.as_secs_f64() * 1e9 / CASTS as f64,
        CASTS as u64 - arrived,
        per_sec(base),
        base.as_secs_f64() * 1e9 / CASTS as f64,
        ours.as_secs_f64() / base.as_secs_f64(),
        awaited.as_secs_f64() * 1e9 / CASTS as f64,
        CASTS as u64 - arrived_awaited,
        awaited.as_secs_f64() / base.as_secs_f64(),
        peak_outbound as f64 / 1048576.0,
    )
}

/// Writes `count` length-prefixed frames of `size` bytes (prefix included) through a buffered writer and reads
/// them back on the other end; the time until the reader has them all.
async fn tcp_stream(size: usize, count: usize) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let reader = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let mut socket = BufReader::with_capacity(64 << 10, socket);
        let mut frame = vec![0u8; size - 4];
        for _ in 0..count {
            let len = socket.read_u32().await.expect("prefix") as usize;
            socket.read_exact(&mut frame[..len]).await.expect("frame");
        }
    });
    let socket = TcpStream::connect(address).await.expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let mut socket = BufWriter::with_capacity(64 << 10, socket);
    let frame = vec![7u8; size - 4];
    let start = Instant::now();
    for _ in 0..count {
        socket.write_u32((size - 4) as u32).await.expect("prefix");
        socket.write_all(&frame).await.expect("frame");
    }
    socket.flush().await.expect("flush");
    reader.await.expect("reader");
    start.elapsed()
}

/// Time from `register` on one node until `whereis` finds the name on two others; the baseline is a raw TCP
/// round trip (a registration needs one one-way trip to each other node).
pub(crate) async fn registry_register() -> String {
    let a = Node::start(config("a", &[])).await.expect("node a");
    let b = Node::start(config("b", &[a.id()])).await.expect("node b");
    let c = Node::start(config("c", &[a.id()])).await.expect("node c");
    for node in [&a, &b, &c] {
        let mut events = node.cluster().events();
        while node.cluster().connected().len() < 2 {
            let _ = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("mesh forms");
        }
    }
    let echo = a.runtime().start_encodable(Echo(0), StartOptions::default()).await.expect("echo");
    let mut samples = Vec::with_capacity(REGISTRATIONS);
    for i in 0..REGISTRATIONS + REGISTRATIONS / 10 {
        let name = format!("name-{i}");
        let start = Instant::now();
        a.registry().register(&name, echo.pid()).expect("register");
        while b.registry().whereis(&name).is_none() || c.registry().whereis(&name).is_none() {
            tokio::task::yield_now().await;
        }
        if i >= REGISTRATIONS / 10 {
            samples.push(start.elapsed());
        }
    }
    let ours = Figures::from_latencies(samples);
    for node in [&a, &b, &c] {
        node.shutdown(Duration::from_secs(1)).await;
    }
    let base = tcp_ping_pong(64).await;
    latency_line("registry_register", REGISTRATIONS, &ours, &base)
}
