//! The worker's processes: the counters other nodes call, and the watcher that holds monitors and books DOWNs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use noex_core::{Context, GenServer, Info, MonitorRef, Pid};

use crate::control::Report;
use crate::ledger::MonitorLedger;
use crate::worker::emit;

/// Adds what it is called or cast with; a call returns the new value.
pub(crate) struct Counter(pub(crate) i64);

impl GenServer for Counter {
    type Call = i64;
    type Reply = i64;
    type Cast = i64;

    async fn handle_call(&mut self, by: i64, _ctx: &mut Context<Self>) -> i64 {
        self.0 += by;
        self.0
    }

    async fn handle_cast(&mut self, by: i64, _ctx: &mut Context<Self>) {
        self.0 += by;
    }
}

/// Monitors the processes it is cast, and books every `DOWN` it receives.
pub(crate) struct Watcher {
    pub(crate) ledger: Arc<Mutex<MonitorLedger<MonitorRef, (Pid, Instant)>>>,
    /// Sabotage: books every `DOWN` twice, to show that a duplicate is caught.
    pub(crate) duplicate: bool,
    /// Sabotage: ignores every other `DOWN`, to show that a missing one is caught.
    pub(crate) drop_every_other: bool,
    pub(crate) received: u64,
}

impl GenServer for Watcher {
    type Call = ();
    type Reply = ();
    type Cast = Pid;

    async fn handle_call(&mut self, (): (), _ctx: &mut Context<Self>) {}

    async fn handle_cast(&mut self, pid: Pid, ctx: &mut Context<Self>) {
        let monitor = ctx.monitor(&pid);
        self.ledger.lock().unwrap().opened(monitor, (pid, Instant::now()));
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Self>) {
        let Info::Down(down) = info else { return };
        self.received += 1;
        if self.drop_every_other && self.received % 2 == 0 {
            return;
        }
        let mut ledger = self.ledger.lock().unwrap();
        let times = if self.duplicate { 2 } else { 1 };
        for _ in 0..times {
            if let Some(violation) = ledger.down(down.monitor.clone()) {
                emit(&Report::Violation(format!("{violation} (on {}, reason {})", down.pid, down.reason)));
            }
        }
    }
}
