//! What a supervisor is told: its strategy, its restart intensity, and how to start each child.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::encoded::EncodedDelivery;
use crate::process::ProcessCell;
use crate::runtime::Spawn;
use crate::supervisor::server::SupervisorServer;
use crate::supervisor::supervisor_spawn;
use crate::{Encodable, GenServer, Pid, Registrar, Runtime, StartError, StartOptions};

/// Which children a supervisor restarts when one ends and must be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Only that child.
    OneForOne,
    /// All children: the others are stopped (in reverse order), then all are started again (in order).
    OneForAll,
    /// That child and the children started after it.
    RestForOne,
}

/// When a child that ended is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `normal` or `shutdown`).
    Transient,
    /// Never; its spec is removed when it ends.
    Temporary,
}

/// How a supervisor stops a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Ask it to stop (its `terminate` runs) and kill it past this timeout.
    Timeout(Duration),
    /// Ask it to stop and wait as long as it takes (the default for supervisors).
    Infinity,
    /// Kill it at once.
    BrutalKill,
}

/// Whether a child is a worker or a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// A server.
    Worker,
    /// A supervisor.
    Supervisor,
}

/// What starts a child: given the supervisor to link to, starts the process and returns its pid.
type StartFn = Arc<dyn Fn(ChildStart) -> BoxFuture<'static, Result<Pid, StartError>> + Send + Sync>;

/// How to start and treat one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: Arc<str>,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) name: Option<String>,
    pub(crate) registrar: Option<Registrar>,
    pub(crate) init_timeout: Option<Duration>,
}

/// Passed to a start function: the runtime, the supervisor to link to, and how to name the child.
pub(crate) struct ChildStart {
    pub(crate) runtime: Runtime,
    pub(crate) supervisor: Arc<dyn ProcessCell>,
    pub(crate) name: Option<String>,
    pub(crate) registrar: Option<Registrar>,
    pub(crate) init_timeout: Option<Duration>,
}

impl ChildStart {
    fn options(&mut self) -> StartOptions {
        StartOptions {
            name: self.name.take(),
            registrar: self.registrar.take(),
            init_timeout: self.init_timeout,
            ..StartOptions::default()
        }
    }
}

impl ChildSpec {
    /// A worker built by `make` each time it is (re)started. Permanent, with a 5 s shutdown timeout.
    pub fn worker<S, F>(id: impl Into<Arc<str>>, make: F) -> Self
    where
        S: GenServer,
        F: Fn() -> S + Send + Sync + 'static,
    {
        Self::worker_with(id, make, None)
    }

    /// A worker that other nodes can call and cast to, as [`Runtime::start_encodable`] starts it: its message
    /// types are [`Encodable`]. Permanent, with a 5 s shutdown timeout. Give it a global name with
    /// [`registered`](Self::registered) and it is found, and reached, from any node across restarts.
    pub fn encodable_worker<S, F>(id: impl Into<Arc<str>>, make: F) -> Self
    where
        S: GenServer,
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
        F: Fn() -> S + Send + Sync + 'static,
    {
        Self::worker_with(id, make, Some(crate::encoded::delivery::<S>()))
    }

    /// [`encodable_worker`](Self::encodable_worker) whose `make` may refuse (its arguments no longer make a
    /// server, say): the start then fails as a failing `init` would, and the supervisor treats it so.
    pub fn try_encodable_worker<S, F>(id: impl Into<Arc<str>>, make: F) -> Self
    where
        S: GenServer,
        S::Call: Encodable,
        S::Cast: Encodable,
        S::Reply: Encodable,
        F: Fn() -> Result<S, String> + Send + Sync + 'static,
    {
        Self::fallible(id, make, Some(crate::encoded::delivery::<S>()))
    }

    fn worker_with<S, F>(id: impl Into<Arc<str>>, make: F, encoded: Option<EncodedDelivery<S>>) -> Self
    where
        S: GenServer,
        F: Fn() -> S + Send + Sync + 'static,
    {
        Self::fallible(id, move || Ok(make()), encoded)
    }

    fn fallible<S, F>(id: impl Into<Arc<str>>, make: F, encoded: Option<EncodedDelivery<S>>) -> Self
    where
        S: GenServer,
        F: Fn() -> Result<S, String> + Send + Sync + 'static,
    {
        let start: StartFn = Arc::new(move |mut child: ChildStart| {
            let made = make();
            Box::pin(async move {
                let server = made.map_err(|refused| StartError::Init(crate::ExitReason::error(refused)))?;
                let mut spawn = Spawn::new(child.options());
                spawn.parent = Some(child.supervisor);
                spawn.encoded = encoded;
                let server = child.runtime.start_spawn(server, spawn).await?;
                Ok(server.pid().clone())
            })
        });
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            kind: ChildKind::Worker,
            name: None,
            registrar: None,
            init_timeout: None,
        }
    }

    /// A nested supervisor. Permanent, with an infinite shutdown timeout (it stops its own children first).
    pub fn supervisor(id: impl Into<Arc<str>>, spec: SupervisorSpec) -> Self {
        let start: StartFn = Arc::new(move |mut child: ChildStart| {
            let spec = spec.clone();
            Box::pin(async move {
                let mut spawn = supervisor_spawn(&spec, child.options());
                spawn.parent = Some(child.supervisor);
                let server = child.runtime.start_spawn(SupervisorServer::new(spec), spawn).await?;
                Ok(server.pid().clone())
            })
        });
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor,
            name: None,
            registrar: None,
            init_timeout: None,
        }
    }

    /// Sets the restart policy.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Registers each incarnation of the child under this local name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Registers each incarnation of the child with `registrar` before its `init` runs: a global name, say
    /// (`GlobalRegistry::registrar`). A restart registers the new process under the name its predecessor held
    /// (the predecessor's registration is over once it has exited); a name held by another live process fails
    /// the start, as a failing `init` would.
    pub fn registered(mut self, registrar: Registrar) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// Bounds each start's `init` (see [`StartOptions::init_timeout`]): one that takes longer is killed and the
    /// start fails. The supervisor waits for a child's `init` and handles nothing meanwhile, so a child whose
    /// `init` may hang (its arguments came from another node, say) should have one.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = Some(timeout);
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .finish()
    }
}

/// A supervisor's configuration.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// Which children to restart.
    pub strategy: Strategy,
    /// At most this many restarts...
    pub max_restarts: u32,
    /// ...within this window; one more and the supervisor stops its children and exits with `shutdown`.
    pub within: Duration,
    /// The children, in start order.
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A spec with OTP's default intensity (3 restarts in 5 s) and no children yet.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec { strategy, max_restarts: 3, within: Duration::from_secs(5), children: Vec::new() }
    }

    /// Adds a child.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }
}
