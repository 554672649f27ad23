//! The orchestrator: starts the workers behind their proxies, lets them warm up, injects the scheduled faults,
//! heals everything, checks the end-of-run invariants and prints the summary line.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::task::JoinHandle;

use crate::control::{Command, Report};
use crate::fleet::{Fleet, FleetConfig, os_sample, panics};
use crate::ledger::grew;
use crate::proxy::Link;
use crate::schedule::{Fault, Plan, Rng, schedule};
use crate::worker::SHARED_NAMES;

/// How a chaos run goes.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// How many nodes (OS processes).
    #[arg(long, default_value_t = 5)]
    pub(crate) nodes: usize,
    /// How long the run lasts before its end checks: warm-up (a sixth, 3 to 30 s) then faults.
    #[arg(long, default_value = "2m", value_parser = crate::parse_duration)]
    pub(crate) duration: Duration,
    /// The seed of the fault schedule (default: from the clock); printed, so that a run can be replayed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Nodes `n0..` that are never killed, whose fds, memory and tasks are checked for growth.
    #[arg(long, default_value_t = 2)]
    pub(crate) long_lived: usize,
    /// The mean time between two faults.
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    pub(crate) interval: Duration,
    /// Counters each node registers globally.
    #[arg(long, default_value_t = 3)]
    pub(crate) counters: usize,
    /// Where the workers' logs go (default: a new folder in the temporary directory).
    #[arg(long)]
    pub(crate) logs: Option<PathBuf>,
    /// Break invariants on purpose, to show that the run catches them: any of `late-call`, `duplicate-down`,
    /// `missing-down`, `registry`, `panic`, `exit` (comma-separated).
    #[arg(long)]
    pub(crate) sabotage: Option<String>,
}

/// Call timeout the workers use; a call is late past it plus the slack and the caller's stalls.
const CALL_TIMEOUT_MS: u64 = 2000;
/// How long after the last fault every node must see every other.
const CONNECT_BOUND: Duration = Duration::from_secs(30);
/// How long after that every replica of the global registry must be identical and complete.
const REGISTRY_BOUND: Duration = Duration::from_secs(10);
/// Violations printed at most, before the summary.
const MAX_PRINTED: usize = 50;
/// How long a worker may take to leave gracefully.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// Runs the chaos run; the exit code says whether an invariant broke.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(args.nodes >= 2, "a chaos run needs at least 2 nodes");
    anyhow::ensure!(args.long_lived <= args.nodes, "--long-lived must be at most --nodes");
    let seed = args.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Rng::new(now.as_nanos() as u64).next_u64() % 1_000_000_000
    });
    let logs = args
        .logs
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("noex-chaos-{seed}-{}", std::process::id())));
    std::fs::create_dir_all(&logs)?;
    let warmup = (args.duration / 6).clamp(Duration::from_secs(3), Duration::from_secs(30));
    let plan = Plan {
        seed,
        nodes: args.nodes,
        long_lived: args.long_lived,
        duration: args.duration.saturating_sub(warmup),
        interval: args.interval,
    };
    let faults = schedule(&plan);
    tracing::info!(seed, nodes = args.nodes, ?warmup, faults = faults.len(), logs = %logs.display(), "chaos run");
    let mut worker_args = vec![format!("--counters={}", args.counters), format!("--call-timeout-ms={CALL_TIMEOUT_MS}")];
    worker_args.extend(args.sabotage.iter().map(|what| format!("--sabotage={what}")));
    let cookie = format!("chaos-{:016x}", Rng::new(seed ^ u64::from(std::process::id())).next_u64());
    let fleet =
        Arc::new(Fleet::new(FleetConfig { nodes: args.nodes, cookie, seed, logs: logs.clone(), worker_args }).await);
    let mut violations = Vec::new();
    for i in 0..args.nodes {
        fleet.start(i).await?;
    }

    tokio::time::sleep(warmup).await;
    let before = sample_long_lived(&fleet, args.long_lived).await;

    let mut chaos =
        Chaos { fleet: fleet.clone(), pairs: HashMap::new(), restarts: Vec::new(), counts: BTreeMap::new() };
    let faults_start = tokio::time::Instant::now();
    chaos.inject(&faults).await;
    tokio::time::sleep_until(faults_start + plan.duration).await;
    for restart in chaos.restarts.drain(..) {
        if let Err(error) = restart.await? {
            violations.push(format!("restart failed: {error:#}"));
        }
    }

    // The end: everything healed, every node must see every other, then the registries must agree.
    let healed = Instant::now();
    let connected = wait_connected(&fleet, args.nodes).await;
    let connected_ms = healed.elapsed().as_millis();
    if let Err(seen) = &connected {
        violations.push(format!("not all nodes connected {CONNECT_BOUND:?} after the last fault: {seen}"));
    }
    let settled = Instant::now();
    let counters = (0..args.nodes).flat_map(|i| (0..args.counters).map(move |k| format!("c:{}:{k}", Fleet::name(i))));
    let shared = (0..SHARED_NAMES).map(|k| format!("shared:{k}"));
    let expected: Vec<String> = counters.chain(shared).collect();
    let registry = registry_converged(&fleet, args.nodes, &expected).await;
    let registry_ms = settled.elapsed().as_millis();
    if let Err(differences) = &registry {
        violations.push(format!("registries differ {REGISTRY_BOUND:?} after all nodes connected: {differences}"));
    }
    let mut missing_downs = 0;
    for i in 0..args.nodes {
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS) + Duration::from_secs(10);
        if fleet.ask(i, &Command::Quiesce, "quiesced", timeout).await.is_none() {
            violations.push(format!("{} did not quiesce within {timeout:?}", Fleet::name(i)));
        }
        match fleet.ask(i, &Command::Check, "checked", Duration::from_secs(10)).await {
            Some(Report::Figures { figures, .. }) => missing_downs += figures.get("missing").copied().unwrap_or(0),
            _ => violations.push(format!("{} did not answer its end check", Fleet::name(i))),
        }
    }
    let after = sample_long_lived(&fleet, args.long_lived).await;
    let growth = growth(&before, &after, &mut violations);
    for i in fleet.stop(STOP_BOUND).await {
        violations.push(format!("{} did not leave within {STOP_BOUND:?} of being told to stop", Fleet::name(i)));
    }
    violations.extend(panics(&logs).into_iter().map(|line| format!("a worker panicked: {line}")));

    // The end checks first: there are few of them, while a worker may report thousands of the same.
    let mut all = violations;
    all.extend(fleet.board().violations.iter().cloned());
    // The first ones say what broke; thousands of the same (every call late, say) would bury the summary.
    for violation in all.iter().take(MAX_PRINTED) {
        println!("violation: {violation}");
    }
    if all.len() > MAX_PRINTED {
        println!("violation: ... and {} more (see the logs)", all.len() - MAX_PRINTED);
    }
    let total = |figure| fleet.total(figure);
    let faults: Vec<String> = ["kill", "pause", "partition", "slow", "flood"]
        .iter()
        .map(|kind| format!("{kind}:{}", chaos.counts.get(kind).copied().unwrap_or(0)))
        .collect();
    println!(
        "chaos seed={seed} nodes={} duration_s={} faults={} calls={} ok={} errors=timeout:{},noproc:{},\
         noconnection:{},exited:{},decode:{},other:{} late_calls={} monitors={} downs={} duplicate_downs={} \
         missing_downs={missing_downs} casts={} cast_errors={} conflicts={} connected_ms={connected_ms} \
         registry_converged_ms={} fd_growth={} rss_growth_kb={} task_growth={} violations={}",
        args.nodes,
        args.duration.as_secs(),
        faults.join(","),
        total("calls"),
        total("ok"),
        total("timeout"),
        total("noproc"),
        total("noconnection"),
        total("exited"),
        total("decode"),
        total("other"),
        total("late"),
        total("monitors"),
        total("downs"),
        total("duplicate_downs"),
        total("casts"),
        total("cast_errors"),
        total("conflicts"),
        if registry.is_ok() { registry_ms.to_string() } else { "never".into() },
        growth.fds,
        growth.rss_kb,
        growth.tasks,
        all.len(),
    );
    if !all.is_empty() {
        println!("logs: {}", logs.display());
    }
    Ok(if all.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// The faults being injected, and the state of each pair's links.
struct Chaos {
    fleet: Arc<Fleet>,
    /// Per pair of nodes (lower index first): how many cuts, silences and slowdowns apply now.
    pairs: HashMap<(usize, usize), PairFaults>,
    restarts: Vec<JoinHandle<anyhow::Result<()>>>,
    /// Faults injected, by kind.
    counts: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct PairFaults {
    cuts: u32,
    silences: u32,
    rates: Vec<u64>,
}

enum Step {
    Begin,
    End,
}

impl Chaos {
    /// Injects `faults` at their times (from now), and ends each in time.
    async fn inject(&mut self, faults: &[crate::schedule::Planned]) {
        let mut steps: Vec<(Duration, usize, Step)> = Vec::new();
        for (index, planned) in faults.iter().enumerate() {
            steps.push((planned.at, index, Step::Begin));
            let length = match &planned.fault {
                Fault::Kill { down: length, .. }
                | Fault::Pause { length, .. }
                | Fault::Partition { length, .. }
                | Fault::Slow { length, .. } => *length,
                Fault::Flood { .. } => continue,
            };
            steps.push((planned.at + length, index, Step::End));
        }
        steps.sort_by_key(|(at, index, _)| (*at, *index));
        let start = tokio::time::Instant::now();
        for (at, index, step) in steps {
            tokio::time::sleep_until(start + at).await;
            let fault = &faults[index].fault;
            tracing::info!(?at, ?fault, begin = matches!(step, Step::Begin), "fault");
            match step {
                Step::Begin => {
                    *self.counts.entry(fault.kind()).or_default() += 1;
                    self.begin(fault).await;
                }
                Step::End => self.end(fault).await,
            }
        }
    }

    async fn begin(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill { node, .. } => self.fleet.kill(*node).await,
            Fault::Pause { node, .. } => self.fleet.signal(*node, Signal::SIGSTOP).await,
            Fault::Partition { side, silent, .. } => {
                for (a, b) in split(side, self.fleet_size()) {
                    let pair = self.pairs.entry((a, b)).or_default();
                    if *silent {
                        pair.silences += 1
                    } else {
                        pair.cuts += 1
                    }
                    self.apply(a, b);
                }
            }
            Fault::Slow { a, b, bytes_per_second, .. } => {
                let (a, b) = ((*a).min(*b), (*a).max(*b));
                self.pairs.entry((a, b)).or_default().rates.push(*bytes_per_second);
                self.apply(a, b);
            }
            Fault::Flood { from, to, casts } => {
                self.fleet.send(*from, &Command::Flood { to: Fleet::name(*to), casts: *casts }).await;
            }
        }
    }

    async fn end(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill { node, .. } => {
                let (fleet, node) = (self.fleet.clone(), *node);
                self.restarts.push(tokio::spawn(async move { fleet.start(node).await }));
            }
            Fault::Pause { node, .. } => self.fleet.signal(*node, Signal::SIGCONT).await,
            Fault::Partition { side, silent, .. } => {
                for (a, b) in split(side, self.fleet_size()) {
                    let pair = self.pairs.entry((a, b)).or_default();
                    if *silent {
                        pair.silences -= 1
                    } else {
                        pair.cuts -= 1
                    }
                    self.apply(a, b);
                }
            }
            Fault::Slow { a, b, bytes_per_second, .. } => {
                let (a, b) = ((*a).min(*b), (*a).max(*b));
                let rates = &mut self.pairs.entry((a, b)).or_default().rates;
                if let Some(at) = rates.iter().position(|rate| rate == bytes_per_second) {
                    rates.swap_remove(at);
                }
                self.apply(a, b);
            }
            Fault::Flood { .. } => {}
        }
    }

    fn fleet_size(&self) -> usize {
        self.fleet.nodes()
    }

    /// Sets the links between `a` and `b` in both proxies: whichever of the two dialed, its connection is hit.
    fn apply(&self, a: usize, b: usize) {
        let pair = &self.pairs[&(a, b)];
        let link = Link {
            cut: pair.cuts > 0,
            paused: pair.silences > 0,
            bytes_per_second: pair.rates.iter().copied().min().unwrap_or(0),
        };
        self.fleet.proxy(a).set_link(&Fleet::name(b), link);
        self.fleet.proxy(b).set_link(&Fleet::name(a), link);
    }
}

/// Every pair (lower index first) with one node in `side` and the other not.
fn split(side: &[usize], nodes: usize) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for &a in side {
        for b in (0..nodes).filter(|b| !side.contains(b)) {
            pairs.push((a.min(b), a.max(b)));
        }
    }
    pairs
}

/// Waits until every node sees all the others; `Err` says what each saw at the bound.
async fn wait_connected(fleet: &Fleet, nodes: usize) -> Result<(), String> {
    let deadline = Instant::now() + CONNECT_BOUND;
    loop {
        let mut seen = Vec::new();
        for i in 0..nodes {
            let answer = fleet.ask(i, &Command::Peers, "peers", Duration::from_secs(2)).await;
            let count = match answer {
                Some(Report::Figures { figures, .. }) => figures.get("connected").copied().unwrap_or(0),
                _ => 0,
            };
            seen.push(count);
        }
        if seen.iter().all(|&count| count as usize == nodes - 1) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let seen: Vec<String> =
                seen.iter().enumerate().map(|(i, n)| format!("{} sees {n}", Fleet::name(i))).collect();
            return Err(seen.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every node's replica holds the same names for the same pids, every expected name included;
/// `Err` describes the differences at the bound.
async fn registry_converged(fleet: &Fleet, nodes: usize, expected: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + REGISTRY_BOUND;
    loop {
        let mut replicas = Vec::new();
        for i in 0..nodes {
            match fleet.ask(i, &Command::Registry, "registry", Duration::from_secs(2)).await {
                Some(Report::Registry(names)) => replicas.push(names),
                _ => replicas.push(BTreeMap::new()),
            }
        }
        let first = &replicas[0];
        let complete = expected.iter().all(|name| first.contains_key(name));
        if complete && replicas.iter().all(|replica| replica == first) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(describe_differences(&replicas, expected));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// For each name that is missing somewhere or maps to different pids: who says what.
fn describe_differences(replicas: &[BTreeMap<String, String>], expected: &[String]) -> String {
    let mut names: Vec<&String> = replicas.iter().flat_map(|replica| replica.keys()).chain(expected).collect();
    names.sort();
    names.dedup();
    let mut differences = Vec::new();
    for name in names {
        let views: Vec<Option<&String>> = replicas.iter().map(|replica| replica.get(name)).collect();
        if views.iter().any(|view| view.is_none() || *view != views[0]) {
            let views: Vec<String> = views
                .iter()
                .enumerate()
                .map(|(i, view)| format!("{}:{}", Fleet::name(i), view.map_or("-", |pid| pid.as_str())))
                .collect();
            differences.push(format!("{name} [{}]", views.join(" ")));
        }
    }
    differences.join("; ")
}

/// What a long-lived node looks like: fds and RSS from `/proc`, processes, tasks and pending requests from
/// itself.
#[derive(Clone, Debug, Default)]
struct Sample {
    fds: u64,
    rss_kb: u64,
    processes: u64,
    tasks: u64,
    pending: u64,
}

async fn sample_long_lived(fleet: &Fleet, long_lived: usize) -> Vec<Option<Sample>> {
    let mut samples = Vec::new();
    for i in 0..long_lived {
        let os = match fleet.os_pid(i).await {
            Some(pid) => os_sample(pid),
            None => None,
        };
        let own = fleet.ask(i, &Command::Sample, "sample", Duration::from_secs(10)).await;
        samples.push(match (os, own) {
            (Some((fds, rss_kb)), Some(Report::Figures { figures, .. })) => {
                let figure = |name: &str| figures.get(name).copied().unwrap_or(0);
                Some(Sample {
                    fds,
                    rss_kb,
                    processes: figure("processes"),
                    tasks: figure("tasks"),
                    pending: figure("pending"),
                })
            }
            _ => None,
        });
    }
    samples
}

/// The largest growth over the long-lived nodes, for the summary.
#[derive(Default)]
struct Growth {
    fds: i64,
    rss_kb: i64,
    tasks: i64,
}

/// Compares the samples: fds may grow by 16 and half, RSS by 64 MiB and its size again, tasks by 64 and their
/// number again; processes only by the shared names' holders, and nothing may be pending at the end (the
/// workers are quiesced).
fn growth(before: &[Option<Sample>], after: &[Option<Sample>], violations: &mut Vec<String>) -> Growth {
    let mut growth = Growth::default();
    for (i, (before, after)) in before.iter().zip(after).enumerate() {
        let name = Fleet::name(i);
        let (Some(before), Some(after)) = (before, after) else {
            violations
                .push(format!("{name}: no sample of fds, memory and tasks (before: {before:?}, after: {after:?})"));
            continue;
        };
        let delta = |b: u64, a: u64| a as i64 - b as i64;
        growth.fds = growth.fds.max(delta(before.fds, after.fds));
        growth.rss_kb = growth.rss_kb.max(delta(before.rss_kb, after.rss_kb));
        growth.tasks = growth.tasks.max(delta(before.tasks, after.tasks));
        let checks = [
            ("fds", grew(before.fds, after.fds, 16, 0.5)),
            ("rss_kb", grew(before.rss_kb, after.rss_kb, 64 * 1024, 1.0)),
            ("tasks", grew(before.tasks, after.tasks, 64, 1.0)),
            // A node may come to hold the shared names it did not hold after warm-up.
            ("processes", after.processes > before.processes + SHARED_NAMES as u64),
            ("pending", after.pending > 0),
        ];
        for (what, broke) in checks {
            if broke {
                violations
                    .push(format!("{name} (long-lived): {what} grew: after warm-up {before:?}, at the end {after:?}"));
            }
        }
    }
    growth
}
