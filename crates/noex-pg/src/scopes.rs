//! `Scopes`: a node's process group scopes, and the one frame handler that the cluster gives every `GroupsSync`
//! (dispatched by scope name) and every membership change (passed on to each scope).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use noex_cluster::{Cluster, DownReason, FrameHandler, FrameKind, NodeId, NodeInfo, NodeStatus};
use noex_core::{Runtime, WeakRuntime};
use noex_proto::Frame;

use crate::scope::Scope;
use crate::{GroupsError, MAX_SCOPE_LEN, ProcessGroups};

/// A node's process group scopes. Start one per node, before the node opens its cluster (`noex_remote::Node`
/// does), so that no peer frame arrives before its handler. Cheap to clone.
#[derive(Clone)]
pub struct Scopes {
    inner: Arc<Host>,
}

struct Host {
    cluster: Cluster,
    runtime: WeakRuntime,
    /// The scopes started, by name. Held for as long as the node runs: a scope is never stopped.
    scopes: RwLock<HashMap<Arc<str>, Arc<Scope>>>,
}

impl Scopes {
    /// Takes the cluster's process group frames for the node made of `runtime` and `cluster`. No scope runs yet:
    /// start them with [`scope`](Self::scope).
    pub fn start(runtime: &Runtime, cluster: &Cluster) -> Scopes {
        let inner =
            Arc::new(Host { cluster: cluster.clone(), runtime: runtime.downgrade(), scopes: RwLock::default() });
        cluster.set_handler(FrameKind::Groups, Handler(Arc::downgrade(&inner)));
        Scopes { inner }
    }

    /// The scope `name` of this node, started on first use. Scopes are independent of each other; a scope
    /// exchanges memberships only with the scope of the same name on other nodes (a node that does not run it
    /// ignores its frames, and gets the memberships when it starts it). A name has 1 to [`MAX_SCOPE_LEN`] bytes.
    /// Call it within the Tokio runtime the node runs on (a new scope spawns its tasks there).
    pub fn scope(&self, name: &str) -> Result<ProcessGroups, GroupsError> {
        if name.is_empty() || name.len() > MAX_SCOPE_LEN {
            return Err(GroupsError::BadName { what: "scope", len: name.len(), limit: MAX_SCOPE_LEN });
        }
        if let Some(scope) = self.inner.read().get(name) {
            return Ok(scope.handle());
        }
        let scope = Scope::new(name.into(), &self.inner.cluster, self.inner.runtime.clone());
        // Peers connected before the scope could hear of them count as connected (their frames are taken)...
        let connected = || {
            let nodes = self.inner.cluster.nodes();
            nodes.into_iter().filter(|(_, status)| *status == NodeStatus::Connected).map(|(info, _)| info)
        };
        for node in connected() {
            scope.mark_up(&node);
        }
        {
            let mut scopes = self.inner.scopes.write().unwrap_or_else(|p| p.into_inner());
            if let Some(raced) = scopes.get(name) {
                return Ok(raced.handle());
            }
            scopes.insert(name.into(), scope.clone());
        }
        // ... and, since their frames sent before the scope was in the table were dropped, each is asked for its
        // memberships again (it answers with a full sync).
        let mut asked = 0;
        for node in connected() {
            scope.node_up(&node, true);
            asked += 1;
        }
        tracing::debug!(scope = name, peers = asked, "process group scope started");
        Ok(scope.handle())
    }

    /// The names of the scopes started on this node, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.read().keys().map(|name| name.to_string()).collect();
        names.sort();
        names
    }
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scopes").field("node", self.inner.cluster.local()).field("scopes", &self.names()).finish()
    }
}

impl Host {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Scope>>> {
        self.scopes.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `FrameKind::Groups` handler. Holds the host weakly: the cluster drops its handlers when it stops.
struct Handler(Weak<Host>);

impl FrameHandler for Handler {
    fn handle(&self, from: &NodeId, frame: Frame) {
        let Some(host) = self.0.upgrade() else { return };
        match frame {
            Frame::GroupsSync(sync) => {
                if sync.scope.is_empty() || sync.scope.len() > MAX_SCOPE_LEN {
                    // Not logged whole: a hostile name may be megabytes long.
                    let len = sync.scope.len();
                    tracing::error!(%from, len, "groups frame with a scope name of {len} bytes (1 to {MAX_SCOPE_LEN}); dropped");
                    return;
                }
                let scope = host.read().get(sync.scope.as_str()).cloned();
                match scope {
                    Some(scope) => scope.receive(from, sync),
                    // The peer runs a scope this node does not: when this node starts it, it asks for it again.
                    None => tracing::debug!(%from, scope = sync.scope, "groups frame for a scope not started here"),
                }
            }
            other => tracing::debug!(%from, ?other, "unexpected frame for process groups"),
        }
    }

    fn node_up(&self, node: &NodeInfo) {
        let Some(host) = self.0.upgrade() else { return };
        for scope in host.read().values() {
            scope.node_up(node, false);
        }
    }

    fn node_down(&self, node: &NodeInfo, _reason: DownReason) {
        let Some(host) = self.0.upgrade() else { return };
        for scope in host.read().values() {
            scope.node_down(node);
        }
    }
}
