//! The workers as the orchestrator sees them: OS processes behind proxies, their reports on a board, commands
//! with answers, signals.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::watch;

use crate::control::{Command, Report};
use crate::proxy::Proxy;

/// How workers are started.
#[derive(Clone, Debug)]
pub(crate) struct FleetConfig {
    /// How many.
    pub(crate) nodes: usize,
    /// The cluster cookie, given to workers through `NOEX_COOKIE`.
    pub(crate) cookie: String,
    /// The run's seed (each worker incarnation seeds its own choices from it).
    pub(crate) seed: u64,
    /// Where each worker's log (its stderr) goes.
    pub(crate) logs: PathBuf,
    /// Extra arguments for every worker.
    pub(crate) worker_args: Vec<String>,
}

/// The workers, their proxies and what they reported.
pub(crate) struct Fleet {
    config: FleetConfig,
    proxies: Arc<Vec<Proxy>>,
    running: Vec<tokio::sync::Mutex<Option<Running>>>,
    board: Arc<Mutex<Board>>,
    changed: watch::Sender<u64>,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    os_pid: u32,
}

/// Everything the workers reported.
#[derive(Default)]
pub(crate) struct Board {
    seq: u64,
    nodes: Vec<NodeBoard>,
    /// Violations workers reported, prefixed with the node and incarnation.
    pub(crate) violations: Vec<String>,
}

#[derive(Default)]
struct NodeBoard {
    incarnation: u32,
    /// Whether the current incarnation is meant to end (killed or told to stop): otherwise its end is a violation.
    ending: bool,
    /// The last `stats` of each incarnation.
    stats: HashMap<u32, BTreeMap<String, u64>>,
    /// The last report of each kind, with the board's sequence number when it came.
    answers: HashMap<String, (u64, Report)>,
}

impl Fleet {
    /// Starts the proxies (no worker yet).
    pub(crate) async fn new(config: FleetConfig) -> Fleet {
        let mut proxies = Vec::new();
        for _ in 0..config.nodes {
            proxies.push(Proxy::start().await);
        }
        let board = Board { nodes: (0..config.nodes).map(|_| NodeBoard::default()).collect(), ..Board::default() };
        Fleet {
            running: (0..config.nodes).map(|_| tokio::sync::Mutex::new(None)).collect(),
            config,
            proxies: Arc::new(proxies),
            board: Arc::new(Mutex::new(board)),
            changed: watch::channel(0).0,
        }
    }

    /// Node `i`'s name.
    pub(crate) fn name(i: usize) -> String {
        format!("n{i}")
    }

    /// Node `i`'s id, as the others dial it: the address of its proxy.
    pub(crate) fn id(&self, i: usize) -> String {
        format!("{}@{}", Self::name(i), self.proxies[i].address())
    }

    /// How many nodes.
    pub(crate) fn nodes(&self) -> usize {
        self.config.nodes
    }

    /// Node `i`'s proxy.
    pub(crate) fn proxy(&self, i: usize) -> &Proxy {
        &self.proxies[i]
    }

    /// The reports so far.
    pub(crate) fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap()
    }

    /// Starts a new incarnation of worker `i` and waits (at most 20 s) until it is ready and behind its proxy.
    pub(crate) async fn start(&self, i: usize) -> anyhow::Result<()> {
        let incarnation = {
            let mut board = self.board();
            board.nodes[i].incarnation += 1;
            board.nodes[i].ending = false;
            board.nodes[i].incarnation
        };
        let seeds: Vec<String> = (0..self.config.nodes).filter(|&j| j != i).map(|j| self.id(j)).collect();
        // One log per node, all its incarnations in turn; a log left by an earlier run in the same folder goes.
        let log = std::fs::File::options()
            .create(true)
            .write(true)
            .append(incarnation > 1)
            .truncate(incarnation == 1)
            .open(self.config.logs.join(format!("{}.log", Self::name(i))))?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("worker")
            .args(["--name", &Self::name(i), "--port", &self.proxies[i].address().port().to_string()])
            .arg(format!("--seeds={}", seeds.join(",")))
            .args(["--seed", &(self.config.seed ^ ((i as u64) << 32) ^ u64::from(incarnation)).to_string()])
            .args(&self.config.worker_args)
            .env("NOEX_COOKIE", &self.config.cookie)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker")?;
        let os_pid = child.id().context("a worker's pid")?;
        let stdin = child.stdin.take().context("a worker's stdin")?;
        let stdout = child.stdout.take().context("a worker's stdout")?;
        let (board, changed, proxies) = (self.board.clone(), self.changed.clone(), self.proxies.clone());
        let since = *self.changed.borrow();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(report) = Report::parse(&line) else {
                    tracing::error!(node = i, %line, "unreadable report");
                    continue;
                };
                let mut board = board.lock().unwrap();
                board.seq += 1;
                let seq = board.seq;
                match &report {
                    Report::Ready { listening } => proxies[i].set_target(*listening),
                    Report::Violation(text) => {
                        let line = format!("{}#{incarnation}: {text}", Fleet::name(i));
                        board.violations.push(line);
                    }
                    Report::Figures { kind, figures } if kind == "stats" => {
                        board.nodes[i].stats.insert(incarnation, figures.clone());
                    }
                    _ => {}
                }
                let kind = kind_of(&report);
                board.nodes[i].answers.insert(kind, (seq, report));
                drop(board);
                changed.send_replace(seq);
            }
            let mut board = board.lock().unwrap();
            if !board.nodes[i].ending || board.nodes[i].incarnation != incarnation {
                let line = format!("{}#{incarnation}: the worker ended on its own (see its log)", Fleet::name(i));
                board.violations.push(line);
            }
        });
        *self.running[i].lock().await = Some(Running { child, stdin, os_pid });
        let ready = self.wait_answer(i, "ready", since, Duration::from_secs(20)).await;
        ready.map(|_| ()).with_context(|| format!("{} did not start within 20 s", Self::name(i)))
    }

    /// `kill -9` worker `i` and reaps it.
    pub(crate) async fn kill(&self, i: usize) {
        self.board().nodes[i].ending = true;
        if let Some(mut running) = self.running[i].lock().await.take() {
            let _ = running.child.kill().await;
        }
    }

    /// Sends `signal` to worker `i`, if it runs.
    pub(crate) async fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        if let Some(running) = self.running[i].lock().await.as_ref() {
            let pid = nix::unistd::Pid::from_raw(running.os_pid as i32);
            if let Err(error) = nix::sys::signal::kill(pid, signal) {
                tracing::warn!(node = i, %error, "cannot signal");
            }
        }
    }

    /// Worker `i`'s OS process id, if it runs.
    pub(crate) async fn os_pid(&self, i: usize) -> Option<u32> {
        self.running[i].lock().await.as_ref().map(|running| running.os_pid)
    }

    /// Sends a command to worker `i`; false if it does not run.
    pub(crate) async fn send(&self, i: usize, command: &Command) -> bool {
        let mut running = self.running[i].lock().await;
        let Some(running) = running.as_mut() else { return false };
        running.stdin.write_all(format!("{command}\n").as_bytes()).await.is_ok()
    }

    /// Sends a command to worker `i` and waits at most `timeout` for its answer of kind `kind`.
    pub(crate) async fn ask(&self, i: usize, command: &Command, kind: &str, timeout: Duration) -> Option<Report> {
        let since = *self.changed.borrow();
        if !self.send(i, command).await {
            return None;
        }
        self.wait_answer(i, kind, since, timeout).await
    }

    async fn wait_answer(&self, i: usize, kind: &str, since: u64, timeout: Duration) -> Option<Report> {
        let mut changed = self.changed.subscribe();
        let board = self.board.clone();
        let answer = move || {
            let board = board.lock().unwrap();
            board.nodes[i].answers.get(kind).filter(|(seq, _)| *seq > since).map(|(_, report)| report.clone())
        };
        let waited = tokio::time::timeout(timeout, changed.wait_for(|_| answer().is_some())).await;
        waited.ok().and_then(|_| answer())
    }

    /// Asks every worker to stop, waits at most `timeout` for each to exit, and kills those still running.
    /// Returns the nodes that had to be killed.
    pub(crate) async fn stop(&self, timeout: Duration) -> Vec<usize> {
        let mut killed = Vec::new();
        for node in &mut self.board().nodes {
            node.ending = true;
        }
        for i in 0..self.config.nodes {
            self.send(i, &Command::Stop).await;
        }
        for i in 0..self.config.nodes {
            let Some(mut running) = self.running[i].lock().await.take() else { continue };
            drop(running.stdin);
            if tokio::time::timeout(timeout, running.child.wait()).await.is_err() {
                let _ = running.child.kill().await;
                killed.push(i);
            }
        }
        killed
    }

    /// The sum of a figure over every incarnation of every worker.
    pub(crate) fn total(&self, figure: &str) -> u64 {
        let board = self.board();
        board.nodes.iter().flat_map(|node| node.stats.values()).filter_map(|stats| stats.get(figure)).sum()
    }
}

fn kind_of(report: &Report) -> String {
    match report {
        Report::Ready { .. } => "ready".into(),
        Report::Figures { kind, .. } => kind.clone(),
        Report::Registry(_) => "registry".into(),
        Report::Violation(_) => "violation".into(),
    }
}

/// The lines of worker logs in `logs` that report a panic (a task of the stack may panic without ending the
/// process), at most 5 per log.
pub(crate) fn panics(logs: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(logs) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let lines = text.lines().filter(|line| line.contains("panicked at")).take(5);
        found.extend(lines.map(|line| format!("{name}: {line}")));
    }
    found
}

/// The open file descriptors and resident memory (KiB) of OS process `pid`, from `/proc`.
pub(crate) fn os_sample(pid: u32) -> Option<(u64, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kb = rss.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some((fds, kb))
}
