//! `GlobalRegistry`: the node's replica of the cluster-wide name table, kept in sync through `RegistrySync` frames.
//!
//! Every node holds the whole table, so `whereis` never touches the network. A node announces only what it
//! registered itself: an incremental sync to every peer when it registers or frees a name, and a full sync to a
//! peer that comes up. A node that goes down takes its registrations (and the names of its processes) with it
//! on every other node.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use noex_cluster::{Cluster, DownReason, FrameHandler, FrameKind, NodeId, NodeInfo};
use noex_core::{NodeName, Pid, Runtime, WeakRuntime};
use noex_proto::{Frame, RegistryEntry, RegistrySync};
use tokio::sync::broadcast;

use crate::table::{Change, Table};
use crate::{ConflictResolver, EarliestWins, GlobalName, RegisterError, RegistryEvent, UnregisterReason};

/// One node's replica of the global registry. Cheap to clone.
#[derive(Clone)]
pub struct GlobalRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    local: NodeName,
    cluster: Cluster,
    runtime: WeakRuntime,
    tasks: tokio::runtime::Handle,
    table: RwLock<Table>,
    /// Held from a change of this node's own registrations until its announcement is queued, so that peers get
    /// the announcements in the order of the changes (an add is never overtaken by its own removal). Never taken
    /// under the table lock or from the cluster's membership callbacks.
    announce: Mutex<()>,
    events: broadcast::Sender<RegistryEvent>,
    resolver: Box<dyn ConflictResolver>,
}

impl GlobalRegistry {
    /// Starts the registry of the node made of `runtime` and `cluster`, with the default conflict rule
    /// ([`EarliestWins`]). It takes the cluster's registry frames; start one per node.
    pub fn start(runtime: &Runtime, cluster: &Cluster) -> GlobalRegistry {
        Self::with_resolver(runtime, cluster, EarliestWins)
    }

    /// Starts the registry with another conflict rule. Every node of the cluster must use the same one.
    pub fn with_resolver(runtime: &Runtime, cluster: &Cluster, resolver: impl ConflictResolver) -> GlobalRegistry {
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            local: cluster.local().node_name(),
            cluster: cluster.clone(),
            runtime: runtime.downgrade(),
            tasks: tokio::runtime::Handle::current(),
            table: RwLock::default(),
            announce: Mutex::new(()),
            events,
            resolver: Box::new(resolver),
        });
        // Peers that connected before the handler was installed count as connected (their syncs are taken), and
        // still need our table: marked before the handler exists, announced to after.
        for node in cluster.connected() {
            inner.write().node_up(node.node_name());
        }
        cluster.set_handler(FrameKind::Registry, SyncHandler(Arc::downgrade(&inner)));
        // Their full syncs may have come before the handler and been dropped: ask for them again.
        for node in cluster.connected() {
            inner.write().node_up(node.node_name());
            inner.send_full(&node, true);
        }
        GlobalRegistry { inner }
    }

    /// Registers `pid` under `name` across the cluster. `pid` may live on any node; the name is freed when the
    /// process exits (or its node goes down). Fails if the name is held by another process anywhere this node
    /// knows of. Registering the same pid under the same name again is a no-op.
    ///
    /// Two nodes registering one name at the same moment can both succeed locally; the conflict rule then picks
    /// one owner on every node (see [`ConflictResolver`]).
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), RegisterError> {
        let runtime = self.inner.runtime.upgrade().ok_or(RegisterError::Stopped)?;
        if !runtime.is_remote(pid) && !runtime.is_alive(pid) {
            return Err(RegisterError::NoProc(pid.clone()));
        }
        let entry = GlobalName {
            name: name.to_owned(),
            pid: pid.clone(),
            registered_at_ms: now_ms(),
            registrar: self.inner.local.clone(),
        };
        let _announcing = self.inner.announcing();
        {
            let mut table = self.inner.write();
            if let Some(holder) = table.get(name) {
                if holder.pid == *pid {
                    return Ok(());
                }
                return Err(RegisterError::NameTaken { name: name.to_owned(), holder: holder.pid.clone() });
            }
            let watch = self.inner.tasks.spawn(watch(Arc::downgrade(&self.inner), runtime, entry.clone()));
            table.insert(entry.clone(), Some(watch.abort_handle()));
        }
        tracing::debug!(name, %pid, "global name registered");
        let _ = self.inner.events.send(RegistryEvent::Registered { name: name.to_owned(), pid: pid.clone() });
        self.inner.broadcast(RegistrySync {
            full: false,
            entries: vec![wire_entry(&entry)],
            removed: Vec::new(),
            answer_wanted: false,
        });
        Ok(())
    }

    /// Frees `name` across the cluster. Returns false if it is not registered, or was registered by another node
    /// (a node frees only the names it registered; the others go when their process exits or their node leaves).
    pub fn unregister(&self, name: &str) -> bool {
        let _announcing = self.inner.announcing();
        let change = self.inner.write().remove_if(name, &self.inner.local, None, UnregisterReason::Unregistered);
        let Some(change) = change else { return false };
        self.inner.announce_removal(change);
        true
    }

    /// The process registered under `name`, from this node's replica (no network round trip).
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.read().get(name).map(|entry| entry.pid.clone())
    }

    /// Whether `name` is registered.
    pub fn is_registered(&self, name: &str) -> bool {
        self.inner.read().get(name).is_some()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.read().entries().map(|e| e.name.clone()).collect();
        names.sort();
        names
    }

    /// Every registration, sorted by name.
    pub fn entries(&self) -> Vec<GlobalName> {
        let mut entries: Vec<GlobalName> = self.inner.read().entries().cloned().collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// How many names are registered.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    /// Whether no name is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A subscription to names being registered, unregistered and contested, from now on.
    pub fn events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.inner.events.subscribe()
    }
}

impl std::fmt::Debug for GlobalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalRegistry").field("node", &self.inner.local).field("names", &self.len()).finish()
    }
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    fn announcing(&self) -> MutexGuard<'_, ()> {
        self.announce.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn broadcast(&self, sync: RegistrySync) {
        for node in self.cluster.connected() {
            if let Err(error) = self.cluster.send(&node, Frame::RegistrySync(sync.clone())) {
                // The node is going down (it will get a full sync when it is back) or hopelessly behind.
                tracing::warn!(%node, %error, "registry sync not sent");
            }
        }
    }

    /// Everything this node registered, to `node`.
    fn send_full(&self, node: &NodeId, answer_wanted: bool) {
        let _announcing = self.announcing();
        let entries = self.read().entries().filter(|e| e.registrar == self.local).map(wire_entry).collect();
        let sync = RegistrySync { full: true, entries, removed: Vec::new(), answer_wanted };
        if let Err(error) = self.cluster.send(node, Frame::RegistrySync(sync)) {
            tracing::warn!(%node, %error, "registry full sync not sent");
        }
    }

    fn announce_removal(&self, change: Change) {
        if let Change::Removed(entry, _) = &change {
            self.broadcast(RegistrySync {
                full: false,
                entries: Vec::new(),
                removed: vec![entry.name.clone()],
                answer_wanted: false,
            });
        }
        self.apply(change);
    }

    /// Turns a table change into events and, for a lost conflict, the loser's notification.
    fn apply(&self, change: Change) {
        let event = match change {
            Change::Added(entry) => {
                tracing::debug!(name = entry.name, pid = %entry.pid, "global name learned");
                RegistryEvent::Registered { name: entry.name, pid: entry.pid }
            }
            Change::Removed(entry, reason) => {
                tracing::debug!(name = entry.name, pid = %entry.pid, ?reason, "global name freed");
                RegistryEvent::Unregistered { name: entry.name, pid: entry.pid, reason }
            }
            Change::Replaced { old, new } => {
                let _ = self.events.send(RegistryEvent::Unregistered {
                    name: old.name,
                    pid: old.pid,
                    reason: UnregisterReason::Replaced,
                });
                RegistryEvent::Registered { name: new.name, pid: new.pid }
            }
            Change::Conflict { name, winner, loser } => {
                tracing::info!(name, winner = %winner.pid, loser = %loser.pid, "global name conflict resolved");
                if loser.pid.node() == &self.local && loser.pid != winner.pid {
                    if let Some(runtime) = self.runtime.upgrade() {
                        self.resolver.on_loser(&runtime, &name, &loser.pid, &winner.pid);
                    }
                }
                RegistryEvent::ConflictResolved { name, winner: winner.pid, loser: loser.pid }
            }
        };
        let _ = self.events.send(event);
    }

    fn receive(&self, from: &NodeId, sync: RegistrySync) {
        let registrar = from.node_name();
        // Taken before the table: a conflict this node's own registration loses is announced below.
        let _announcing = self.announcing();
        let entries: Vec<GlobalName> = sync
            .entries
            .into_iter()
            .map(|e| GlobalName {
                name: e.name,
                pid: e.pid,
                registered_at_ms: e.registered_at_ms,
                registrar: registrar.clone(),
            })
            .collect();
        let changes = {
            let mut table = self.write();
            if !table.is_connected(&registrar) {
                tracing::debug!(%from, "registry sync from a connection already reported down; dropped");
                return;
            }
            let mut changes = Vec::new();
            for name in &sync.removed {
                changes.extend(table.remove_if(name, &registrar, None, UnregisterReason::Unregistered));
            }
            if sync.full {
                changes.extend(table.replace_from(&registrar, entries, self.resolver.as_ref()));
            } else {
                changes.extend(entries.into_iter().filter_map(|e| table.merge(e, self.resolver.as_ref())));
            }
            changes
        };
        for change in changes {
            // Our own registration lost: the nodes that still hold it learn it from us, its registrar.
            if let Change::Conflict { loser, winner, .. } = &change {
                if loser.registrar == self.local && winner.registrar != self.local {
                    let removed = vec![loser.name.clone()];
                    self.broadcast(RegistrySync { full: false, entries: Vec::new(), removed, answer_wanted: false });
                }
            }
            self.apply(change);
        }
    }
}

/// Frees a name this node registered when its process exits (or its node is lost).
async fn watch(registry: Weak<Inner>, runtime: Runtime, entry: GlobalName) {
    let down = runtime.monitor(&entry.pid).await;
    drop(runtime);
    let Some(registry) = registry.upgrade() else { return };
    let _announcing = registry.announcing();
    let reason = if down.reason == noex_core::ExitReason::NoConnection {
        UnregisterReason::NodeDown
    } else {
        UnregisterReason::ProcessExited
    };
    let change = registry.write().remove_if(&entry.name, &registry.local, Some(&entry.pid), reason);
    if let Some(change) = change {
        registry.announce_removal(change);
    }
}

struct SyncHandler(Weak<Inner>);

impl FrameHandler for SyncHandler {
    fn handle(&self, from: &NodeId, frame: Frame) {
        let Some(registry) = self.0.upgrade() else { return };
        match frame {
            Frame::RegistrySync(sync) => {
                let answer_wanted = sync.answer_wanted;
                registry.receive(from, sync);
                if answer_wanted {
                    registry.send_full(from, false);
                }
            }
            other => tracing::debug!(%from, ?other, "unexpected frame for the registry"),
        }
    }

    fn node_up(&self, node: &NodeInfo) {
        let Some(registry) = self.0.upgrade() else { return };
        registry.write().node_up(node.node.node_name());
        // Not here: sending takes the cluster's lock, which our caller holds.
        let node = node.node.clone();
        let weak = self.0.clone();
        registry.tasks.spawn(async move {
            if let Some(registry) = weak.upgrade() {
                registry.send_full(&node, false);
            }
        });
    }

    fn node_down(&self, node: &NodeInfo, _reason: DownReason) {
        let Some(registry) = self.0.upgrade() else { return };
        let changes = registry.write().remove_node(&node.node.node_name(), &registry.local);
        for change in changes {
            registry.apply(change);
        }
    }
}

fn wire_entry(entry: &GlobalName) -> RegistryEntry {
    RegistryEntry { name: entry.name.clone(), pid: entry.pid.clone(), registered_at_ms: entry.registered_at_ms }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
