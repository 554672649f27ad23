//! `Node`: a runtime, its cluster membership, its global registry, its process groups and its distribution layer,
//! wired together.

use std::time::Duration;

use noex_cluster::{Cluster, ClusterConfig, NodeId, StartError};
use noex_core::{Runtime, RuntimeConfig};
use noex_pg::{DEFAULT_SCOPE, ProcessGroups, Scopes};
use noex_registry::GlobalRegistry;

use crate::Remote;

/// One node of a noex-rs cluster. A value: several can run in one OS process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Node {
    runtime: Runtime,
    cluster: Cluster,
    registry: GlobalRegistry,
    scopes: Scopes,
    groups: ProcessGroups,
    remote: Remote,
}

impl Node {
    /// Starts a node: joins the cluster described by `config` (binding its port, dialing its seeds), and starts
    /// the runtime for its processes, the global registry, the process groups' default scope and the
    /// distribution layer.
    pub async fn start(config: ClusterConfig) -> Result<Node, StartError> {
        Self::start_with(config, RuntimeConfig::default()).await
    }

    /// Starts a node with runtime settings (its node name and creation are the cluster's, whatever they say).
    pub async fn start_with(config: ClusterConfig, runtime: RuntimeConfig) -> Result<Node, StartError> {
        let node = Self::bind_with(config, runtime).await?;
        node.open();
        Ok(node)
    }

    /// Builds a node whose cluster neither accepts nor dials yet: layers above (an observer service, say) can
    /// install their frame handlers before any peer frame arrives. [`open`](Self::open) joins the cluster.
    pub async fn bind(config: ClusterConfig) -> Result<Node, StartError> {
        Self::bind_with(config, RuntimeConfig::default()).await
    }

    /// [`bind`](Self::bind) with runtime settings.
    pub async fn bind_with(config: ClusterConfig, runtime: RuntimeConfig) -> Result<Node, StartError> {
        // Opened only once every layer has its frame handler: no peer frame can arrive before.
        let cluster = Cluster::bind(config).await?;
        let runtime = Runtime::with_config(RuntimeConfig {
            node: cluster.local().node_name(),
            creation: cluster.creation(),
            ..runtime
        });
        let registry = GlobalRegistry::start(&runtime, &cluster);
        let scopes = Scopes::start(&runtime, &cluster);
        let groups = scopes.scope(DEFAULT_SCOPE).expect("the default scope's name is valid");
        let remote = Remote::start(&runtime, &cluster, &registry);
        Ok(Node { runtime, cluster, registry, scopes, groups, remote })
    }

    /// Joins the cluster of a node made by [`bind`](Self::bind): accepts connections and dials the seeds.
    pub fn open(&self) {
        self.cluster.open();
    }

    /// This node's id, `name@host:port`.
    pub fn id(&self) -> &NodeId {
        self.cluster.local()
    }

    /// The node's processes.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The node's cluster membership.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The node's replica of the global registry.
    pub fn registry(&self) -> &GlobalRegistry {
        &self.registry
    }

    /// A typed reference to the process registered globally as `name`, on whatever node it runs; `None` if the
    /// name is free (see [`GlobalRegistry::whereis_ref`]).
    pub fn whereis_global<S>(&self, name: &str) -> Option<noex_core::ServerRef<S>>
    where
        S: noex_core::GenServer,
        S::Call: noex_core::Encodable,
        S::Cast: noex_core::Encodable,
        S::Reply: noex_core::Encodable,
    {
        self.registry.whereis_ref(name)
    }

    /// The node's process groups in the default scope ([`DEFAULT_SCOPE`]), shared with every other node's
    /// (Erlang's `pg` with its default scope).
    pub fn groups(&self) -> &ProcessGroups {
        &self.groups
    }

    /// The node's process group scopes: [`Scopes::scope`] starts (or finds) another scope, independent of the
    /// default one.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// The node's distribution layer (remote spawn, calls by name, behaviours).
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Leaves the cluster gracefully, in OTP's order: first every local process stops (newest root first,
    /// supervisors stopping their children in reverse start order; `terminate` runs with `shutdown`; processes
    /// linked with processes of other nodes send them exit signals `shutdown`; monitors on other nodes get
    /// `DOWN`s with the real reasons), while the node is still connected; then the node says goodbye, after
    /// everything queued before it (peers see `graceful_shutdown`).
    ///
    /// Bounded: processes get `timeout` in all, then what still runs is killed and given at most 0.25 s more (see
    /// [`Runtime::shutdown`]); the goodbye waits at most half a second for a peer that does not read
    /// ([`Cluster::shutdown`]): `timeout` + 0.75 s in the worst case.
    pub async fn shutdown(&self, timeout: Duration) {
        self.runtime.shutdown(timeout).await;
        self.cluster.shutdown().await;
    }

    /// Drops every connection without a goodbye, as a crash would, and kills nothing: for tests and fault drills.
    pub async fn crash(&self) {
        self.cluster.crash().await;
    }
}
