//! `Context`: what a server's callbacks can do to their own process (monitor, link, trap exits, stop), and the
//! process's private bookkeeping, which its `Drop` turns into `DOWN`s and `EXIT`s when the process ends.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::distribution::RemoteWatcher;
use crate::introspection::ProcessStatus;
use crate::lifecycle::LifecycleEvent;
use crate::mailbox::Batch;
use crate::process::{
    Envelope, LinkPeer, ProcessCell, ProcessCore, ReplyTo, ServerCell, Signal, SignalOutcome, Watcher,
};
use crate::runtime::StartOptions;
use crate::{
    ExitReason, GenServer, Info, LocalMessage, MonitorRef, NoProc, Pid, ProcessDown, ReplyHandle, Runtime, ServerRef,
    StartError,
};

/// A server's handle on its own process, passed to every [`GenServer`] callback.
pub struct Context<S: GenServer> {
    runtime: Runtime,
    cell: Arc<ServerCell<S>>,
    pub(crate) batch: VecDeque<Envelope<S>>,
    /// How many messages the last batch held (to tell a burst that is over from one that goes on).
    last_batch: usize,
    pub(crate) in_flight: Option<ReplyTo<S::Reply>>,
    /// Set by [`continue_with`](Self::continue_with): what `handle_continue` gets before the next message.
    pub(crate) continuation: Option<LocalMessage>,
    /// [`StartOptions::link`](crate::StartOptions::link): linked before `init`.
    pub(crate) link_at_start: Option<Pid>,
    state: ProcessState,
}

/// Where a monitor's `Demonitor` goes.
enum MonitorTarget {
    Local(Arc<dyn ProcessCell>),
    /// A process of another node, through the distribution layer.
    Remote(Pid),
    /// Already gone when the monitor was set up (its `noproc` DOWN is queued).
    Gone,
}

impl MonitorTarget {
    fn demonitor(self, runtime: &Runtime, monitor: MonitorRef) {
        match self {
            MonitorTarget::Local(target) => {
                let _ = target.signal(Signal::Demonitor(monitor));
            }
            MonitorTarget::Remote(pid) => {
                if let Some(distribution) = runtime.distribution() {
                    distribution.demonitor(&monitor, &pid);
                }
            }
            MonitorTarget::Gone => {}
        }
    }
}

/// The untyped part of a process's bookkeeping (links live in the cell, see `mailbox::State::links`). Lists, not
/// maps: a process usually has a handful of monitors, and an empty `Vec` costs no allocation.
struct ProcessState {
    /// Monitors this process holds on others; a `DOWN` for a reference not listed here is dropped.
    monitors: Vec<(MonitorRef, MonitorTarget)>,
    /// Monitors others hold on this process.
    watchers: Vec<(MonitorRef, Watcher)>,
    stop: Option<ExitReason>,
    exit: Option<ExitReason>,
    init_reply: Option<oneshot::Sender<Result<(), ExitReason>>>,
    started: bool,
    processed: u64,
}

impl<S: GenServer> Context<S> {
    pub(crate) fn new(
        runtime: Runtime,
        cell: Arc<ServerCell<S>>,
        init_reply: oneshot::Sender<Result<(), ExitReason>>,
    ) -> Self {
        Context {
            runtime,
            cell,
            batch: VecDeque::new(),
            last_batch: 0,
            in_flight: None,
            continuation: None,
            link_at_start: None,
            state: ProcessState {
                monitors: Vec::new(),
                watchers: Vec::new(),
                stop: None,
                exit: None,
                init_reply: Some(init_reply),
                started: false,
                processed: 0,
            },
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> &Pid {
        &self.cell.core.pid
    }

    /// A typed reference to this process.
    pub fn myself(&self) -> ServerRef<S> {
        ServerRef::from_cell(self.cell.clone(), self.runtime.clone())
    }

    /// The runtime this process runs in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The process that started this one linked (its supervisor, say), if any.
    pub fn parent(&self) -> Option<&Pid> {
        self.cell.core.parent.as_ref()
    }

    /// Takes the reply owed to the caller of the call being handled, to answer it later with
    /// [`ReplyHandle::reply`], from this process or another (OTP's `noreply` and `gen_server:reply/2`). The value
    /// `handle_call` then returns is dropped. `None` outside `handle_call`, or if the handle was already taken.
    pub fn reply_later(&mut self) -> Option<ReplyHandle<S::Reply>> {
        self.in_flight.take().map(ReplyHandle::new)
    }

    /// Ends the process with `reason` once the current callback returns; `terminate` then runs.
    pub fn stop(&mut self, reason: ExitReason) {
        self.state.stop = Some(reason);
    }

    /// While trapping, exit signals from links arrive as [`Info::Exit`] instead of killing this process
    /// (`kill` still kills).
    pub fn trap_exits(&mut self, trap: bool) {
        self.cell.mailbox.lock().trap_exit = trap;
    }

    /// Monitors `pid`: exactly one [`Info::Down`] will arrive, with reason `noproc` if `pid` is already gone,
    /// unless [`demonitor`](Self::demonitor) is called first.
    ///
    /// `pid` may live on another node: the `DOWN` then comes through the cluster, with reason `noconnection` if
    /// that node is lost (or not connected at all).
    pub fn monitor(&mut self, pid: &Pid) -> MonitorRef {
        let monitor = self.runtime.new_monitor_ref();
        let watcher = Watcher::Process(self.cell.clone());
        if self.runtime.is_remote(pid) {
            let remote = RemoteWatcher { monitor: monitor.clone(), target: pid.clone(), watcher };
            // Listed before the request leaves, so that a DOWN that comes back at once is not dropped.
            self.state.monitors.push((monitor.clone(), MonitorTarget::Remote(pid.clone())));
            match self.runtime.distribution() {
                Some(distribution) => distribution.monitor(remote),
                None => remote.deliver(ExitReason::NoConnection),
            }
            return monitor;
        }
        let target = self.runtime.cell(pid);
        let installed = match &target {
            Some(target) => target.signal(Signal::Monitor { monitor: monitor.clone(), watcher }).is_ok(),
            None => false,
        };
        if !installed {
            let down = ProcessDown { monitor: monitor.clone(), pid: pid.clone(), reason: ExitReason::NoProc };
            let _ = self.cell.signal(Signal::Down(down));
        }
        let target = target.map_or(MonitorTarget::Gone, MonitorTarget::Local);
        self.state.monitors.push((monitor.clone(), target));
        monitor
    }

    /// Removes a monitor. After this returns, its `DOWN` is never delivered, even if already queued.
    /// Returns false if the monitor was unknown or had already fired.
    pub fn demonitor(&mut self, monitor: &MonitorRef) -> bool {
        let Some(index) = self.state.monitors.iter().position(|(m, _)| m == monitor) else {
            return false;
        };
        let (monitor, target) = self.state.monitors.swap_remove(index);
        target.demonitor(&self.runtime, monitor);
        true
    }

    /// Links this process with `pid`: when either ends abnormally, the other is killed with the same reason
    /// unless it traps exits. Fails with `NoProc` if `pid` is a local process that is not running.
    ///
    /// `pid` may live on another node. Whether it exists is then only known later: if it does not, this process
    /// gets an exit signal `noproc`, as in Erlang; if its node is lost, `noconnection`.
    pub fn link(&mut self, pid: &Pid) -> Result<(), NoProc> {
        if pid == self.pid() {
            return Ok(());
        }
        if self.runtime.is_remote(pid) {
            let distribution = self.runtime.distribution().ok_or_else(|| NoProc(pid.clone()))?;
            self.cell.add_link(pid.clone(), LinkPeer::Remote);
            distribution.link(self.pid(), pid);
            return Ok(());
        }
        let target = self.runtime.cell(pid).ok_or_else(|| NoProc(pid.clone()))?;
        // Our side first: if the target dies right after accepting, its exit signal must find the link here.
        self.cell.add_link(pid.clone(), LinkPeer::Local(target.clone()));
        if !target.add_link(self.pid().clone(), LinkPeer::Local(self.cell.clone())) {
            self.cell.remove_link(pid);
            return Err(NoProc(pid.clone()));
        }
        Ok(())
    }

    /// Removes the link with `pid`, on both sides. After this returns, an exit of `pid` has no effect here.
    pub fn unlink(&mut self, pid: &Pid) {
        self.cell.remove_link(pid);
        if self.runtime.is_remote(pid) {
            if let Some(distribution) = self.runtime.distribution() {
                distribution.unlink(self.pid(), pid);
            }
        } else if let Some(target) = self.runtime.cell(pid) {
            target.remove_link(self.pid());
        }
    }

    /// Starts `server` as a new process linked to this one (Erlang's `start_link`); waits for its `init`.
    pub async fn start_link<T: GenServer>(
        &mut self,
        server: T,
        options: StartOptions,
    ) -> Result<ServerRef<T>, StartError> {
        self.runtime.start_linked(server, options, self.cell.clone()).await
    }

    /// Messages handled so far (calls and casts).
    pub fn messages_processed(&self) -> u64 {
        self.state.processed
    }

    pub(crate) fn cell(&self) -> &Arc<ServerCell<S>> {
        &self.cell
    }

    pub(crate) fn cell_dyn(&self) -> Arc<dyn ProcessCell> {
        self.cell.clone()
    }

    pub(crate) fn core(&self) -> &ProcessCore {
        &self.cell.core
    }

    pub(crate) fn mark_started(&mut self) {
        self.state.started = true;
        self.cell.core.set_status(ProcessStatus::Running);
        if let Some(reply) = self.state.init_reply.take() {
            let _ = reply.send(Ok(()));
        }
        let core = &self.cell.core;
        self.runtime.emit(|| LifecycleEvent::Started {
            pid: core.pid.clone(),
            name: core.name(),
            kind: core.kind,
            system: core.system,
        });
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.cell.mailbox.lock().exit.is_some()
    }

    pub(crate) fn set_exit(&mut self, reason: ExitReason) {
        self.state.exit = Some(reason);
    }

    pub(crate) fn take_stop(&mut self) -> Option<ExitReason> {
        self.state.stop.take()
    }

    pub(crate) fn count_processed(&mut self) {
        self.state.processed += 1;
        // Single writer: a plain store publishes the count to introspection without a read-modify-write.
        self.cell.core.processed.store(self.state.processed, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) async fn next_batch(&mut self) -> Batch {
        // Do not keep a burst's buffer forever, but keep it while the burst lasts: a stream of messages would
        // otherwise regrow (and page-fault) a fresh queue for every batch.
        if self.batch.capacity() > 4096 && self.last_batch < self.batch.capacity() / 8 {
            self.batch = VecDeque::new();
        }
        let mailbox = &self.cell.mailbox;
        let batch = &mut self.batch;
        let polled = poll_fn(|cx| mailbox.poll_batch(cx, batch)).await;
        self.last_batch = self.batch.len();
        polled
    }

    pub(crate) fn system_signal(&mut self, signal: Signal) -> SignalOutcome {
        let state = &mut self.state;
        match signal {
            Signal::Monitor { monitor, watcher } => state.watchers.push((monitor, watcher)),
            Signal::Demonitor(monitor) => state.watchers.retain(|(m, _)| *m != monitor),
            Signal::Down(down) => {
                let Some(index) = state.monitors.iter().position(|(m, _)| *m == down.monitor) else {
                    return SignalOutcome::Handled;
                };
                state.monitors.swap_remove(index);
                let watcher = self.cell.core.pid.clone();
                self.runtime.emit(|| LifecycleEvent::ProcessDown { watcher, down: down.clone() });
                return SignalOutcome::Info(Info::Down(down));
            }
            Signal::Exit(exit) => {
                // As in OTP: an EXIT from the parent ends a trapping server, with `terminate`.
                if self.cell.core.parent.as_ref() == Some(&exit.from) {
                    return SignalOutcome::Stop(exit.reason);
                }
                return SignalOutcome::Info(Info::Exit(exit));
            }
            Signal::Stop(reason) => return SignalOutcome::Stop(reason),
            Signal::Message(msg) => return SignalOutcome::Info(Info::Message(msg)),
        }
        SignalOutcome::Handled
    }
}

impl<S: GenServer> Drop for Context<S> {
    fn drop(&mut self) {
        let fallback = self.state.exit.take().unwrap_or_else(|| {
            if std::thread::panicking() {
                ExitReason::error("panic in the process loop")
            } else {
                // The task was aborted (kill, or the tokio runtime shutting down).
                ExitReason::Killed
            }
        });
        let closed = self.cell.mailbox.close(fallback);
        let reason = closed.reason;
        let core = &self.cell.core;
        core.set_status(ProcessStatus::Exited);
        // Out of the tables before anyone hears of the exit: a caller told `Exited` may retry under the same name.
        let name = self.runtime.forget(core);
        tracing::debug!(pid = %core.pid, %reason, "process exited");

        if let Some(reply) = self.state.init_reply.take() {
            let _ = reply.send(Err(reason.clone()));
        }
        if let Some(reply) = self.in_flight.take() {
            reply.exited(reason.clone());
        }
        let mut watchers = std::mem::take(&mut self.state.watchers);
        for envelope in self.batch.drain(..).chain(closed.queued) {
            match envelope {
                Envelope::Call(_, reply) => reply.exited(reason.clone()),
                Envelope::Cast(..) => {}
                // Monitors requested before the end but not yet processed still get their DOWN.
                Envelope::Signal(signal) => {
                    if let Signal::Monitor { monitor, watcher } = *signal {
                        watchers.push((monitor, watcher));
                    }
                }
            }
        }
        let pid = &core.pid;
        // Monitors from outside any process (`Runtime::monitor`, and so `stop` and `shutdown`) hear last: whoever
        // waits on one finds every other signal of this exit already sent (a node that shuts down says goodbye
        // only after its processes' DOWNs and EXITs are queued).
        let (external, watchers): (Vec<_>, Vec<_>) =
            watchers.into_iter().partition(|(_, watcher)| matches!(watcher, Watcher::External(_)));
        for (monitor, watcher) in watchers {
            watcher.deliver(ProcessDown { monitor, pid: pid.clone(), reason: reason.clone() });
        }
        for (peer_pid, peer) in closed.links {
            match peer {
                LinkPeer::Local(peer) => peer.link_exit(pid.clone(), reason.clone()),
                LinkPeer::Remote => {
                    if let Some(distribution) = self.runtime.distribution() {
                        distribution.exit(pid, &peer_pid, reason.clone(), true);
                    }
                }
            }
        }
        for (monitor, target) in self.state.monitors.drain(..) {
            target.demonitor(&self.runtime, monitor);
        }
        for (monitor, watcher) in external {
            watcher.deliver(ProcessDown { monitor, pid: pid.clone(), reason: reason.clone() });
        }
        if self.state.started {
            let system = core.system;
            self.runtime.emit(|| LifecycleEvent::Terminated { pid: pid.clone(), name, reason, system });
        }
        // Last: everything this end owed is sent (see `Runtime::shutdown`).
        self.runtime.context_ended();
    }
}
