//! How long this process did not run: the allowance a caller frozen by SIGSTOP (or starved) gets on its calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Measures the time this process did not run (SIGSTOP, or a starved machine): a thread wakes every 50 ms and
/// adds every gap past 150 ms to the total. A call's elapsed time minus the stalls during it is what the stack is
/// judged on. A gap still open when read (the process just resumed, the thread has not run yet) counts too.
pub(crate) struct Stalls {
    base: Instant,
    /// Closed gaps, in milliseconds.
    total: AtomicU64,
    /// When the thread last woke, in milliseconds from `base`.
    last: AtomicU64,
}

/// How often the stall thread wakes; a gap past three of these is a stall.
const STALL_TICK: Duration = Duration::from_millis(50);

impl Stalls {
    pub(crate) fn start() -> Arc<Stalls> {
        let stalls = Arc::new(Stalls { base: Instant::now(), total: AtomicU64::new(0), last: AtomicU64::new(0) });
        let counting = stalls.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(STALL_TICK);
                let now = counting.now();
                let gap = now - counting.last.load(Ordering::Acquire);
                if gap > 3 * STALL_TICK.as_millis() as u64 {
                    counting.total.fetch_add(gap - STALL_TICK.as_millis() as u64, Ordering::AcqRel);
                }
                counting.last.store(now, Ordering::Release);
            }
        });
        stalls
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// The time stalled so far, the gap still open included.
    pub(crate) fn so_far(&self) -> Duration {
        let total = self.total.load(Ordering::Acquire);
        let open = self.now().saturating_sub(self.last.load(Ordering::Acquire));
        let open = if open > 3 * STALL_TICK.as_millis() as u64 { open - STALL_TICK.as_millis() as u64 } else { 0 };
        Duration::from_millis(total + open)
    }
}
