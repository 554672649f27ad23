//! A scriptable test server and small helpers shared by the behaviour tests.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use noex_core::{Context, ExitReason, GenServer, Info, MonitorRef, NoProc, Pid};
use tokio::sync::mpsc;

/// Every wait in these tests has a deadline, so a broken behaviour fails the test instead of hanging it.
pub(crate) async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future).await.expect("timed out waiting for an event")
}

/// A shared, ordered record of what happened (starts, terminations), across processes.
pub(crate) type Journal = Arc<Mutex<Vec<String>>>;

pub(crate) fn journal() -> Journal {
    Arc::default()
}

pub(crate) fn entries(journal: &Journal) -> Vec<String> {
    journal.lock().unwrap().clone()
}

/// A server that does what its calls and casts tell it, and reports what it saw.
pub(crate) struct Probe {
    pub label: String,
    pub seen: Vec<u64>,
    pub infos: Vec<Info>,
    pub info_tx: Option<mpsc::UnboundedSender<Info>>,
    pub journal: Option<Journal>,
    pub fail_init: Option<ExitReason>,
}

impl Probe {
    pub(crate) fn new() -> Self {
        Probe {
            label: String::new(),
            seen: Vec::new(),
            infos: Vec::new(),
            info_tx: None,
            journal: None,
            fail_init: None,
        }
    }

    /// A probe that forwards every info message to the returned receiver.
    pub(crate) fn with_infos() -> (Self, mpsc::UnboundedReceiver<Info>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Probe { info_tx: Some(tx), ..Probe::new() }, rx)
    }

    /// A probe that writes `start <label>` and `stop <label>` into `journal`.
    pub(crate) fn journaled(label: &str, journal: &Journal) -> Self {
        Probe { label: label.to_owned(), journal: Some(journal.clone()), ..Probe::new() }
    }

    fn record(&self, what: &str) {
        if let Some(journal) = &self.journal {
            journal.lock().unwrap().push(format!("{what} {}", self.label));
        }
    }
}

pub(crate) enum Call {
    Seen,
    Infos,
    Sleep(Duration),
    Panic,
    StopWith(ExitReason),
    Monitor(Pid),
    Link(Pid),
    Unlink(Pid),
    TrapExits,
    KillThenDemonitor(Pid, MonitorRef),
    /// Schedules `cast` after the delay; cancels the timer at once if asked.
    CastAfter(Duration, Cast, bool),
}

#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    Seen(Vec<u64>),
    Infos(Vec<Info>),
    Monitor(MonitorRef),
    Linked(Result<(), NoProc>),
    Demonitored(bool),
    Done,
}

pub(crate) enum Cast {
    Push(u64),
    Sleep(Duration),
    /// Says it has started (through the sender), then sleeps.
    Block(tokio::sync::oneshot::Sender<()>, Duration),
    /// Says it was handled.
    Notify(tokio::sync::oneshot::Sender<()>),
    Panic,
    StopWith(ExitReason),
}

impl GenServer for Probe {
    type Call = Call;
    type Reply = Reply;
    type Cast = Cast;

    async fn init(&mut self, _ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        if let Some(reason) = self.fail_init.take() {
            return Err(reason);
        }
        self.record("start");
        Ok(())
    }

    async fn handle_call(&mut self, call: Call, ctx: &mut Context<Self>) -> Reply {
        match call {
            Call::Seen => Reply::Seen(self.seen.clone()),
            Call::Infos => Reply::Infos(self.infos.iter().map(copy).collect()),
            Call::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                Reply::Done
            }
            Call::Panic => panic!("asked to panic"),
            Call::StopWith(reason) => {
                ctx.stop(reason);
                Reply::Done
            }
            Call::Monitor(pid) => Reply::Monitor(ctx.monitor(&pid)),
            Call::Link(pid) => Reply::Linked(ctx.link(&pid)),
            Call::Unlink(pid) => {
                ctx.unlink(&pid);
                Reply::Done
            }
            Call::TrapExits => {
                ctx.trap_exits(true);
                Reply::Done
            }
            Call::CastAfter(delay, cast, cancel) => {
                let timer = ctx.cast_after(delay, cast);
                if cancel {
                    timer.cancel();
                }
                Reply::Done
            }
            Call::KillThenDemonitor(pid, monitor) => {
                // Once the target is dead, its DOWN is already queued here; demonitor must still suppress it.
                let down = ctx.runtime().monitor(&pid);
                ctx.runtime().kill(&pid);
                down.await;
                Reply::Demonitored(ctx.demonitor(&monitor))
            }
        }
    }

    async fn handle_cast(&mut self, cast: Cast, ctx: &mut Context<Self>) {
        match cast {
            Cast::Push(n) => self.seen.push(n),
            Cast::Sleep(duration) => tokio::time::sleep(duration).await,
            Cast::Notify(handled) => {
                let _ = handled.send(());
            }
            Cast::Block(started, duration) => {
                let _ = started.send(());
                tokio::time::sleep(duration).await;
            }
            Cast::Panic => panic!("asked to panic"),
            Cast::StopWith(reason) => ctx.stop(reason),
        }
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Self>) {
        if let Some(tx) = &self.info_tx {
            let _ = tx.send(copy(&info));
        }
        self.infos.push(info);
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Context<Self>) {
        self.record("stop");
    }
}

/// A copy of a `DOWN` or `EXIT` (a self-sent message cannot be copied; the probe sends itself none).
fn copy(info: &Info) -> Info {
    match info {
        Info::Down(down) => Info::Down(down.clone()),
        Info::Exit(exit) => Info::Exit(exit.clone()),
        _ => unreachable!("the probe sends itself no messages"),
    }
}
