//! The program's output blocks, as text (printed by `lib.rs`; tested here without a cluster).

use std::fmt::Write;
use std::time::SystemTime;

use noex_observer::{ClusterSnapshot, NodeSnapshot, ObservedStatus};

/// A line of 60 `c`.
pub(crate) fn rule(c: char) -> String {
    std::iter::repeat_n(c, 60).collect()
}

/// `2024-01-15T10:30:00.000Z`.
pub(crate) fn iso(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `45.23 MB` (mebibytes, as the seed computes them), or `n/a` where the platform does not say.
pub(crate) fn megabytes(bytes: Option<u64>) -> String {
    match bytes {
        Some(bytes) => format!("{:.2} MB", bytes as f64 / 1024.0 / 1024.0),
        None => "n/a".to_owned(),
    }
}

/// A node's memory as the seed prints it: heap in use where the node counts it (as noex does); a node that does
/// not (counter-node) reports its resident size, which is said, since the two do not compare.
pub(crate) fn memory(memory: &noex_observer::MemoryStats) -> String {
    match memory.heap_bytes {
        Some(heap) => megabytes(Some(heap)),
        None if memory.rss_bytes.is_some() => format!("{} (resident)", megabytes(memory.rss_bytes)),
        None => megabytes(None),
    }
}

/// The local snapshot block.
pub(crate) fn local(snapshot: &NodeSnapshot) -> String {
    format!(
        "\nLocal snapshot:\n  Processes: {}\n  Servers: {}\n  Supervisors: {}\n  Total messages: {}",
        snapshot.process_count, snapshot.server_count, snapshot.supervisor_count, snapshot.total_messages
    )
}

/// The cluster overview and per-node breakdown.
pub(crate) fn cluster(snapshot: &ClusterSnapshot) -> String {
    let totals = &snapshot.aggregated;
    let mut out = String::new();
    let _ = writeln!(out, "\nCluster Overview ({}):", iso(snapshot.timestamp));
    let _ = writeln!(out, "  Total nodes: {}", totals.total_nodes);
    let _ = writeln!(out, "  Connected nodes: {}", totals.connected_nodes);
    let _ = writeln!(out, "  Total processes: {}", totals.processes);
    let _ = writeln!(out, "  Total servers: {}", totals.servers);
    let _ = writeln!(out, "  Total supervisors: {}", totals.supervisors);
    let _ = writeln!(out, "  Total messages: {}", totals.messages);
    let _ = writeln!(out, "  Total restarts: {}", totals.restarts);
    let _ = write!(out, "\nPer-node breakdown:");
    for node in &snapshot.nodes {
        let _ = write!(out, "\n  {}{}:", node.node, if node.local { " (local)" } else { "" });
        let _ = write!(out, "\n    Status: {}", node.status);
        match (&node.snapshot, node.status) {
            (Some(figures), ObservedStatus::Connected) => {
                let _ = write!(out, "\n    Processes: {}", figures.process_count);
                let _ = write!(out, "\n    Messages: {}", figures.total_messages);
                let _ = write!(out, "\n    Restarts: {}", figures.total_restarts);
                let _ = write!(out, "\n    Memory: {}", memory(&figures.memory));
            }
            _ => {
                if let Some(error) = &node.error {
                    let _ = write!(out, "\n    Error: {error}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use noex_observer::{Aggregated, MemoryStats, ObservedNode};

    use super::*;

    fn figures(processes: u64, messages: u64, heap: u64) -> NodeSnapshot {
        NodeSnapshot {
            timestamp: UNIX_EPOCH,
            servers: Vec::new(),
            supervisors: Vec::new(),
            unlisted: processes,
            next_page: None,
            tree: Vec::new(),
            tree_unlisted: processes,
            process_count: processes,
            // The seed's node: one supervisor, the rest its workers.
            server_count: processes - 1,
            supervisor_count: 1,
            total_messages: messages,
            total_mailbox: 0,
            total_restarts: 0,
            system_processes: 0,
            memory: MemoryStats { rss_bytes: Some(1), heap_bytes: Some(heap) },
        }
    }

    #[test]
    fn the_overview_has_the_seed_format() {
        let node = |name: &str, local, status, snapshot: Option<NodeSnapshot>, error: Option<&str>| ObservedNode {
            node: format!("{name}@127.0.0.1:4369").parse().unwrap(),
            local,
            status,
            snapshot,
            error: error.map(str::to_owned),
        };
        let nodes = vec![
            node("nodeA", true, ObservedStatus::Connected, Some(figures(4, 30, 47_426_027)), None),
            node("nodeB", false, ObservedStatus::Disconnected, None, None),
            node("nodeC", false, ObservedStatus::Timeout, None, Some("no answer within 5s")),
        ];
        let snapshot = ClusterSnapshot {
            timestamp: UNIX_EPOCH + Duration::from_millis(1_705_314_600_000),
            local: nodes[0].node.clone(),
            aggregated: Aggregated::of(&nodes),
            nodes,
        };
        let expected = "
Cluster Overview (2024-01-15T10:30:00.000Z):
  Total nodes: 3
  Connected nodes: 1
  Total processes: 4
  Total servers: 3
  Total supervisors: 1
  Total messages: 30
  Total restarts: 0

Per-node breakdown:
  nodeA@127.0.0.1:4369 (local):
    Status: connected
    Processes: 4
    Messages: 30
    Restarts: 0
    Memory: 45.23 MB
  nodeB@127.0.0.1:4369:
    Status: disconnected
  nodeC@127.0.0.1:4369:
    Status: timeout
    Error: no answer within 5s";
        assert_eq!(cluster(&snapshot), expected);
    }

    #[test]
    fn the_local_block_and_units() {
        assert_eq!(
            local(&figures(4, 30, 0)),
            "\nLocal snapshot:\n  Processes: 4\n  Servers: 3\n  Supervisors: 1\n  Total messages: 30"
        );
        assert_eq!(megabytes(None), "n/a");
        assert_eq!(megabytes(Some(0)), "0.00 MB");
        let mb = 1 << 20;
        let memory = |rss_bytes, heap_bytes| super::memory(&MemoryStats { rss_bytes, heap_bytes });
        assert_eq!(memory(Some(3 * mb), Some(mb)), "1.00 MB", "heap, as the seed");
        assert_eq!(memory(Some(3 * mb), None), "3.00 MB (resident)", "resident size is said");
        assert_eq!(memory(None, None), "n/a");
        assert_eq!(rule('=').len(), 60);
    }
}
