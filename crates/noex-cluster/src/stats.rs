//! What a connection reports about its traffic and its flow control, for observers and operators; and the
//! bookkeeping of "full" episodes, which also keeps overload logs to one line per episode (at most one every
//! few seconds under a sustained flood).

use std::time::{Duration, Instant};

/// One connection's figures since it was established (see [`Cluster::connection_stats`](crate::Cluster::connection_stats)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Bytes waiting to be written now.
    pub queued_bytes: usize,
    /// The most bytes that ever waited to be written at once.
    pub peak_queued_bytes: usize,
    /// Frames queued for the peer (heartbeats included).
    pub frames_out: u64,
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// Frames received from the peer.
    pub frames_in: u64,
    /// Bytes read from the socket.
    pub bytes_in: u64,
    /// Casts queued for the peer.
    pub casts_out: u64,
    /// Cost of the casts sent and not yet consumed by the peer (the part of the cast window in use).
    pub cast_window_used: u64,
    /// Casts refused because the cast window was spent (`try_cast` returned `Full`).
    pub casts_refused: u64,
    /// Casts that waited for room in the cast window (`cast_await`).
    pub casts_waited: u64,
    /// How many times the cast window was found spent (each time starts an episode that ends with room again).
    pub full_episodes: u64,
    /// Time spent in those episodes.
    pub full_time: Duration,
    /// Bytes still queued when the connection closed, which never reached the peer.
    pub discarded_bytes: u64,
}

/// Only so often does a sustained overload log a line.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Episodes of a spent cast window: counted, timed, and summarised in the log at most once per [`LOG_EVERY`].
#[derive(Default)]
pub(crate) struct FullEpisodes {
    since: Option<Instant>,
    episodes: u64,
    total: Duration,
    /// Since the last log line.
    unlogged: u64,
    unlogged_time: Duration,
    last_log: Option<Instant>,
}

impl FullEpisodes {
    /// The window was found spent; starts an episode unless one is in progress.
    pub(crate) fn begin(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.episodes += 1;
            self.unlogged += 1;
        }
    }

    /// The window has room again. Returns a line to log if one is due.
    pub(crate) fn end(&mut self) -> Option<String> {
        let now = Instant::now();
        let lasted = now.duration_since(self.since.take()?);
        self.total += lasted;
        self.unlogged_time += lasted;
        if self.last_log.is_some_and(|last| now.duration_since(last) < LOG_EVERY) {
            return None;
        }
        self.last_log = Some(now);
        let line = format!(
            "cast window to the peer was full {} time(s) for {} ms in all since the last report ({} in all)",
            self.unlogged,
            self.unlogged_time.as_millis(),
            self.episodes
        );
        (self.unlogged, self.unlogged_time) = (0, Duration::ZERO);
        Some(line)
    }

    pub(crate) fn episodes(&self) -> u64 {
        self.episodes
    }

    /// Total time full, the episode in progress included.
    pub(crate) fn total(&self) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |since| since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_are_counted_once_and_logged_at_most_once_per_period() {
        let mut full = FullEpisodes::default();
        assert_eq!(full.end(), None, "no episode, nothing to end");
        full.begin();
        full.begin();
        assert_eq!(full.episodes(), 1, "one episode until it ends");
        assert!(full.end().is_some(), "the first episode is reported");
        full.begin();
        assert_eq!(full.end(), None, "the next ones wait for the period");
        assert_eq!(full.episodes(), 2);
    }
}
