//! Spawns whose requester gave up: what was started for it is undone the way it was made. A plain process is
//! killed; a supervised child is terminated and deleted by its supervisor (a kill would be a crash, restarted and
//! counted against the supervisor's intensity); a linked one is unlinked first (else the kill would travel the
//! link to the requester's process, which has already been told the spawn failed).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use noex_core::{ExitReason, Pid, Runtime};

/// How long past its requester's timeout a spawn is remembered: the late answer's way back. Past it, a kill for
/// its process is an ordinary kill (a supervised child then restarts).
const MARGIN: Duration = Duration::from_secs(30);

/// What a spawn with bonds made.
#[derive(Clone, Debug)]
pub(crate) enum Made {
    /// A child of `supervisor`, with id `child`.
    Child { supervisor: Pid, child: String },
    /// A process linked with `peer`, a process of the requester's node.
    Linked { peer: Pid },
}

/// The spawns with bonds done here recently, by the new process.
#[derive(Default)]
pub(crate) struct Abandonable {
    /// The process, what made it, and until when a kill from its requester means "abandoned".
    made: Mutex<Vec<(Pid, Made, Instant)>>,
}

impl Abandonable {
    /// Remembers what made `pid`, for a requester that waits up to `timeout` (counted from now: it started
    /// waiting before, so this errs on the long side).
    pub(crate) fn remember(&self, pid: &Pid, made: Made, timeout: Duration) {
        let now = Instant::now();
        let mut list = self.made.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|(_, _, until)| *until > now);
        list.push((pid.clone(), made, now + timeout + MARGIN));
    }

    fn take(&self, pid: &Pid) -> Option<Made> {
        let mut list = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let index = list.iter().position(|(p, _, until)| p == pid && *until > Instant::now())?;
        Some(list.swap_remove(index).1)
    }

    /// Whether `pid` was made by a spawn with bonds, recently.
    pub(crate) fn knows(&self, pid: &Pid) -> bool {
        let list = self.made.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().any(|(p, _, until)| p == pid && *until > Instant::now())
    }

    /// Undoes the spawn that made `pid` (or kills it, if it was a plain one).
    pub(crate) fn abandon(&self, runtime: &Runtime, links: &crate::bonds::Links, pid: &Pid) {
        match self.take(pid) {
            None => runtime.kill(pid),
            Some(Made::Linked { peer }) => {
                links.remove(pid, &peer);
                runtime.unlink_from_remote(pid, &peer);
                runtime.kill(pid);
            }
            Some(Made::Child { supervisor, child }) => {
                let Some(supervisor) = noex_core::Supervisor::from_pid(runtime, &supervisor) else {
                    return runtime.kill(pid); // the supervisor is gone, and its children with it
                };
                tokio::spawn(async move {
                    let _ = supervisor.terminate_child(&child).await;
                    let _ = supervisor.delete_child(&child).await;
                });
            }
        }
    }

    /// Whether an exit signal from a requester's node is its late answer to a spawn: a `kill` from the node itself
    /// (pid number 0) to a process it asked for.
    pub(crate) fn is_abandon(from: &Pid, reason: &ExitReason, linked: bool) -> bool {
        from.id() == 0 && *reason == ExitReason::Killed && !linked
    }
}
