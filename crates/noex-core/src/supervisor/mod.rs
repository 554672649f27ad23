//! Supervisors: processes that start children from specs, restart them by a strategy when they end, give up past
//! a restart intensity, and stop them in reverse order.
//!
//! ```text
//!            Supervisor (traps exits, linked to every child)
//!            /        |          \
//!       worker-1   worker-2   sub-supervisor -- its own children
//! ```

mod server;
mod spec;

use std::sync::Arc;
use std::time::Duration;

pub use spec::{ChildKind, ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};

use crate::introspection::{ProcessKind, SupervisorStats};
use crate::runtime::Spawn;
use crate::{CallError, ExitReason, Pid, Runtime, ServerRef, StartError, StartOptions, StopError};
use server::{SupervisorCall, SupervisorReply, SupervisorServer};

/// How long calls to a supervisor wait; generous, because starting a child waits for the child's `init`.
const SUPERVISOR_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts supervisors.
pub struct Supervisor;

impl Supervisor {
    /// Starts a supervisor process, which starts its children in order before this returns. If a child fails to
    /// start, the ones already started are stopped and this fails.
    pub async fn start(
        runtime: &Runtime,
        spec: SupervisorSpec,
        options: StartOptions,
    ) -> Result<SupervisorRef, StartError> {
        let server = runtime.start_spawn(SupervisorServer::new(spec.clone()), supervisor_spawn(&spec, options)).await?;
        Ok(SupervisorRef { server })
    }

    /// A handle on a running supervisor, if `pid` is one.
    pub fn from_pid(runtime: &Runtime, pid: &Pid) -> Option<SupervisorRef> {
        runtime.server_ref::<SupervisorServer>(pid).map(|server| SupervisorRef { server })
    }
}

pub(crate) fn supervisor_spawn(spec: &SupervisorSpec, options: StartOptions) -> Spawn<SupervisorServer> {
    let mut spawn = Spawn::new(options);
    spawn.kind = ProcessKind::Supervisor;
    spawn.supervisor = Some(SupervisorStats::new(spec.strategy));
    spawn
}

/// A handle on a running supervisor.
#[derive(Clone, Debug)]
pub struct SupervisorRef {
    server: ServerRef<SupervisorServer>,
}

/// One child, as reported by [`SupervisorRef::which_children`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// Its id in the spec.
    pub id: Arc<str>,
    /// Its current process; `None` while terminated (or being restarted).
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart policy.
    pub restart: Restart,
}

/// Why a supervisor operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The supervisor did not answer.
    #[error("supervisor unavailable: {0}")]
    Call(#[from] CallError),
    /// A child with this id already exists.
    #[error("child '{0}' already exists")]
    AlreadyPresent(String),
    /// No child with this id.
    #[error("no child '{0}'")]
    NotFound(String),
    /// The child is running (it must be terminated first).
    #[error("child '{0}' is running")]
    Running(String),
    /// The child failed to start.
    #[error("child failed to start: {0}")]
    Start(StartError),
}

impl SupervisorRef {
    /// The supervisor's pid.
    pub fn pid(&self) -> &Pid {
        self.server.pid()
    }

    /// Adds a child and starts it; returns its pid. The spec is not kept if the child fails to start.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        match self.call(SupervisorCall::StartChild(spec)).await? {
            SupervisorReply::Started(result) => result,
            _ => unreachable!("start_child is answered with Started"),
        }
    }

    /// Stops a child (as at shutdown) and keeps its spec, so it can be restarted; a temporary child's spec is
    /// removed.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.done(SupervisorCall::TerminateChild(id.into())).await
    }

    /// Starts a terminated child again; returns its new pid.
    pub async fn restart_child(&self, id: &str) -> Result<Pid, SupervisorError> {
        match self.call(SupervisorCall::RestartChild(id.into())).await? {
            SupervisorReply::Started(result) => result,
            _ => unreachable!("restart_child is answered with Started"),
        }
    }

    /// Removes the spec of a terminated child.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.done(SupervisorCall::DeleteChild(id.into())).await
    }

    /// The children, in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        match self.call(SupervisorCall::WhichChildren).await? {
            SupervisorReply::Children(children) => Ok(children),
            _ => unreachable!("which_children is answered with Children"),
        }
    }

    /// Stops the supervisor: its children are stopped in reverse start order, then it exits with `shutdown`.
    pub async fn stop(&self, timeout: Duration) -> Result<(), StopError> {
        self.server.stop(ExitReason::Shutdown, timeout).await
    }

    /// Whether the supervisor is still running.
    pub fn is_alive(&self) -> bool {
        self.server.is_alive()
    }

    async fn call(&self, call: SupervisorCall) -> Result<SupervisorReply, SupervisorError> {
        Ok(self.server.call_timeout(call, SUPERVISOR_CALL_TIMEOUT).await?)
    }

    async fn done(&self, call: SupervisorCall) -> Result<(), SupervisorError> {
        match self.call(call).await? {
            SupervisorReply::Done(result) => result,
            _ => unreachable!("answered with Done"),
        }
    }
}
