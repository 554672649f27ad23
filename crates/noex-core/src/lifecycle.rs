//! Lifecycle events: a subscription to processes starting, ending, being restarted, and monitors firing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

use crate::introspection::ProcessKind;
use crate::{ExitReason, LifecycleError, Pid, ProcessDown};

/// Something that happened to a process (the seeds' `onLifecycleEvent`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// A process finished `init` successfully.
    Started {
        /// The new process.
        pid: Pid,
        /// Its local name.
        name: Option<Arc<str>>,
        /// Server or supervisor.
        kind: ProcessKind,
        /// An internal process.
        system: bool,
    },
    /// A started process ended.
    Terminated {
        /// The process.
        pid: Pid,
        /// The name it held.
        name: Option<Arc<str>>,
        /// Why it ended.
        reason: ExitReason,
        /// An internal process.
        system: bool,
    },
    /// A supervisor replaced a child that ended.
    Restarted {
        /// The supervisor.
        supervisor: Pid,
        /// The child's id in its spec.
        child_id: Arc<str>,
        /// The process that ended.
        old: Pid,
        /// The process that replaced it.
        new: Pid,
    },
    /// A monitor held by a process fired (delivered to it as `Info::Down`).
    ProcessDown {
        /// The process holding the monitor.
        watcher: Pid,
        /// What it received.
        down: ProcessDown,
    },
}

/// A subscription to a runtime's [`LifecycleEvent`]s, from the moment it was made.
pub struct LifecycleEvents {
    receiver: broadcast::Receiver<LifecycleEvent>,
    subscribers: Arc<AtomicUsize>,
}

impl LifecycleEvents {
    pub(crate) fn new(receiver: broadcast::Receiver<LifecycleEvent>, subscribers: Arc<AtomicUsize>) -> Self {
        subscribers.fetch_add(1, Ordering::Relaxed);
        LifecycleEvents { receiver, subscribers }
    }

    /// The next event. A subscriber that falls more than the runtime's buffer behind is told how many events it
    /// missed (`Lagged`) and then continues. Cancel safe.
    pub async fn recv(&mut self) -> Result<LifecycleEvent, LifecycleError> {
        self.receiver.recv().await.map_err(|error| match error {
            broadcast::error::RecvError::Lagged(missed) => LifecycleError::Lagged(missed),
            broadcast::error::RecvError::Closed => LifecycleError::Closed,
        })
    }
}

impl Drop for LifecycleEvents {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}
