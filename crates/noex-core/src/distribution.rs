//! The seam between a runtime and a distribution layer: how operations on pids of *other* nodes leave this
//! runtime, and how signals from other nodes come in.
//!
//! A runtime on its own knows only its own processes. A distribution layer (noex-remote) implements
//! [`Distribution`] and installs it with [`Runtime::set_distribution`]; from then on `call`, `cast`, `monitor`,
//! `link`, `exit` and `stop` on a pid of another node go through it, encoded, while the same operations on local
//! pids keep moving typed values between mailboxes. In the other direction the layer calls the `*_from_remote`
//! methods of [`Runtime`] for what arrives from the network.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::process::{LinkPeer, Signal, Watcher};
use crate::{
    CallError, CastError, ExitReason, MonitorRef, NodeName, Pid, ProcessDown, Runtime, StopError, Target, WirePayload,
};

/// A boxed future, for the rare distribution operations that wait (stop).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Routes operations on processes of other nodes. Implemented by the distribution layer; every method must
/// return quickly (queue the frame), never block.
pub trait Distribution: Send + Sync + 'static {
    /// Sends a call to `target`. The result goes to `reply`, exactly once, unless [`cancel_call`] comes first.
    /// Returns an id for `cancel_call`, or an error if the call could not be sent at all.
    ///
    /// [`cancel_call`]: Distribution::cancel_call
    fn call(&self, target: &Pid, payload: Bytes, timeout: Duration, reply: CallReply) -> Result<u64, CallError>;
    /// The caller gave up on a call (timeout or cancellation): forget it; a late reply is dropped.
    fn cancel_call(&self, node: &NodeName, call: u64);
    /// Sends a cast without waiting, even if the connection is out of room (flow control then applies to the
    /// other senders); dropped only if the node is not connected, as a cast to a dead local process is.
    /// The payload is written straight into the frame.
    fn cast(&self, target: &Pid, payload: &dyn WirePayload);
    /// Sends a cast if the connection to `target`'s node has room: [`CastError::Full`] otherwise, and
    /// [`CastError::NoConnection`] if the node is not connected. Nothing is sent on an error. `will_wait`: the
    /// caller waits for room on `Full` (counted as a wait, not as a refusal).
    fn try_cast(&self, target: &Pid, payload: &dyn WirePayload, will_wait: bool) -> Result<(), CastError>;
    /// Resolves once the connection to `node` has room for casts again (at once if it has), or with
    /// [`CastError::NoConnection`] (naming `target`) when the node is not, or no longer, connected.
    fn cast_room(&self, target: &Pid) -> BoxFuture<Result<(), CastError>>;
    /// Monitors a process of another node; the watcher gets exactly one `DOWN` (`noconnection` if the node is lost).
    fn monitor(&self, watcher: RemoteWatcher);
    /// Removes a monitor set up with [`monitor`](Distribution::monitor).
    fn demonitor(&self, monitor: &MonitorRef, target: &Pid);
    /// Links the local process `local` with `remote`. If `remote` does not exist, `local` gets an exit signal
    /// `noproc`; if its node is lost, `noconnection`.
    fn link(&self, local: &Pid, remote: &Pid);
    /// Removes the link between `local` and `remote`.
    fn unlink(&self, local: &Pid, remote: &Pid);
    /// Sends an exit signal from `from` to the process `to` of another node: over a link (`linked`, when `from`
    /// ended) or as `Runtime::exit`.
    fn exit(&self, from: &Pid, to: &Pid, reason: ExitReason, linked: bool);
    /// Stops a process of another node as [`Runtime::stop`] does.
    fn stop(&self, target: &Pid, reason: ExitReason, timeout: Duration) -> BoxFuture<Result<(), StopError>>;
    /// Whether `node` is currently connected.
    fn is_connected(&self, node: &NodeName) -> bool;
}

/// Where the distribution layer delivers the result of a remote call.
#[derive(Debug)]
pub struct CallReply(pub(crate) oneshot::Sender<Result<Bytes, CallError>>);

impl CallReply {
    /// A reply sink and the receiver its result arrives on.
    pub fn channel() -> (CallReply, oneshot::Receiver<Result<Bytes, CallError>>) {
        let (sender, receiver) = oneshot::channel();
        (CallReply(sender), receiver)
    }

    /// Delivers the result; dropped silently if the caller has gone.
    pub fn send(self, result: Result<Bytes, CallError>) {
        let _ = self.0.send(result);
    }

    /// Whether the caller has stopped waiting.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A monitor on a process of another node, held by the distribution layer until its `DOWN` arrives.
pub struct RemoteWatcher {
    pub(crate) monitor: MonitorRef,
    pub(crate) target: Pid,
    pub(crate) watcher: Watcher,
}

impl RemoteWatcher {
    /// The monitor's reference (unique on this node).
    pub fn monitor(&self) -> &MonitorRef {
        &self.monitor
    }

    /// The monitored process.
    pub fn target(&self) -> &Pid {
        &self.target
    }

    /// Delivers the monitor's one `DOWN`. A process watcher drops it if it has demonitored meanwhile.
    pub fn deliver(self, reason: ExitReason) {
        let down = ProcessDown { monitor: self.monitor, pid: self.target, reason };
        self.watcher.deliver(down);
    }
}

impl std::fmt::Debug for RemoteWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteWatcher({:?} on {})", self.monitor, self.target)
    }
}

/// A runtime handle that does not keep the runtime alive (the distribution layer holds one, since the runtime
/// holds the layer).
#[derive(Clone)]
pub struct WeakRuntime(pub(crate) Weak<crate::runtime::RuntimeInner>);

impl WeakRuntime {
    /// The runtime, if it still exists.
    pub fn upgrade(&self) -> Option<Runtime> {
        self.0.upgrade().map(Runtime::from_inner)
    }
}

impl std::fmt::Debug for WeakRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakRuntime")
    }
}

/// The inbound half: what the distribution layer does to local processes on behalf of other nodes.
impl Runtime {
    /// Monitors the local process `target` for a watcher on another node; `on_down` receives its one `DOWN`
    /// (at once, `noproc`, if the process does not exist). `monitor` is the watcher node's reference, so that a
    /// later [`demonitor_from_remote`](Self::demonitor_from_remote) can name it.
    pub fn monitor_from_remote(
        &self,
        target: &Pid,
        monitor: MonitorRef,
        on_down: impl FnOnce(ProcessDown) + Send + 'static,
    ) {
        crate::runtime::install_monitor(
            self.cell(target).as_ref(),
            target,
            monitor,
            Watcher::Remote(Box::new(on_down)),
        );
    }

    /// Removes a monitor installed with [`monitor_from_remote`](Self::monitor_from_remote).
    pub fn demonitor_from_remote(&self, target: &Pid, monitor: &MonitorRef) {
        if let Some(cell) = self.cell(target) {
            let _ = cell.signal(Signal::Demonitor(monitor.clone()));
        }
    }

    /// Links the local process `local` with `remote`, a process of another node. False if `local` does not exist
    /// (the caller then sends `remote` an exit signal `noproc`).
    pub fn link_from_remote(&self, local: &Pid, remote: Pid) -> bool {
        self.cell(local).is_some_and(|cell| cell.add_link(remote, LinkPeer::Remote))
    }

    /// Removes the link between the local process `local` and `remote`.
    pub fn unlink_from_remote(&self, local: &Pid, remote: &Pid) {
        if let Some(cell) = self.cell(local) {
            cell.remove_link(remote);
        }
    }

    /// An exit signal from `from` (a process of another node) to the local process `to`: over their link
    /// (`linked`; ignored unless they are still linked) or as an explicit `exit`.
    pub fn exit_from_remote(&self, to: &Pid, from: Pid, reason: ExitReason, linked: bool) {
        if let Some(cell) = self.cell(to) {
            if linked {
                cell.link_exit(from, reason);
            } else if reason == ExitReason::Killed {
                cell.kill();
            } else {
                cell.exit_signal(from, reason);
            }
        }
    }

    /// A stop request from another node for the local process `target`, as [`Runtime::stop`] does, but queued
    /// at once, in order with the messages its sender sent before; the returned future only waits for the end.
    pub fn stop_from_remote(
        &self,
        target: &Pid,
        reason: ExitReason,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), StopError>> + Send + 'static {
        // Queued now, on the caller's (the connection reader's) turn: a cast the sender sent after the stop is
        // never handled before it. Only the wait is left to the future.
        let queued = self.queue_stop(target, reason);
        let runtime = self.clone();
        async move { runtime.await_stop(queued, timeout).await }
    }

    /// Resolves a local target (pid or registered name) to a pid of a live process.
    pub fn resolve(&self, target: Target<'_>) -> Option<Pid> {
        match target {
            Target::Pid(pid) => self.cell(pid).map(|cell| cell.core().pid.clone()),
            Target::Name(name) => self.whereis(name),
        }
    }
}
