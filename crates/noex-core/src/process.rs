//! A process as the runtime sees it: its shared cell (identity, mailbox, counters) and its main loop.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::encoded::{EncodedDelivery, EncodedMessage};
use crate::introspection::{ProcessKind, ProcessStatus, SupervisorStats};
use crate::mailbox::{Batch, ExitOutcome, Mailbox};
use crate::{Context, DeliverError, ExitReason, ExitSignal, GenServer, Info, MonitorRef, Pid, ProcessDown, Unanswered};

/// The type-erased face of a process: what other processes and the runtime need without knowing its messages.
pub(crate) trait ProcessCell: Send + Sync + 'static {
    fn core(&self) -> &ProcessCore;
    /// Queues a system signal behind the messages already sent; hands it back if the process has ended.
    fn signal(&self, signal: Signal) -> Result<(), Signal>;
    /// An exit signal (Erlang's `exit/2`): trapped (queued as `EXIT`), ignored (`normal`), or fatal at once.
    fn exit_signal(&self, from: Pid, reason: ExitReason);
    /// The exit signal of a linked process that ended; ignored unless `from` is still linked with this one.
    fn link_exit(&self, from: Pid, reason: ExitReason);
    /// Adds `peer` (whose pid is `pid`) to this process's links; false if this process has ended.
    fn add_link(&self, pid: Pid, peer: LinkPeer) -> bool;
    /// Removes `pid` from this process's links.
    fn remove_link(&self, pid: &Pid);
    /// The untrappable kill: ends the process now with reason `killed`, without `terminate`.
    fn kill(&self);
    fn enqueued(&self) -> u64;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn deliver_encoded(&self, message: EncodedMessage) -> Result<(), DeliverError>;
    fn deliver_cast_slice(&self, payload: &[u8], receipt: Option<crate::Receipt>) -> Result<(), DeliverError>;
}

/// What every process has, whatever its message types.
pub(crate) struct ProcessCore {
    pub(crate) pid: Pid,
    pub(crate) kind: ProcessKind,
    pub(crate) system: bool,
    pub(crate) started_at: SystemTime,
    pub(crate) parent: Option<Pid>,
    pub(crate) processed: AtomicU64,
    status: AtomicU8,
    /// The registered name; only changed under the runtime's name-table lock.
    pub(crate) name: Mutex<Option<Arc<str>>>,
    pub(crate) abort: OnceLock<AbortHandle>,
    pub(crate) supervisor: Option<SupervisorStats>,
}

impl ProcessCore {
    pub(crate) fn new(pid: Pid, kind: ProcessKind, system: bool, parent: Option<Pid>) -> Self {
        ProcessCore {
            pid,
            kind,
            system,
            started_at: SystemTime::now(),
            parent,
            processed: AtomicU64::new(0),
            status: AtomicU8::new(ProcessStatus::Initializing as u8),
            name: Mutex::new(None),
            abort: OnceLock::new(),
            supervisor: None,
        }
    }

    pub(crate) fn status(&self) -> ProcessStatus {
        ProcessStatus::from_u8(self.status.load(Ordering::Relaxed))
    }

    pub(crate) fn set_status(&self, status: ProcessStatus) {
        self.status.store(status as u8, Ordering::Relaxed);
    }

    pub(crate) fn name(&self) -> Option<Arc<str>> {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// This process's pid if nobody started it linked.
    pub(crate) fn root_pid(&self) -> Option<Pid> {
        self.parent.is_none().then(|| self.pid.clone())
    }

    fn abort(&self) {
        if let Some(handle) = self.abort.get() {
            handle.abort();
        }
    }
}

/// System signals travel in the same queue as messages, so a sender's messages and signals keep their order.
pub(crate) enum Signal {
    Monitor {
        monitor: MonitorRef,
        watcher: Watcher,
    },
    Demonitor(MonitorRef),
    Down(ProcessDown),
    /// A trapped exit signal, to become an `EXIT` info message.
    Exit(ExitSignal),
    Stop(ExitReason),
    /// A message the process sent itself (a timer's): local only.
    Message(crate::LocalMessage),
}

/// The other end of a link.
pub(crate) enum LinkPeer {
    Local(Arc<dyn ProcessCell>),
    /// A process on another node: its exit signal goes through the runtime's distribution layer.
    Remote,
}

/// Who receives a `DOWN`.
pub(crate) enum Watcher {
    Process(Arc<dyn ProcessCell>),
    External(oneshot::Sender<ProcessDown>),
    /// A watcher on another node, reached through the distribution layer.
    Remote(Box<dyn FnOnce(ProcessDown) + Send>),
}

impl Watcher {
    pub(crate) fn deliver(self, down: ProcessDown) {
        match self {
            Watcher::Process(cell) => {
                let _ = cell.signal(Signal::Down(down));
            }
            Watcher::External(sender) => {
                let _ = sender.send(down);
            }
            // Another layer's code: a panic in it must not skip the rest of a process's cleanup.
            Watcher::Remote(deliver) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deliver(down))).is_err() {
                    tracing::error!("a remote DOWN sink panicked");
                }
            }
        }
    }
}

/// Where a call's reply goes: back to a local caller, or through an encoder to a remote one.
pub(crate) enum ReplyTo<R> {
    Local(oneshot::Sender<Result<R, Unanswered>>),
    Encoded(Box<dyn FnOnce(Result<R, Unanswered>) + Send>),
}

impl<R> ReplyTo<R> {
    pub(crate) fn send(self, result: Result<R, Unanswered>) {
        match self {
            ReplyTo::Local(sender) => {
                let _ = sender.send(result);
            }
            // The sink is another layer's code; a panic in it must not skip the process's cleanup.
            ReplyTo::Encoded(reply) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reply(result))).is_err() {
                    tracing::error!("an encoded reply sink panicked");
                }
            }
        }
    }

    /// Tells the caller that the process ended before it replied.
    pub(crate) fn exited(self, reason: ExitReason) {
        self.send(Err(Unanswered::Exited(reason)));
    }
}

pub(crate) enum Envelope<S: GenServer> {
    Call(S::Call, ReplyTo<S::Reply>),
    /// A cast; one from another node carries a receipt, given back once the cast has been handled.
    Cast(S::Cast, Option<crate::Receipt>),
    /// Boxed: signals are rare next to messages, and unboxed the largest of them (80 bytes) would make every
    /// queued message that large (measured: a sixth of a local cast's time went to page faults of the queue).
    Signal(Box<Signal>),
}

/// A server process's shared cell: held by the runtime's table, by every `ServerRef`, and by its own task.
pub(crate) struct ServerCell<S: GenServer> {
    pub(crate) core: ProcessCore,
    pub(crate) mailbox: Mailbox<Envelope<S>>,
    pub(crate) encoded: Option<EncodedDelivery<S>>,
}

impl<S: GenServer> ProcessCell for ServerCell<S> {
    fn core(&self) -> &ProcessCore {
        &self.core
    }

    fn signal(&self, signal: Signal) -> Result<(), Signal> {
        self.mailbox.push_counted(Envelope::Signal(Box::new(signal)), false).map_err(|envelope| match envelope {
            Envelope::Signal(signal) => *signal,
            _ => unreachable!("push hands back what it was given"),
        })
    }

    fn exit_signal(&self, from: Pid, reason: ExitReason) {
        self.deliver_exit(from, reason, false);
    }

    fn link_exit(&self, from: Pid, reason: ExitReason) {
        self.deliver_exit(from, reason, true);
    }

    fn add_link(&self, pid: Pid, peer: LinkPeer) -> bool {
        let mut state = self.mailbox.lock();
        if state.exit.is_some() {
            return false;
        }
        if !state.links.iter().any(|(p, _)| *p == pid) {
            state.links.push((pid, peer));
        }
        true
    }

    fn remove_link(&self, pid: &Pid) {
        self.mailbox.lock().links.retain(|(p, _)| p != pid);
    }

    fn kill(&self) {
        if self.mailbox.lock().close_locked(ExitReason::Killed) {
            self.core.abort();
        }
    }

    fn enqueued(&self) -> u64 {
        self.mailbox.enqueued()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn deliver_encoded(&self, message: EncodedMessage) -> Result<(), DeliverError> {
        match self.encoded {
            Some(deliver) => (deliver.message)(self, message),
            None => Err(DeliverError::NotEncodable),
        }
    }

    fn deliver_cast_slice(&self, payload: &[u8], receipt: Option<crate::Receipt>) -> Result<(), DeliverError> {
        match self.encoded {
            Some(deliver) => (deliver.cast)(self, payload, receipt),
            None => Err(DeliverError::NotEncodable),
        }
    }
}

impl<S: GenServer> ServerCell<S> {
    fn deliver_exit(&self, from: Pid, reason: ExitReason, via_link: bool) {
        let trapped = |exit| Envelope::Signal(Box::new(Signal::Exit(exit)));
        if self.mailbox.exit_signal(from, reason, via_link, trapped) == ExitOutcome::Closed {
            self.core.abort();
        }
    }
}

/// How the main loop ended.
enum Ending {
    /// By the server's choice, a stop request or a panic: `terminate` runs.
    Terminate(ExitReason),
    /// From outside (an exit signal it does not trap): no `terminate`.
    Closed(ExitReason),
}

/// The process's task. `ctx` is built before the task is spawned, so that its `Drop` (which does all the
/// cleanup) runs even if the task is aborted before its first poll.
pub(crate) async fn run<S: GenServer>(mut server: S, mut ctx: Context<S>) {
    if ctx.is_closed() {
        return; // killed before the task started; `Drop` reports the reason
    }
    if let Some(peer) = ctx.link_at_start.take() {
        if ctx.link(&peer).is_err() {
            return ctx.set_exit(ExitReason::NoProc);
        }
    }
    match AssertUnwindSafe(server.init(&mut ctx)).catch_unwind().await {
        Ok(Ok(())) => ctx.mark_started(),
        Ok(Err(reason)) => return ctx.set_exit(reason),
        Err(panic) => return ctx.set_exit(ExitReason::from_panic(&*panic)),
    }
    let mut slice = Slice::new();
    let ending = loop {
        if let Some(reason) = ctx.take_stop() {
            break Ending::Terminate(reason);
        }
        if let Some(msg) = ctx.continuation.take() {
            // A chain of continuations still yields now and then: the mailbox waits, the worker thread does not.
            if slice.turn() {
                tokio::task::yield_now().await;
            }
            let handled = AssertUnwindSafe(server.handle_continue(msg, &mut ctx)).catch_unwind().await;
            if let Err(panic) = handled {
                break Ending::Terminate(ExitReason::from_panic(&*panic));
            }
            continue;
        }
        if slice.turn() {
            tokio::task::yield_now().await;
        }
        let envelope = match ctx.batch.pop_front() {
            Some(envelope) => envelope,
            None => match ctx.next_batch().await {
                Batch::Ready => continue,
                Batch::Closed(reason) => break Ending::Closed(reason),
            },
        };
        match envelope {
            Envelope::Call(msg, reply) => {
                ctx.in_flight = Some(reply);
                ctx.count_processed();
                let handled = AssertUnwindSafe(server.handle_call(msg, &mut ctx)).catch_unwind().await;
                match handled {
                    Ok(value) => {
                        if let Some(reply) = ctx.in_flight.take() {
                            reply.send(Ok(value));
                        }
                    }
                    Err(panic) => {
                        let reason = ExitReason::from_panic(&*panic);
                        if let Some(reply) = ctx.in_flight.take() {
                            reply.exited(reason.clone());
                        }
                        break Ending::Terminate(reason);
                    }
                }
            }
            Envelope::Cast(msg, receipt) => {
                ctx.count_processed();
                let handled = AssertUnwindSafe(server.handle_cast(msg, &mut ctx)).catch_unwind().await;
                drop(receipt);
                if let Err(panic) = handled {
                    break Ending::Terminate(ExitReason::from_panic(&*panic));
                }
            }
            Envelope::Signal(signal) => match ctx.system_signal(*signal) {
                SignalOutcome::Handled => {}
                SignalOutcome::Stop(reason) => break Ending::Terminate(reason),
                SignalOutcome::Info(info) => {
                    let handled = AssertUnwindSafe(server.handle_info(info, &mut ctx)).catch_unwind().await;
                    if let Err(panic) = handled {
                        break Ending::Terminate(ExitReason::from_panic(&*panic));
                    }
                }
            },
        }
    };
    match ending {
        Ending::Terminate(reason) => {
            ctx.core().set_status(ProcessStatus::Stopping);
            let terminated = AssertUnwindSafe(server.terminate(&reason, &mut ctx)).catch_unwind().await;
            if let Err(panic) = terminated {
                tracing::warn!(pid = %ctx.pid(), error = %ExitReason::from_panic(&*panic), "terminate panicked");
            }
            ctx.set_exit(reason);
        }
        Ending::Closed(reason) => ctx.set_exit(reason),
    }
}

/// Messages a process handles before it lets the other tasks of its worker run. Not smaller: a yield breaks a
/// burst's batch, and every 128 messages measured as a sixth more per local cast.
const SLICE_MESSAGES: u32 = 1024;
/// Time after which it does so sooner (checked every few messages: a clock read per message would cost more
/// than a fast handler). A slow handler under a flood must not starve connection readers or other processes.
const SLICE_TIME: std::time::Duration = std::time::Duration::from_millis(1);
const SLICE_CLOCK_EVERY: u32 = 16;

/// Bounded slices of work: a mailbox that never runs dry would otherwise keep its worker thread for as long as
/// the flood lasts (the mailbox is not a tokio resource, so tokio's own budget does not apply).
struct Slice {
    handled: u32,
    started: std::time::Instant,
}

impl Slice {
    fn new() -> Self {
        Slice { handled: 0, started: std::time::Instant::now() }
    }

    /// Called before each message: whether the slice is over (and the process must yield to the scheduler).
    #[inline]
    fn turn(&mut self) -> bool {
        self.handled += 1;
        if self.handled == 1 {
            // Stamped when the slice begins: a slow handler's slice is measured from its first message.
            self.started = std::time::Instant::now();
            return false;
        }
        if self.handled % SLICE_CLOCK_EVERY != 0 {
            return false;
        }
        if self.handled >= SLICE_MESSAGES || self.started.elapsed() >= SLICE_TIME {
            self.handled = 0;
            return true;
        }
        false
    }
}

/// What the loop does after the context has digested a system signal.
pub(crate) enum SignalOutcome {
    Handled,
    Info(Info),
    Stop(ExitReason),
}
