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
/// A registration carries no time: a rule can look only at the name, the process and the registrar.
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

/// The default rule, Erlang `global`'s: the registration made by the node whose id sorts first wins (the pid
/// breaks ties, which only a custom table could present). The registrar is the authenticated node at the other end
/// of the connection an entry came on, never a value a frame claims, and no clock takes part: neither clock skew
/// nor a peer's claim can change the answer, and every node reaches the same one.
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstNodeWins;

impl ConflictResolver for FirstNodeWins {
    fn resolve(&self, a: &GlobalName, b: &GlobalName) -> Winner {
        if (&a.registrar, &a.pid) <= (&b.registrar, &b.pid) { Winner::First } else { Winner::Second }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_core::{NodeName, Pid};

    fn entry(registrar: &str, pid_node: &str, id: u64) -> GlobalName {
        GlobalName {
            name: "x".into(),
            pid: Pid::new(NodeName::new(pid_node), 1, id),
            registrar: NodeName::new(registrar),
        }
    }

    #[test]
    fn the_rule_is_symmetric() {
        let pairs = [
            (entry("a@h:1", "a@h:1", 1), entry("b@h:1", "b@h:1", 1)),
            (entry("b@h:1", "a@h:1", 9), entry("a@h:1", "z@h:1", 5)),
        ];
        for (a, b) in pairs {
            let forward = FirstNodeWins.resolve(&a, &b);
            let backward = FirstNodeWins.resolve(&b, &a);
            assert_ne!(forward, backward, "the same registration must win in either order");
        }
    }

    #[test]
    fn the_registrar_decides_not_the_process_it_names() {
        // b registered a process of a: the registrar (b) counts, so c's own registration loses to it.
        let by_b = entry("b@h:1", "a@h:1", 7);
        let by_c = entry("c@h:1", "c@h:1", 1);
        assert_eq!(FirstNodeWins.resolve(&by_c, &by_b), Winner::Second);
    }
}
