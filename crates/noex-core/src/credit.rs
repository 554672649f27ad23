//! Flow control's return path: a message that arrived from another node carries a [`Receipt`], and handing
//! the message to its process (or dropping it) gives its cost back to the connection it came on, which tells the
//! sending node that it may send more. The runtime only carries receipts; the distribution layer decides what a
//! cost is and what giving it back means (see noex-cluster's cast window).

use std::sync::Arc;

/// Takes back the cost of messages that were handled (or dropped) by the processes they were delivered to.
pub trait CreditSink: Send + Sync + 'static {
    /// `cost` units of what one connection delivered have been consumed.
    fn consumed(&self, cost: u32);
}

/// The cost of one delivered message, given back to its [`CreditSink`] when the receipt is dropped: after the
/// process has handled the message, or when the message is dropped unhandled (the process ended, the message
/// did not decode). Never lost: a receipt always drops.
pub struct Receipt {
    sink: Arc<dyn CreditSink>,
    cost: u32,
}

impl Receipt {
    /// A receipt for a message costing `cost`, to be given back to `sink`.
    pub fn new(sink: Arc<dyn CreditSink>, cost: u32) -> Self {
        Receipt { sink, cost }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.sink.consumed(self.cost);
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Receipt({})", self.cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Count(AtomicU32);

    impl CreditSink for Count {
        fn consumed(&self, cost: u32) {
            self.0.fetch_add(cost, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_receipt_gives_its_cost_back_once_when_dropped() {
        let sink = Arc::new(Count(AtomicU32::new(0)));
        let receipt = Receipt::new(sink.clone(), 7);
        assert_eq!(sink.0.load(Ordering::Relaxed), 0);
        drop(receipt);
        assert_eq!(sink.0.load(Ordering::Relaxed), 7);
    }
}
