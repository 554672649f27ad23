//! Shutting a runtime down: its processes stop in supervision order within a bound, and it waits until every
//! one's cleanup (its DOWNs and EXITs) is over; no process starts meanwhile.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::{ExitReason, Pid, Runtime, StopError};

/// How long a shutdown or a stop waits for a killed process's cleanup (a handler that never yields cannot be
/// interrupted; past this, it is given up on).
pub(crate) const KILL_GRACE: Duration = Duration::from_millis(250);

impl Runtime {
    /// Stops every process with reason `shutdown`, newest root first (a root is a process nobody started linked;
    /// supervisors stop their own children in order), and returns once the process table is empty.
    ///
    /// `timeout` bounds the whole shutdown, not each process: every root gets what is left of it, and once it
    /// has passed, whatever still runs is killed (reason `killed`, no `terminate`) and waited for at most
    /// another `timeout`, after which the shutdown gives up with a warning. From the moment it is called, no new
    /// process starts on this runtime ([`StartError::ShuttingDown`]), so a supervisor cannot restart a child in
    /// the middle of the shutdown. A process that has already ended but whose cleanup has not run yet is awaited,
    /// never spun on.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Armed before looking, so that a cleanup that ends meanwhile is not missed.
            let ended = self.inner.forgotten.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let mut roots: Vec<Pid> =
                self.inner.processes.iter().filter_map(|entry| entry.value().core().root_pid()).collect();
            if roots.is_empty() {
                // Only linked children are left, their parents gone; stop them too.
                roots = self.inner.processes.iter().map(|entry| entry.value().core().pid.clone()).collect();
            }
            if roots.is_empty() && self.inner.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            if deadline <= tokio::time::Instant::now() {
                return self.kill_the_rest(timeout.min(KILL_GRACE)).await;
            }
            roots.sort_unstable_by_key(|pid| std::cmp::Reverse(pid.id()));
            let mut stopped_any = false;
            for pid in roots {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if !matches!(self.stop(&pid, ExitReason::Shutdown, left).await, Err(StopError::NoProc)) {
                    stopped_any = true;
                }
            }
            // Every one was already ending, or only cleanups (or spawns) are in progress: wait for one to end.
            if !stopped_any && tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.kill_the_rest(timeout.min(KILL_GRACE)).await;
            }
        }
    }

    /// The end of a shutdown past its deadline: kills what is left, and waits (at most `grace`) for every
    /// cleanup to end.
    async fn kill_the_rest(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let ended = self.inner.forgotten.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let left: Vec<_> = self.cells();
            if left.is_empty() && self.inner.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            for cell in &left {
                cell.kill();
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                tracing::warn!(left = left.len(), "shutdown gave up on processes that did not end after a kill");
                return;
            }
        }
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// A process's cleanup is over (the end of its `Context`'s `Drop`), or a spawn did not happen.
    pub(crate) fn context_ended(&self) {
        self.inner.live.fetch_sub(1, Ordering::SeqCst);
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            self.inner.forgotten.notify_waiters();
        }
    }
}
