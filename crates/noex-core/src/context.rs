//! `Context`: what a server's callbacks can do to their own process (monitor, link, trap exits, stop), and the
//! process's private bookkeeping, which its `Drop` turns into `DOWN`s and `EXIT`s when the process ends.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::introspection::ProcessStatus;
use crate::lifecycle::LifecycleEvent;
use crate::mailbox::Batch;
use crate::process::{Envelope, ProcessCell, ProcessCore, ReplyTo, ServerCell, Signal, SignalOutcome, Watcher};
use crate::runtime::StartOptions;
use crate::{ExitReason, GenServer, Info, MonitorRef, NoProc, Pid, ProcessDown, Runtime, ServerRef, StartError};

/// A server's handle on its own process, passed to every [`GenServer`] callback.
pub struct Context<S: GenServer> {
    runtime: Runtime,
    cell: Arc<ServerCell<S>>,
    pub(crate) batch: VecDeque<Envelope<S>>,
    pub(crate) in_flight: Option<ReplyTo<S::Reply>>,
    state: ProcessState,
}

/// The untyped part of a process's bookkeeping. Lists, not maps: a process usually has a handful of links and
/// monitors, and an empty `Vec` costs no allocation, which keeps idle processes small.
struct ProcessState {
    links: Vec<(Pid, Arc<dyn ProcessCell>)>,
    /// Monitors this process holds on others; a `DOWN` for a reference not listed here is dropped.
    monitors: Vec<(MonitorRef, Option<Arc<dyn ProcessCell>>)>,
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
        parent: Option<Arc<dyn ProcessCell>>,
    ) -> Self {
        let links = parent.map(|p| (p.core().pid.clone(), p)).into_iter().collect();
        Context {
            runtime,
            cell,
            batch: VecDeque::new(),
            in_flight: None,
            state: ProcessState {
                links,
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
    pub fn monitor(&mut self, pid: &Pid) -> MonitorRef {
        let monitor = self.runtime.new_monitor_ref();
        let target = self.runtime.cell(pid);
        let watcher = Watcher::Process(self.cell.clone());
        let installed = match &target {
            Some(target) => target.signal(Signal::Monitor { monitor: monitor.clone(), watcher }).is_ok(),
            None => false,
        };
        if !installed {
            let down = ProcessDown { monitor: monitor.clone(), pid: pid.clone(), reason: ExitReason::NoProc };
            let _ = self.cell.signal(Signal::Down(down));
        }
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
        if let Some(target) = target {
            let _ = target.signal(Signal::Demonitor(monitor));
        }
        true
    }

    /// Links this process with `pid`: when either ends abnormally, the other is killed with the same reason
    /// unless it traps exits. Fails with `NoProc` if `pid` is not running.
    pub fn link(&mut self, pid: &Pid) -> Result<(), NoProc> {
        if self.state.links.iter().any(|(p, _)| p == pid) || pid == self.pid() {
            return Ok(());
        }
        let target = self.runtime.cell(pid).ok_or_else(|| NoProc(pid.clone()))?;
        if target.signal(Signal::Link(self.cell.clone())).is_err() {
            return Err(NoProc(pid.clone()));
        }
        self.state.links.push((pid.clone(), target));
        Ok(())
    }

    /// Removes the link with `pid`, on both sides.
    pub fn unlink(&mut self, pid: &Pid) {
        if let Some(index) = self.state.links.iter().position(|(p, _)| p == pid) {
            let (_, target) = self.state.links.swap_remove(index);
            let _ = target.signal(Signal::Unlinked(self.pid().clone()));
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
        if self.batch.capacity() > 4096 {
            // Do not keep a burst's buffer forever.
            self.batch = VecDeque::new();
        }
        let mailbox = &self.cell.mailbox;
        let batch = &mut self.batch;
        poll_fn(|cx| mailbox.poll_batch(cx, batch)).await
    }

    pub(crate) fn system_signal(&mut self, signal: Signal) -> SignalOutcome {
        let state = &mut self.state;
        match signal {
            Signal::Monitor { monitor, watcher } => state.watchers.push((monitor, watcher)),
            Signal::Demonitor(monitor) => state.watchers.retain(|(m, _)| *m != monitor),
            Signal::Link(peer) => {
                let pid = peer.core().pid.clone();
                if !state.links.iter().any(|(p, _)| *p == pid) {
                    state.links.push((pid, peer));
                }
            }
            Signal::Unlinked(pid) => state.links.retain(|(p, _)| *p != pid),
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
                state.links.retain(|(p, _)| *p != exit.from);
                // As in OTP: an EXIT from the parent ends a trapping server, with `terminate`.
                if self.cell.core.parent.as_ref() == Some(&exit.from) {
                    return SignalOutcome::Stop(exit.reason);
                }
                return SignalOutcome::Info(Info::Exit(exit));
            }
            Signal::Stop(reason) => return SignalOutcome::Stop(reason),
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
        let (reason, queued) = self.cell.mailbox.close(fallback);
        if let Some(reply) = self.in_flight.take() {
            reply.send(Err(reason.clone()));
        }
        let mut signals = Vec::new();
        for envelope in self.batch.drain(..).chain(queued) {
            match envelope {
                Envelope::Call(_, reply) => reply.send(Err(reason.clone())),
                Envelope::Cast(_) => {}
                Envelope::Signal(signal) => signals.push(signal),
            }
        }
        let cell: Arc<dyn ProcessCell> = self.cell.clone();
        self.state.finish(&self.runtime, &cell, reason, signals);
    }
}

impl ProcessState {
    /// Everything a process owes the world once it has ended, in an order that lets observers trust what they see:
    /// by the time a `DOWN` or `EXIT` arrives, the process is out of the table and its name is free.
    fn finish(&mut self, runtime: &Runtime, cell: &Arc<dyn ProcessCell>, reason: ExitReason, signals: Vec<Signal>) {
        let core = cell.core();
        let pid = &core.pid;
        core.set_status(ProcessStatus::Exited);
        if let Some(reply) = self.init_reply.take() {
            let _ = reply.send(Err(reason.clone()));
        }
        let name = runtime.forget(core);
        tracing::debug!(%pid, %reason, "process exited");

        let down = |monitor: MonitorRef| ProcessDown { monitor, pid: pid.clone(), reason: reason.clone() };
        for signal in signals {
            match signal {
                Signal::Monitor { monitor, watcher } => watcher.deliver(down(monitor)),
                Signal::Link(peer) => peer.exit_signal(pid.clone(), reason.clone()),
                _ => {}
            }
        }
        for (monitor, watcher) in self.watchers.drain(..) {
            watcher.deliver(down(monitor));
        }
        for (_, peer) in self.links.drain(..) {
            peer.exit_signal(pid.clone(), reason.clone());
        }
        for (monitor, target) in self.monitors.drain(..) {
            if let Some(target) = target {
                let _ = target.signal(Signal::Demonitor(monitor));
            }
        }
        if self.started {
            runtime.emit(|| LifecycleEvent::Terminated { pid: pid.clone(), name, reason, system: core.system });
        }
    }
}
