//! Servers for multi-node tests. Their messages are prost types, so they can be reached from other nodes; the
//! same behaviours are registered by the in-process fixtures and by the `remote-node` binary.

use std::time::Duration;

use noex_core::{Context, ExitReason, GenServer, Info, MonitorRef, NoProc, Pid};
use noex_remote::Behaviours;
use tokio::sync::mpsc;

/// What a [`Counter`] call asks for.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// One of the `Request::*` operations.
    #[prost(int32, tag = "1")]
    pub op: i32,
    /// Its argument.
    #[prost(int64, tag = "2")]
    pub arg: i64,
}

impl Request {
    /// Returns the value.
    pub const GET: i32 = 0;
    /// Adds `arg`, returns the new value.
    pub const ADD: i32 = 1;
    /// Sleeps `arg` milliseconds, then returns the value.
    pub const SLEEP: i32 = 2;
    /// Panics.
    pub const CRASH: i32 = 3;
    /// Replies, then stops with reason `normal`.
    pub const STOP: i32 = 4;

    /// `GET`.
    pub fn get() -> Self {
        Request { op: Self::GET, arg: 0 }
    }

    /// `ADD arg`.
    pub fn add(arg: i64) -> Self {
        Request { op: Self::ADD, arg }
    }

    /// `SLEEP ms`.
    pub fn sleep(ms: i64) -> Self {
        Request { op: Self::SLEEP, arg: ms }
    }

    /// `CRASH`.
    pub fn crash() -> Self {
        Request { op: Self::CRASH, arg: 0 }
    }

    /// `STOP`.
    pub fn stop() -> Self {
        Request { op: Self::STOP, arg: 0 }
    }
}

/// Init arguments of the `counter` behaviour.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CounterArgs {
    /// The initial value.
    #[prost(int64, tag = "1")]
    pub initial: i64,
    /// How long `init` takes, in milliseconds.
    #[prost(uint64, tag = "2")]
    pub init_delay_ms: u64,
    /// Make `init` fail with this message.
    #[prost(string, tag = "3")]
    pub fail_init: String,
}

/// A counter that can also sleep, crash and stop on request. Casts add to it.
#[derive(Debug, Default)]
pub struct Counter {
    value: i64,
    init_delay: Duration,
    fail_init: Option<String>,
}

impl Counter {
    /// A counter starting at `value`.
    pub fn new(value: i64) -> Self {
        Counter { value, ..Self::default() }
    }
}

impl GenServer for Counter {
    type Call = Request;
    type Reply = i64;
    type Cast = i64;

    async fn init(&mut self, _ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        tokio::time::sleep(self.init_delay).await;
        match self.fail_init.take() {
            Some(message) => Err(ExitReason::error(message)),
            None => Ok(()),
        }
    }

    async fn handle_call(&mut self, request: Request, ctx: &mut Context<Self>) -> i64 {
        match request.op {
            Request::ADD => self.value += request.arg,
            Request::SLEEP => tokio::time::sleep(Duration::from_millis(request.arg as u64)).await,
            Request::CRASH => panic!("asked to crash"),
            Request::STOP => ctx.stop(ExitReason::Normal),
            _ => {}
        }
        self.value
    }

    async fn handle_cast(&mut self, by: i64, _ctx: &mut Context<Self>) {
        self.value += by;
    }
}

/// Registers the test behaviours: `counter` (args [`CounterArgs`]).
pub fn register_behaviours(behaviours: &Behaviours) {
    behaviours.register("counter", |args: CounterArgs| {
        Ok(Counter {
            value: args.initial,
            init_delay: Duration::from_millis(args.init_delay_ms),
            fail_init: Some(args.fail_init).filter(|message| !message.is_empty()),
        })
    });
}

/// What a [`Watcher`] is asked to do (it lives on the test's own node, so its messages need no encoding).
#[derive(Debug)]
pub enum Watch {
    /// Monitor a pid.
    Monitor(Pid),
    /// Remove a monitor.
    Demonitor(MonitorRef),
    /// Link with a pid.
    Link(Pid),
    /// Unlink from a pid.
    Unlink(Pid),
    /// Trap exits or not.
    Trap(bool),
}

/// A [`Watcher`]'s answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Watched {
    /// The new monitor.
    Monitor(MonitorRef),
    /// Whether the demonitor found the monitor.
    Demonitored(bool),
    /// The link result.
    Linked(Result<(), NoProc>),
    /// Done.
    Done,
}

/// Monitors and links on request, and forwards every info message it gets to a channel.
pub struct Watcher {
    infos: mpsc::UnboundedSender<Info>,
}

impl Watcher {
    /// A watcher and the channel its info messages arrive on.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Info>) {
        let (infos, received) = mpsc::unbounded_channel();
        (Watcher { infos }, received)
    }
}

impl GenServer for Watcher {
    type Call = Watch;
    type Reply = Watched;
    type Cast = ();

    async fn handle_call(&mut self, watch: Watch, ctx: &mut Context<Self>) -> Watched {
        match watch {
            Watch::Monitor(pid) => Watched::Monitor(ctx.monitor(&pid)),
            Watch::Demonitor(monitor) => Watched::Demonitored(ctx.demonitor(&monitor)),
            Watch::Link(pid) => Watched::Linked(ctx.link(&pid)),
            Watch::Unlink(pid) => {
                ctx.unlink(&pid);
                Watched::Done
            }
            Watch::Trap(trap) => {
                ctx.trap_exits(trap);
                Watched::Done
            }
        }
    }

    async fn handle_info(&mut self, info: Info, _ctx: &mut Context<Self>) {
        let _ = self.infos.send(info);
    }
}

/// What a [`Recorder`] saw, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A cast.
    Cast(i64),
    /// `terminate`, with its reason.
    Terminated(ExitReason),
}

/// Forwards every cast it handles, and its `terminate`, to a channel: what a process saw, and in which order.
/// Start it with `start_encodable` to reach it from other nodes.
pub struct Recorder {
    seen: mpsc::UnboundedSender<Recorded>,
}

impl Recorder {
    /// A recorder and the channel its observations arrive on.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Recorded>) {
        let (seen, received) = mpsc::unbounded_channel();
        (Recorder { seen }, received)
    }
}

impl GenServer for Recorder {
    type Call = ();
    type Reply = ();
    type Cast = i64;

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}

    async fn handle_cast(&mut self, value: i64, _ctx: &mut Context<Self>) {
        let _ = self.seen.send(Recorded::Cast(value));
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Context<Self>) {
        let _ = self.seen.send(Recorded::Terminated(reason.clone()));
    }
}

/// Handles each cast only once the test lets it through its gate (a semaphore permit per cast), then forwards
/// it: a consumer exactly as slow as the test wants. Start it with `start_encodable`.
pub struct Gated {
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    seen: mpsc::UnboundedSender<i64>,
}

impl Gated {
    /// A gated consumer (closed gate), its gate, and the channel its casts arrive on.
    pub fn new() -> (Self, std::sync::Arc<tokio::sync::Semaphore>, mpsc::UnboundedReceiver<i64>) {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let (seen, received) = mpsc::unbounded_channel();
        (Gated { gate: gate.clone(), seen }, gate, received)
    }
}

impl GenServer for Gated {
    type Call = ();
    type Reply = ();
    type Cast = i64;

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) {}

    async fn handle_cast(&mut self, value: i64, _ctx: &mut Context<Self>) {
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        let _ = self.seen.send(value);
    }
}

/// Spends about `per_message` of CPU on every cast (a busy loop, not a sleep: it holds its worker thread), as a
/// consumer that does real work per message would. A call holds it until the test adds a permit to `hold`, so
/// that a test can queue a whole flood before the work starts; it answers how many casts were handled. Start it
/// with `start_encodable`.
pub struct Busy {
    /// CPU time per cast.
    pub per_message: Duration,
    /// How many casts it handled.
    pub handled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// What a call waits for.
    pub hold: std::sync::Arc<tokio::sync::Semaphore>,
    /// Set while a call waits.
    pub holding: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GenServer for Busy {
    type Call = ();
    type Reply = u64;
    type Cast = i64;

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> u64 {
        self.holding.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(permit) = self.hold.acquire().await {
            permit.forget();
        }
        self.holding.store(false, std::sync::atomic::Ordering::Relaxed);
        self.handled.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn handle_cast(&mut self, _: i64, _ctx: &mut Context<Self>) {
        let until = std::time::Instant::now() + self.per_message;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        self.handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
