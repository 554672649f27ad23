//! The scope's table under hostile input, for the fuzz targets (feature `fuzzing`; not a stable API). The table is
//! private to this crate, so it is driven here and the target in `crates/noex-fuzz` calls this.

use bytes::BytesMut;
use noex_core::{NodeName, Pid};
use noex_proto::{Frame, FrameCodec};
use tokio_util::codec::Decoder;

use crate::state::{Groups, Received, ScopeState, replay};

/// Plays `data` as a script of events on the table of node `m`, with peers `a`, `b` and `z`: process group frames
/// from a peer (decoded from the input, so anything a peer could send), peers going up (with an incarnation from
/// the input) and down, local joins, leaves and ends. After each event it checks:
/// - the table agrees with itself (members by group = every node's memberships together; the local index);
/// - a frame from a peer changes only that peer's memberships, and the changes reported are exactly what changed;
///   a frame refused, or from a node not connected, changes nothing;
/// - a node that goes down leaves no membership, and is reported to leave exactly what it held.
pub fn groups(data: &[u8]) {
    let local = NodeName::new("m@127.0.0.1:1");
    let peers = ["a@127.0.0.1:1", "b@127.0.0.1:1", "z@127.0.0.1:1"].map(NodeName::new);
    let everyone: Vec<NodeName> = peers.iter().cloned().chain([local.clone()]).collect();
    let mut state = ScopeState::new(local.clone());
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        let peer = &peers[usize::from(op >> 4) % peers.len()];
        let arg = input.first().copied().unwrap_or(0);
        let group = format!("g{}", arg % 4);
        let pid = Pid::new(local.clone(), 1, u64::from(arg >> 2));
        match op % 7 {
            0 | 1 => {
                let Some((frame, rest)) = next_frame(input) else { return };
                input = rest;
                let Frame::GroupsSync(sync) = frame else { continue };
                let before: Vec<Groups> = everyone.iter().map(|node| state.node_groups(node)).collect();
                let received = state.receive(peer, sync);
                for (node, before) in everyone.iter().zip(&before) {
                    let after = state.node_groups(node);
                    match &received {
                        Received::Applied(changes) if node == peer => {
                            let replayed = sorted(replay(before.clone(), changes));
                            assert_eq!(replayed, sorted(after), "{peer}'s changes misreported");
                        }
                        _ => assert_eq!(&after, before, "a frame from {peer} changed {node}'s memberships"),
                    }
                }
            }
            2 => {
                input = input.get(1..).unwrap_or_default();
                state.node_up(peer.clone(), u32::from(arg % 3));
            }
            3 => {
                let held = state.node_groups(peer);
                let changes = state.node_down(peer);
                assert!(state.node_groups(peer).is_empty(), "{peer} kept memberships after going down");
                assert!(replay(held, &changes).is_empty(), "{peer}'s leaves misreported");
            }
            4 => {
                input = input.get(1..).unwrap_or_default();
                state.join_local(group.into(), vec![pid]);
            }
            5 => {
                input = input.get(1..).unwrap_or_default();
                state.leave_local(&group, &[pid]);
            }
            _ => {
                input = input.get(1..).unwrap_or_default();
                state.local_ended(&pid);
            }
        }
        state.check();
    }
}

/// Memberships as multisets: the order of a group's members is not part of the state.
fn sorted(mut groups: Groups) -> Groups {
    groups.values_mut().for_each(|pids| pids.sort());
    groups
}

/// The next length-prefixed frame of the input (as a connection's reader takes it), if it decodes.
fn next_frame(input: &[u8]) -> Option<(Frame, &[u8])> {
    let mut buffer = BytesMut::from(input);
    let frame = FrameCodec::with_limit(1 << 16).decode(&mut buffer).ok()??.ok()?;
    let used = input.len() - buffer.len();
    Some((frame, &input[used..]))
}
