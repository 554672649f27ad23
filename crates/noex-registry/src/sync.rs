//! Full syncs of any size: everything this node registered, sent to one peer as a series of `RegistrySync`
//! chunks, each well under the frame limit, paced so that the connection's other traffic is not queued behind the
//! whole table. Chunks are cut from the table as it is when each is sent (never under the table lock across a
//! send), so a name freed meanwhile is not sent again; names registered meanwhile go out as incremental changes,
//! which the receiver counts as part of the sync (see `Table::receive`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use noex_cluster::{NodeId, NodeSender};
use noex_core::Pid;
use noex_proto::{Frame, FullSync, RegistryEntry, RegistrySync};

use crate::registry::Inner;
use crate::table::Table;

/// The size a chunk aims at: far under the frame limit (8 MiB by default), and small enough that the frames
/// queued behind one wait a fraction of a millisecond on a local network.
pub(crate) const CHUNK_BYTES: usize = 256 << 10;

/// A full sync waits while more than this is queued on the connection, so at most about five chunks (a few
/// milliseconds of a local network) are ahead of any other frame, and the socket never runs dry between chunks.
const PACE_BYTES: usize = 4 * CHUNK_BYTES;

/// How often a paced full sync looks at the connection's queue again.
const PACE_POLL: Duration = Duration::from_millis(1);

/// Sends everything this node registered to `node`, as a full sync (`answer_wanted` on its first chunk). Gives
/// up when the connection goes: the next connection gets a fresh full sync of its own.
pub(crate) async fn send_full(registry: Weak<Inner>, node: NodeId, answer_wanted: bool) {
    let Some(inner) = registry.upgrade() else { return };
    let Some(sender) = inner.cluster.sender(&node) else { return };
    let id = inner.next_sync.fetch_add(1, Ordering::Relaxed);
    // The list of names and the first chunk under one hold of the announce lock: whatever changes after the list
    // is taken is announced after the first chunk, so the receiver counts it in this sync.
    let (names, mut sent) = {
        let _announcing = inner.announcing();
        let table = inner.read();
        let names = table.local_names();
        let (entries, sent) = chunk(&table, &names);
        drop(table);
        let full = FullSync { id, first: true, last: sent == names.len() };
        if !send(&sender, RegistrySync { full: Some(full), entries, removed: Vec::new(), answer_wanted }) {
            return;
        }
        (names, sent)
    };
    drop(inner);
    tracing::debug!(%node, names = names.len(), id, "registry full sync started");
    while sent < names.len() {
        loop {
            let Some(inner) = registry.upgrade() else { return };
            if sender.is_closed() {
                return;
            }
            let queued = inner.cluster.connection_stats(&node).map_or(0, |stats| stats.queued_bytes);
            if queued <= PACE_BYTES {
                break;
            }
            drop(inner);
            tokio::time::sleep(PACE_POLL).await;
        }
        let Some(inner) = registry.upgrade() else { return };
        let _announcing = inner.announcing();
        let (entries, taken) = chunk(&inner.read(), &names[sent..]);
        sent += taken;
        let full = FullSync { id, first: false, last: sent == names.len() };
        if !send(&sender, RegistrySync { full: Some(full), entries, removed: Vec::new(), answer_wanted: false }) {
            return;
        }
    }
}

/// The entries for the first names of `names` that make up about `CHUNK_BYTES` (at least one name), as the
/// table holds them now (a name freed since the list was taken is left out), and how many names were used.
pub(crate) fn chunk(table: &Table, names: &[Arc<str>]) -> (Vec<RegistryEntry>, usize) {
    let mut entries = Vec::new();
    let mut bytes = 0;
    let mut used = 0;
    for name in names {
        if bytes >= CHUNK_BYTES {
            break;
        }
        used += 1;
        if let Some(pid) = table.local_pid(name) {
            bytes += entry_bytes(name, pid);
            entries.push(RegistryEntry { name: name.to_string(), pid: pid.clone() });
        }
    }
    (entries, used)
}

/// Splits names to remove into lists of about `CHUNK_BYTES` each.
pub(crate) fn split_removed(names: Vec<String>) -> Vec<Vec<String>> {
    let mut lists = vec![Vec::new()];
    let mut bytes = 0;
    for name in names {
        if bytes >= CHUNK_BYTES {
            lists.push(Vec::new());
            bytes = 0;
        }
        bytes += name.len() + 4;
        lists.last_mut().expect("never empty").push(name);
    }
    lists
}

/// About what an entry takes on the wire (protobuf tags, lengths and varints rounded up).
fn entry_bytes(name: &str, pid: &Pid) -> usize {
    name.len() + pid.node().as_str().len() + 28
}

fn send(sender: &NodeSender, sync: RegistrySync) -> bool {
    match sender.send(Frame::RegistrySync(sync)) {
        Ok(()) => true,
        Err(error) => {
            // The connection is gone (the next one gets a full sync) or hopelessly behind (and being closed).
            tracing::debug!(node = %sender.node(), %error, "registry full sync abandoned");
            false
        }
    }
}
