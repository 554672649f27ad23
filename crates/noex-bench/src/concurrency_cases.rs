//! Many callers at once: remote calls from 1 to 4096 concurrent tasks to 1 or 64 servers on another node,
//! against a minimal hand-written RPC over one TCP connection with the same number of callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use noex_core::{ServerRef, StartOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::cases::Echo;
use crate::remote_cases::pair;
use crate::report::Figures;

const CALLERS: [usize; 4] = [1, 16, 256, 4096];
const TARGETS: [usize; 2] = [1, 64];
const WARM_UP: Duration = Duration::from_millis(200);
const MEASURE: Duration = Duration::from_millis(800);

/// One line per (callers, targets): calls per second and latency, with the baseline's for the same callers.
pub(crate) async fn remote_call_concurrent() -> String {
    let (server, client) = pair().await;
    let mut lines = Vec::new();
    // `NOEX_BENCH_CALLERS` picks one count (to profile it alone).
    let chosen: Option<usize> = std::env::var("NOEX_BENCH_CALLERS").ok().and_then(|n| n.parse().ok());
    for callers in chosen.map_or(CALLERS.to_vec(), |n| vec![n]) {
        let base = raw_rpc(callers).await;
        for targets in TARGETS {
            let mut servers = Vec::with_capacity(targets);
            for _ in 0..targets {
                let echo = server.runtime().start_encodable(Echo(0), StartOptions::default()).await.expect("echo");
                servers.push(client.runtime().remote_ref::<Echo>(echo.pid()));
            }
            let ours = drive(callers, move |i| {
                let target: ServerRef<Echo> = servers[i % servers.len()].clone();
                async move { target.call(i as u64).await.expect("call") }
            })
            .await;
            lines.push(format!(
                "case=remote_call_concurrent callers={callers} targets={targets} calls_per_sec={:.0} p50_us={:.1} p99_us={:.1} base_calls_per_sec={:.0} base_p99_us={:.1} ratio={:.2}",
                ours.per_sec,
                ours.p50_us,
                ours.p99_us,
                base.per_sec,
                base.p99_us,
                base.per_sec / ours.per_sec
            ));
        }
    }
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    lines.join("\n")
}

/// Runs `callers` tasks that each call in a loop for the measured window (after a warm-up); calls per second
/// over the window, latencies of the calls made in it.
async fn drive<F, Fut>(callers: usize, call: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now() + WARM_UP;
    let end = start + MEASURE;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = caller;
                loop {
                    let began = Instant::now();
                    if began >= end {
                        return samples;
                    }
                    call(i).await;
                    if began >= start {
                        samples.push(began.elapsed());
                    }
                    i += callers;
                }
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("caller"));
    }
    let calls = samples.len();
    let mut figures = Figures::from_latencies(samples);
    figures.per_sec = calls as f64 / MEASURE.as_secs_f64();
    figures
}

/// The baseline: `callers` tasks sharing one TCP connection to an echo server, through a writer task that writes
/// whatever is queued at once and a reader task that completes each caller's oneshot: the least an RPC needs.
async fn raw_rpc(callers: usize) -> Figures {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        let (mut read, mut write) = socket.into_split();
        let (mut input, mut output) = (BytesMut::with_capacity(1 << 16), BytesMut::with_capacity(1 << 16));
        while read.read_buf(&mut input).await.is_ok_and(|n| n > 0) {
            while input.len() >= 16 {
                let (id, n) = (input.get_u64(), input.get_u64());
                output.put_u64(id);
                output.put_u64(n + 1);
            }
            if write.write_all_buf(&mut output).await.is_err() {
                return;
            }
        }
    });
    let socket = TcpStream::connect(address).await.expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let (mut read, mut write) = socket.into_split();
    let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<u64>>>> = Arc::default();
    let (requests, mut queued) = mpsc::unbounded_channel::<(u64, u64)>();
    let writer = tokio::spawn(async move {
        let mut output = BytesMut::with_capacity(1 << 16);
        while let Some((id, n)) = queued.recv().await {
            output.put_u64(id);
            output.put_u64(n);
            while let Ok((id, n)) = queued.try_recv() {
                output.put_u64(id);
                output.put_u64(n);
            }
            if write.write_all_buf(&mut output).await.is_err() {
                return;
            }
        }
    });
    let answered = waiting.clone();
    let reader = tokio::spawn(async move {
        let mut input = BytesMut::with_capacity(1 << 16);
        while read.read_buf(&mut input).await.is_ok_and(|n| n > 0) {
            let mut answered = answered.lock().expect("waiting");
            while input.len() >= 16 {
                let (id, n) = (input.get_u64(), input.get_u64());
                if let Some(reply) = answered.remove(&id) {
                    let _ = reply.send(n);
                }
            }
        }
    });
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let figures = drive(callers, move |i| {
        let (waiting, requests, next_id) = (waiting.clone(), requests.clone(), next_id.clone());
        async move {
            let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (reply, answer) = oneshot::channel();
            waiting.lock().expect("waiting").insert(id, reply);
            requests.send((id, i as u64)).expect("writer alive");
            answer.await.expect("answered")
        }
    })
    .await;
    writer.abort();
    reader.abort();
    server.abort();
    figures
}
