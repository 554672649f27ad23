//! Frees the names this node registered when their processes end, at O(1) cost per name: one monitor per process
//! (however many names it holds) and one task per registry. A local process is watched through the runtime's
//! callback monitor (no future, no task); a process of another node through a monitor future that the registry's
//! watch task polls with all the others.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use noex_core::{ExitReason, MonitorRef, NodeName, Pid, ProcessDown, Runtime};
use tokio::sync::mpsc;

use crate::UnregisterReason;
use crate::registry::Inner;

/// The processes this node registered names for, and their names. Guarded by the registry's announce lock, so
/// that watching, forgetting and the removal on a process's end keep the order of the announcements.
pub(crate) struct Watches {
    by_pid: HashMap<Pid, Watched>,
    /// The node part of our monitors' references: not the runtime's node name, so they never equal a reference
    /// the runtime minted (a demonitor names the monitor by its reference).
    monitor_node: NodeName,
    next_monitor: u64,
    /// To the watch task: processes of other nodes to monitor.
    remote: mpsc::UnboundedSender<Pid>,
    /// To the watch task: the ends of local processes, sent by the runtime's callbacks.
    downs: mpsc::UnboundedSender<ProcessDown>,
}

struct Watched {
    names: Vec<Arc<str>>,
    /// The number of our callback monitor on a local process; `None` for a process of another node, whose
    /// monitor lives in the watch task until it fires.
    monitor: Option<u64>,
}

/// The receiving ends of a [`Watches`]' channels, for the watch task.
pub(crate) struct WatchInbox {
    remote: mpsc::UnboundedReceiver<Pid>,
    downs: mpsc::UnboundedReceiver<ProcessDown>,
}

impl Watches {
    pub(crate) fn new(local: &NodeName) -> (Watches, WatchInbox) {
        let (remote, remote_rx) = mpsc::unbounded_channel();
        let (downs, downs_rx) = mpsc::unbounded_channel();
        let watches = Watches {
            by_pid: HashMap::new(),
            monitor_node: NodeName::new(format!("{local}#registry")),
            next_monitor: 0,
            remote,
            downs,
        };
        (watches, WatchInbox { remote: remote_rx, downs: downs_rx })
    }

    /// Watches `pid` for `name` (a name this node just registered). The first name of a process sets up its
    /// monitor; a process that is already gone is reported at once (`noproc`), through the watch task.
    pub(crate) fn watch(&mut self, runtime: &Runtime, name: Arc<str>, pid: &Pid) {
        if let Some(watched) = self.by_pid.get_mut(pid) {
            watched.names.push(name);
            return;
        }
        let monitor = if runtime.is_remote(pid) {
            let _ = self.remote.send(pid.clone());
            None
        } else {
            self.next_monitor += 1;
            let downs = self.downs.clone();
            let monitor = MonitorRef::new(self.monitor_node.clone(), self.next_monitor);
            runtime.monitor_from_remote(pid, monitor, move |down| {
                let _ = downs.send(down);
            });
            Some(self.next_monitor)
        };
        self.by_pid.insert(pid.clone(), Watched { names: vec![name], monitor });
    }

    /// `name` no longer names `pid` here (unregistered, or lost a conflict). A local process's monitor goes with
    /// its last name; a remote process's stays until it fires (then it finds no names).
    pub(crate) fn forget(&mut self, runtime: Option<&Runtime>, name: &str, pid: &Pid) {
        let Some(watched) = self.by_pid.get_mut(pid) else { return };
        watched.names.retain(|held| **held != *name);
        let Some(monitor) = watched.monitor.filter(|_| watched.names.is_empty()) else { return };
        self.by_pid.remove(pid);
        if let Some(runtime) = runtime {
            runtime.demonitor_from_remote(pid, &MonitorRef::new(self.monitor_node.clone(), monitor));
        }
    }

    /// `pid` ended: the names it held here, to free.
    pub(crate) fn take(&mut self, pid: &Pid) -> Vec<Arc<str>> {
        self.by_pid.remove(pid).map(|watched| watched.names).unwrap_or_default()
    }
}

/// The registry's watch task: monitors the remote processes it is given, and frees the names of every watched
/// process that ends. Ends with the registry.
pub(crate) async fn run(registry: Weak<Inner>, runtime: noex_core::WeakRuntime, mut inbox: WatchInbox) {
    let mut monitors = FuturesUnordered::new();
    loop {
        let down = tokio::select! {
            pid = inbox.remote.recv() => {
                let Some(pid) = pid else { return }; // the registry is gone
                let Some(runtime) = runtime.upgrade() else { return };
                monitors.push(runtime.monitor(&pid));
                continue;
            }
            Some(down) = inbox.downs.recv() => down,
            Some(down) = monitors.next(), if !monitors.is_empty() => down,
        };
        let Some(registry) = registry.upgrade() else { return };
        let reason = if down.reason == ExitReason::NoConnection {
            UnregisterReason::NodeDown
        } else {
            UnregisterReason::ProcessExited
        };
        registry.process_ended(&down.pid, reason);
    }
}
