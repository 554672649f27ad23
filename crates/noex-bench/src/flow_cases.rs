//! Cases for flow control between two nodes in one process: awaited casts to a consumer slower than the sender
//! (memory stays bounded by the cast window), and signals that get through a saturated connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use noex_cluster::ClusterEvent;
use noex_core::{Context, GenServer, StartOptions};

use crate::cases::resident_bytes;
use crate::remote_cases::pair;

const BACKPRESSURED: usize = 1_000_000;
const MONITORED: usize = 100;

/// Spends about `spin` of CPU per cast and counts them: slower than any sender.
struct Slow {
    spin: Duration,
    handled: u64,
}

impl GenServer for Slow {
    type Call = ();
    type Reply = u64;
    type Cast = u64;

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> u64 {
        self.handled
    }

    async fn handle_cast(&mut self, _: u64, _ctx: &mut Context<Self>) {
        let until = Instant::now() + self.spin;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        self.handled += 1;
    }
}

/// Samples the resident set size every few milliseconds until stopped; returns the highest.
fn rss_sampler() -> (Arc<AtomicBool>, tokio::task::JoinHandle<i64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak = resident_bytes();
        while !sampling.load(Ordering::Relaxed) {
            peak = peak.max(resident_bytes());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak.max(resident_bytes())
    });
    (stop, task)
}

/// 1M awaited casts to a consumer about 3x slower than the sender: nothing lost, and the memory held stays
/// bounded by the cast window (peak outbound bytes, peak resident set size over the run).
pub(crate) async fn remote_cast_backpressure() -> String {
    let (server, client) = pair().await;
    let slow = Slow { spin: Duration::from_nanos(1_000), handled: 0 };
    let consumer = server.runtime().start_encodable(slow, StartOptions::default()).await.expect("consumer");
    let remote = client.runtime().remote_ref::<Slow>(consumer.pid());
    let rss_before = resident_bytes();
    let (stop, sampler) = rss_sampler();
    let start = Instant::now();
    for n in 0..BACKPRESSURED as u64 {
        remote.cast_await(n).await.expect("awaited cast");
    }
    let handled = remote.call_timeout((), Duration::from_secs(300)).await.expect("count");
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rss_peak = sampler.await.expect("sampler");
    let stats = client.cluster().connection_stats(server.id()).expect("connected");
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    format!(
        "case=remote_cast_backpressure n={BACKPRESSURED} per_sec={:.0} lost={} peak_outbound_bytes={} cast_window_bytes={} waited={} full_ms={} rss_before_mb={:.1} rss_peak_mb={:.1} rss_growth_mb={:.1}",
        BACKPRESSURED as f64 / took.as_secs_f64(),
        BACKPRESSURED as u64 - handled,
        stats.peak_queued_bytes,
        noex_cluster::ClusterConfig::new("x").cast_window,
        stats.casts_waited,
        stats.full_time.as_millis(),
        rss_before as f64 / 1048576.0,
        rss_peak as f64 / 1048576.0,
        (rss_peak - rss_before) as f64 / 1048576.0,
    )
}

/// Four senders saturate the connection with awaited casts to a slow consumer while 100 processes on the
/// flooding node, each monitored from the other node, exit: every DOWN must arrive, and no node may be taken
/// for dead.
pub(crate) async fn overload_signals() -> String {
    let (server, client) = pair().await;
    let mut node_downs = [server.cluster().events(), client.cluster().events()];
    let slow = Slow { spin: Duration::from_nanos(2_000), handled: 0 };
    let consumer = server.runtime().start_encodable(slow, StartOptions::default()).await.expect("consumer");
    let remote = client.runtime().remote_ref::<Slow>(consumer.pid());
    // On the flooding node: the monitored processes.
    let mut monitors = Vec::with_capacity(MONITORED);
    let mut pids = Vec::with_capacity(MONITORED);
    for _ in 0..MONITORED {
        let process = client.runtime().start(crate::cases::Echo(0)).await.expect("process");
        monitors.push(server.runtime().monitor(process.pid()));
        pids.push(process.pid().clone());
    }
    let flooding = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicI64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (remote, flooding, sent) = (remote.clone(), flooding.clone(), sent.clone());
            tokio::spawn(async move {
                while flooding.load(Ordering::Relaxed) {
                    remote.cast_await(1).await.expect("awaited cast");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Saturated: senders are waiting for room.
    while client.cluster().connection_stats(server.id()).is_some_and(|s| s.casts_waited < 100) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = Instant::now();
    for pid in &pids {
        client.runtime().kill(pid);
    }
    let mut received = 0;
    let mut latest = Duration::ZERO;
    for monitor in monitors {
        if tokio::time::timeout(Duration::from_secs(10), monitor).await.is_ok() {
            received += 1;
            latest = killed.elapsed();
        }
    }
    flooding.store(false, Ordering::Relaxed);
    for sender in senders {
        let _ = sender.await;
    }
    let false_node_down = node_downs
        .iter_mut()
        .map(|events| {
            std::iter::from_fn(|| events.try_recv().ok())
                .filter(|event| matches!(event, ClusterEvent::NodeDown { .. }))
                .count()
        })
        .sum::<usize>();
    let stats = client.cluster().connection_stats(server.id());
    client.shutdown(Duration::from_secs(1)).await;
    server.shutdown(Duration::from_secs(1)).await;
    format!(
        "case=overload_signals downs_expected={MONITORED} downs_received={received} last_down_ms={:.1} false_node_down={false_node_down} flood_casts={} casts_waited={}",
        latest.as_secs_f64() * 1e3,
        sent.load(Ordering::Relaxed),
        stats.map_or(0, |s| s.casts_waited),
    )
}
