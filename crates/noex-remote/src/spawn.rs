//! Remote spawn: the behaviours a node lets other nodes start (the allow-list), and the options and errors of
//! a spawn request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use noex_core::{BoxFuture, ChildSpec, Encodable, GenServer, Pid, Restart, Runtime, StartError, StartOptions};
pub use noex_proto::Registration;
use noex_proto::SpawnFailure;

/// How long [`Remote::spawn`](crate::Remote::spawn) waits by default.
pub const DEFAULT_SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

type StartFn = dyn Fn(Runtime, Bytes, StartOptions) -> BoxFuture<Result<Pid, SpawnFailure>> + Send + Sync;
type ChildFn = dyn Fn(String, Bytes) -> Result<ChildSpec, SpawnFailure> + Send + Sync;

/// How a behaviour is started: as a process of its own, or as a supervisor's child.
#[derive(Clone)]
pub(crate) struct Factory {
    pub(crate) start: Arc<StartFn>,
    pub(crate) child: Arc<ChildFn>,
}

/// The behaviours this node can start for other nodes, by name. Only these can be spawned remotely: a name
/// that is not here is refused. Register the same behaviours under the same names on every node that should
/// host them. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Behaviours {
    factories: Arc<RwLock<HashMap<String, Factory>>>,
}

impl Behaviours {
    /// Registers `factory` under `name`: it builds the server from the spawn's decoded init arguments `A` (a
    /// prost message, or `()` for none), or refuses them with a message. The server's messages must be
    /// encodable, since they will come from other nodes. Replaces an earlier registration of `name`.
    pub fn register<S, A, F>(&self, name: &str, factory: F)
    where
        S: GenServer,
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
        A: Encodable,
        F: Fn(A) -> Result<S, String> + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let for_children = factory.clone();
        let child: Arc<ChildFn> = Arc::new(move |id: String, args: Bytes| {
            // Checked now, so that bad arguments are the requester's error, not a child that cannot start.
            A::decode_wire(args.clone()).map_err(SpawnFailure::BadArguments)?;
            let factory = for_children.clone();
            let make = move || factory(A::decode_wire(args.clone())?);
            Ok(ChildSpec::try_encodable_worker(id, make))
        });
        let start: Arc<StartFn> = Arc::new(move |runtime: Runtime, args: Bytes, options: StartOptions| {
            let factory = factory.clone();
            Box::pin(async move {
                let args = A::decode_wire(args).map_err(SpawnFailure::BadArguments)?;
                let server = factory(args).map_err(SpawnFailure::BadArguments)?;
                match runtime.start_encodable(server, options).await {
                    Ok(server) => Ok(server.pid().clone()),
                    Err(StartError::NameTaken { name, .. }) => Err(SpawnFailure::NameTaken(name)),
                    Err(StartError::Init(reason)) => Err(SpawnFailure::InitFailed(reason.to_string())),
                    Err(StartError::InitTimeout(_)) => Err(SpawnFailure::Timeout),
                    Err(other) => Err(SpawnFailure::InitFailed(other.to_string())),
                }
            })
        });
        self.write().insert(name.to_owned(), Factory { start, child });
    }

    /// Removes a behaviour; returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.write().remove(name).is_some()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.read().unwrap_or_else(|p| p.into_inner()).contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.factories.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<Factory> {
        self.factories.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Factory>> {
        self.factories.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Behaviours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Options for [`Remote::spawn`](crate::Remote::spawn).
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    /// The name to register the new process under, if any.
    pub name: Option<String>,
    /// Where the name is registered: `Local` (on the target node), `Global` (cluster-wide) or `None` (not at
    /// all). Ignored without a name.
    pub registration: Registration,
    /// The encoded init arguments, decoded by the behaviour's factory.
    pub init_args: Bytes,
    /// How long to wait for the process to be started (and registered). Default 10 s.
    pub timeout: Duration,
    /// A process of the requesting node to link the new process with, before its `init` runs (Erlang's
    /// `spawn_link`, made atomic on the target node): if either ends abnormally, the other gets the exit signal.
    pub link: Option<Pid>,
    /// A supervisor of the target node to start the process under, as a child with restart type `restart`: it is
    /// restarted there by that supervisor's strategy (with the same init arguments and name).
    pub supervisor: Option<Pid>,
    /// The child's restart type, with `supervisor`. Default `Permanent`.
    pub restart: Restart,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            name: None,
            registration: Registration::None,
            init_args: Bytes::new(),
            timeout: DEFAULT_SPAWN_TIMEOUT,
            link: None,
            supervisor: None,
            restart: Restart::Permanent,
        }
    }
}

impl SpawnOptions {
    /// Registers the new process under `name` on its node.
    pub fn named(name: impl Into<String>) -> Self {
        SpawnOptions { name: Some(name.into()), registration: Registration::Local, ..Self::default() }
    }

    /// Registers the new process under `name` in the global registry.
    pub fn global(name: impl Into<String>) -> Self {
        SpawnOptions { name: Some(name.into()), registration: Registration::Global, ..Self::default() }
    }

    /// Sets the init arguments.
    pub fn args(mut self, args: &impl Encodable) -> Self {
        self.init_args = args.encode_wire();
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Links the new process with `pid`, a process of the requesting node, before its `init` runs.
    pub fn link(mut self, pid: &Pid) -> Self {
        self.link = Some(pid.clone());
        self
    }

    pub(crate) fn bonds(&self) -> Option<Box<noex_proto::SpawnBonds>> {
        let plain = self.link.is_none() && self.supervisor.is_none() && self.restart == Restart::Permanent;
        let bonds = noex_proto::SpawnBonds {
            link: self.link.clone(),
            supervisor: self.supervisor.clone(),
            restart: self.restart,
        };
        (!plain).then(|| Box::new(bonds))
    }

    /// Starts the new process as a child of `supervisor` (a supervisor of the target node), with restart type
    /// `restart`.
    pub fn supervised_by(mut self, supervisor: &Pid, restart: Restart) -> Self {
        self.supervisor = Some(supervisor.clone());
        self.restart = restart;
        self
    }
}

/// Why a remote spawn failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The target node has no behaviour registered under that name.
    #[error("behaviour '{0}' is not registered on the target node")]
    UnknownBehaviour(String),
    /// The server's `init` failed (or it panicked, or was killed while starting).
    #[error("init failed: {0}")]
    InitFailed(String),
    /// The requested name is taken (on the target node, or globally).
    #[error("name '{0}' is already registered")]
    NameTaken(String),
    /// The init arguments did not decode, or the factory refused them.
    #[error("bad init arguments: {0}")]
    BadArguments(String),
    /// No answer within the timeout. A process that starts after this is stopped, never left behind.
    #[error("spawn timed out after {0:?}")]
    Timeout(Duration),
    /// The target node is not connected, or was lost before it answered.
    #[error("node not connected")]
    NoConnection,
    /// The target node answered something that makes no sense.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl SpawnError {
    pub(crate) fn from_failure(failure: SpawnFailure, timeout: Duration) -> Self {
        match failure {
            SpawnFailure::Timeout => SpawnError::Timeout(timeout),
            SpawnFailure::UnknownBehaviour(name) => SpawnError::UnknownBehaviour(name),
            SpawnFailure::InitFailed(message) => SpawnError::InitFailed(message),
            SpawnFailure::NameTaken(name) => SpawnError::NameTaken(name),
            SpawnFailure::BadArguments(message) => SpawnError::BadArguments(message),
        }
    }
}
