//! Removes the memberships of local processes that end: one monitor per member process (however many groups it
//! joined), through the runtime's callback monitor (no future, no task per process), and one task per scope that
//! applies the ends.

use std::sync::Weak;

use noex_core::{MonitorRef, NodeName, Pid, Runtime};
use rustc_hash::FxHashMap as HashMap;
use tokio::sync::mpsc;

use crate::scope::Scope;

/// The local processes that are members of a scope's groups, and their monitors. Guarded by the scope's announce
/// lock, so that monitoring, forgetting and the removal on a process's end keep the order of the announcements.
pub(crate) struct Watches {
    monitors: HashMap<Pid, u64>,
    /// The node part of our monitors' references: not the runtime's node name, so they never equal a reference
    /// the runtime minted (a demonitor names the monitor by its reference).
    monitor_node: NodeName,
    next_monitor: u64,
    /// To the watch task: the local members that ended, sent by the runtime's callbacks.
    ended: mpsc::UnboundedSender<Pid>,
}

impl Watches {
    pub(crate) fn new(local: &NodeName, scope: &str) -> (Watches, mpsc::UnboundedReceiver<Pid>) {
        let (ended, inbox) = mpsc::unbounded_channel();
        let monitor_node = NodeName::new(format!("{local}#pg:{scope}"));
        (Watches { monitors: HashMap::default(), monitor_node, next_monitor: 0, ended }, inbox)
    }

    /// Monitors the local process `pid` unless it already is; a process already gone is reported at once
    /// (`noproc`), through the watch task.
    pub(crate) fn watch(&mut self, runtime: &Runtime, pid: &Pid) {
        if self.monitors.contains_key(pid) {
            return;
        }
        self.next_monitor += 1;
        self.monitors.insert(pid.clone(), self.next_monitor);
        let ended = self.ended.clone();
        let monitor = MonitorRef::new(self.monitor_node.clone(), self.next_monitor);
        runtime.monitor_from_remote(pid, monitor, move |down| {
            let _ = ended.send(down.pid);
        });
    }

    /// `pid` is no longer a member of any group: its monitor goes.
    pub(crate) fn forget(&mut self, runtime: Option<&Runtime>, pid: &Pid) {
        let Some(monitor) = self.monitors.remove(pid) else { return };
        if let Some(runtime) = runtime {
            runtime.demonitor_from_remote(pid, &MonitorRef::new(self.monitor_node.clone(), monitor));
        }
    }

    /// `pid` ended: its monitor has fired.
    pub(crate) fn ended(&mut self, pid: &Pid) {
        self.monitors.remove(pid);
    }
}

/// The scope's watch task: removes the memberships of every member that ends. Ends with the scope.
pub(crate) async fn run(scope: Weak<Scope>, mut inbox: mpsc::UnboundedReceiver<Pid>) {
    while let Some(pid) = inbox.recv().await {
        let Some(scope) = scope.upgrade() else { return };
        scope.local_ended(&pid);
    }
}
