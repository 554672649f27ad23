//! The local observer: snapshots of this node's processes, their start/stop events, and polling.

use std::time::Duration;

use noex_core::{ExitReason, LifecycleError, LifecycleEvent, LifecycleEvents, Pid, ProcessKind, Runtime};

use crate::memory::CountingAllocator;
use crate::polling::Polling;
use crate::{NodeSnapshot, SnapshotQuery};

/// Looks at one node's processes. Cheap to clone.
#[derive(Clone)]
pub struct LocalObserver {
    runtime: Runtime,
    heap: Option<&'static CountingAllocator>,
}

impl std::fmt::Debug for LocalObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalObserver").field("node", self.runtime.node()).finish_non_exhaustive()
    }
}

impl LocalObserver {
    /// An observer of `runtime`'s processes.
    pub fn new(runtime: &Runtime) -> LocalObserver {
        LocalObserver { runtime: runtime.clone(), heap: None }
    }

    /// Reports heap bytes in use from `heap`, the program's global allocator.
    pub fn with_heap(mut self, heap: &'static CountingAllocator) -> LocalObserver {
        self.heap = Some(heap);
        self
    }

    /// The node's processes and memory, now: exact totals over every process, and the processes `query` lists
    /// (not capped: [`MAX_REMOTE_LIMIT`](crate::MAX_REMOTE_LIMIT) applies to other nodes' queries only).
    pub fn snapshot(&self, query: SnapshotQuery) -> NodeSnapshot {
        NodeSnapshot::take(&self.runtime, self.heap, &query)
    }

    /// User processes starting and stopping, from now on.
    pub fn events(&self) -> ObserverEvents {
        ObserverEvents { lifecycle: self.runtime.lifecycle_events() }
    }

    /// Calls `handler` with a snapshot (as `query` asks) now and then every `interval`, until the returned
    /// handle is stopped or dropped. Must be called within a tokio runtime.
    pub fn start_polling(
        &self,
        interval: Duration,
        query: SnapshotQuery,
        mut handler: impl FnMut(NodeSnapshot) + Send + 'static,
    ) -> Polling {
        let observer = self.clone();
        Polling::every(interval, move || {
            handler(observer.snapshot(query));
            std::future::ready(())
        })
    }
}

/// A user process started or stopped (internal processes are left out).
#[derive(Clone, Debug, PartialEq)]
pub enum ObserverEvent {
    /// A process finished `init`.
    ProcessStarted {
        /// The process.
        pid: Pid,
        /// Its local name.
        name: Option<String>,
        /// Server or supervisor.
        kind: ProcessKind,
    },
    /// A process ended.
    ProcessStopped {
        /// The process.
        pid: Pid,
        /// The name it held.
        name: Option<String>,
        /// Why it ended.
        reason: ExitReason,
    },
    /// The subscriber fell behind and this many lifecycle events were dropped.
    Lagged(u64),
}

/// A subscription to [`ObserverEvent`]s.
pub struct ObserverEvents {
    lifecycle: LifecycleEvents,
}

impl ObserverEvents {
    /// The next event; `None` once the runtime is gone. Cancel safe.
    pub async fn recv(&mut self) -> Option<ObserverEvent> {
        loop {
            let event = match self.lifecycle.recv().await {
                Ok(event) => event,
                Err(LifecycleError::Lagged(missed)) => return Some(ObserverEvent::Lagged(missed)),
                Err(_) => return None, // closed: the runtime is gone
            };
            let name = |name: Option<std::sync::Arc<str>>| name.as_deref().map(str::to_owned);
            match event {
                LifecycleEvent::Started { pid, name: n, kind, system: false } => {
                    return Some(ObserverEvent::ProcessStarted { pid, name: name(n), kind });
                }
                LifecycleEvent::Terminated { pid, name: n, reason, system: false } => {
                    return Some(ObserverEvent::ProcessStopped { pid, name: name(n), reason });
                }
                _ => {}
            }
        }
    }
}
