//! The receiving half of the cast window: casts that arrived on a connection carry a receipt; as the processes
//! consume them, their cost adds up here, and every quarter window consumed is granted back to the sender in a
//! `CastCredit` frame on the same connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use noex_core::CreditSink;
use noex_proto::Frame;

use crate::outbound::Outbound;

pub(crate) struct InboundCredit {
    /// Cost of the casts consumed so far (cumulative, as the frame carries it).
    consumed: AtomicU64,
    /// The last total granted.
    granted: AtomicU64,
    /// Granted in steps of this much: four per window, so that a sender that filled the window resumes after a
    /// quarter of it, and credit costs a frame per quarter window, not per cast.
    step: u64,
    /// The connection the casts came on; its writing side carries the credit back.
    outbound: Arc<Outbound>,
}

impl InboundCredit {
    pub(crate) fn new(outbound: Arc<Outbound>, window: u64) -> Self {
        InboundCredit { consumed: AtomicU64::new(0), granted: AtomicU64::new(0), step: (window / 4).max(1), outbound }
    }
}

impl CreditSink for InboundCredit {
    fn consumed(&self, cost: u32) {
        let total = self.consumed.fetch_add(u64::from(cost), Ordering::AcqRel) + u64::from(cost);
        let granted = self.granted.load(Ordering::Acquire);
        // One grant per step: of the consumers that cross it at once, the one that wins the exchange sends; the
        // others' share goes with the next grant (credit is cumulative, so grants may also arrive out of order).
        if total - granted >= self.step
            && self.granted.compare_exchange(granted, total, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            // A closed connection takes its window with it; a signal-class frame, never refused for room.
            let _ = self.outbound.send(Frame::CastCredit { consumed: total });
        }
    }
}
