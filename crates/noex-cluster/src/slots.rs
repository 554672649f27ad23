//! Pre-authentication slots: how many unauthenticated connections a node serves at once, in all and per source
//! address, and which one gives way when an address has too many waiting. The reasoning behind the figures is
//! in `docs/architecture.md` ("Handshake").

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The most unauthenticated connections served at once; more are closed as soon as they are accepted.
pub(crate) const MAX_HANDSHAKES: usize = 256;

/// The most connections of one source address that we wait on at once (for their `Hello` or their `Proof`). A
/// newer one takes the place of the one that has waited longest, unless that one's frame has arrived meanwhile.
pub(crate) const MAX_WAITING_PER_SOURCE: usize = 8;

/// How often at most a flood of one kind (connections displaced, handshakes timed out) logs a line.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The slots of one node.
#[derive(Default)]
pub(crate) struct Slots {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Slots taken (connections accepted and not yet authenticated or closed).
    taken: usize,
    /// Connections refused since the limit was reached; the episode is logged when it starts and when it ends.
    refused: u64,
    /// Source addresses with connections we wait on.
    sources: HashMap<IpAddr, Source>,
    next_wait: u64,
    displaced: Tally,
    timed_out: Tally,
}

#[derive(Default)]
struct Source {
    /// The waits in progress, oldest first, each with the token that ends it early.
    waiting: VecDeque<(u64, CancellationToken)>,
}

/// Occurrences of one kind of trouble, logged at once the first time and then at most once per [`LOG_EVERY`]
/// with the count since the last line: a flood makes a few lines, not one per connection.
#[derive(Default)]
struct Tally {
    unlogged: u64,
    last_log: Option<Instant>,
}

/// One connection's slot, from its accept until it is authenticated or closed.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    source: IpAddr,
}

/// A wait on the peer's next frame, in its source's queue until it ends (dropped).
pub(crate) struct Wait<'a> {
    slot: &'a Slot,
    id: u64,
    displaced: CancellationToken,
}

impl Slots {
    /// A slot for a connection accepted from `source`, or `None` if every slot is taken (the caller closes the
    /// connection at once).
    pub(crate) fn take(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let mut state = self.lock();
        if state.taken >= MAX_HANDSHAKES {
            if state.refused == 0 {
                tracing::warn!(limit = MAX_HANDSHAKES, "too many handshakes in progress; refusing connections");
            }
            state.refused += 1;
            return None;
        }
        if state.refused > 0 {
            tracing::warn!(refused = state.refused, "handshake slots available again");
            state.refused = 0;
        }
        state.taken += 1;
        // IPv4 peers on an IPv6 listener are one source whatever the socket calls them.
        Some(Slot { slots: self.clone(), source: source.to_canonical() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Slot {
    /// Starts waiting on the peer's next frame: joins the back of its source's queue, and displaces the front
    /// of the queue (the wait that started longest ago) if the source now has too many.
    pub(crate) fn wait(&self) -> Wait<'_> {
        let mut state = self.slots.lock();
        state.next_wait += 1;
        let id = state.next_wait;
        let displaced = CancellationToken::new();
        let source = state.sources.entry(self.source).or_default();
        source.waiting.push_back((id, displaced.clone()));
        if source.waiting.len() > MAX_WAITING_PER_SOURCE {
            if let Some((_, oldest)) = source.waiting.pop_front() {
                oldest.cancel();
            }
            if let Some(count) = state.displaced.count(Instant::now()) {
                tracing::warn!(
                    source = %self.source,
                    limit = MAX_WAITING_PER_SOURCE,
                    displaced = count,
                    "too many unauthenticated connections from one address; the idle ones are closed"
                );
            }
        }
        Wait { slot: self, id, displaced }
    }

    /// The handshake ran out of time (logged with the others of a flood, see [`Tally`]).
    pub(crate) fn timed_out(&self) {
        if let Some(count) = self.slots.lock().timed_out.count(Instant::now()) {
            tracing::warn!(source = %self.source, timed_out = count, "unauthenticated connection(s) timed out");
        }
    }
}

impl Tally {
    /// Counts one occurrence; returns how many to report if a line is due now.
    fn count(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self.last_log.is_some_and(|last| now.duration_since(last) < LOG_EVERY) {
            return None;
        }
        self.last_log = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

impl Wait<'_> {
    /// Resolves when a newer connection from the same source has taken this wait's place.
    pub(crate) async fn displaced(&self) {
        self.displaced.cancelled().await;
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut state = self.slot.slots.lock();
        let Some(source) = state.sources.get_mut(&self.slot.source) else { return };
        source.waiting.retain(|(id, _)| *id != self.id);
        if source.waiting.is_empty() {
            state.sources.remove(&self.slot.source);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().taken -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_global_limit_refuses_and_frees() {
        let slots = Arc::new(Slots::default());
        let mut held: Vec<_> =
            (0..MAX_HANDSHAKES).map(|i| slots.take(ip(&format!("10.0.{}.{}", i / 200, i % 200)))).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(slots.take(ip("10.9.9.9")).is_none(), "every slot is taken");
        held.pop();
        assert!(slots.take(ip("10.9.9.9")).is_some(), "a slot freed is available again");
    }

    #[test]
    fn a_flood_is_logged_once_per_period_with_its_count() {
        let mut tally = Tally::default();
        let start = Instant::now();
        assert_eq!(tally.count(start), Some(1), "the first one at once");
        assert_eq!(tally.count(start + Duration::from_secs(1)), None);
        assert_eq!(tally.count(start + Duration::from_secs(2)), None);
        assert_eq!(tally.count(start + LOG_EVERY + Duration::from_secs(1)), Some(3), "then the count since");
    }

    #[test]
    fn a_newer_wait_displaces_the_oldest_of_its_source_only() {
        let slots = Arc::new(Slots::default());
        let flood: Vec<_> = (0..MAX_WAITING_PER_SOURCE).map(|_| slots.take(ip("10.0.0.1")).unwrap()).collect();
        let stranger = slots.take(ip("10.0.0.2")).unwrap();
        let stranger_wait = stranger.wait();
        let waits: Vec<_> = flood.iter().map(Slot::wait).collect();
        assert!(waits.iter().all(|wait| !wait.displaced.is_cancelled()), "up to the limit, nobody gives way");

        let newcomer = slots.take(ip("10.0.0.1")).unwrap();
        let newcomer_wait = newcomer.wait();
        assert!(waits[0].displaced.is_cancelled(), "the oldest wait of that source gives way");
        assert!(waits[1..].iter().all(|wait| !wait.displaced.is_cancelled()));
        assert!(!newcomer_wait.displaced.is_cancelled(), "the newest connection always gets its chance");
        assert!(!stranger_wait.displaced.is_cancelled(), "other sources are untouched");

        // An IPv4 peer seen through an IPv6 listener is the same source.
        let mapped = slots.take(ip("::ffff:10.0.0.1")).unwrap();
        let _mapped_wait = mapped.wait();
        assert!(waits[1].displaced.is_cancelled());

        drop((waits, newcomer_wait, _mapped_wait, stranger_wait));
        assert!(slots.lock().sources.is_empty(), "finished waits leave nothing behind");
        drop((flood, newcomer, mapped, stranger));
        assert_eq!(slots.lock().taken, 0);
    }
}
