//! The observer's checks of what a peer sends: a query, and a reply's snapshot. Whatever the bytes, a typed
//! error or a snapshot that keeps the promises `decode_reply` makes (its counts add up, every process it lists
//! is of the node that answered).

use noex_proto::NodeId;

/// One input read as a query and as a reply from a fixed node.
pub fn observer(data: &[u8]) {
    let _ = noex_observer::decode_query(data);
    let from: NodeId = "peer@127.0.0.1:4000".parse().expect("a valid node id");
    let Ok(snapshot) = noex_observer::decode_reply(&from, data) else { return };
    assert_eq!(snapshot.server_count.checked_add(snapshot.supervisor_count), Some(snapshot.process_count));
    assert_eq!(snapshot.listed().checked_add(snapshot.unlisted), Some(snapshot.process_count));
    assert!(snapshot.servers.len() as u64 <= snapshot.server_count);
    assert!(snapshot.supervisors.len() as u64 <= snapshot.supervisor_count);
    let node = from.node_name();
    assert!(snapshot.servers.iter().all(|s| *s.pid.node() == node), "a listed server of another node");
    assert!(snapshot.supervisors.iter().all(|s| *s.pid.node() == node), "a listed supervisor of another node");
}
