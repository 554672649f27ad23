//! `ProcessGroups`: one scope's groups on one node, kept in step with the same scope on the other nodes through
//! `GroupsSync` frames.
//!
//! Every node holds the whole membership of the scope, so reads never touch the network. A node announces only
//! its own processes' memberships: an incremental frame to every peer at each change, and a full sync to a peer
//! that comes up (or that asks, having started the scope late). A node that goes down takes its members with it
//! on every other node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use noex_cluster::{Cluster, NodeId, NodeInfo};
use noex_core::{NodeName, Pid, WeakRuntime};
use noex_proto::{Frame, GroupsSync};

use crate::state::{Change, Received, ScopeState};
use crate::subscription::{Subscribers, Subscription};
use crate::watch::Watches;
use crate::{GroupsError, MAX_GROUP_LEN};

/// One scope of process groups on one node (Erlang's `pg` scope). Cheap to clone; start it with
/// [`Scopes::scope`](crate::Scopes::scope).
#[derive(Clone)]
pub struct ProcessGroups {
    pub(crate) inner: Arc<Scope>,
}

pub(crate) struct Scope {
    name: Arc<str>,
    local: NodeName,
    cluster: Cluster,
    runtime: WeakRuntime,
    tasks: tokio::runtime::Handle,
    /// The table and the subscribers, under one lock: notifications go out in the order of the changes.
    shared: Mutex<Shared>,
    /// Held from a change of this node's memberships until its frames are queued (and while a full sync is cut
    /// and queued), so that peers get the announcements in the order of the changes. Guards the monitors of the
    /// local members. Taken before `shared`, never under it, and never in a membership callback.
    announce: Mutex<Watches>,
    /// Membership changes not yet applied to the table: the cluster's callbacks only queue them here (they run
    /// under the cluster's lock, and must not wait for a table being merged).
    membership: Mutex<Vec<(NodeName, Option<u32>)>>,
    membership_changed: AtomicBool,
    next_sync: AtomicU64,
}

struct Shared {
    state: ScopeState,
    subscribers: Subscribers,
}

impl ProcessGroups {
    /// The scope's name.
    pub fn scope(&self) -> &str {
        &self.inner.name
    }

    /// `pid`, a process of this node, joins `group`. A process may join a group more than once: it is then
    /// listed once per join, and leaves once per [`leave`](Self::leave). It leaves every group when it ends.
    /// Other nodes learn of it a network hop later.
    pub fn join(&self, group: &str, pid: &Pid) -> Result<(), GroupsError> {
        self.join_many(group, std::slice::from_ref(pid))
    }

    /// Several processes of this node join `group` at once (one notification, one frame per peer).
    pub fn join_many(&self, group: &str, pids: &[Pid]) -> Result<(), GroupsError> {
        check_group(group)?;
        let runtime = self.inner.runtime.upgrade().ok_or(GroupsError::Stopped)?;
        for pid in pids {
            if runtime.is_remote(pid) {
                return Err(GroupsError::NotLocal(pid.clone()));
            }
            if !runtime.is_alive(pid) {
                return Err(GroupsError::NoProc(pid.clone()));
            }
        }
        if pids.is_empty() {
            return Ok(());
        }
        let mut watches = self.inner.announcing();
        for pid in pids {
            watches.watch(&runtime, pid);
        }
        let change = self.inner.lock().change(|state| Some(state.join_local(group.into(), pids.to_vec())));
        self.inner.announce(change);
        Ok(())
    }

    /// `pid`, a process of this node, leaves `group` once. Fails with [`GroupsError::NotJoined`] if it was not
    /// a member.
    pub fn leave(&self, group: &str, pid: &Pid) -> Result<(), GroupsError> {
        self.leave_many(group, std::slice::from_ref(pid))
    }

    /// Several processes of this node leave `group`, once each; those that were not members are skipped. Fails
    /// with [`GroupsError::NotJoined`] if none was.
    pub fn leave_many(&self, group: &str, pids: &[Pid]) -> Result<(), GroupsError> {
        check_group(group)?;
        let runtime = self.inner.runtime.upgrade();
        if let Some(pid) = pids.iter().find(|pid| *pid.node() != self.inner.local) {
            return Err(GroupsError::NotLocal(pid.clone()));
        }
        let mut watches = self.inner.announcing();
        let mut shared = self.inner.lock();
        let change = shared.change(|state| state.leave_local(group, pids));
        if change.is_empty() {
            return Err(GroupsError::NotJoined { group: group.to_owned() });
        }
        for pid in pids {
            if !shared.state.is_local_member(pid) {
                watches.forget(runtime.as_ref(), pid);
            }
        }
        drop(shared);
        self.inner.announce(change);
        Ok(())
    }

    /// Every member of `group`, on every node, a pid once per membership (a local read).
    pub fn members(&self, group: &str) -> Vec<Pid> {
        self.inner.lock().state.members(group)
    }

    /// The members of `group` on this node.
    pub fn local_members(&self, group: &str) -> Vec<Pid> {
        self.inner.lock().state.local_members(group)
    }

    /// Every group with a member on some node, sorted.
    pub fn which_groups(&self) -> Vec<String> {
        sorted(self.inner.lock().state.groups().keys().map(|group| group.to_string()))
    }

    /// Every group with a member on this node, sorted.
    pub fn which_local_groups(&self) -> Vec<String> {
        let shared = self.inner.lock();
        sorted(shared.state.local_groups().into_iter().flat_map(|groups| groups.keys()).map(|g| g.to_string()))
    }

    /// Subscribes to every change of the scope's membership (Erlang's `pg:monitor_scope`): returns the current
    /// membership, and a subscription that yields every [`GroupEvent`](crate::GroupEvent) from then on, none
    /// missed and none repeated.
    pub fn monitor_scope(&self) -> (HashMap<String, Vec<Pid>>, Subscription) {
        let mut shared = self.inner.lock();
        let groups = shared.state.groups().iter().map(|(group, pids)| (group.to_string(), pids.clone())).collect();
        (groups, shared.subscribers.subscribe(None))
    }

    /// Subscribes to the changes of one group (Erlang's `pg:monitor`): returns its current members, and a
    /// subscription that yields every change of this group from then on.
    pub fn monitor(&self, group: &str) -> (Vec<Pid>, Subscription) {
        let mut shared = self.inner.lock();
        let members = shared.state.members(group);
        (members, shared.subscribers.subscribe(Some(group.into())))
    }
}

impl std::fmt::Debug for ProcessGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroups").field("scope", &self.inner.name).field("node", &self.inner.local).finish()
    }
}

impl Shared {
    /// Applies a change to the table and notifies the subscribers; the changes, to announce.
    fn change(&mut self, apply: impl FnOnce(&mut ScopeState) -> Option<Change>) -> Vec<Change> {
        let changes: Vec<Change> = apply(&mut self.state).into_iter().collect();
        changes.iter().for_each(|change| self.subscribers.notify(change));
        changes
    }
}

impl Scope {
    pub(crate) fn new(name: Arc<str>, cluster: &Cluster, runtime: WeakRuntime) -> Arc<Scope> {
        let local = cluster.local().node_name();
        let (watches, inbox) = Watches::new(&local, &name);
        let scope = Arc::new(Scope {
            name,
            local: local.clone(),
            cluster: cluster.clone(),
            runtime,
            tasks: tokio::runtime::Handle::current(),
            shared: Mutex::new(Shared { state: ScopeState::new(local), subscribers: Subscribers::default() }),
            announce: Mutex::new(watches),
            membership: Mutex::default(),
            membership_changed: AtomicBool::new(false),
            next_sync: AtomicU64::new(1),
        });
        scope.tasks.spawn(crate::watch::run(Arc::downgrade(&scope), inbox));
        scope
    }

    pub(crate) fn handle(self: &Arc<Self>) -> ProcessGroups {
        ProcessGroups { inner: self.clone() }
    }

    /// The table, once queued membership changes are applied (a node reported down has no members left).
    fn lock(&self) -> MutexGuard<'_, Shared> {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if self.membership_changed.swap(false, Ordering::AcqRel) {
            let queued = std::mem::take(&mut *self.membership.lock().unwrap_or_else(|p| p.into_inner()));
            for (node, up) in queued {
                match up {
                    Some(creation) => shared.state.node_up(node, creation),
                    None => {
                        let changes = shared.state.node_down(&node);
                        tracing::debug!(scope = &*self.name, %node, groups = changes.len(), "members of a lost node removed");
                        changes.iter().for_each(|change| shared.subscribers.notify(change));
                    }
                }
            }
        }
        shared
    }

    fn announcing(&self) -> MutexGuard<'_, Watches> {
        self.announce.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a membership change for the table. Quick: for the cluster's callbacks.
    fn queue_membership(&self, node: NodeName, creation: Option<u32>) {
        self.membership.lock().unwrap_or_else(|p| p.into_inner()).push((node, creation));
        self.membership_changed.store(true, Ordering::Release);
    }

    /// `node` is connected: its frames are taken (no sync sent).
    pub(crate) fn mark_up(&self, node: &NodeInfo) {
        self.queue_membership(node.node.node_name(), Some(node.creation));
    }

    /// `node` is connected; it gets our full sync (from a task: sending takes the cluster's lock, which the
    /// membership callbacks run under).
    pub(crate) fn node_up(self: &Arc<Self>, node: &NodeInfo, answer_wanted: bool) {
        self.queue_membership(node.node.node_name(), Some(node.creation));
        self.tasks.spawn(send_full(Arc::downgrade(self), node.node.clone(), answer_wanted));
    }

    /// `node` is gone: its members go, in a task (or at the next use of the table, whichever comes first).
    pub(crate) fn node_down(self: &Arc<Self>, node: &NodeInfo) {
        self.queue_membership(node.node.node_name(), None);
        let weak = Arc::downgrade(self);
        self.tasks.spawn(async move {
            if let Some(scope) = weak.upgrade() {
                drop(scope.lock());
            }
        });
    }

    /// A frame for this scope from `from`. A frame that breaks the protocol's rules changes nothing.
    pub(crate) fn receive(self: &Arc<Self>, from: &NodeId, sync: GroupsSync) {
        let answer_wanted = sync.answer_wanted;
        let received = {
            let mut shared = self.lock();
            let received = shared.state.receive(&from.node_name(), sync);
            if let Received::Applied(changes) = &received {
                changes.iter().for_each(|change| shared.subscribers.notify(change));
            }
            received
        };
        match received {
            Received::Applied(_) => {
                if answer_wanted {
                    self.tasks.spawn(send_full(Arc::downgrade(self), from.clone(), false));
                }
            }
            Received::NotConnected => {
                tracing::debug!(scope = &*self.name, %from, "groups frame from a connection already reported down; dropped")
            }
            Received::Invalid(reason) => {
                tracing::error!(scope = &*self.name, %from, reason, "invalid groups frame; dropped")
            }
        }
    }

    /// A local member ended: its memberships go, here and (announced) everywhere.
    pub(crate) fn local_ended(&self, pid: &Pid) {
        let mut watches = self.announcing();
        watches.ended(pid);
        let changes = {
            let mut shared = self.lock();
            let changes = shared.state.local_ended(pid);
            changes.iter().for_each(|change| shared.subscribers.notify(change));
            changes
        };
        self.announce(changes);
    }

    /// Sends this node's changes to every connected node. The caller holds the announce lock.
    fn announce(&self, changes: Vec<Change>) {
        let frames: Vec<GroupsSync> =
            changes.iter().flat_map(|change| crate::sync::incremental(&self.name, change)).collect();
        if frames.is_empty() {
            return;
        }
        for node in self.cluster.connected() {
            for frame in &frames {
                if let Err(error) = self.cluster.send(&node, Frame::GroupsSync(frame.clone())) {
                    // The node is going down: it gets a full sync when it is back.
                    tracing::debug!(scope = &*self.name, %node, %error, "groups change not sent");
                    break;
                }
            }
        }
    }
}

/// Sends this node's memberships to `node` as a full sync, all its frames queued together under the announce
/// lock, so that every later change follows the whole sync. Gives up when the connection goes: the next
/// connection gets a fresh full sync.
async fn send_full(scope: Weak<Scope>, node: NodeId, answer_wanted: bool) {
    let Some(scope) = scope.upgrade() else { return };
    let Some(sender) = scope.cluster.sender(&node) else { return };
    let id = scope.next_sync.fetch_add(1, Ordering::Relaxed);
    let _announcing = scope.announcing();
    let frames = crate::sync::full(&scope.name, scope.lock().state.local_groups(), id, answer_wanted);
    for frame in frames {
        if let Err(error) = sender.send(Frame::GroupsSync(frame)) {
            tracing::debug!(scope = &*scope.name, %node, %error, "groups full sync abandoned");
            return;
        }
    }
}

fn check_group(group: &str) -> Result<(), GroupsError> {
    if group.is_empty() || group.len() > MAX_GROUP_LEN {
        return Err(GroupsError::BadName { what: "group", len: group.len(), limit: MAX_GROUP_LEN });
    }
    Ok(())
}

fn sorted(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.collect();
    names.sort();
    names
}
