//! Who keeps a name that two nodes registered concurrently (or on both sides of a partition), and what happens
//! to the other process.

use noex_core::{ExitReason, Pid, Runtime};

use crate::GlobalName;

/// Which of two registrations keeps the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winner {
    /// The first argument of [`ConflictResolver::resolve`].
    First,
    /// The second.
    Second,
}

/// Decides name conflicts. Every node applies it to the same pair, in either order, and must reach the same
/// answer: `resolve(a, b)` and `resolve(b, a)` must name the same registration, or the nodes will not converge.
pub trait ConflictResolver: Send + Sync + 'static {
    /// Which of two registrations of one name keeps it.
    fn resolve(&self, a: &GlobalName, b: &GlobalName) -> Winner;

    /// Called on the node where the losing process lives (once per conflict in the cluster). The default sends it
    /// an exit signal `error("global name conflict: <name>")`, as Erlang's `global` does by default: a process
    /// that does not trap exits ends (and its supervisor sees why); one that traps gets an `Info::Exit`.
    fn on_loser(&self, runtime: &Runtime, name: &str, loser: &Pid, winner: &Pid) {
        let _ = winner;
        runtime.exit(loser, ExitReason::error(format!("global name conflict: {name}")));
    }
}

/// The default rule (noex's): the earlier registration wins; on equal times, the registration made by the
/// smaller node id, then the smaller pid.
#[derive(Clone, Copy, Debug, Default)]
pub struct EarliestWins;

impl ConflictResolver for EarliestWins {
    fn resolve(&self, a: &GlobalName, b: &GlobalName) -> Winner {
        let key = |e: &GlobalName| (e.registered_at_ms, e.registrar.clone(), e.pid.clone());
        if key(a) <= key(b) { Winner::First } else { Winner::Second }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_core::NodeName;

    #[test]
    fn the_rule_is_symmetric() {
        let entry = |node: &str, at| GlobalName {
            name: "x".into(),
            pid: Pid::new(NodeName::new(node), 1, 1),
            registered_at_ms: at,
            registrar: NodeName::new(node),
        };
        let pairs = [(entry("a@h:1", 5), entry("b@h:1", 5)), (entry("a@h:1", 9), entry("b@h:1", 5))];
        for (a, b) in pairs {
            let forward = EarliestWins.resolve(&a, &b);
            let backward = EarliestWins.resolve(&b, &a);
            assert_ne!(forward, backward, "the same registration must win in either order");
        }
    }
}
