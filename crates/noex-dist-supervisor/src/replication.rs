//! What the replicas of a named supervision know of it, so that a takeover starts from the owner's children and
//! not from the configuration: the children added with `start_child` and `start_templated`, and which children are
//! stopped for good (terminated, ended normally) or deleted. Where each child runs needs no replication: a named
//! supervision's children are registered globally, and the new owner adopts them by name.
//!
//! The owner's supervisor sends each replica a [`Snapshot`] when the replica joins the group (and when it asks
//! for one), then every [`Change`], numbered. A replica keeps one snapshot per owner node it heard from, so that
//! two owners on either side of a partition never mix; a change out of sequence (a lost message) makes the replica
//! ask for a new snapshot. A supervisor that hands over (`Release`) sends its snapshot to the new owner, which
//! merges the children it did not know: nothing started on the smaller side of a partition is lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use noex_core::{NodeName, Pid, Restart};
use serde::{Deserialize, Serialize};

use crate::{DistChildSpec, DistSupervisorSpec, NodeSelector};

/// How a child came into the supervision, which says where a replica finds the parts that cannot travel (a
/// `Custom` selector is a function): in its own spec for `Static` and `Templated` children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// One of the spec's children.
    Static,
    /// Started from the spec's template.
    Templated,
    /// Added with `start_child`.
    Added,
}

/// A node selector as it travels: all but `Custom`'s function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum WireSelector {
    LocalFirst,
    RoundRobin,
    LeastLoaded,
    Random,
    Node(String),
    Custom,
}

/// A child as the replicas keep it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplicatedChild {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    behaviour: String,
    #[serde(with = "serde_bytes")]
    args: Vec<u8>,
    restart: u8,
    selector: Option<WireSelector>,
    shutdown_ms: u64,
    /// Ended for good: not started again by a new owner.
    pub(crate) stopped: bool,
    /// Its process, in a handover's snapshot: the new owner adopts it even before its registry knows the name.
    pub(crate) running: Option<WirePid>,
}

/// A pid as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WirePid {
    node: String,
    creation: u32,
    id: u64,
}

impl From<&Pid> for WirePid {
    fn from(pid: &Pid) -> Self {
        WirePid { node: pid.node().as_str().to_string(), creation: pid.creation(), id: pid.id() }
    }
}

impl WirePid {
    pub(crate) fn to_pid(&self) -> Pid {
        Pid::new(NodeName::new(self.node.as_str()), self.creation, self.id)
    }
}

/// Everything a new owner needs, as one owner's supervisor (its node, and `epoch`, which is new with each
/// supervisor process) knew it after its change number `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) owner: String,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    pub(crate) children: Vec<ReplicatedChild>,
    pub(crate) next_template_id: u64,
    /// The most recently removed children (see [`TOMBSTONES`]): a merge does not bring them back.
    pub(crate) removed: Vec<String>,
}

/// How many removed children's ids a supervision remembers, so that a merge after a healed partition does not
/// bring back a child the owner deleted (an older deletion can come back; a child is only ever lost, not doubled).
pub(crate) const TOMBSTONES: usize = 4096;

/// One change of a supervision's children.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Change {
    /// A child added at the end (with the template counter after it).
    Added { child: ReplicatedChild, next_template_id: u64 },
    /// A child forgotten (deleted, or a temporary child that ended).
    Removed(String),
    /// A child stopped for good, or started again on request.
    Stopped { id: String, stopped: bool },
}

/// What a replica hears: from its own node's forwarder, from owners' supervisors, and from other replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ReplicaMessage {
    /// The group changed: look again at who owns the supervision.
    Recheck,
    /// An owner's children, in full.
    State(Snapshot),
    /// An owner's next change.
    Change { owner: String, epoch: u64, seq: u64, change: Change },
    /// A replica on `node` missed a change: its owner's supervisor sends it the state again.
    Resend { node: String },
    /// A supervisor that handed over: its children, for the new owner to take on those it does not know.
    Merge(Snapshot),
}

noex_core::serde_encodable!(ReplicaMessage);

impl ReplicatedChild {
    pub(crate) fn new(spec: &DistChildSpec, kind: Kind, stopped: bool) -> Self {
        let selector = spec.selector.as_ref().map(|selector| match selector {
            NodeSelector::LocalFirst => WireSelector::LocalFirst,
            NodeSelector::RoundRobin => WireSelector::RoundRobin,
            NodeSelector::LeastLoaded => WireSelector::LeastLoaded,
            NodeSelector::Random => WireSelector::Random,
            NodeSelector::Node(node) => WireSelector::Node(node.to_string()),
            NodeSelector::Custom(_) => WireSelector::Custom,
        });
        ReplicatedChild {
            id: spec.id.to_string(),
            kind,
            behaviour: spec.behaviour.to_string(),
            args: spec.args.to_vec(),
            restart: match spec.restart {
                Restart::Permanent => 0,
                Restart::Transient => 1,
                Restart::Temporary => 2,
            },
            selector,
            shutdown_ms: u64::try_from(spec.shutdown.as_millis()).unwrap_or(u64::MAX),
            stopped,
            running: None,
        }
    }

    /// The child's spec again. What cannot travel comes from `local` (this node's copy of the supervision's spec):
    /// the `Custom` selector of one of its children or of its template. An added child's `Custom` selector is
    /// replaced by the supervisor's own selector.
    pub(crate) fn to_spec(&self, local: &DistSupervisorSpec) -> DistChildSpec {
        let local_selector = match self.kind {
            Kind::Static => local.children.iter().find(|c| *c.id == *self.id).and_then(|c| c.selector.clone()),
            Kind::Templated => local.template.as_ref().and_then(|t| t.selector.clone()),
            Kind::Added => None,
        };
        let selector = match &self.selector {
            None => None,
            Some(WireSelector::LocalFirst) => Some(NodeSelector::LocalFirst),
            Some(WireSelector::RoundRobin) => Some(NodeSelector::RoundRobin),
            Some(WireSelector::LeastLoaded) => Some(NodeSelector::LeastLoaded),
            Some(WireSelector::Random) => Some(NodeSelector::Random),
            Some(WireSelector::Node(node)) => match node.parse() {
                Ok(node) => Some(NodeSelector::Node(node)),
                Err(_) => {
                    tracing::warn!(child = %self.id, %node, "replicated child names a bad node; using the default");
                    None
                }
            },
            Some(WireSelector::Custom) => {
                if local_selector.is_none() {
                    tracing::warn!(child = %self.id, "a custom selector cannot be replicated; using the default");
                }
                local_selector
            }
        };
        DistChildSpec {
            id: Arc::from(self.id.as_str()),
            behaviour: Arc::from(self.behaviour.as_str()),
            args: self.args.clone().into(),
            restart: match self.restart {
                0 => Restart::Permanent,
                1 => Restart::Transient,
                _ => Restart::Temporary,
            },
            selector,
            shutdown: Duration::from_millis(self.shutdown_ms),
        }
    }
}

/// A replica's knowledge: the latest snapshot of each owner node it heard from, kept up to date by changes.
#[derive(Default)]
pub(crate) struct Followed {
    states: HashMap<String, Snapshot>,
}

/// Whether a change applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Yes,
    /// Out of sequence (or from an owner whose snapshot never came): a snapshot must be asked for.
    Gap,
}

impl Followed {
    pub(crate) fn state(&mut self, snapshot: Snapshot) {
        self.states.insert(snapshot.owner.clone(), snapshot);
    }

    pub(crate) fn change(&mut self, owner: &str, epoch: u64, seq: u64, change: Change) -> Applied {
        let next = |s: &Snapshot| s.seq.checked_add(1) == Some(seq);
        let Some(state) = self.states.get_mut(owner).filter(|s| s.epoch == epoch && next(s)) else {
            return Applied::Gap;
        };
        state.seq = seq;
        apply(state, change);
        Applied::Yes
    }

    /// The snapshot of the supervisor that ran on `owner`.
    pub(crate) fn of(&self, owner: &str) -> Option<&Snapshot> {
        self.states.get(owner)
    }

    /// Forgets owners that are no longer members (their supervisions were taken over, or are merged).
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.states.retain(|owner, _| keep(owner));
    }
}

fn apply(state: &mut Snapshot, change: Change) {
    match change {
        Change::Added { child, next_template_id } => {
            state.children.retain(|c| c.id != child.id);
            state.removed.retain(|id| *id != child.id);
            state.children.push(child);
            state.next_template_id = state.next_template_id.max(next_template_id);
        }
        Change::Removed(id) => {
            state.children.retain(|c| c.id != id);
            state.removed.retain(|removed| *removed != id);
            if state.removed.len() >= TOMBSTONES {
                state.removed.remove(0);
            }
            state.removed.push(id);
        }
        Change::Stopped { id, stopped } => {
            if let Some(child) = state.children.iter_mut().find(|c| c.id == id) {
                child.stopped = stopped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_core::Encodable;

    fn snapshot(epoch: u64) -> Snapshot {
        let spec = DistChildSpec::new("a", "counter").restart(Restart::Transient);
        Snapshot {
            owner: "a@h:1".into(),
            epoch,
            seq: 3,
            children: vec![ReplicatedChild::new(&spec, Kind::Static, false)],
            next_template_id: 0,
            removed: Vec::new(),
        }
    }

    #[test]
    fn changes_apply_in_sequence_only() {
        let mut followed = Followed::default();
        followed.state(snapshot(7));
        let child = ReplicatedChild::new(&DistChildSpec::new("w_1", "worker"), Kind::Templated, false);
        let added = Change::Added { child, next_template_id: 1 };
        assert_eq!(followed.change("a@h:1", 7, 5, added.clone()), Applied::Gap, "a change was skipped");
        assert_eq!(followed.change("a@h:1", 8, 4, added.clone()), Applied::Gap, "another supervisor's change");
        assert_eq!(followed.change("b@h:1", 7, 4, added.clone()), Applied::Gap, "an owner never heard from");
        assert_eq!(followed.change("a@h:1", 7, 4, added), Applied::Yes);
        let stopped = Change::Stopped { id: "a".into(), stopped: true };
        assert_eq!(followed.change("a@h:1", 7, 5, stopped), Applied::Yes);
        let state = followed.of("a@h:1").expect("kept");
        assert_eq!(
            state.children.iter().map(|c| (c.id.as_str(), c.stopped)).collect::<Vec<_>>(),
            [("a", true), ("w_1", false)]
        );
        assert_eq!(state.next_template_id, 1);
    }

    #[test]
    fn a_child_round_trips_through_the_wire() {
        let local = DistSupervisorSpec::new(crate::Strategy::OneForOne);
        let spec = DistChildSpec::new("c", "counter")
            .restart(Restart::Temporary)
            .selector(NodeSelector::RoundRobin)
            .shutdown(Duration::from_millis(250));
        let message = ReplicaMessage::Change {
            owner: "a@h:1".into(),
            epoch: 1,
            seq: 1,
            change: Change::Added { child: ReplicatedChild::new(&spec, Kind::Added, false), next_template_id: 0 },
        };
        let decoded = ReplicaMessage::decode_wire(message.encode_wire()).expect("decodes");
        let ReplicaMessage::Change { change: Change::Added { child, .. }, .. } = decoded else { panic!() };
        let back = child.to_spec(&local);
        assert_eq!((&*back.id, &*back.behaviour, back.restart), ("c", "counter", Restart::Temporary));
        assert!(matches!(back.selector, Some(NodeSelector::RoundRobin)));
        assert_eq!(back.shutdown, Duration::from_millis(250));
    }

    #[test]
    fn a_custom_selector_comes_from_the_local_spec() {
        let place: crate::PlaceFn = Arc::new(|nodes, _| nodes.last().cloned());
        let local = DistSupervisorSpec::new(crate::Strategy::OneForOne)
            .child(DistChildSpec::new("s", "counter").selector(NodeSelector::Custom(place)));
        let wire = ReplicatedChild::new(&local.children[0], Kind::Static, false);
        assert!(matches!(wire.to_spec(&local).selector, Some(NodeSelector::Custom(_))));
        let added = ReplicatedChild { kind: Kind::Added, ..wire };
        assert!(added.to_spec(&local).selector.is_none(), "an added child's function is not on this node");
    }

    #[test]
    fn a_forged_sequence_number_is_a_gap_not_a_panic() {
        // A snapshot from any cluster node is taken as it comes: its numbers must not overflow later.
        let mut followed = Followed::default();
        followed.state(Snapshot { seq: u64::MAX, ..snapshot(7) });
        let stopped = Change::Stopped { id: "a".into(), stopped: true };
        assert_eq!(followed.change("a@h:1", 7, 0, stopped), Applied::Gap);
    }

    #[test]
    fn hostile_bytes_are_an_error() {
        assert!(ReplicaMessage::decode_wire(bytes::Bytes::from_static(&[9, 255, 255, 255, 255])).is_err());
    }
}
