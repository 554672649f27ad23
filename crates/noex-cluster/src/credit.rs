//! The receiving half of the cast window: casts that arrived on a connection carry a receipt; as the processes
//! consume them, their cost adds up here, and credit is granted back to the sender in `CastCredit` frames on the
//! same connection: every quarter of the smaller of the two nodes' windows, and whatever is left over at every
//! liveness tick (so that no consumption is ever left ungranted for long).

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

use noex_core::CreditSink;
use noex_proto::Frame;

use crate::outbound::Outbound;

pub(crate) struct InboundCredit {
    /// Cost of the casts consumed so far (cumulative, as the frame carries it).
    consumed: AtomicU64,
    /// The highest total granted.
    granted: AtomicU64,
    /// Granted in steps of this much: a quarter window, so that a sender that filled its window resumes after a
    /// quarter of it, and credit costs a frame per quarter window, not per cast. Until the peer states its window,
    /// a quarter of ours; then a quarter of the smaller.
    step: AtomicU64,
    /// The connection the casts came on; its writing side carries the credit back. Weak: receipts still in
    /// mailboxes must not keep a closed connection's socket and buffers alive.
    outbound: Weak<Outbound>,
}

impl InboundCredit {
    pub(crate) fn new(outbound: Weak<Outbound>, window: u64) -> Self {
        InboundCredit {
            consumed: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            step: AtomicU64::new((window / 4).max(1)),
            outbound,
        }
    }

    /// The peer stated its cast window: grant in steps that fit it too.
    pub(crate) fn peer_window(&self, window: u64) {
        if window > 0 {
            self.step.fetch_min((window / 4).max(1), Ordering::AcqRel);
        }
    }

    /// Grants whatever was consumed and not granted yet (from the liveness thread, every tick).
    pub(crate) fn flush(&self) {
        self.grant(self.consumed.load(Ordering::Acquire), 1);
    }

    /// Grants `total` if it is at least `step` past the highest grant and no other consumer granted more
    /// meanwhile; each grant is sent by the one consumer that raised `granted` to it.
    fn grant(&self, total: u64, step: u64) {
        let mut granted = self.granted.load(Ordering::Acquire);
        while total > granted && total - granted >= step {
            match self.granted.compare_exchange_weak(granted, total, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    // A closed connection takes its window with it; a signal-class frame, never refused for room.
                    if let Some(outbound) = self.outbound.upgrade() {
                        let _ = outbound.send(Frame::CastCredit { consumed: total, window: 0 });
                    }
                    return;
                }
                Err(actual) => granted = actual,
            }
        }
    }
}

impl CreditSink for InboundCredit {
    fn consumed(&self, cost: u32) {
        let total = self.consumed.fetch_add(u64::from(cost), Ordering::AcqRel) + u64::from(cost);
        self.grant(total, self.step.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_follow_the_smaller_window_and_leftovers_are_flushed() {
        let credit = InboundCredit::new(Weak::new(), 1 << 20);
        credit.peer_window(4096);
        credit.consumed(1000);
        assert_eq!(credit.granted.load(Ordering::Relaxed), 0, "below a quarter of the smaller window");
        credit.consumed(100);
        assert_eq!(credit.granted.load(Ordering::Relaxed), 1100, "a quarter of 4096 reached");
        credit.consumed(10);
        credit.flush();
        assert_eq!(credit.granted.load(Ordering::Relaxed), 1110, "the leftover goes at the next tick");
        credit.peer_window(0);
        assert_eq!(credit.step.load(Ordering::Relaxed), 1024, "an unstated window changes nothing");
    }

    #[test]
    fn a_consumer_behind_another_never_moves_the_grant_back() {
        let credit = InboundCredit::new(Weak::new(), 4);
        credit.consumed.store(300, Ordering::Relaxed);
        credit.grant(300, 1);
        credit.grant(100, 1); // a consumer that added its cost before the other's grant, and looks only now
        assert_eq!(credit.granted.load(Ordering::Relaxed), 300);
    }
}
