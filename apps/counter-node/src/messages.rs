//! The lines the program prints (other than parse errors, see `command.rs`), as pure functions of what they
//! report, so that their exact wording is tested in one place.

use std::fmt::Display;

use chrono::{DateTime, Local};
use noex_cluster::{ClusterEvent, NodeId, NodeStatus};
use noex_core::Pid;

use crate::command::Direction;
use crate::counter::CounterInfo;
use crate::watcher::CounterDown;

/// The banner printed at start.
pub(crate) fn banner() -> String {
    let rule = "=".repeat(60);
    format!("{rule}\n  Distributed Counter - noex Fault Tolerance Example\n{rule}\n")
}

/// What is printed once the node runs.
pub(crate) fn started(node: &NodeId, seeds: &[String]) -> String {
    let mut text = format!("Starting node: {node}\n");
    if !seeds.is_empty() {
        text.push_str(&format!("Connecting to seeds: {}\n", seeds.join(", ")));
    }
    text.push_str("\nCluster started successfully!\nType /help for available commands.\n");
    text
}

/// A membership change, or a dial refused (said while the node keeps trying); `None` for events not shown.
pub(crate) fn cluster_event(event: &ClusterEvent) -> Option<String> {
    Some(match event {
        ClusterEvent::NodeUp(info) => format!("Node joined: {}", info.node),
        ClusterEvent::NodeDown { node, reason } => format!("Node left: {} ({reason})", node.node),
        ClusterEvent::DialRefused { node, refusal } => format!("Cannot join {node}: {refusal}. Still trying."),
        _ => return None,
    })
}

/// A watched counter ended.
pub(crate) fn counter_down(down: &CounterDown) -> String {
    format!("Counter \"{}\" on {} went DOWN! Reason: {}", down.name, down.pid.node(), down.reason.kind())
}

/// Two nodes created a counter of one name at the same moment: the cluster kept one.
pub(crate) fn conflict(name: &str, winner: &Pid) -> String {
    format!("Counter \"{name}\" was created on two nodes at once; the one on {} was kept.", winner.node())
}

/// `/create` of a name that is taken.
pub(crate) fn already_exists(name: &str) -> String {
    format!("Counter \"{name}\" already exists.")
}

/// `/create` on another node, before the spawn.
pub(crate) fn creating(name: &str, node: &NodeId) -> String {
    format!("Creating counter \"{name}\" on {node}...")
}

/// `/create` done; `node` is `None` for this node.
pub(crate) fn created(name: &str, node: Option<&NodeId>) -> String {
    match node {
        Some(node) => format!("Counter \"{name}\" created on {node} with value 0."),
        None => format!("Counter \"{name}\" created locally with value 0."),
    }
}

/// `/create ... on <node>` of an unknown node, with the nodes that exist.
pub(crate) fn node_not_found(wanted: &str, available: &[NodeId]) -> String {
    let mut text = format!("Node not found: {wanted}. Available nodes:");
    for node in available {
        text.push_str(&format!("\n  - {node}"));
    }
    text
}

/// A counter name that is not registered.
pub(crate) fn not_found(name: &str) -> String {
    format!("Counter \"{name}\" not found.")
}

/// `/inc` and `/dec` done.
pub(crate) fn updated(name: &str, direction: Direction, amount: i64, value: i64) -> String {
    let verb = match direction {
        Direction::Increment => "incremented",
        Direction::Decrement => "decremented",
    };
    format!("Counter \"{name}\" {verb} by {amount}. New value: {value}")
}

/// A change that would take the counter past the range of its value (nothing was changed).
pub(crate) fn out_of_range(name: &str, direction: Direction, amount: i64, value: i64) -> String {
    let verb = match direction {
        Direction::Increment => "incrementing",
        Direction::Decrement => "decrementing",
    };
    format!("counter \"{name}\" unchanged at {value}: {verb} by {amount} would overflow")
}

/// `/get`: the counter's own account of itself, and where it runs.
pub(crate) fn info(info: &CounterInfo, location: impl Display) -> String {
    let updated = DateTime::from_timestamp_millis(info.last_updated_ms)
        .map(|at| at.with_timezone(&Local).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "an unknown time".to_owned());
    format!("Counter \"{}\": value={}, last updated at {updated}\n  Location: {location}", info.name, info.value)
}

/// `/watch` done.
pub(crate) fn watching(name: &str, location: impl Display) -> String {
    format!("Now watching counter \"{name}\" on {location}")
}

/// `/watch` of a watched counter.
pub(crate) fn already_watching(name: &str) -> String {
    format!("Already watching counter \"{name}\".")
}

/// `/unwatch` done (`true`) or of a counter not watched.
pub(crate) fn unwatched(name: &str, was_watched: bool) -> String {
    if was_watched {
        format!("Stopped watching counter \"{name}\".")
    } else {
        format!("Not watching counter \"{name}\".")
    }
}

/// `/counters`: (name, location, watched) of each counter, sorted by name.
pub(crate) fn counters(counters: &[(String, String, bool)]) -> String {
    if counters.is_empty() {
        return "No counters available. Use /create <name> to create one.".to_owned();
    }
    let mut text = "Available counters:".to_owned();
    for (name, location, watched) in counters {
        text.push_str(&format!("\n  - {name} (on {location}){}", if *watched { " [watched]" } else { "" }));
    }
    text
}

/// `/nodes`: this node and the nodes connected to it, then (apart) those it lost and still redials: a seed, or a
/// node lost without a goodbye, until it is forgotten (`forget_after`). The total counts the connected ones.
pub(crate) fn nodes(local: &NodeId, others: &[(NodeId, NodeStatus)]) -> String {
    let mut text = format!("Connected nodes:\n  - {local} (local)");
    let connected: Vec<_> = others.iter().filter(|(_, s)| *s == NodeStatus::Connected).collect();
    for (node, _) in &connected {
        text.push_str(&format!("\n  - {node} (connected)"));
    }
    let lost: Vec<_> = others.iter().filter(|(_, s)| *s != NodeStatus::Connected).collect();
    if !lost.is_empty() {
        text.push_str("\n\nDisconnected nodes (redialed):");
        for (node, _) in lost {
            text.push_str(&format!("\n  - {node}"));
        }
    }
    text.push_str(&format!("\n\nTotal: {} nodes", connected.len() + 1));
    text
}

#[cfg(test)]
mod tests {
    use noex_cluster::{DownReason, NodeInfo};
    use noex_core::{ExitReason, NodeName, Pid};

    use super::*;

    fn id(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    #[test]
    fn startup() {
        let banner = banner();
        assert_eq!(banner.lines().next(), Some("=".repeat(60).as_str()));
        assert_eq!(banner.lines().nth(1), Some("  Distributed Counter - noex Fault Tolerance Example"));
        let node1 = id("node1@127.0.0.1:4369");
        assert_eq!(
            started(&node1, &[]),
            "Starting node: node1@127.0.0.1:4369\n\nCluster started successfully!\nType /help for available commands.\n"
        );
        let with_seeds = started(&node1, &["a@h:1".into(), "b@h:2".into()]);
        assert_eq!(with_seeds.lines().nth(1), Some("Connecting to seeds: a@h:1, b@h:2"));
    }

    #[test]
    fn membership_and_downs() {
        let node = NodeInfo { node: id("node2@127.0.0.1:4370"), creation: 7 };
        assert_eq!(cluster_event(&ClusterEvent::NodeUp(node.clone())).unwrap(), "Node joined: node2@127.0.0.1:4370");
        let left = ClusterEvent::NodeDown { node, reason: DownReason::GracefulShutdown };
        assert_eq!(cluster_event(&left).unwrap(), "Node left: node2@127.0.0.1:4370 (graceful_shutdown)");
        let refused =
            ClusterEvent::DialRefused { node: id("node2@127.0.0.1:4370"), refusal: noex_cluster::Refusal::NotAllowed };
        assert_eq!(
            cluster_event(&refused).unwrap(),
            "Cannot join node2@127.0.0.1:4370: it refused this node (do both nodes have the same cookie?). Still trying."
        );

        let pid = Pid::new(NodeName::new("node2@127.0.0.1:4370"), 7, 12);
        let down = CounterDown { name: "c".into(), pid, reason: ExitReason::error("boom") };
        assert_eq!(counter_down(&down), "Counter \"c\" on node2@127.0.0.1:4370 went DOWN! Reason: error");
    }

    #[test]
    fn create() {
        let node2 = id("node2@127.0.0.1:4370");
        assert_eq!(creating("c", &node2), "Creating counter \"c\" on node2@127.0.0.1:4370...");
        assert_eq!(created("c", Some(&node2)), "Counter \"c\" created on node2@127.0.0.1:4370 with value 0.");
        assert_eq!(created("c", None), "Counter \"c\" created locally with value 0.");
        assert_eq!(already_exists("c"), "Counter \"c\" already exists.");
        assert_eq!(
            node_not_found("x", &[id("a@h:1"), node2]),
            "Node not found: x. Available nodes:\n  - a@h:1\n  - node2@127.0.0.1:4370"
        );
    }

    #[test]
    fn values() {
        assert_eq!(updated("c", Direction::Increment, 10, 10), "Counter \"c\" incremented by 10. New value: 10");
        assert_eq!(updated("c", Direction::Decrement, 3, 7), "Counter \"c\" decremented by 3. New value: 7");
        assert_eq!(not_found("c"), "Counter \"c\" not found.");
        let at = Local::now();
        let counter = CounterInfo { name: "c".into(), value: 5, last_updated_ms: at.timestamp_millis() };
        assert_eq!(
            info(&counter, "n@h:1"),
            format!("Counter \"c\": value=5, last updated at {}\n  Location: n@h:1", at.format("%H:%M:%S"))
        );
    }

    #[test]
    fn watching_lines() {
        assert_eq!(watching("c", "n@h:1"), "Now watching counter \"c\" on n@h:1");
        assert_eq!(already_watching("c"), "Already watching counter \"c\".");
        assert_eq!(unwatched("c", true), "Stopped watching counter \"c\".");
        assert_eq!(unwatched("c", false), "Not watching counter \"c\".");
    }

    #[test]
    fn listings() {
        assert_eq!(counters(&[]), "No counters available. Use /create <name> to create one.");
        let listed = counters(&[("a".into(), "n@h:1".into(), false), ("b".into(), "m@h:2".into(), true)]);
        assert_eq!(listed, "Available counters:\n  - a (on n@h:1)\n  - b (on m@h:2) [watched]");

        let others = [(id("b@h:2"), NodeStatus::Connected), (id("c@h:3"), NodeStatus::Disconnected)];
        assert_eq!(
            nodes(&id("a@h:1"), &others),
            "Connected nodes:\n  - a@h:1 (local)\n  - b@h:2 (connected)\n\nDisconnected nodes (redialed):\n  - c@h:3\n\nTotal: 2 nodes"
        );
    }
}
