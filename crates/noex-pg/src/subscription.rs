//! Membership notifications: the subscribers of a scope (all groups, or one group) and the `Subscription` a
//! subscriber reads. Notifications are sent under the scope's lock, so every subscriber sees changes in the order
//! they were made; each subscriber has an unbounded queue (as a pg monitor's messages go to a mailbox), so none is
//! ever dropped.

use std::sync::Arc;

use noex_core::Pid;
use rustc_hash::FxHashMap as HashMap;
use tokio::sync::mpsc;

use crate::GroupEvent;
use crate::state::Change;

/// A stream of membership changes, from [`ProcessGroups::monitor_scope`](crate::ProcessGroups::monitor_scope) or
/// [`ProcessGroups::monitor`](crate::ProcessGroups::monitor). Dropping it ends the subscription.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::UnboundedReceiver<GroupEvent>,
}

impl Subscription {
    /// The next change, in the order the scope made them; `None` once the scope is gone. Cancel safe.
    pub async fn next(&mut self) -> Option<GroupEvent> {
        self.events.recv().await
    }

    /// The next change if one is waiting.
    pub fn try_next(&mut self) -> Option<GroupEvent> {
        self.events.try_recv().ok()
    }
}

/// A scope's subscribers.
#[derive(Default)]
pub(crate) struct Subscribers {
    scope: Vec<mpsc::UnboundedSender<GroupEvent>>,
    groups: HashMap<Arc<str>, Vec<mpsc::UnboundedSender<GroupEvent>>>,
}

impl Subscribers {
    /// A new subscriber to every group (`None`) or one group.
    pub(crate) fn subscribe(&mut self, group: Option<Arc<str>>) -> Subscription {
        let (sender, events) = mpsc::unbounded_channel();
        match group {
            None => self.scope.push(sender),
            Some(group) => self.groups.entry(group).or_default().push(sender),
        }
        Subscription { events }
    }

    /// Tells the subscribers concerned; forgets those that dropped their subscription.
    pub(crate) fn notify(&mut self, change: &Change) {
        let (group, pids, join) = match change {
            Change::Join { group, pids } => (group, pids, true),
            Change::Leave { group, pids } => (group, pids, false),
        };
        let listeners = self.groups.get(group).map_or(0, Vec::len) + self.scope.len();
        if listeners == 0 {
            return;
        }
        let event = event(group, pids, join);
        self.scope.retain(|subscriber| subscriber.send(event.clone()).is_ok());
        if let Some(subscribers) = self.groups.get_mut(group) {
            subscribers.retain(|subscriber| subscriber.send(event.clone()).is_ok());
            if subscribers.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

fn event(group: &str, pids: &[Pid], join: bool) -> GroupEvent {
    let (group, pids) = (group.to_owned(), pids.to_vec());
    if join { GroupEvent::Join { group, pids } } else { GroupEvent::Leave { group, pids } }
}
