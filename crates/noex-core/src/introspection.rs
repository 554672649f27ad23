//! A cheap look at every process of a runtime, for the observer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::process::ProcessCell;
use crate::supervisor::Strategy;
use crate::{Pid, Runtime};

/// What kind of process it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessKind {
    /// A `GenServer`.
    Server,
    /// A supervisor.
    Supervisor,
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ProcessStatus {
    /// Running `init`.
    Initializing = 0,
    /// Handling messages (or waiting for them).
    Running = 1,
    /// Running `terminate`.
    Stopping = 2,
    /// Gone.
    Exited = 3,
}

impl ProcessStatus {
    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => ProcessStatus::Initializing,
            1 => ProcessStatus::Running,
            2 => ProcessStatus::Stopping,
            _ => ProcessStatus::Exited,
        }
    }
}

/// One process, as seen at one moment.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: Pid,
    /// Server or supervisor.
    pub kind: ProcessKind,
    /// Its registered local name.
    pub name: Option<Arc<str>>,
    /// Where it is in its life.
    pub status: ProcessStatus,
    /// Calls and casts handled so far.
    pub messages_processed: u64,
    /// Calls and casts waiting in its mailbox.
    pub mailbox_len: u64,
    /// When it was started.
    pub started_at: SystemTime,
    /// An internal process of the runtime or a library (left out of user-facing counts).
    pub system: bool,
    /// The process that started it linked (for a supervised child, its supervisor).
    pub parent: Option<Pid>,
    /// Supervisor figures, for supervisors.
    pub supervisor: Option<SupervisorInfo>,
}

/// Figures a supervisor keeps about its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupervisorInfo {
    /// Its restart strategy.
    pub strategy: Strategy,
    /// Children it currently has (running or not).
    pub child_count: u32,
    /// Restarts it has performed since it started.
    pub restarts: u64,
}

/// The counters behind [`SupervisorInfo`], updated by the supervisor process.
pub(crate) struct SupervisorStats {
    pub(crate) strategy: Strategy,
    pub(crate) children: AtomicU32,
    pub(crate) restarts: AtomicU64,
}

impl SupervisorStats {
    pub(crate) fn new(strategy: Strategy) -> Self {
        SupervisorStats { strategy, children: AtomicU32::new(0), restarts: AtomicU64::new(0) }
    }
}

impl Runtime {
    /// Every live process (user and system), unordered.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.cells().iter().map(|cell| info(&**cell)).collect()
    }

    /// Calls `visit` with every live process (user and system), unordered, one at a time: a walk over a large
    /// node that keeps no figures it does not need (the observer's totals and top N). No table lock is held while
    /// `visit` runs.
    pub fn for_each_process(&self, mut visit: impl FnMut(&ProcessInfo)) {
        for cell in self.cells() {
            visit(&info(&*cell));
        }
    }

    /// One process, if it is alive.
    pub fn process_info(&self, pid: &Pid) -> Option<ProcessInfo> {
        self.cell(pid).map(|cell| info(&*cell))
    }

    /// How many processes are alive, system processes included. Constant time.
    pub fn process_count(&self) -> usize {
        self.process_total()
    }
}

fn info(cell: &dyn ProcessCell) -> ProcessInfo {
    let core = cell.core();
    let processed = core.processed.load(Ordering::Relaxed);
    ProcessInfo {
        pid: core.pid.clone(),
        kind: core.kind,
        name: core.name(),
        status: core.status(),
        messages_processed: processed,
        mailbox_len: cell.enqueued().saturating_sub(processed),
        started_at: core.started_at,
        system: core.system,
        parent: core.parent.clone(),
        supervisor: core.supervisor.as_ref().map(|stats| SupervisorInfo {
            strategy: stats.strategy,
            child_count: stats.children.load(Ordering::Relaxed),
            restarts: stats.restarts.load(Ordering::Relaxed),
        }),
    }
}
