//! `Runtime`: one node's process table, name table and event stream. A value, never a global: several runtimes
//! can live in one OS process, each with its own node name.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;
use tokio::sync::{broadcast, oneshot};

use crate::deadline::Deadlines;
use crate::distribution::{Distribution, RemoteWatcher, WeakRuntime};
use crate::encoded::EncodedDelivery;
use crate::introspection::{ProcessKind, SupervisorStats};
use crate::lifecycle::{LifecycleEvent, LifecycleEvents};
use crate::mailbox::Mailbox;
use crate::monitor::Monitor;
use crate::process::{LinkPeer, ProcessCell, ProcessCore, ServerCell, Signal, Watcher, run};
use crate::{
    Context, ExitReason, GenServer, MonitorRef, NodeName, Pid, RegistryError, ServerRef, StartError, StopError,
};

/// One node's processes. Cheap to clone (a shared handle).
///
/// Must be created inside a tokio runtime; its processes are tokio tasks on that runtime.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    node: NodeName,
    creation: u32,
    handle: tokio::runtime::Handle,
    next_id: AtomicU64,
    next_ref: AtomicU64,
    /// Keyed by pid number; Fx hashing, because SipHash showed up in spawn profiles and the keys are our own.
    pub(crate) processes: DashMap<u64, Arc<dyn ProcessCell>, FxBuildHasher>,
    names: Mutex<HashMap<Arc<str>, Pid>>,
    lifecycle: broadcast::Sender<LifecycleEvent>,
    deadlines: Arc<Deadlines>,
    /// Live lifecycle subscriptions.
    subscribers: Arc<AtomicUsize>,
    /// Routes operations on pids of other nodes; installed once by a distribution layer.
    distribution: OnceLock<Arc<dyn Distribution>>,
    /// Set by `shutdown`: no process starts any more.
    pub(crate) shutting_down: AtomicBool,
    /// Processes being spawned or not yet entirely cleaned up (their `Context` not yet dropped to the end): a
    /// process leaves the table before its DOWNs and EXITs are sent, and `shutdown` must wait for those too.
    pub(crate) live: AtomicUsize,
    /// Notified when a process's cleanup is over, while shutting down.
    pub(crate) forgotten: tokio::sync::Notify,
}

/// Settings for a new [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The node's name; the cluster layer sets `name@host:port`. Default `nonode@nohost`.
    pub node: NodeName,
    /// The node's incarnation number; a restarted node must use a new one. Default 0.
    pub creation: u32,
    /// Lifecycle events buffered per subscriber before the slowest one starts losing them (it is told how
    /// many it lost). Default 4096.
    pub lifecycle_buffer: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { node: NodeName::local(), creation: 0, lifecycle_buffer: 4096 }
    }
}

/// Registers a new process somewhere else than the local name table (a cluster-wide registry, say) before its
/// `init` runs; an error refuses the start, which then fails with it. Made by such a registry (for the global
/// one: `GlobalRegistry::registrar`); given to [`StartOptions::registered`] or
/// [`ChildSpec::registered`](crate::ChildSpec::registered), where it runs again for every restart.
#[derive(Clone)]
pub struct Registrar(Arc<RegisterFn>);

type RegisterFn = dyn Fn(&Pid) -> Result<(), StartError> + Send + Sync;

impl Registrar {
    /// A registrar that runs `register` with the new process's pid (the process exists, `init` has not run).
    pub fn new(register: impl Fn(&Pid) -> Result<(), StartError> + Send + Sync + 'static) -> Self {
        Registrar(Arc::new(register))
    }
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registrar(..)")
    }
}

/// Options for starting a process.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Register the process under this local name before `init` runs.
    pub name: Option<String>,
    /// Register the process with this registrar (a global name, say) before `init` runs.
    pub registrar: Option<Registrar>,
    /// Link the process with this one (of any node) before `init` runs, as if that process had started it with
    /// `spawn_link`. If it is not running, the new process ends with `noproc` and the start fails.
    pub link: Option<Pid>,
    /// Mark it as an internal system process, which user-facing counts leave out.
    pub system: bool,
    /// How long `init` may take; past it the process is killed and the start fails with
    /// [`StartError::InitTimeout`] (OTP's `start` timeout). `None`: wait as long as `init` takes.
    pub init_timeout: Option<std::time::Duration>,
}

impl StartOptions {
    /// Options with a local name.
    pub fn named(name: impl Into<String>) -> Self {
        StartOptions { name: Some(name.into()), ..Self::default() }
    }

    /// Registers the process with `registrar` before `init` runs (see [`Registrar`]).
    pub fn registered(mut self, registrar: Registrar) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// Links the process with `pid` before `init` runs (see [`StartOptions::link`]).
    pub fn linked_to(mut self, pid: Pid) -> Self {
        self.link = Some(pid);
        self
    }

    /// Marks the process as an internal system process.
    pub fn system(mut self) -> Self {
        self.system = true;
        self
    }

    /// Bounds how long `init` may take (see [`StartOptions::init_timeout`]).
    pub fn init_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.init_timeout = Some(timeout);
        self
    }
}

/// Resolves when a new process's `init` has finished.
type InitResult = oneshot::Receiver<Result<(), ExitReason>>;

/// A new process, the end of its `init`, and why its registrar refused it, if it did.
type Spawned<S> = (ServerRef<S>, InitResult, Option<StartError>);

/// The runtime-internal part of spawning: what users cannot set directly.
pub(crate) struct Spawn<S: GenServer> {
    pub(crate) options: StartOptions,
    pub(crate) parent: Option<Arc<dyn ProcessCell>>,
    pub(crate) kind: ProcessKind,
    pub(crate) supervisor: Option<SupervisorStats>,
    pub(crate) encoded: Option<EncodedDelivery<S>>,
}

impl<S: GenServer> Spawn<S> {
    pub(crate) fn new(options: StartOptions) -> Self {
        Spawn { options, parent: None, kind: ProcessKind::Server, supervisor: None, encoded: None }
    }
}

impl Runtime {
    /// A runtime for a node outside any cluster (`nonode@nohost`).
    pub fn new() -> Self {
        Self::with_config(RuntimeConfig::default())
    }

    /// A runtime with explicit settings.
    pub fn with_config(config: RuntimeConfig) -> Self {
        let (lifecycle, _) = broadcast::channel(config.lifecycle_buffer.max(1));
        let handle = tokio::runtime::Handle::current();
        Runtime {
            inner: Arc::new(RuntimeInner {
                deadlines: Deadlines::start(&handle),
                node: config.node,
                creation: config.creation,
                handle,
                // 0 names the runtime itself as the sender of exit signals that come from no process.
                next_id: AtomicU64::new(1),
                // Monitor refs outlive an incarnation on other nodes (a DOWN in flight): start each incarnation's
                // numbering in its own range, so a restarted node never mistakes an old DOWN for one of its own.
                next_ref: AtomicU64::new((u64::from(config.creation) << 32) + 1),
                processes: DashMap::with_hasher(FxBuildHasher),
                names: Mutex::new(HashMap::new()),
                lifecycle,
                subscribers: Arc::default(),
                distribution: OnceLock::new(),
                shutting_down: AtomicBool::new(false),
                live: AtomicUsize::new(0),
                forgotten: tokio::sync::Notify::new(),
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<RuntimeInner>) -> Self {
        Runtime { inner }
    }

    /// A handle that does not keep the runtime alive.
    pub fn downgrade(&self) -> WeakRuntime {
        WeakRuntime(Arc::downgrade(&self.inner))
    }

    /// Installs the layer that routes operations on pids of other nodes (see [`Distribution`]). Only the first
    /// installation counts; returns false for later ones.
    pub fn set_distribution(&self, distribution: Arc<dyn Distribution>) -> bool {
        self.inner.distribution.set(distribution).is_ok()
    }

    /// The installed distribution layer, if any.
    pub fn distribution(&self) -> Option<&Arc<dyn Distribution>> {
        self.inner.distribution.get()
    }

    /// Whether `pid` belongs to another node (or another incarnation of this one... which is also not here).
    pub fn is_remote(&self, pid: &Pid) -> bool {
        *pid.node() != self.inner.node
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.inner.node
    }

    /// This node's incarnation.
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// Starts `server` as a new process and waits for its `init`.
    pub async fn start<S: GenServer>(&self, server: S) -> Result<ServerRef<S>, StartError> {
        self.start_with(server, StartOptions::default()).await
    }

    /// Starts `server` with options (a local name, system marking) and waits for its `init`.
    pub async fn start_with<S: GenServer>(&self, server: S, options: StartOptions) -> Result<ServerRef<S>, StartError> {
        self.start_spawn(server, Spawn::new(options)).await
    }

    pub(crate) async fn start_linked<S: GenServer>(
        &self,
        server: S,
        options: StartOptions,
        parent: Arc<dyn ProcessCell>,
    ) -> Result<ServerRef<S>, StartError> {
        let mut spawn = Spawn::new(options);
        spawn.parent = Some(parent);
        self.start_spawn(server, spawn).await
    }

    pub(crate) async fn start_spawn<S: GenServer>(
        &self,
        server: S,
        spawn: Spawn<S>,
    ) -> Result<ServerRef<S>, StartError> {
        let init_timeout = spawn.options.init_timeout;
        let (server_ref, init, refused) = self.spawn(server, spawn)?;
        let mut init = init;
        if let Some(refused) = refused {
            // Its registrar refused it: it ended before `init`. Seen to its end, so nothing of it is left.
            let _ = init.await;
            return Err(refused);
        }
        let ended = match init_timeout {
            None => init.await,
            Some(timeout) => match tokio::time::timeout(timeout, &mut init).await {
                Ok(ended) => ended,
                Err(_) => {
                    // As OTP does: a process whose `init` overran is killed, and the start fails; once its end
                    // is seen, like any failed start, so that its name is free when this returns.
                    self.kill(server_ref.pid());
                    let _ = init.await;
                    return Err(StartError::InitTimeout(timeout));
                }
            },
        };
        match ended {
            Ok(Ok(())) => Ok(server_ref),
            Ok(Err(reason)) => Err(StartError::Init(reason)),
            Err(_) => Err(StartError::Init(ExitReason::Killed)),
        }
    }

    /// Creates the process and its task. A start its registrar refused comes back with the reason, the process
    /// already ending.
    fn spawn<S: GenServer>(&self, server: S, spawn: Spawn<S>) -> Result<Spawned<S>, StartError> {
        // Counted before the check (both sequentially consistent, as in `shutdown`): a spawn that passes the check
        // is seen by a shutdown that began meanwhile, which then waits for it and stops it.
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            self.context_ended();
            return Err(StartError::ShuttingDown);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let pid = Pid::new(self.inner.node.clone(), self.inner.creation, id);
        let parent_pid = spawn.parent.as_ref().map(|p| p.core().pid.clone());
        let mut core = ProcessCore::new(pid.clone(), spawn.kind, spawn.options.system, parent_pid);
        core.supervisor = spawn.supervisor;
        let cell = Arc::new(ServerCell { core, mailbox: Mailbox::new(), encoded: spawn.encoded });
        let dyn_cell: Arc<dyn ProcessCell> = cell.clone();
        // The name first: a start refused for its name must leave no trace anyone could have queued work for.
        if let Some(name) = spawn.options.name {
            if let Err(RegistryError::NameTaken { name, holder }) = self.register_cell(name.into(), &dyn_cell) {
                self.context_ended();
                return Err(StartError::NameTaken { name, holder });
            }
        }
        self.inner.processes.insert(id, dyn_cell.clone());
        if let Some(parent) = &spawn.parent {
            dyn_cell.add_link(parent.core().pid.clone(), LinkPeer::Local(parent.clone()));
            if !parent.add_link(pid.clone(), LinkPeer::Local(dyn_cell.clone())) {
                // The parent died while starting us; behave as if its exit signal had arrived.
                dyn_cell.link_exit(parent.core().pid.clone(), ExitReason::NoProc);
            }
        }
        let refused = spawn.options.registrar.and_then(|registrar| (registrar.0)(&pid).err());
        if let Some(refused) = &refused {
            cell.mailbox.lock().close_locked(ExitReason::error(refused.to_string()));
        }
        let (init_reply, init) = oneshot::channel();
        // From here the context holds the count taken above, and gives it back at the end of its `Drop`.
        let mut ctx = Context::new(self.clone(), cell.clone(), init_reply);
        ctx.link_at_start = spawn.options.link;
        let task = self.inner.handle.spawn(run(server, ctx));
        let _ = cell.core.abort.set(task.abort_handle());
        // A kill that came before the abort handle existed only closed the mailbox; honour it now.
        if cell.mailbox.lock().exit.is_some() {
            task.abort();
        }
        Ok((ServerRef::from_cell(cell, self.clone()), init, refused))
    }

    /// The pid registered under `name`, if any.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.names().get(name).cloned()
    }

    /// A typed reference to the process registered under `name`, if it exists and runs server type `S`.
    pub fn whereis_server<S: GenServer>(&self, name: &str) -> Option<ServerRef<S>> {
        self.server_ref(&self.whereis(name)?)
    }

    /// A typed reference to a local process, if it exists and runs server type `S`.
    pub fn server_ref<S: GenServer>(&self, pid: &Pid) -> Option<ServerRef<S>> {
        let cell = self.cell(pid)?.into_any().downcast::<ServerCell<S>>().ok()?;
        Some(ServerRef::from_cell(cell, self.clone()))
    }

    /// A typed reference to the server `pid`, on this node or another one: local if `pid` is a live local server
    /// of type `S`, otherwise routed through the distribution layer (calls to a local pid that is not such a
    /// server fail with `NoProc`, as do calls to a pid of another incarnation of a node). The message types must
    /// be [`Encodable`](crate::Encodable), since they may cross the wire.
    pub fn remote_ref<S>(&self, pid: &Pid) -> ServerRef<S>
    where
        S: GenServer,
        S::Call: crate::Encodable,
        S::Cast: crate::Encodable,
        S::Reply: crate::Encodable,
    {
        self.server_ref(pid).unwrap_or_else(|| ServerRef::remote(pid.clone(), self.clone()))
    }

    /// Registers `pid` under `name`. The name is freed when the process exits.
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), RegistryError> {
        let cell = self.cell(pid).ok_or(RegistryError::NoProc)?;
        self.register_cell(name.into(), &cell)
    }

    /// Frees `name`. Returns whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        let mut names = self.names();
        let Some(pid) = names.remove(name) else { return false };
        if let Some(cell) = self.cell(&pid) {
            *cell.core().name.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        true
    }

    /// All registered names with their pids.
    pub fn registered(&self) -> Vec<(String, Pid)> {
        self.names().iter().map(|(name, pid)| (name.to_string(), pid.clone())).collect()
    }

    /// Whether `pid` is a live process of this runtime.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.cell(pid).is_some()
    }

    /// Monitors `pid` from outside any process: the returned future resolves to the one `DOWN`.
    pub fn monitor(&self, pid: &Pid) -> Monitor {
        if self.is_remote(pid) {
            return self.monitor_remote(pid);
        }
        self.monitor_cell(pid, self.cell(pid))
    }

    fn monitor_remote(&self, pid: &Pid) -> Monitor {
        let monitor = self.new_monitor_ref();
        let (sender, down) = oneshot::channel();
        let watcher =
            RemoteWatcher { monitor: monitor.clone(), target: pid.clone(), watcher: Watcher::External(sender) };
        match self.distribution() {
            Some(distribution) => distribution.monitor(watcher),
            None => watcher.deliver(ExitReason::NoConnection),
        }
        let remote = self.distribution().is_some().then(|| self.clone());
        Monitor { monitor, pid: pid.clone(), target: None, remote, down, fired: false }
    }

    fn monitor_cell(&self, pid: &Pid, target: Option<Arc<dyn ProcessCell>>) -> Monitor {
        let monitor = self.new_monitor_ref();
        let (sender, down) = oneshot::channel();
        install_monitor(target.as_ref(), pid, monitor.clone(), Watcher::External(sender));
        Monitor { monitor, pid: pid.clone(), target, remote: None, down, fired: false }
    }

    /// Sends an exit signal to `pid`, as Erlang's `exit(Pid, Reason)`: a process that traps exits gets an `EXIT`
    /// message, one that does not dies at once (without `terminate`) unless the reason is `normal`.
    pub fn exit(&self, pid: &Pid, reason: ExitReason) {
        if self.is_remote(pid) {
            if let Some(distribution) = self.distribution() {
                distribution.exit(&self.runtime_pid(), pid, reason, false);
            }
            return;
        }
        if let Some(cell) = self.cell(pid) {
            cell.exit_signal(self.runtime_pid(), reason);
        }
    }

    /// Kills `pid` unconditionally (reason `killed`; no `terminate`; exits cannot be trapped).
    pub fn kill(&self, pid: &Pid) {
        if self.is_remote(pid) {
            return self.exit(pid, ExitReason::Killed);
        }
        if let Some(cell) = self.cell(pid) {
            cell.kill();
        }
    }

    /// Asks `pid` to stop with `reason` after the messages already queued, runs its `terminate`, and waits until
    /// it has exited. Past `timeout` it is killed.
    pub async fn stop(&self, pid: &Pid, reason: ExitReason, timeout: Duration) -> Result<(), StopError> {
        if self.is_remote(pid) {
            return match self.distribution() {
                Some(distribution) => distribution.stop(pid, reason, timeout).await,
                None => Err(StopError::NoConnection),
            };
        }
        let queued = self.queue_stop(pid, reason);
        self.await_stop(queued, timeout).await
    }

    /// Queues a stop request behind what `pid` has already been sent (the wait is `await_stop`).
    pub(crate) fn queue_stop(
        &self,
        pid: &Pid,
        reason: ExitReason,
    ) -> Result<(Arc<dyn ProcessCell>, Monitor), StopError> {
        let cell = self.cell(pid).ok_or(StopError::NoProc)?;
        let down = self.monitor_cell(pid, Some(cell.clone()));
        if cell.signal(Signal::Stop(reason)).is_err() {
            return Err(StopError::NoProc);
        }
        Ok((cell, down))
    }

    pub(crate) async fn await_stop(
        &self,
        queued: Result<(Arc<dyn ProcessCell>, Monitor), StopError>,
        timeout: Duration,
    ) -> Result<(), StopError> {
        let (cell, mut down) = queued?;
        match self.inner.deadlines.wait(&mut down, timeout).await {
            Ok(_) => Ok(()),
            Err(_) => {
                cell.kill();
                // A handler that never yields cannot be interrupted: do not wait for it for ever.
                let _ = tokio::time::timeout(crate::shutdown::KILL_GRACE, down).await;
                Err(StopError::Timeout(timeout))
            }
        }
    }

    /// A subscription to process started / terminated / restarted / down events.
    pub fn lifecycle_events(&self) -> LifecycleEvents {
        LifecycleEvents::new(self.inner.lifecycle.subscribe(), self.inner.subscribers.clone())
    }

    /// The live process numbered `id`, if this is its incarnation.
    pub(crate) fn cell_by_id(&self, creation: u32, id: u64) -> Option<Arc<dyn ProcessCell>> {
        if creation != self.inner.creation {
            return None;
        }
        self.inner.processes.get(&id).map(|cell| cell.value().clone())
    }

    pub(crate) fn cell(&self, pid: &Pid) -> Option<Arc<dyn ProcessCell>> {
        if pid.creation() != self.inner.creation || *pid.node() != self.inner.node {
            return None;
        }
        self.inner.processes.get(&pid.id()).map(|cell| cell.value().clone())
    }

    pub(crate) fn cells(&self) -> Vec<Arc<dyn ProcessCell>> {
        self.inner.processes.iter().map(|e| e.value().clone()).collect()
    }

    pub(crate) fn process_total(&self) -> usize {
        self.inner.processes.len()
    }

    /// Runs a helper task (a timer, say) on this runtime's tokio runtime.
    pub(crate) fn spawn_task(&self, task: impl Future<Output = ()> + Send + 'static) -> tokio::task::AbortHandle {
        self.inner.handle.spawn(task).abort_handle()
    }

    pub(crate) fn deadlines(&self) -> &Arc<Deadlines> {
        &self.inner.deadlines
    }

    pub(crate) fn new_monitor_ref(&self) -> MonitorRef {
        MonitorRef::new(self.inner.node.clone(), self.inner.next_ref.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> LifecycleEvent) {
        // An atomic read, where the broadcast's own receiver count takes a lock: this runs for every process.
        if self.inner.subscribers.load(Ordering::Relaxed) > 0 {
            let _ = self.inner.lifecycle.send(event());
        }
    }

    /// Removes an ended process from the process and name tables; returns the name it held.
    pub(crate) fn forget(&self, core: &ProcessCore) -> Option<Arc<str>> {
        let name = {
            let mut names = self.names();
            let name = core.name.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(name) = &name {
                if names.get(name) == Some(&core.pid) {
                    names.remove(name);
                }
            }
            name
        };
        self.inner.processes.remove(&core.pid.id());
        name
    }

    fn register_cell(&self, name: Arc<str>, cell: &Arc<dyn ProcessCell>) -> Result<(), RegistryError> {
        let core = cell.core();
        let mut names = self.names();
        if let Some(holder) = names.get(&name) {
            return Err(RegistryError::NameTaken { name: name.to_string(), holder: holder.clone() });
        }
        // Checked under the name lock: `forget` takes the same lock after the process is marked exited, so a
        // name can never be left behind by a process that ended during registration.
        if core.status() == crate::introspection::ProcessStatus::Exited {
            return Err(RegistryError::NoProc);
        }
        let mut own = core.name.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = own.as_ref() {
            return Err(RegistryError::AlreadyNamed { pid: core.pid.clone(), name: existing.to_string() });
        }
        *own = Some(name.clone());
        names.insert(name, core.pid.clone());
        Ok(())
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Pid>> {
        self.inner.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn runtime_pid(&self) -> Pid {
        Pid::new(self.inner.node.clone(), self.inner.creation, 0)
    }
}

/// Queues a monitor request on `target`; if there is no such process (or it has just ended), the watcher gets
/// its `DOWN` with `noproc` at once.
pub(crate) fn install_monitor(target: Option<&Arc<dyn ProcessCell>>, pid: &Pid, monitor: MonitorRef, watcher: Watcher) {
    let undelivered = match target {
        Some(cell) => match cell.signal(Signal::Monitor { monitor: monitor.clone(), watcher }) {
            Ok(()) => None,
            Err(Signal::Monitor { watcher, .. }) => Some(watcher),
            Err(_) => None,
        },
        None => Some(watcher),
    };
    if let Some(watcher) = undelivered {
        watcher.deliver(crate::ProcessDown { monitor, pid: pid.clone(), reason: ExitReason::NoProc });
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node", &self.inner.node)
            .field("creation", &self.inner.creation)
            .field("processes", &self.inner.processes.len())
            .finish()
    }
}
