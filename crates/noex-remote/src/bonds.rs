//! Monitors and links that cross nodes, grouped by the other node, so that losing a node fires every one of them
//! (`noconnection`) and a peer's bookkeeping is dropped when it goes.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use noex_core::{MonitorRef, NodeName, Pid, RemoteWatcher};

/// Monitors held by local watchers on processes of other nodes, by monitor number.
#[derive(Default)]
pub(crate) struct Outgoing {
    monitors: Mutex<HashMap<u64, RemoteWatcher>>,
}

impl Outgoing {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, RemoteWatcher>> {
        self.monitors.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, watcher: RemoteWatcher) {
        self.lock().insert(watcher.monitor().id(), watcher);
    }

    /// Takes the monitor a `DOWN` from `from` answers; `None` if it is unknown or was set on another node.
    pub(crate) fn take(&self, id: u64, from: &str) -> Option<RemoteWatcher> {
        let mut monitors = self.lock();
        if monitors.get(&id)?.target().node().as_str() != from {
            return None;
        }
        monitors.remove(&id)
    }

    pub(crate) fn remove(&self, monitor: &MonitorRef) -> Option<RemoteWatcher> {
        self.lock().remove(&monitor.id())
    }

    /// Every monitor on a process of `node`.
    pub(crate) fn take_node(&self, node: &str) -> Vec<RemoteWatcher> {
        let mut monitors = self.lock();
        let ids: Vec<u64> =
            monitors.iter().filter(|(_, w)| w.target().node().as_str() == node).map(|(id, _)| *id).collect();
        ids.into_iter().filter_map(|id| monitors.remove(&id)).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

type ByWatcherNode = HashMap<NodeName, HashMap<MonitorRef, Pid>>;

/// Monitors that watchers on other nodes hold on local processes: monitor -> target, by watcher node.
#[derive(Default)]
pub(crate) struct Incoming {
    monitors: Mutex<ByWatcherNode>,
}

impl Incoming {
    fn lock(&self) -> MutexGuard<'_, ByWatcherNode> {
        self.monitors.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, monitor: MonitorRef, target: Pid) {
        self.lock().entry(monitor.node().clone()).or_default().insert(monitor, target);
    }

    /// Forgets a monitor (fired or removed); returns its target if it was known.
    pub(crate) fn remove(&self, monitor: &MonitorRef) -> Option<Pid> {
        self.lock().get_mut(monitor.node())?.remove(monitor)
    }

    pub(crate) fn take_node(&self, node: &NodeName) -> HashMap<MonitorRef, Pid> {
        self.lock().remove(node).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }
}

/// Links between local processes and processes of other nodes: (local, remote) by remote node.
#[derive(Default)]
pub(crate) struct Links {
    links: Mutex<HashMap<NodeName, HashSet<(Pid, Pid)>>>,
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, HashMap<NodeName, HashSet<(Pid, Pid)>>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, local: &Pid, remote: &Pid) {
        self.lock().entry(remote.node().clone()).or_default().insert((local.clone(), remote.clone()));
    }

    pub(crate) fn remove(&self, local: &Pid, remote: &Pid) {
        let mut links = self.lock();
        if let Some(set) = links.get_mut(remote.node()) {
            set.remove(&(local.clone(), remote.clone()));
            if set.is_empty() {
                links.remove(remote.node());
            }
        }
    }

    pub(crate) fn take_node(&self, node: &NodeName) -> HashSet<(Pid, Pid)> {
        self.lock().remove(node).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(HashSet::len).sum()
    }
}
