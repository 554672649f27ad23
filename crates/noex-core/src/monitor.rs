//! What monitors and links deliver, and the future-based monitor for code that is not a process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::process::{ProcessCell, Signal};
use crate::{ExitReason, MonitorRef, Pid};

/// A monitored process ended (Erlang's `{'DOWN', Ref, process, Pid, Reason}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessDown {
    /// The monitor that fired.
    pub monitor: MonitorRef,
    /// The process that ended.
    pub pid: Pid,
    /// Why it ended; `noproc` if it was already gone when the monitor was set up.
    pub reason: ExitReason,
}

/// A linked process ended, delivered as a message to a process that traps exits (`{'EXIT', From, Reason}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitSignal {
    /// The process that ended (or sent the exit signal).
    pub from: Pid,
    /// Its reason.
    pub reason: ExitReason,
}

/// A monitor held by code outside any process: a future that resolves to the one [`ProcessDown`].
///
/// Dropping it before it resolves removes the monitor (like `demonitor`). Cancel safe.
#[must_use = "a monitor does nothing unless awaited"]
pub struct Monitor {
    pub(crate) monitor: MonitorRef,
    pub(crate) pid: Pid,
    pub(crate) target: Option<Arc<dyn ProcessCell>>,
    /// Set for a monitor on a process of another node: demonitor goes through the runtime's distribution.
    pub(crate) remote: Option<crate::Runtime>,
    pub(crate) down: oneshot::Receiver<ProcessDown>,
    pub(crate) fired: bool,
}

impl Monitor {
    /// The reference of this monitor.
    pub fn monitor_ref(&self) -> &MonitorRef {
        &self.monitor
    }

    /// The monitored process.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }
}

impl Future for Monitor {
    type Output = ProcessDown;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ProcessDown> {
        let this = &mut *self;
        match Pin::new(&mut this.down).poll(cx) {
            Poll::Ready(result) => {
                this.fired = true;
                // The sender is only dropped unsent if the whole runtime is torn down under us.
                Poll::Ready(result.unwrap_or_else(|_| ProcessDown {
                    monitor: this.monitor.clone(),
                    pid: this.pid.clone(),
                    reason: if this.remote.is_some() { ExitReason::NoConnection } else { ExitReason::NoProc },
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if !self.fired {
            if let Some(target) = &self.target {
                let _ = target.signal(Signal::Demonitor(self.monitor.clone()));
            }
            if let Some(distribution) = self.remote.as_ref().and_then(|runtime| runtime.distribution()) {
                distribution.demonitor(&self.monitor, &self.pid);
            }
        }
    }
}
