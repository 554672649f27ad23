//! The table's merge under hostile input, for the fuzz targets (feature `fuzzing`; not a stable API). The table
//! is private to this crate, so it is driven here and the target in `crates/noex-fuzz` calls this.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use noex_core::{NodeName, Pid};
use noex_proto::{Frame, FrameCodec};
use tokio_util::codec::Decoder;

use crate::table::{Change, Entry, Table};
use crate::{ConflictResolver, FirstNodeWins, GlobalName, Winner};

/// Plays `data` as a script of events on the table of node `m`, with peers `a`, `b` and `z` (sorting before and
/// after it): registry frames from a peer (decoded from the input, so anything a peer could send), peers going
/// up and down, lost nodes flushed, local registrations. After each event it checks what no peer can do:
/// - a frame from a peer changes only that peer's entries, except by a conflict that the peer's entry wins by
///   the rule (and every change is reported);
/// - when a node's loss is flushed, nothing it registered remains, nor any name of its processes that another
///   node registered;
/// - a node that is not connected changes nothing.
pub fn registry(data: &[u8]) {
    let local = NodeName::new("m@127.0.0.1:1");
    let peers = ["a@127.0.0.1:1", "b@127.0.0.1:1", "z@127.0.0.1:1"].map(NodeName::new);
    let mut table = Table::new(local.clone());
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        let peer = &peers[usize::from(op >> 4) % peers.len()];
        match op % 6 {
            0 | 1 => {
                let Some((frame, rest)) = next_frame(input) else { return };
                input = rest;
                if let Frame::RegistrySync(sync) = frame {
                    let before = snapshot(&table);
                    let Some(changes) = table.receive(peer, sync, &FirstNodeWins) else {
                        assert_eq!(
                            snapshot(&table),
                            before,
                            "a frame from a node that is not connected changed the table"
                        );
                        continue;
                    };
                    check_only_its_own(&before, &snapshot(&table), peer, &changes);
                }
            }
            2 => table.node_up(peer.clone()),
            3 => table.node_down(peer),
            4 => {
                let lost: Vec<NodeName> = peers.iter().filter(|p| table.is_lost(p)).cloned().collect();
                table.flush_lost();
                // Checked right after the flush: a connected peer may announce a name of a lost node's process
                // later (it may still reach that node), and its own word is taken.
                for (name, entry) in snapshot(&table) {
                    for node in &lost {
                        assert!(entry.registrar != *node, "{name} of lost registrar {node} survived");
                        assert!(
                            entry.registrar == local || entry.pid.node() != node,
                            "{name}, a process of lost node {node}, survived"
                        );
                    }
                }
            }
            _ => {
                let Some((&id, rest)) = input.split_first() else { return };
                input = rest;
                let name = format!("local-{}", id % 8);
                if table.get(&name).is_none() {
                    table.insert_local(&name, Pid::new(local.clone(), 1, u64::from(id)));
                }
            }
        }
    }
}

/// The next length-prefixed frame of the input (as a connection's reader takes it), if it decodes.
fn next_frame(input: &[u8]) -> Option<(Frame, &[u8])> {
    let mut buffer = BytesMut::from(input);
    let frame = FrameCodec::with_limit(1 << 16).decode(&mut buffer).ok()??.ok()?;
    let used = input.len() - buffer.len();
    Some((frame, &input[used..]))
}

fn snapshot(table: &Table) -> HashMap<Arc<str>, Entry> {
    table.names().map(|name| (name.clone(), table.get(name).cloned().expect("a listed name"))).collect()
}

/// Every entry that `peer`'s frame changed is `peer`'s, before or after, and the rule let it win.
fn check_only_its_own(
    before: &HashMap<Arc<str>, Entry>,
    after: &HashMap<Arc<str>, Entry>,
    peer: &NodeName,
    changes: &[Change],
) {
    for (name, old) in before {
        if old.registrar == *peer || after.get(name) == Some(old) {
            continue;
        }
        let new =
            after.get(name).unwrap_or_else(|| panic!("{peer} removed {name}, which {} registered", old.registrar));
        assert_eq!(new.registrar, *peer, "{name} changed hands to a third node");
        let current = GlobalName { name: name.to_string(), pid: old.pid.clone(), registrar: old.registrar.clone() };
        let incoming = GlobalName { name: name.to_string(), pid: new.pid.clone(), registrar: peer.clone() };
        assert_eq!(FirstNodeWins.resolve(&current, &incoming), Winner::Second, "{peer} took {name} against the rule");
        assert!(
            changes.iter().any(|c| matches!(c, Change::Conflict { winner, .. } if *winner.name == **name)),
            "{peer} took {name} without a reported conflict"
        );
    }
}
