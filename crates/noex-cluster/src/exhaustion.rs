//! When the operating system refuses a node a socket (out of file descriptors, `EMFILE`/`ENFILE`, or another
//! accept error): back off instead of spinning, one warning per episode, and figures a user can read
//! ([`Cluster::socket_exhaustion`](crate::Cluster::socket_exhaustion)).
//!
//! A plain state machine that takes `now`: the accept loop and the dial loops feed it their failures and
//! successes, and sleep for what it says.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cluster::Inner;

/// The first pause after a refused socket; it doubles while the episode lasts.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause.
pub(crate) const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Episodes of refused sockets on one node, since it started (see
/// [`Cluster::socket_exhaustion`](crate::Cluster::socket_exhaustion)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketExhaustion {
    /// Whether an episode is in progress: the last accept or dial was refused a socket.
    pub exhausted: bool,
    /// How many episodes there were (an episode ends at the first socket obtained again).
    pub episodes: u64,
    /// How many accepts and dials were refused a socket, in all.
    pub failures: u64,
    /// Time spent in episodes, the one in progress included.
    pub time: Duration,
}

/// What the caller does after a failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pause {
    /// How long to wait before the next accept (dials keep their own backoff, at least this long).
    pub(crate) wait: Duration,
    /// The episode just began: log it (once).
    pub(crate) began: bool,
}

/// What the caller logs when an episode ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) failures: u64,
    pub(crate) lasted: Duration,
}

#[derive(Default)]
pub(crate) struct Exhaustion {
    since: Option<Instant>,
    pause: Duration,
    /// Failures in the episode in progress.
    failed: u64,
    figures: SocketExhaustion,
}

impl Exhaustion {
    /// A socket was refused at `now`.
    pub(crate) fn failed(&mut self, now: Instant) -> Pause {
        self.figures.failures += 1;
        self.failed += 1;
        let began = self.since.is_none();
        if began {
            self.since = Some(now);
            self.figures.episodes += 1;
            self.pause = FIRST_PAUSE;
        } else {
            self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        }
        Pause { wait: self.pause, began }
    }

    /// A socket was obtained at `now`: ends the episode in progress, if any.
    pub(crate) fn succeeded(&mut self, now: Instant) -> Option<Recovered> {
        let since = self.since.take()?;
        let lasted = now.saturating_duration_since(since);
        self.figures.time += lasted;
        Some(Recovered { failures: std::mem::take(&mut self.failed), lasted })
    }

    /// The figures at `now`.
    pub(crate) fn figures(&self, now: Instant) -> SocketExhaustion {
        let mut figures = self.figures.clone();
        figures.exhausted = self.since.is_some();
        figures.time += self.since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        figures
    }
}

/// Raises this process's soft limit on open files to its hard limit, and returns the limit now in force.
///
/// The library never changes process limits by itself; a program that runs many nodes in one process (or a node
/// with many peers) calls this at start. A full mesh of `n` nodes holds `n - 1` sockets per node, so `n` nodes in
/// one process hold `n * (n - 1)` plus a listener each.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

impl Inner {
    /// The operating system refused a socket (`during` says to what): counts it, warns once per episode, and
    /// returns how long the accept loop pauses.
    pub(crate) fn socket_refused(&self, error: &std::io::Error, during: &'static str) -> Duration {
        let pause = lock(&self.exhaustion).failed(Instant::now());
        if pause.began {
            tracing::warn!(
                node = %self.local, %error, during,
                "the operating system refuses sockets (out of file descriptors?): backing off, doubling from \
                 10 ms to 1 s, until one is obtained again; Cluster::socket_exhaustion has the figures"
            );
        }
        pause.wait
    }

    /// A socket was obtained: ends an episode of refused sockets, if one was in progress.
    pub(crate) fn socket_obtained(&self) {
        let recovered = lock(&self.exhaustion).succeeded(Instant::now());
        if let Some(Recovered { failures, lasted }) = recovered {
            tracing::warn!(
                node = %self.local, failures, lasted_ms = lasted.as_millis() as u64,
                "sockets are available again"
            );
        }
    }
}

pub(crate) fn lock(exhaustion: &Mutex<Exhaustion>) -> MutexGuard<'_, Exhaustion> {
    exhaustion.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `error` means the process or the system ran out of file descriptors.
pub(crate) fn out_of_descriptors(error: &std::io::Error) -> bool {
    // EMFILE and ENFILE; the numbers are the same on Linux, the BSDs and macOS.
    matches!(error.raw_os_error(), Some(23 | 24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_backs_off_doubling_to_a_second_and_is_reported_once() {
        let mut exhaustion = Exhaustion::default();
        let start = Instant::now();
        let first = exhaustion.failed(start);
        assert_eq!(first, Pause { wait: FIRST_PAUSE, began: true });
        let waits: Vec<_> = (1..10).map(|i| exhaustion.failed(start + Duration::from_millis(i)).wait).collect();
        assert_eq!(waits[0], Duration::from_millis(20));
        assert_eq!(*waits.last().unwrap(), LONGEST_PAUSE, "capped: {waits:?}");
        assert!(!exhaustion.failed(start).began, "one episode, one log line");
        let figures = exhaustion.figures(start + Duration::from_millis(50));
        assert_eq!((figures.exhausted, figures.episodes, figures.failures), (true, 1, 11));
        let recovered = exhaustion.succeeded(start + Duration::from_millis(100)).expect("the episode ends");
        assert_eq!(recovered, Recovered { failures: 11, lasted: Duration::from_millis(100) });
        assert_eq!(exhaustion.succeeded(start + Duration::from_millis(200)), None, "nothing more to report");
        let again = exhaustion.failed(start + Duration::from_secs(1));
        assert_eq!(again, Pause { wait: FIRST_PAUSE, began: true }, "a new episode starts from the first pause");
        let figures = exhaustion.figures(start + Duration::from_secs(1));
        assert_eq!((figures.episodes, figures.failures, figures.time), (2, 12, Duration::from_millis(100)));
    }

    #[test]
    fn emfile_and_enfile_are_told_apart_from_other_errors() {
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(24)));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(23)));
        assert!(!out_of_descriptors(&std::io::Error::from(std::io::ErrorKind::ConnectionAborted)));
    }
}
