//! The benchmark cases, each paired with its baseline.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use noex_core::{Context, ExitReason, GenServer, Runtime};
use tokio::sync::{mpsc, oneshot};

use crate::report::{Figures, latency_line, median, throughput_line};

pub(crate) const ALL: [&str; 19] = [
    "local_call",
    "local_cast",
    "spawn",
    "idle_memory",
    "frame_rtt",
    "mesh_16",
    "mesh_128",
    "remote_call",
    "remote_cast",
    "remote_call_concurrent",
    "remote_cast_backpressure",
    "overload_signals",
    "registry_register",
    "registry_sync",
    "cluster_snapshot_3",
    "cluster_snapshot_16",
    "cluster_snapshot_32x10k",
    "codec",
    "failover",
];
pub(crate) const IDLE_MEMORY_CHILD: &str = "--idle-memory-child";

const CALLS: usize = 100_000;
const CASTS: usize = 1_000_000;
const SPAWNS: usize = 100_000;
const IDLE: usize = 100_000;
const RUNS: usize = 5;

pub(crate) async fn run(case: &str) -> String {
    match case {
        "local_call" => local_call().await,
        "local_cast" => local_cast().await,
        "spawn" => spawn().await,
        "idle_memory" => idle_memory(),
        "frame_rtt" => crate::cluster_cases::frame_rtt().await,
        "mesh_16" => crate::cluster_cases::mesh_16().await,
        "mesh_128" => crate::mesh_cases::mesh_128().await,
        "remote_call" => crate::remote_cases::remote_call().await,
        "remote_cast" => crate::remote_cases::remote_cast().await,
        "remote_call_concurrent" => crate::concurrency_cases::remote_call_concurrent().await,
        "remote_cast_backpressure" => crate::flow_cases::remote_cast_backpressure().await,
        "overload_signals" => crate::flow_cases::overload_signals().await,
        "registry_register" => crate::remote_cases::registry_register().await,
        "registry_sync" => crate::registry_cases::registry_sync().await,
        "cluster_snapshot_3" => crate::observer_cases::cluster_snapshot(3).await,
        "cluster_snapshot_16" => crate::observer_cases::cluster_snapshot(16).await,
        "cluster_snapshot_32x10k" => crate::observer_cases::cluster_snapshot_32x10k().await,
        "codec" => crate::codec_cases::codec(),
        "failover" => crate::failover_cases::failover().await,
        _ => unreachable!("main only passes known cases"),
    }
}

/// Answers `n` with `n + 1` plus the sum of the casts so far.
pub(crate) struct Echo(pub(crate) u64);

impl GenServer for Echo {
    type Call = u64;
    type Reply = u64;
    type Cast = u64;

    async fn handle_call(&mut self, n: u64, _ctx: &mut Context<Self>) -> u64 {
        n + self.0 + 1
    }

    async fn handle_cast(&mut self, n: u64, _ctx: &mut Context<Self>) {
        self.0 = self.0.wrapping_add(n);
    }
}

enum BareMsg {
    Call(u64, oneshot::Sender<u64>),
    Cast(u64),
}

/// The baseline actor: a tokio task owning a counter, answering over oneshot.
fn spawn_bare() -> mpsc::UnboundedSender<BareMsg> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut state = 0u64;
        while let Some(msg) = rx.recv().await {
            match msg {
                BareMsg::Call(n, reply) => drop(reply.send(n + state + 1)),
                BareMsg::Cast(n) => state = state.wrapping_add(n),
            }
        }
    });
    tx
}

async fn bare_call(tx: &mpsc::UnboundedSender<BareMsg>, n: u64) -> u64 {
    let (reply, rx) = oneshot::channel();
    tx.send(BareMsg::Call(n, reply)).expect("baseline alive");
    rx.await.expect("baseline replies")
}

/// Runs the driver on a worker thread, as an application task would.
async fn on_worker<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(f).await.expect("benchmark task")
}

async fn local_call() -> String {
    let ours = on_worker(async {
        let runtime = Runtime::new();
        let server = runtime.start(Echo(0)).await.expect("start");
        for i in 0..CALLS as u64 / 10 {
            server.call(i).await.expect("warm-up call");
        }
        let mut samples = Vec::with_capacity(CALLS);
        for i in 0..CALLS as u64 {
            let start = Instant::now();
            let reply = server.call(i).await.expect("call");
            samples.push(start.elapsed());
            std::hint::black_box(reply);
        }
        Figures::from_latencies(samples)
    })
    .await;
    let base = on_worker(async {
        let tx = spawn_bare();
        for i in 0..CALLS as u64 / 10 {
            bare_call(&tx, i).await;
        }
        let mut samples = Vec::with_capacity(CALLS);
        for i in 0..CALLS as u64 {
            let start = Instant::now();
            std::hint::black_box(bare_call(&tx, i).await);
            samples.push(start.elapsed());
        }
        Figures::from_latencies(samples)
    })
    .await;
    latency_line("local_call", CALLS, &ours, &base)
}

async fn local_cast() -> String {
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for _ in 0..RUNS {
        ours.push(
            on_worker(async {
                let runtime = Runtime::new();
                let server = runtime.start(Echo(0)).await.expect("start");
                let start = Instant::now();
                for i in 0..CASTS as u64 {
                    server.cast(i);
                }
                server.call(0).await.expect("final call");
                start.elapsed()
            })
            .await,
        );
        base.push(
            on_worker(async {
                let tx = spawn_bare();
                let start = Instant::now();
                for i in 0..CASTS as u64 {
                    tx.send(BareMsg::Cast(i)).expect("baseline alive");
                }
                bare_call(&tx, 0).await;
                start.elapsed()
            })
            .await,
        );
    }
    throughput_line("local_cast", CASTS, "msg", median(ours), median(base))
}

/// A process that does nothing.
struct Idle;

impl GenServer for Idle {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}
}

async fn spawn() -> String {
    let ours = on_worker(async {
        let runtime = Runtime::new();
        let start = Instant::now();
        let mut servers = Vec::with_capacity(SPAWNS);
        for _ in 0..SPAWNS {
            servers.push(runtime.start(Idle).await.expect("start"));
        }
        for server in servers {
            server.stop(ExitReason::Normal, Duration::from_secs(5)).await.expect("stop");
        }
        start.elapsed()
    })
    .await;
    let base = on_worker(async {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(SPAWNS);
        for _ in 0..SPAWNS {
            let (tx, mut rx) = mpsc::unbounded_channel::<()>();
            let (ready_tx, ready) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let _ = ready_tx.send(());
                rx.recv().await;
            });
            ready.await.expect("baseline task started");
            tasks.push((tx, task));
        }
        for (tx, task) in tasks {
            tx.send(()).expect("baseline alive");
            task.await.expect("baseline task");
        }
        start.elapsed()
    })
    .await;
    throughput_line("spawn", SPAWNS, "proc", ours, base)
}

fn idle_memory() -> String {
    let measure = |side: &str| -> f64 {
        let exe = std::env::current_exe().expect("own path");
        let output = std::process::Command::new(exe).args([IDLE_MEMORY_CHILD, side]).output().expect("child runs");
        String::from_utf8_lossy(&output.stdout).trim().parse().expect("child prints bytes per process")
    };
    let (ours, base) = (measure("ours"), measure("base"));
    format!(
        "case=idle_memory n={IDLE} bytes_per_process={ours:.0} base_bytes_per_process={base:.0} ratio={:.2}",
        ours / base
    )
}

/// In a fresh process: resident bytes added per idle process (ours) or per idle task + channel (base).
pub(crate) fn idle_memory_child(side: &str) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let per_process = runtime.block_on(async {
        let before = resident_bytes();
        let mut keep_ours = Vec::new();
        let mut keep_base = Vec::new();
        if side == "ours" {
            let noex = Runtime::new();
            for _ in 0..IDLE {
                keep_ours.push(noex.start(Idle).await.expect("start"));
            }
        } else {
            for _ in 0..IDLE {
                let (tx, mut rx) = mpsc::unbounded_channel::<()>();
                tokio::spawn(async move { rx.recv().await });
                keep_base.push(tx);
            }
            tokio::task::yield_now().await;
        }
        let after = resident_bytes();
        std::hint::black_box((&keep_ours, &keep_base));
        (after - before) as f64 / IDLE as f64
    });
    println!("{per_process}");
    ExitCode::SUCCESS
}

pub(crate) fn resident_bytes() -> i64 {
    // statm's second field is resident pages; pages are 4 KiB on the machines we run on.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
