//! Bounds on the work a peer can make this node do: a request frame is handled on the connection's reader, but a
//! spawn (waiting for `init`) and a stop (waiting for the end) each hold a task until answered. The timeouts a
//! peer chooses for them are capped, and so is the number it can have in progress at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use noex_core::NodeName;

/// The longest a peer's `Stop` or `SpawnRequest` may make this node wait: its own timeout is honoured up to this.
/// A stop that takes longer ends with a kill (and the reply says `timeout`); a spawn whose `init` takes longer is
/// killed and refused with `timeout`. Five minutes is far past any sane shutdown or `init`, and keeps a task a
/// peer made this node hold from living for the protocol's 49 days.
pub const MAX_PEER_TIMEOUT: Duration = Duration::from_secs(300);

/// How many spawns and stops one peer may have in progress here at once. Past it the peer is flooding this node
/// with work it cannot refuse one by one (a signal is never refused), so its connection is closed, as for a peer
/// that does not read what it is sent: it is reported down as `overloaded` and everything tied to it is settled.
pub const MAX_REQUESTS_PER_PEER: usize = 16_384;

/// The spawns and stops in progress here, by the node that asked for them.
#[derive(Clone, Default)]
pub(crate) struct InFlight {
    counts: Arc<Mutex<HashMap<NodeName, usize>>>,
}

/// One request in progress; gives its place back when dropped (when the request is answered).
pub(crate) struct Slot {
    counts: Arc<Mutex<HashMap<NodeName, usize>>>,
    node: NodeName,
}

impl InFlight {
    /// A place for one more request from `node`, or `None` if it has `limit` in progress already.
    pub(crate) fn acquire(&self, node: &NodeName, limit: usize) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(node.clone()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot { counts: self.counts.clone(), node: node.clone() })
    }

    /// The requests `node` has in progress here.
    #[cfg(test)]
    pub(crate) fn count(&self, node: &NodeName) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(node).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.node) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_at_most_its_limit_and_a_place_comes_back_when_answered() {
        let inflight = InFlight::default();
        let (a, b) = (NodeName::new("a@h:1"), NodeName::new("b@h:1"));
        let first = inflight.acquire(&a, 2).unwrap();
        let _second = inflight.acquire(&a, 2).unwrap();
        assert!(inflight.acquire(&a, 2).is_none());
        assert!(inflight.acquire(&b, 2).is_some(), "another peer has its own places");
        drop(first);
        assert_eq!(inflight.count(&a), 1);
        assert!(inflight.acquire(&a, 2).is_some());
    }
}
