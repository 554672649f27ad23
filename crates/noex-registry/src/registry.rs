//! `GlobalRegistry`: the node's replica of the cluster-wide name table, kept in sync through `RegistrySync` frames.
//!
//! Every node holds the whole table, so `whereis` never touches the network. A node announces only what it
//! registered itself: an incremental sync to every peer when it registers or frees a name, and a full sync (in
//! chunks, see `sync.rs`) to a peer that comes up. A node that goes down takes its registrations (and the names
//! of its processes) with it on every other node.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use noex_cluster::{Cluster, DownReason, FrameHandler, FrameKind, NodeId, NodeInfo};
use noex_core::{NodeName, Pid, Runtime, WeakRuntime};
use noex_proto::{Frame, RegistryEntry, RegistrySync};
use tokio::sync::broadcast;

use crate::sync::{send_full, split_removed};
use crate::table::{Change, Table};
use crate::watch::Watches;
use crate::{
    ConflictResolver, FirstNodeWins, GlobalName, MAX_NAME_LEN, RegisterError, RegistryEvent, UnregisterReason,
};

/// One node's replica of the global registry. Cheap to clone.
#[derive(Clone)]
pub struct GlobalRegistry {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    local: NodeName,
    pub(crate) cluster: Cluster,
    runtime: WeakRuntime,
    tasks: tokio::runtime::Handle,
    table: RwLock<Table>,
    /// Held from a change of this node's own registrations until its announcement is queued, so that peers get
    /// the announcements in the order of the changes (an add is never overtaken by its own removal); it guards
    /// the processes watched for those registrations. Taken before the table lock, never under it, and never
    /// from the cluster's membership callbacks.
    announce: Mutex<Watches>,
    events: broadcast::Sender<RegistryEvent>,
    resolver: Box<dyn ConflictResolver>,
    /// The number of the next full sync this node sends.
    pub(crate) next_sync: AtomicU64,
    /// Membership changes (node, up) not yet applied to the table: the cluster's callbacks only queue them here,
    /// so they never wait for the table lock (held while a chunk merges or a lost node's names go).
    membership: Mutex<Vec<(NodeName, bool)>>,
    membership_changed: AtomicBool,
}

impl GlobalRegistry {
    /// Starts the registry of the node made of `runtime` and `cluster`, with the default conflict rule
    /// ([`FirstNodeWins`]). It takes the cluster's registry frames; start one per node.
    pub fn start(runtime: &Runtime, cluster: &Cluster) -> GlobalRegistry {
        Self::with_resolver(runtime, cluster, FirstNodeWins)
    }

    /// Starts the registry with another conflict rule. Every node of the cluster must use the same one.
    pub fn with_resolver(runtime: &Runtime, cluster: &Cluster, resolver: impl ConflictResolver) -> GlobalRegistry {
        let (events, _) = broadcast::channel(1024);
        let local = cluster.local().node_name();
        let (watches, inbox) = Watches::new(&local);
        let inner = Arc::new(Inner {
            local: local.clone(),
            cluster: cluster.clone(),
            runtime: runtime.downgrade(),
            tasks: tokio::runtime::Handle::current(),
            table: RwLock::new(Table::new(local)),
            announce: Mutex::new(watches),
            events,
            resolver: Box::new(resolver),
            next_sync: AtomicU64::new(1),
            membership: Mutex::default(),
            membership_changed: AtomicBool::new(false),
        });
        inner.tasks.spawn(crate::watch::run(Arc::downgrade(&inner), runtime.downgrade(), inbox));
        // Peers that connected before the handler was installed count as connected (their syncs are taken), and
        // still need our table: marked before the handler exists, announced to after.
        for node in cluster.connected() {
            inner.write().node_up(node.node_name());
        }
        cluster.set_handler(FrameKind::Registry, SyncHandler(Arc::downgrade(&inner)));
        // Their full syncs may have come before the handler and been dropped: ask for them again.
        for node in cluster.connected() {
            inner.write().node_up(node.node_name());
            inner.tasks.spawn(send_full(Arc::downgrade(&inner), node, true));
        }
        GlobalRegistry { inner }
    }

    /// Registers `pid` under `name` across the cluster. `pid` may live on any node; the name is freed when the
    /// process exits (or its node goes down). Fails if the name is held by another process anywhere this node
    /// knows of. Registering the same pid under the same name again is a no-op.
    ///
    /// When a name is freed: on the registering node, as soon as its process has ended (a name held by a local
    /// process that ended is free for `register` at once, so a restarted child takes its name back); on the other
    /// nodes, when they get the removal, a network hop later; everywhere, when the registering node is reported
    /// down.
    ///
    /// Two nodes registering one name at the same moment can both succeed locally; the conflict rule then picks
    /// one owner on every node (see [`ConflictResolver`]). A name of a node that went down is free again as soon
    /// as that node is reported down (`register` never fails on it with `NameTaken`).
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), RegisterError> {
        if name.len() > MAX_NAME_LEN {
            return Err(RegisterError::NameTooLong { len: name.len(), limit: MAX_NAME_LEN });
        }
        let runtime = self.inner.runtime.upgrade().ok_or(RegisterError::Stopped)?;
        if !runtime.is_remote(pid) && !runtime.is_alive(pid) {
            return Err(RegisterError::NoProc(pid.clone()));
        }
        // The name of a local process that has ended is free now, not only once the watch task gets to its DOWN: a
        // supervisor restarting a child under the same name must never find the dead predecessor there.
        let ended = self
            .inner
            .read()
            .get(name)
            .map(|holder| holder.pid.clone())
            .filter(|holder| holder != pid && !runtime.is_remote(holder) && !runtime.is_alive(holder));
        if let Some(ended) = ended {
            self.inner.process_ended(&ended, UnregisterReason::ProcessExited);
        }
        let mut watches = self.inner.announcing();
        {
            let mut table = self.inner.write();
            if let Some(holder) = table.get(name) {
                if holder.pid == *pid {
                    return Ok(());
                }
                return Err(RegisterError::NameTaken { name: name.to_owned(), holder: holder.pid.clone() });
            }
            let key = table.insert_local(name, pid.clone());
            drop(table);
            watches.watch(&runtime, key, pid);
        }
        tracing::debug!(name, %pid, "global name registered");
        if self.inner.events.receiver_count() > 0 {
            let _ = self.inner.events.send(RegistryEvent::Registered { name: name.to_owned(), pid: pid.clone() });
        }
        let entries = vec![RegistryEntry { name: name.to_owned(), pid: pid.clone() }];
        self.inner.broadcast(RegistrySync { full: None, entries, removed: Vec::new(), answer_wanted: false });
        Ok(())
    }

    /// Frees `name` across the cluster. Returns false if it is not registered, or was registered by another node
    /// (a node frees only the names it registered; the others go when their process exits or their node leaves).
    pub fn unregister(&self, name: &str) -> bool {
        let mut watches = self.inner.announcing();
        let change = self.inner.write().remove_if(name, &self.inner.local, None, UnregisterReason::Unregistered);
        let Some(change) = change else { return false };
        if let Change::Removed { pid, .. } = &change {
            watches.forget(self.inner.runtime.upgrade().as_ref(), name, pid);
        }
        self.inner.broadcast_removed(vec![name.to_owned()]);
        self.inner.apply(change);
        true
    }

    /// This node's runtime, unless it is gone.
    pub(crate) fn runtime(&self) -> Option<Runtime> {
        self.inner.runtime.upgrade()
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
        let mut names: Vec<String> = self.inner.read().names().map(|name| name.to_string()).collect();
        names.sort();
        names
    }

    /// Every registration, sorted by name.
    pub fn entries(&self) -> Vec<GlobalName> {
        let mut entries: Vec<GlobalName> = self.inner.read().entries().collect();
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
    /// The table for reading, once the names of lost nodes are gone (see `write`).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Table> {
        loop {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            if !table.has_lost() && !self.membership_changed.load(Ordering::Acquire) {
                return table;
            }
            drop(table);
            drop(self.write());
        }
    }

    /// The table for a change. Queued membership changes are applied and the names of nodes reported down
    /// removed first (their events sent under the lock, so they precede any later change's), so nothing observes
    /// a lost node's names once `node_down` has run, and a name it held can be registered again at once.
    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        if self.membership_changed.swap(false, Ordering::AcqRel) {
            let changes = std::mem::take(&mut *self.membership.lock().unwrap_or_else(|p| p.into_inner()));
            for (node, up) in changes {
                if up {
                    table.node_up(node);
                } else {
                    table.node_down(&node);
                }
            }
        }
        if table.has_lost() {
            let changes = table.flush_lost();
            tracing::debug!(names = changes.len(), "names of lost nodes removed");
            for change in changes {
                self.apply(change);
            }
        }
        table
    }

    /// Queues a membership change for the table (see `membership`). Quick: for the cluster's callbacks.
    fn membership_change(&self, node: NodeName, up: bool) {
        self.membership.lock().unwrap_or_else(|p| p.into_inner()).push((node, up));
        self.membership_changed.store(true, Ordering::Release);
    }

    pub(crate) fn announcing(&self) -> MutexGuard<'_, Watches> {
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

    /// Announces removals, in frames of a bounded size however many names go at once.
    fn broadcast_removed(&self, names: Vec<String>) {
        for removed in split_removed(names) {
            self.broadcast(RegistrySync { full: None, entries: Vec::new(), removed, answer_wanted: false });
        }
    }

    /// A process this node registered names for ended: its names go, here and (announced) everywhere.
    pub(crate) fn process_ended(&self, pid: &Pid, reason: UnregisterReason) {
        let mut watches = self.announcing();
        let names = watches.take(pid);
        if names.is_empty() {
            return;
        }
        let changes: Vec<Change> = {
            let mut table = self.write();
            names.iter().filter_map(|name| table.remove_if(name, &self.local, Some(pid), reason)).collect()
        };
        let removed = changes
            .iter()
            .filter_map(|change| match change {
                Change::Removed { name, .. } => Some(name.to_string()),
                _ => None,
            })
            .collect();
        self.broadcast_removed(removed);
        drop(watches);
        for change in changes {
            self.apply(change);
        }
    }

    /// Turns a table change into events and, for a lost conflict, the loser's notification. Events are built
    /// only for a subscriber: a full sync of a million names costs no event when nobody listens.
    fn apply(&self, change: Change) {
        let listening = self.events.receiver_count() > 0;
        let event = match change {
            Change::Added { name, pid } => {
                tracing::trace!(name = &*name, %pid, "global name learned");
                listening.then(|| RegistryEvent::Registered { name: name.to_string(), pid })
            }
            Change::Removed { name, pid, reason, .. } => {
                tracing::trace!(name = &*name, %pid, ?reason, "global name freed");
                listening.then(|| RegistryEvent::Unregistered { name: name.to_string(), pid, reason })
            }
            Change::Replaced { name, old, new } => {
                if listening {
                    let reason = UnregisterReason::Replaced;
                    let _ = self.events.send(RegistryEvent::Unregistered { name: name.to_string(), pid: old, reason });
                }
                listening.then(|| RegistryEvent::Registered { name: name.to_string(), pid: new })
            }
            Change::Conflict { winner, loser } => {
                let name = winner.name;
                tracing::info!(name, winner = %winner.pid, loser = %loser.pid, "global name conflict resolved");
                if loser.pid.node() == &self.local && loser.pid != winner.pid {
                    if let Some(runtime) = self.runtime.upgrade() {
                        self.resolver.on_loser(&runtime, &name, &loser.pid, &winner.pid);
                    }
                }
                Some(RegistryEvent::ConflictResolved { name, winner: winner.pid, loser: loser.pid })
            }
        };
        if let Some(event) = event {
            let _ = self.events.send(event);
        }
    }

    fn receive(&self, from: &NodeId, sync: RegistrySync) {
        let registrar = from.node_name();
        // Taken before the table: a conflict this node's own registration loses is announced below.
        let mut watches = self.announcing();
        let changes = self.write().receive(&registrar, sync, self.resolver.as_ref());
        let Some(changes) = changes else {
            tracing::debug!(%from, "registry sync from a connection already reported down; dropped");
            return;
        };
        let mut lost = Vec::new();
        for change in &changes {
            // Our own registration lost: the nodes that still hold it learn it from us, its registrar.
            if let Change::Conflict { loser, winner } = change {
                if loser.registrar == self.local && winner.registrar != self.local {
                    watches.forget(self.runtime.upgrade().as_ref(), &loser.name, &loser.pid);
                    lost.push(loser.name.clone());
                }
            }
        }
        if !lost.is_empty() {
            self.broadcast_removed(lost);
        }
        drop(watches);
        for change in changes {
            self.apply(change);
        }
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
                    registry.tasks.spawn(send_full(self.0.clone(), from.clone(), false));
                }
            }
            other => tracing::debug!(%from, ?other, "unexpected frame for the registry"),
        }
    }

    fn node_up(&self, node: &NodeInfo) {
        let Some(registry) = self.0.upgrade() else { return };
        registry.membership_change(node.node.node_name(), true);
        // Not here: sending takes the cluster's lock, which our caller holds.
        registry.tasks.spawn(send_full(self.0.clone(), node.node.clone(), false));
    }

    fn node_down(&self, node: &NodeInfo, _reason: DownReason) {
        let Some(registry) = self.0.upgrade() else { return };
        // Only queued here, under the membership lock; the names go in a task (or before the next use of the
        // table, whichever comes first).
        registry.membership_change(node.node.node_name(), false);
        let weak = self.0.clone();
        registry.tasks.spawn(async move {
            if let Some(registry) = weak.upgrade() {
                drop(registry.write());
            }
        });
    }
}
