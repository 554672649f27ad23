//! Process groups across in-process nodes: a node's view of a scope as one comparable value, the view every node
//! should converge to, and waits on subscriptions with deadlines.

use std::collections::BTreeMap;

use noex_core::Pid;
use noex_pg::{GroupEvent, ProcessGroups, Subscription};
use noex_remote::Node;

use crate::remote::within;
use crate::servers::Counter;

/// A scope's membership as one node sees it: group -> members, sorted (repeats kept).
pub type View = BTreeMap<String, Vec<Pid>>;

/// What `groups` sees, every node's members included.
pub fn view(groups: &ProcessGroups) -> View {
    groups
        .which_groups()
        .into_iter()
        .map(|group| {
            let mut pids = groups.members(&group);
            pids.sort();
            (group, pids)
        })
        .collect()
}

/// The union of what each of `scopes` holds locally: the view every connected node should converge to.
pub fn union_of_locals(scopes: &[ProcessGroups]) -> View {
    let mut union = View::new();
    for groups in scopes {
        for group in groups.which_local_groups() {
            union.entry(group.clone()).or_default().extend(groups.local_members(&group));
        }
    }
    union.values_mut().for_each(|pids| pids.sort());
    union
}

/// Starts a process on `node` to join groups with (a counter server; kill it to end it).
pub async fn member(node: &Node) -> Pid {
    let options = noex_core::StartOptions::default();
    node.runtime().start_encodable(Counter::new(0), options).await.expect("the member starts").pid().clone()
}

/// The next event of `subscription`, failing the test after the deadline or if the scope is gone.
pub async fn next_event(subscription: &mut Subscription) -> GroupEvent {
    within("a group event", subscription.next()).await.expect("the scope still runs")
}

/// Events of `subscription` up to and including the first that `last` accepts, failing the test after the
/// deadline: a marker change made after the changes under test bounds what a test waits for, without a sleep.
pub async fn events_until(subscription: &mut Subscription, last: impl Fn(&GroupEvent) -> bool) -> Vec<GroupEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_event(subscription).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

/// `view` with `event` applied, as a subscriber would keep it: panics on a leave of a membership it does not
/// hold (a notification repeated, or one missed before it).
pub fn replay(view: &mut View, event: GroupEvent) {
    match event {
        GroupEvent::Join { group, pids } => {
            let members = view.entry(group).or_default();
            members.extend(pids);
            members.sort();
        }
        GroupEvent::Leave { group, pids } => {
            let members = view.get_mut(&group).unwrap_or_else(|| panic!("a leave of {group}, which has no members"));
            for pid in pids {
                let at = members.iter().position(|member| *member == pid);
                members.remove(at.unwrap_or_else(|| panic!("a leave of {pid} from {group}, not a member")));
            }
            if members.is_empty() {
                view.remove(&group);
            }
        }
        other => panic!("an event this test does not know: {other:?}"),
    }
}
