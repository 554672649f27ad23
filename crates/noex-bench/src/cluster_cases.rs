//! Cases for the cluster transport: request/response between two nodes, and full-mesh formation.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use noex_cluster::{Cluster, ClusterConfig, Cookie, FrameKind};
use noex_core::{NodeName, Pid};
use noex_proto::{Call, Frame, FrameCodec, Reply, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;

use crate::report::{Figures, latency_line};

const ROUND_TRIPS: usize = 20_000;
const PAYLOAD: usize = 64;
const MESH_NODES: usize = 16;

/// A bench node's config: an ephemeral port, the bench's cookie, these seeds.
pub(crate) fn config(name: &str, seeds: Vec<String>) -> ClusterConfig {
    let mut config = ClusterConfig::new(name);
    config.port = 0;
    config.cookie = Some(Cookie::new("noex-bench"));
    config.seeds = seeds;
    config
}

/// A call frame carrying `PAYLOAD` bytes, answered by an echo of the payload.
pub(crate) async fn frame_rtt() -> String {
    let server = Cluster::start(config("server", vec![])).await.expect("server node");
    let client = Cluster::start(config("client", vec![server.local().to_string()])).await.expect("client node");
    let echo = server.clone();
    server.set_handler(FrameKind::Process, move |from: &noex_cluster::NodeId, frame| {
        if let Frame::Call(call) = frame {
            let _ = echo.send(from, Frame::Reply(Reply { call_id: call.call_id, result: Ok(call.payload) }));
        }
    });
    let (replies_tx, mut replies) = mpsc::unbounded_channel();
    client.set_handler(FrameKind::Process, move |_: &noex_cluster::NodeId, frame| {
        if let Frame::Reply(reply) = frame {
            let _ = replies_tx.send(reply.call_id);
        }
    });
    let mut events = client.events();
    while !client.is_connected(server.local()) {
        let _ = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("nodes connect");
    }
    let from = Pid::new(NodeName::new(client.local().as_str()), client.creation(), 1);
    let to_server = client.sender(server.local()).expect("connected");
    let payload = Bytes::from(vec![7u8; PAYLOAD]);
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for call_id in 0..(ROUND_TRIPS + ROUND_TRIPS / 10) as u64 {
        let call = Call {
            call_id,
            target: Target::Name("echo".into()),
            from: from.clone(),
            payload: payload.clone(),
            timeout: Duration::from_secs(5),
        };
        let start = Instant::now();
        to_server.send(Frame::Call(call)).expect("queued");
        let answered = replies.recv().await.expect("reply");
        assert_eq!(answered, call_id);
        if call_id as usize >= ROUND_TRIPS / 10 {
            samples.push(start.elapsed());
        }
    }
    let ours = Figures::from_latencies(samples);
    client.shutdown().await;
    server.shutdown().await;
    let base = tcp_ping_pong(frame_size(&from, &payload)).await;
    format!("{} frame_bytes={}", latency_line("frame_rtt", ROUND_TRIPS, &ours, &base), frame_size(&from, &payload))
}

/// The size of the call frame on the wire, so the baseline moves the same number of bytes.
fn frame_size(from: &Pid, payload: &Bytes) -> usize {
    let call = Call {
        call_id: ROUND_TRIPS as u64,
        target: Target::Name("echo".into()),
        from: from.clone(),
        payload: payload.clone(),
        timeout: Duration::from_secs(5),
    };
    let mut buffer = BytesMut::new();
    FrameCodec::with_limit(1 << 20).encode(Frame::Call(call), &mut buffer).expect("encodes");
    buffer.len()
}

/// Raw TCP ping-pong of `size`-byte messages on the same runtime.
pub(crate) async fn tcp_ping_pong(size: usize) -> Figures {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        let mut buffer = vec![0u8; size];
        while socket.read_exact(&mut buffer).await.is_ok() {
            if socket.write_all(&buffer).await.is_err() {
                return;
            }
        }
    });
    let mut socket = TcpStream::connect(address).await.expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let mut buffer = vec![7u8; size];
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + ROUND_TRIPS / 10 {
        let start = Instant::now();
        socket.write_all(&buffer).await.expect("write");
        socket.read_exact(&mut buffer).await.expect("read");
        if i >= ROUND_TRIPS / 10 {
            samples.push(start.elapsed());
        }
    }
    Figures::from_latencies(samples)
}

/// 16 nodes in one process, each seeded only with the one started before it: time until every node is
/// connected to all 15 others.
pub(crate) async fn mesh_16() -> String {
    let started = Instant::now();
    let mut nodes: Vec<Cluster> = Vec::with_capacity(MESH_NODES);
    for i in 0..MESH_NODES {
        let seeds = nodes.last().map(|previous| vec![previous.local().to_string()]).unwrap_or_default();
        nodes.push(Cluster::start(config(&format!("n{i}"), seeds)).await.expect("node"));
    }
    let mut events: Vec<_> = nodes.iter().map(Cluster::events).collect();
    for (node, events) in nodes.iter().zip(&mut events) {
        while node.connected().len() < MESH_NODES - 1 {
            let _ = tokio::time::timeout(Duration::from_secs(30), events.recv()).await.expect("mesh forms");
        }
    }
    let took = started.elapsed();
    for node in &nodes {
        node.shutdown().await;
    }
    format!("case=mesh_16 nodes={MESH_NODES} seeding=chain full_mesh_ms={:.1}", took.as_secs_f64() * 1e3)
}
