//! One worker: a node with counters registered globally, a loop of remote calls, monitors on remote counters and
//! floods on demand, answering the orchestrator's commands (stdin) with reports (stdout).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use noex_cluster::{ClusterConfig, ClusterEvent, NodeStatus};
use noex_core::{MonitorRef, Pid, ServerRef, StartOptions};
use noex_remote::Node;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Semaphore;

use crate::control::{Command, Report};
use crate::ledger::{CallLedger, MonitorLedger, Outcome};
use crate::schedule::Rng;
use crate::servers::{Counter, Watcher};
use crate::stalls::Stalls;

/// How a worker runs (from the orchestrator's command line).
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The node's name.
    #[arg(long)]
    pub(crate) name: String,
    /// The port to advertise: the proxy in front of this node. The node itself listens on an ephemeral port.
    #[arg(long)]
    pub(crate) port: u16,
    /// The other nodes (`name@127.0.0.1:port`).
    #[arg(long, value_delimiter = ',')]
    pub(crate) seeds: Vec<String>,
    /// Seeds this worker's random choices.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Counters this node registers globally, as `c:<name>:<i>`.
    #[arg(long, default_value_t = 3)]
    pub(crate) counters: usize,
    /// The timeout of each call, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub(crate) call_timeout_ms: u64,
    /// Milliseconds between two calls started (at most 8 in flight).
    #[arg(long, default_value_t = 10)]
    pub(crate) call_interval_ms: u64,
    /// Milliseconds between two monitors set up (at most 64 waiting).
    #[arg(long, default_value_t = 100)]
    pub(crate) monitor_interval_ms: u64,
    /// Break invariants on purpose, to show that the checks catch them: `late-call`, `duplicate-down`,
    /// `missing-down`, `registry`, `panic`, `exit` (comma-separated).
    #[arg(long)]
    pub(crate) sabotage: Option<String>,
}

impl WorkerArgs {
    fn sabotage(&self, what: &str) -> bool {
        self.sabotage.as_deref().is_some_and(|list| list.split(',').any(|item| item == what))
    }
}

/// Runs the worker until told to stop or until its stdin closes.
pub(crate) fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let stalls = Stalls::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(work(args, stalls))
}

/// Names every node tries to hold (`shared:<k>`): registered concurrently, and on both sides of partitions, so
/// that the registry resolves conflicts (the loser is killed) and monitors see processes die on live nodes.
pub(crate) const SHARED_NAMES: usize = 2;
/// Calls at most this many at once.
const CALLS_IN_FLIGHT: u32 = 8;
/// Monitors waiting for their `DOWN` at most.
const MONITORS_WAITING: usize = 64;

struct Worker {
    node: Node,
    args: WorkerArgs,
    calls: Mutex<CallLedger>,
    monitors: Arc<Mutex<MonitorLedger<MonitorRef, (Pid, Instant)>>>,
    casts: AtomicU64,
    cast_errors: AtomicU64,
    /// Name conflicts the registry resolved, as this node saw them.
    conflicts: AtomicU64,
    quiescing: AtomicBool,
    in_flight: Arc<Semaphore>,
    stalls: Arc<Stalls>,
    /// When each node (by id) was last reported down.
    downs: Mutex<HashMap<String, Instant>>,
}

async fn work(args: WorkerArgs, stalls: Arc<Stalls>) -> anyhow::Result<()> {
    let mut config = ClusterConfig::new(args.name.clone());
    config.port = args.port;
    config.bind = Some("127.0.0.1:0".parse().expect("an address"));
    config.seeds = args.seeds.clone();
    // Back on its feet soon after a fault: the run ends by waiting for every node to see every other.
    config.reconnect_max = Duration::from_secs(2);
    // Silent links and paused nodes found out within seconds, so that a run of minutes sees many faults end.
    config.heartbeat_interval = Duration::from_millis(500);
    config.failure_timeout = Duration::from_secs(3);
    let node = Node::start(config).await.context("starting the node")?;
    emit(&Report::Ready { listening: node.cluster().listening_address() });
    for i in 0..args.counters {
        // Encodable: other nodes call it.
        let counter =
            node.runtime().start_encodable(Counter(0), StartOptions::default()).await.context("starting a counter")?;
        let name = format!("c:{}:{i}", args.name);
        if let Err(error) = node.registry().register(&name, counter.pid()) {
            tracing::warn!(%name, %error, "cannot register");
        }
    }
    let mut events = node.cluster().events();
    let monitors = Arc::new(Mutex::new(MonitorLedger::default()));
    let watcher = Watcher {
        ledger: monitors.clone(),
        duplicate: args.sabotage("duplicate-down"),
        drop_every_other: args.sabotage("missing-down"),
        received: 0,
    };
    let watcher = node.runtime().start(watcher).await?;
    let worker = Arc::new(Worker {
        node: node.clone(),
        args,
        calls: Mutex::new(CallLedger::default()),
        monitors,
        casts: AtomicU64::new(0),
        cast_errors: AtomicU64::new(0),
        conflicts: AtomicU64::new(0),
        quiescing: AtomicBool::new(false),
        in_flight: Arc::new(Semaphore::new(CALLS_IN_FLIGHT as usize)),
        stalls,
        downs: Mutex::new(HashMap::new()),
    });
    let watching = worker.clone();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(ClusterEvent::NodeDown { node, .. }) => {
                    watching.downs.lock().unwrap().insert(node.node.as_str().to_owned(), Instant::now());
                }
                // A lagging receiver misses downs: that only makes the end check less strict, never wrong.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    tokio::spawn(calls(worker.clone()));
    tokio::spawn(monitoring(worker.clone(), watcher));
    tokio::spawn(statistics(worker.clone()));
    tokio::spawn(claim(worker.clone()));
    tokio::spawn(conflicts(worker.clone()));
    if worker.args.sabotage("panic") {
        tokio::spawn(async { panic!("sabotage: a task panics") });
    }
    if worker.args.sabotage("exit") && worker.args.name == "n1" {
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            std::process::exit(3);
        });
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match Command::parse(&line) {
            Some(Command::Stop) => break,
            Some(command) => tokio::spawn(answer(worker.clone(), command)).await?,
            None => tracing::error!(%line, "unknown command"),
        }
    }
    node.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

async fn answer(worker: Arc<Worker>, command: Command) {
    let node = &worker.node;
    match command {
        Command::Flood { to, casts } => {
            tokio::spawn(flood(worker.clone(), to, casts));
        }
        Command::Quiesce => {
            worker.quiescing.store(true, Ordering::Relaxed);
            let all = worker.in_flight.acquire_many(CALLS_IN_FLIGHT).await.expect("never closed");
            drop(all);
            emit(&worker.stats());
            emit(&Report::figures("quiesced", []));
        }
        Command::Peers => {
            emit(&Report::figures("peers", [("connected", node.cluster().connected().len() as u64)]));
        }
        Command::Registry => {
            let names = node.registry().entries().into_iter().map(|entry| (entry.name, entry.pid.to_string()));
            let mut names: BTreeMap<String, String> = names.collect();
            if worker.args.sabotage("registry") && worker.args.name == "n0" {
                names.insert("sabotage".into(), "<1.1@nowhere>".into());
            }
            emit(&Report::Registry(names));
        }
        Command::Sample => {
            let stats = node.remote().stats();
            let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
            emit(&Report::figures(
                "sample",
                [
                    ("processes", node.runtime().process_count() as u64),
                    ("tasks", tasks as u64),
                    ("pending", stats.pending as u64),
                    ("links", stats.links as u64),
                ],
            ));
        }
        Command::Check => check(&worker).await,
        Command::Stop => {}
    }
}

/// The end check: every monitor that must have fired has its `DOWN`, and the global registry names only live
/// processes. Reports each breach, then `checked missing=<n>`.
async fn check(worker: &Worker) {
    let mut missing = due_downs(worker).await;
    missing.extend(downs_of_the_gone(worker).await);
    for monitor in missing.iter().take(10) {
        emit(&Report::Violation(format!("missing DOWN: {monitor}")));
    }
    let node = &worker.node;
    let live = live_incarnations(node);
    for entry in node.registry().entries() {
        let local = entry.pid.node().as_str() == node.id().as_str();
        if live.get(entry.pid.node().as_str()) != Some(&entry.pid.creation()) {
            emit(&Report::Violation(format!(
                "the global registry names {} -> {}, whose incarnation is gone (live: {live:?})",
                entry.name, entry.pid
            )));
        } else if local && !node.runtime().is_alive(&entry.pid) {
            emit(&Report::Violation(format!(
                "the global registry names {} -> {}, a process of this node that is gone",
                entry.name, entry.pid
            )));
        }
    }
    emit(&Report::figures("checked", [("missing", missing.len() as u64)]));
}

/// The incarnation of every node connected now, this one included, by node id.
fn live_incarnations(node: &Node) -> BTreeMap<String, u32> {
    node.cluster()
        .nodes()
        .into_iter()
        .filter(|(_, status)| *status == NodeStatus::Connected)
        .map(|(info, _)| (info.node.as_str().to_owned(), info.creation))
        .chain([(node.id().as_str().to_owned(), node.cluster().creation())])
        .collect()
}

/// Waits up to 5 s for every monitor that must have fired to get its `DOWN`: on a process of a dead incarnation,
/// or of a node reported down since the monitor was set up (100 ms of margin). Returns those still waiting.
async fn due_downs(worker: &Worker) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live = live_incarnations(&worker.node);
        let downs = worker.downs.lock().unwrap().clone();
        let due = |(pid, opened): &(Pid, Instant)| {
            let down_since =
                downs.get(pid.node().as_str()).filter(|down| **down > *opened + Duration::from_millis(100));
            live.get(pid.node().as_str()) != Some(&pid.creation()) || down_since.is_some()
        };
        let missing: Vec<String> = {
            let ledger = worker.monitors.lock().unwrap();
            let missing = ledger.missing(due).into_iter();
            missing
                .map(|(monitor, (pid, opened))| {
                    let down = downs.get(pid.node().as_str()).map(|down| down.saturating_duration_since(*opened));
                    format!(
                        "monitor {monitor:?} on {pid} (its node down {down:?} after the monitor was set up; live \
                         incarnations: {live:?})"
                    )
                })
                .collect()
        };
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Probes the targets of the monitors still waiting (their node lives): a call that says `noproc` means the
/// process is gone (a name conflict's loser, say), so its `DOWN` is due; it gets 2 s more to arrive. Returns the
/// monitors still waiting then.
async fn downs_of_the_gone(worker: &Worker) -> Vec<String> {
    let waiting: Vec<(MonitorRef, Pid)> = {
        let ledger = worker.monitors.lock().unwrap();
        ledger.missing(|_| true).into_iter().map(|(monitor, (pid, _))| (monitor.clone(), pid.clone())).collect()
    };
    let mut gone = Vec::new();
    for (monitor, pid) in waiting {
        let target: ServerRef<Counter> = worker.node.runtime().remote_ref(&pid);
        if let Err(noex_core::CallError::NoProc(_)) = target.call_timeout(0, Duration::from_secs(2)).await {
            gone.push((monitor, pid));
        }
    }
    if gone.is_empty() {
        return Vec::new();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ledger = worker.monitors.lock().unwrap();
    let still = ledger.missing(|_| true);
    let still: Vec<&MonitorRef> = still.iter().map(|(monitor, _)| *monitor).collect();
    gone.into_iter()
        .filter(|(monitor, _)| still.contains(&monitor))
        .map(|(monitor, pid)| format!("monitor {monitor:?} on {pid}, which a call finds gone (noproc)"))
        .collect()
}

/// Calls random counters of other nodes, recording each outcome and how long it took.
async fn calls(worker: Arc<Worker>) {
    let mut rng = Rng::new(worker.args.seed);
    let timeout = Duration::from_millis(worker.args.call_timeout_ms);
    // Sabotage: count 10 s more than each call took, so that every call looks late.
    let penalty = if worker.args.sabotage("late-call") { Duration::from_secs(10) } else { Duration::ZERO };
    let mut interval = tokio::time::interval(Duration::from_millis(worker.args.call_interval_ms.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !worker.quiescing.load(Ordering::Relaxed) {
        interval.tick().await;
        let Ok(permit) = worker.in_flight.clone().acquire_owned().await else { return };
        if worker.quiescing.load(Ordering::Relaxed) {
            return;
        }
        let Some((name, pid)) = pick_remote(&worker.node, &mut rng) else { continue };
        let counter: ServerRef<Counter> = worker.node.runtime().remote_ref(&pid);
        let worker = worker.clone();
        tokio::spawn(async move {
            let stalled_before = worker.stalls.so_far();
            let start = Instant::now();
            let result = counter.call_timeout(1, timeout).await;
            let elapsed = start.elapsed() + penalty;
            let stalled = worker.stalls.so_far().saturating_sub(stalled_before);
            let violation = worker.calls.lock().unwrap().record(Outcome::of(&result), elapsed, timeout, stalled);
            if let Some(violation) = violation {
                emit(&Report::Violation(format!("{violation}, calling {name} ({pid})")));
            }
            drop(permit);
        });
    }
}

/// Every half second, registers a new counter under each shared name that is free (as this node sees it).
async fn claim(worker: Arc<Worker>) {
    let node = &worker.node;
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !worker.quiescing.load(Ordering::Relaxed) {
        interval.tick().await;
        for k in 0..SHARED_NAMES {
            let name = format!("shared:{k}");
            if node.registry().whereis(&name).is_some() {
                continue;
            }
            let Ok(holder) = node.runtime().start_encodable(Counter(0), StartOptions::default()).await else {
                continue;
            };
            if node.registry().register(&name, holder.pid()).is_err() {
                node.runtime().kill(holder.pid());
            }
        }
    }
}

/// Counts the name conflicts the registry resolves.
async fn conflicts(worker: Arc<Worker>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = worker.node.registry().events();
    loop {
        match events.recv().await {
            Ok(noex_registry::RegistryEvent::ConflictResolved { .. }) => {
                worker.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Sets up monitors on random counters of other nodes, through the watcher process.
async fn monitoring(worker: Arc<Worker>, watcher: ServerRef<Watcher>) {
    let mut rng = Rng::new(worker.args.seed ^ 0x5EED);
    let mut interval = tokio::time::interval(Duration::from_millis(worker.args.monitor_interval_ms.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !worker.quiescing.load(Ordering::Relaxed) {
        interval.tick().await;
        if worker.monitors.lock().unwrap().waiting() >= MONITORS_WAITING {
            continue;
        }
        if let Some((_, pid)) = pick_remote(&worker.node, &mut rng) {
            watcher.cast(pid);
        }
    }
}

/// Reports the figures every second, so that a killed incarnation's figures are not lost.
async fn statistics(worker: Arc<Worker>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        emit(&worker.stats());
    }
}

/// Sends `casts` awaited casts to the first counter of node `to`, for at most 10 s.
async fn flood(worker: Arc<Worker>, to: String, casts: u64) {
    let Some(pid) = worker.node.registry().whereis(&format!("c:{to}:0")) else { return };
    let counter: ServerRef<Counter> = worker.node.runtime().remote_ref(&pid);
    let sent = async {
        for _ in 0..casts {
            if counter.cast_await(1).await.is_err() {
                // The node is gone (or the process): the flood is over.
                worker.cast_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            worker.casts.fetch_add(1, Ordering::Relaxed);
        }
    };
    // A flood into a slow link legitimately waits on the cast window for long: it is cut short, not judged.
    let _ = tokio::time::timeout(Duration::from_secs(10), sent).await;
}

fn pick_remote(node: &Node, rng: &mut Rng) -> Option<(String, Pid)> {
    let own = node.id().as_str();
    let mut names: Vec<_> =
        node.registry().entries().into_iter().filter(|entry| entry.pid.node().as_str() != own).collect();
    if names.is_empty() {
        return None;
    }
    let entry = names.swap_remove(rng.index(names.len()));
    Some((entry.name, entry.pid))
}

impl Worker {
    fn stats(&self) -> Report {
        let calls = self.calls.lock().unwrap().clone();
        let monitors = self.monitors.lock().unwrap();
        Report::figures(
            "stats",
            [
                ("calls", calls.total()),
                ("ok", calls.count(Outcome::Ok)),
                ("timeout", calls.count(Outcome::Timeout)),
                ("noproc", calls.count(Outcome::NoProc)),
                ("noconnection", calls.count(Outcome::NoConnection)),
                ("exited", calls.count(Outcome::Exited)),
                ("decode", calls.count(Outcome::Decode)),
                ("other", calls.count(Outcome::Other)),
                ("late", calls.late),
                ("monitors", monitors.monitors),
                ("downs", monitors.downs),
                ("duplicate_downs", monitors.duplicates),
                ("casts", self.casts.load(Ordering::Relaxed)),
                ("cast_errors", self.cast_errors.load(Ordering::Relaxed)),
                ("conflicts", self.conflicts.load(Ordering::Relaxed)),
            ],
        )
    }
}

/// Writes one report line to stdout (the orchestrator reads it).
pub(crate) fn emit(report: &Report) {
    let mut out = std::io::stdout().lock();
    // The orchestrator gone, nobody reads: the worker ends when its stdin closes.
    let _ = writeln!(out, "{report}").and_then(|()| out.flush());
}
