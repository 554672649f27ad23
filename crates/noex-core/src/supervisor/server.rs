//! The supervisor process itself: a `GenServer` that traps exits and turns children's `EXIT`s into restarts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::lifecycle::LifecycleEvent;
use crate::supervisor::spec::ChildStart;
use crate::supervisor::{ChildInfo, ChildSpec, Restart, Shutdown, Strategy, SupervisorError, SupervisorSpec};
use crate::{Context, ExitReason, ExitSignal, GenServer, Info, Pid, Runtime, StartError};

pub(crate) struct SupervisorServer {
    strategy: Strategy,
    max_restarts: u32,
    within: Duration,
    children: Vec<Child>,
    /// When recent restarts happened, oldest first; only the window's worth is kept.
    restarts: VecDeque<Instant>,
}

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
}

pub(crate) enum SupervisorCall {
    StartChild(ChildSpec),
    TerminateChild(String),
    RestartChild(String),
    DeleteChild(String),
    WhichChildren,
}

/// A supervisor's message to itself: retry a restart that failed, after whatever else is queued (as OTP does),
/// so that a child that cannot start does not lock the supervisor in a loop.
pub(crate) enum SupervisorCast {
    RetryRestart { id: Arc<str>, old: Pid },
}

pub(crate) enum SupervisorReply {
    Started(Result<Pid, SupervisorError>),
    Done(Result<(), SupervisorError>),
    Children(Vec<ChildInfo>),
}

impl GenServer for SupervisorServer {
    type Call = SupervisorCall;
    type Reply = SupervisorReply;
    type Cast = SupervisorCast;

    async fn init(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        ctx.trap_exits(true);
        for index in 0..self.children.len() {
            if let Err(error) = self.start(ctx, index).await {
                let id = self.children[index].spec.id.clone();
                self.stop_children(ctx.runtime(), 0..self.children.len()).await;
                return Err(ExitReason::error(format!("child '{id}' failed to start: {error}")));
            }
        }
        self.publish_count(ctx);
        Ok(())
    }

    async fn handle_call(&mut self, call: SupervisorCall, ctx: &mut Context<Self>) -> SupervisorReply {
        let reply = match call {
            SupervisorCall::StartChild(spec) => SupervisorReply::Started(self.start_child(ctx, spec).await),
            SupervisorCall::TerminateChild(id) => SupervisorReply::Done(self.terminate_child(ctx, &id).await),
            SupervisorCall::RestartChild(id) => SupervisorReply::Started(self.restart_child(ctx, &id).await),
            SupervisorCall::DeleteChild(id) => SupervisorReply::Done(self.delete_child(&id)),
            SupervisorCall::WhichChildren => SupervisorReply::Children(self.which_children()),
        };
        self.publish_count(ctx);
        reply
    }

    async fn handle_cast(&mut self, cast: SupervisorCast, ctx: &mut Context<Self>) {
        let SupervisorCast::RetryRestart { id, old } = cast;
        if let Some(index) = self.position(&id).filter(|&index| self.children[index].pid.is_none()) {
            self.restart_after_exit(ctx, index, old).await;
            self.publish_count(ctx);
        }
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<Self>) {
        let Info::Exit(ExitSignal { from, reason }) = info else { return };
        // EXITs of children the supervisor stopped itself, or already replaced, match no current pid.
        let Some(index) = self.children.iter().position(|child| child.pid.as_ref() == Some(&from)) else {
            return;
        };
        self.children[index].pid = None;
        let wanted = match self.children[index].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_clean(),
            Restart::Temporary => false,
        };
        if wanted {
            tracing::debug!(supervisor = %ctx.pid(), child = %self.children[index].spec.id, %reason, "restarting");
            self.restart_after_exit(ctx, index, from).await;
        } else if self.children[index].spec.restart == Restart::Temporary {
            self.children.remove(index);
        }
        self.publish_count(ctx);
    }

    async fn terminate(&mut self, _reason: &ExitReason, ctx: &mut Context<Self>) {
        self.stop_children(ctx.runtime(), 0..self.children.len()).await;
    }
}

impl SupervisorServer {
    pub(crate) fn new(spec: SupervisorSpec) -> Self {
        SupervisorServer {
            strategy: spec.strategy,
            max_restarts: spec.max_restarts,
            within: spec.within,
            children: spec.children.into_iter().map(|spec| Child { spec, pid: None }).collect(),
            restarts: VecDeque::new(),
        }
    }

    async fn start(&mut self, ctx: &mut Context<Self>, index: usize) -> Result<Pid, StartError> {
        let spec = &self.children[index].spec;
        let child = ChildStart {
            runtime: ctx.runtime().clone(),
            supervisor: ctx.cell_dyn(),
            name: spec.name.clone(),
            registrar: spec.registrar.clone(),
            init_timeout: spec.init_timeout,
        };
        let pid = (spec.start)(child).await?;
        self.children[index].pid = Some(pid.clone());
        Ok(pid)
    }

    /// Applies the strategy after child `index` (formerly `old`) ended. A failed start counts as another restart
    /// and is retried through the mailbox, until the restart intensity is exceeded; then the supervisor gives up
    /// and exits with `shutdown`.
    async fn restart_after_exit(&mut self, ctx: &mut Context<Self>, index: usize, old: Pid) {
        if !self.record_restart(ctx) {
            tracing::error!(
                supervisor = %ctx.pid(),
                max_restarts = self.max_restarts,
                within = ?self.within,
                "restart intensity exceeded; shutting down"
            );
            ctx.stop(ExitReason::Shutdown);
            return;
        }
        let affected = match self.strategy {
            Strategy::OneForOne => index..index + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => index..self.children.len(),
        };
        self.stop_children(ctx.runtime(), affected.clone()).await;
        match self.start_range(ctx, affected).await {
            Ok(()) => {
                if let Some(new) = self.children[index].pid.clone() {
                    let supervisor = ctx.pid().clone();
                    let child_id = self.children[index].spec.id.clone();
                    ctx.runtime().emit(|| LifecycleEvent::Restarted { supervisor, child_id, old, new });
                }
                // Temporary siblings stopped for a group restart are not restarted (as in OTP).
                self.children.retain(|child| child.pid.is_some() || child.spec.restart != Restart::Temporary);
            }
            Err(error) => {
                tracing::warn!(supervisor = %ctx.pid(), %error, "restart failed; retrying");
                let id = self.children[index].spec.id.clone();
                ctx.myself().cast(SupervisorCast::RetryRestart { id, old });
            }
        }
    }

    async fn start_range(&mut self, ctx: &mut Context<Self>, range: std::ops::Range<usize>) -> Result<(), StartError> {
        for i in range {
            let child = &self.children[i];
            if child.pid.is_none() && child.spec.restart != Restart::Temporary {
                self.start(ctx, i).await?;
            }
        }
        Ok(())
    }

    /// Stops the running children in `range`, last started first, each as its spec says.
    async fn stop_children(&mut self, runtime: &Runtime, range: std::ops::Range<usize>) {
        for child in self.children[range].iter_mut().rev() {
            if let Some(pid) = child.pid.take() {
                stop_child(runtime, &pid, child.spec.shutdown).await;
            }
        }
    }

    /// Records a restart; false if it exceeds the intensity.
    fn record_restart(&mut self, ctx: &Context<Self>) -> bool {
        let now = Instant::now();
        while self.restarts.front().is_some_and(|at| now.duration_since(*at) > self.within) {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        if let Some(stats) = &ctx.core().supervisor {
            stats.restarts.fetch_add(1, Ordering::Relaxed);
        }
        self.restarts.len() <= self.max_restarts as usize
    }

    async fn start_child(&mut self, ctx: &mut Context<Self>, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        if self.position(&spec.id).is_some() {
            return Err(SupervisorError::AlreadyPresent(spec.id.to_string()));
        }
        self.children.push(Child { spec, pid: None });
        let index = self.children.len() - 1;
        self.start(ctx, index).await.map_err(|error| {
            self.children.pop();
            SupervisorError::Start(error)
        })
    }

    async fn terminate_child(&mut self, ctx: &mut Context<Self>, id: &str) -> Result<(), SupervisorError> {
        let index = self.position(id).ok_or_else(|| SupervisorError::NotFound(id.into()))?;
        self.stop_children(ctx.runtime(), index..index + 1).await;
        if self.children[index].spec.restart == Restart::Temporary {
            self.children.remove(index);
        }
        Ok(())
    }

    async fn restart_child(&mut self, ctx: &mut Context<Self>, id: &str) -> Result<Pid, SupervisorError> {
        let index = self.position(id).ok_or_else(|| SupervisorError::NotFound(id.into()))?;
        if self.children[index].pid.is_some() {
            return Err(SupervisorError::Running(id.into()));
        }
        self.start(ctx, index).await.map_err(SupervisorError::Start)
    }

    fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let index = self.position(id).ok_or_else(|| SupervisorError::NotFound(id.into()))?;
        if self.children[index].pid.is_some() {
            return Err(SupervisorError::Running(id.into()));
        }
        self.children.remove(index);
        Ok(())
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        let info = |child: &Child| ChildInfo {
            id: Arc::clone(&child.spec.id),
            pid: child.pid.clone(),
            kind: child.spec.kind,
            restart: child.spec.restart,
        };
        self.children.iter().map(info).collect()
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|child| &*child.spec.id == id)
    }

    fn publish_count(&self, ctx: &Context<Self>) {
        if let Some(stats) = &ctx.core().supervisor {
            stats.children.store(self.children.len() as u32, Ordering::Relaxed);
        }
    }
}

async fn stop_child(runtime: &Runtime, pid: &Pid, shutdown: Shutdown) {
    match shutdown {
        Shutdown::BrutalKill => {
            let down = runtime.monitor(pid);
            runtime.kill(pid);
            down.await;
        }
        Shutdown::Timeout(timeout) => {
            let _ = runtime.stop(pid, ExitReason::Shutdown, timeout).await;
        }
        Shutdown::Infinity => {
            // A year stands in for "forever" without overflowing the timer's arithmetic.
            let _ = runtime.stop(pid, ExitReason::Shutdown, Duration::from_secs(365 * 24 * 3600)).await;
        }
    }
}
