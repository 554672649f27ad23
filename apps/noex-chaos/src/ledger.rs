//! The invariants' bookkeeping, as plain values: call outcomes and late calls, exactly one `DOWN` per monitor,
//! and growth bounds. Workers and the orchestrator feed them; unit tests check them without a cluster.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use noex_core::CallError;

/// How long past its timeout a call may end before it is a violation: scheduling noise on a busy machine.
/// Time a caller spent frozen (SIGSTOP) or starved is measured and excused on top (see `stalls::Stalls`).
pub const LATE_SLACK: Duration = Duration::from_secs(1);

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A reply.
    Ok,
    /// `CallError::Timeout`.
    Timeout,
    /// `CallError::NoProc`.
    NoProc,
    /// `CallError::NoConnection`.
    NoConnection,
    /// `CallError::Exited`.
    Exited,
    /// `CallError::Decode`: both sides use the same types, so this is a violation.
    Decode,
    /// A kind of `CallError` this program does not know yet.
    Other,
}

impl Outcome {
    /// The outcome of a call's result.
    pub fn of<T>(result: &Result<T, CallError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(CallError::Timeout(_)) => Outcome::Timeout,
            Err(CallError::NoProc(_)) => Outcome::NoProc,
            Err(CallError::NoConnection(_)) => Outcome::NoConnection,
            Err(CallError::Exited(_)) => Outcome::Exited,
            Err(CallError::Decode(_)) => Outcome::Decode,
            Err(_) => Outcome::Other,
        }
    }
}

/// Whether a call that took `elapsed` broke its `timeout`, once `stalled` (time the caller itself did not run)
/// and [`LATE_SLACK`] are excused.
pub fn is_late(elapsed: Duration, timeout: Duration, stalled: Duration) -> bool {
    elapsed > timeout + LATE_SLACK + stalled
}

/// Counts of call outcomes, and the late calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallLedger {
    /// Calls by outcome.
    pub outcomes: HashMap<Outcome, u64>,
    /// Calls that ended later than their timeout allows.
    pub late: u64,
}

impl CallLedger {
    /// Records one call; returns the violation it is, if any.
    pub fn record(
        &mut self,
        outcome: Outcome,
        elapsed: Duration,
        timeout: Duration,
        stalled: Duration,
    ) -> Option<String> {
        *self.outcomes.entry(outcome).or_default() += 1;
        if is_late(elapsed, timeout, stalled) {
            self.late += 1;
            return Some(format!(
                "late call: {outcome:?} after {elapsed:?} with timeout {timeout:?} (caller stalled {stalled:?})"
            ));
        }
        (outcome == Outcome::Decode).then(|| "call failed to decode between nodes of the same program".to_owned())
    }

    /// How many calls ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// How many calls ended.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }
}

/// Monitors and their `DOWN`s: each monitor must get exactly one.
#[derive(Debug)]
pub struct MonitorLedger<K, T> {
    open: HashMap<K, T>,
    fired: HashSet<K>,
    /// Monitors set up.
    pub monitors: u64,
    /// `DOWN`s received (duplicates included).
    pub downs: u64,
    /// `DOWN`s for a monitor that had already fired, or that was never set up.
    pub duplicates: u64,
}

impl<K, T> Default for MonitorLedger<K, T> {
    fn default() -> Self {
        MonitorLedger { open: HashMap::new(), fired: HashSet::new(), monitors: 0, downs: 0, duplicates: 0 }
    }
}

impl<K: Hash + Eq + Clone + Debug, T: Debug> MonitorLedger<K, T> {
    /// A monitor `key` on `target` was set up.
    pub fn opened(&mut self, key: K, target: T) {
        self.monitors += 1;
        self.open.insert(key, target);
    }

    /// A `DOWN` arrived for `key`; returns the violation it is, if any.
    pub fn down(&mut self, key: K) -> Option<String> {
        self.downs += 1;
        if self.open.remove(&key).is_some() {
            self.fired.insert(key);
            return None;
        }
        self.duplicates += 1;
        Some(if self.fired.contains(&key) {
            format!("second DOWN for monitor {key:?}")
        } else {
            format!("DOWN for monitor {key:?}, which was never set up")
        })
    }

    /// How many monitors wait for their `DOWN`.
    pub fn waiting(&self) -> usize {
        self.open.len()
    }

    /// The monitors still waiting although `dead` says their target is gone: each one is a missing `DOWN`.
    pub fn missing(&self, dead: impl Fn(&T) -> bool) -> Vec<(&K, &T)> {
        self.open.iter().filter(|(_, target)| dead(target)).collect()
    }
}

/// Whether a figure sampled on a long-lived node grew beyond its bound between warm-up and the end: more than
/// `absolute`, and more than `relative` times the warm-up figure (both must be exceeded, so that small figures
/// may move by a few units and large ones by a fraction).
pub fn grew(before: u64, after: u64, absolute: u64, relative: f64) -> bool {
    let growth = after.saturating_sub(before);
    growth > absolute && growth as f64 > before as f64 * relative
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_call_past_its_timeout_and_slack_is_late_unless_the_caller_was_stalled() {
        assert!(!is_late(2 * SECOND, 2 * SECOND, Duration::ZERO));
        assert!(!is_late(3 * SECOND, 2 * SECOND, Duration::ZERO));
        assert!(is_late(3 * SECOND + Duration::from_millis(1), 2 * SECOND, Duration::ZERO));
        assert!(!is_late(6 * SECOND, 2 * SECOND, 3 * SECOND));
        assert!(is_late(7 * SECOND, 2 * SECOND, 3 * SECOND));
    }

    #[test]
    fn the_call_ledger_counts_outcomes_and_reports_late_and_undecodable_calls() {
        let mut ledger = CallLedger::default();
        assert_eq!(ledger.record(Outcome::Ok, SECOND / 10, 2 * SECOND, Duration::ZERO), None);
        assert_eq!(ledger.record(Outcome::Timeout, 2 * SECOND, 2 * SECOND, Duration::ZERO), None);
        let late = ledger.record(Outcome::Ok, 5 * SECOND, 2 * SECOND, Duration::ZERO);
        assert!(late.is_some_and(|v| v.contains("late call")));
        assert!(ledger.record(Outcome::Decode, SECOND, 2 * SECOND, Duration::ZERO).is_some());
        assert_eq!((ledger.count(Outcome::Ok), ledger.count(Outcome::Timeout), ledger.total()), (2, 1, 4));
        assert_eq!(ledger.late, 1);
        let lost = noex_core::NodeName::new("n1@127.0.0.1:1");
        assert_eq!(Outcome::of(&Err::<(), _>(CallError::NoConnection(lost))), Outcome::NoConnection);
    }

    #[test]
    fn each_monitor_gets_exactly_one_down() {
        let mut ledger = MonitorLedger::default();
        ledger.opened(1, "a");
        ledger.opened(2, "b");
        ledger.opened(3, "c");
        assert_eq!(ledger.down(1), None);
        let second = ledger.down(1);
        assert!(second.is_some_and(|v| v.contains("second DOWN")));
        let stranger = ledger.down(9);
        assert!(stranger.is_some_and(|v| v.contains("never set up")));
        assert_eq!((ledger.monitors, ledger.downs, ledger.duplicates, ledger.waiting()), (3, 3, 2, 2));
        // "b" died without a DOWN; "c" lives, so its monitor rightly waits.
        let missing = ledger.missing(|target| *target == "a" || *target == "b");
        assert_eq!(missing, vec![(&2, &"b")]);
    }

    #[test]
    fn growth_must_exceed_both_bounds() {
        assert!(!grew(100, 90, 10, 0.5));
        assert!(!grew(10, 25, 16, 0.5));
        assert!(grew(10, 27, 16, 0.5));
        assert!(!grew(1000, 1400, 16, 0.5));
        assert!(grew(1000, 1600, 16, 0.5));
    }
}
