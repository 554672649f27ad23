//! Requests waiting for another node's answer (calls, stops, spawns), keyed by an id unique on this node.
//!
//! Each entry remembers its node, so that the node going down fails every request to it at once, and so that an
//! answer is only accepted from the node that was asked.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use noex_core::{CallError, CallReply, Callee, NodeName, Pid, StopError};
use rustc_hash::FxBuildHasher;
use tokio::sync::oneshot;

use crate::SpawnError;

/// What waits for an answer.
pub(crate) enum Waiter {
    /// A call, and whom it was for (what a `NoProc` or `NoConnection` names).
    Call(CallReply, Callee),
    /// The stop's timeout, for the error if the target had to be killed.
    Stop(oneshot::Sender<Result<(), StopError>>, std::time::Duration),
    /// The spawn's timeout, for the error if the target gave up.
    Spawn(oneshot::Sender<Result<Pid, SpawnError>>, std::time::Duration),
}

impl Waiter {
    /// The request can no longer be answered: its node is gone (or this node is stopping).
    pub(crate) fn fail_no_connection(self) {
        match self {
            Waiter::Call(reply, callee) => reply.send(Err(CallError::NoConnection(callee.node().clone()))),
            Waiter::Stop(reply, _) => {
                let _ = reply.send(Err(StopError::NoConnection));
            }
            Waiter::Spawn(reply, _) => {
                let _ = reply.send(Err(SpawnError::NoConnection));
            }
        }
    }
}

pub(crate) struct Pending {
    next_id: AtomicU64,
    waiting: DashMap<u64, (NodeName, Waiter), FxBuildHasher>,
}

impl Pending {
    /// Ids of each incarnation start in their own range: an answer to a request of this node's previous
    /// incarnation (still in flight when it restarted) must not match a request of this one.
    pub(crate) fn new(creation: u32) -> Self {
        Pending { next_id: AtomicU64::new(u64::from(creation) << 32), waiting: DashMap::with_hasher(FxBuildHasher) }
    }

    /// Forgets request `id` when dropped, unless disarmed: for a requester that may stop waiting (timeout,
    /// cancellation) at any await.
    pub(crate) fn guard(&self, id: u64) -> Guard<'_> {
        Guard { pending: self, id, armed: true }
    }

    /// Registers a waiter; its id goes into the request.
    /// A request number no pending request has, for a request that waits elsewhere (a spawn on this node).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn insert(&self, node: &NodeName, waiter: Waiter) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.waiting.insert(id, (node.clone(), waiter));
        id
    }

    /// Takes the waiter for an answer from `from`; `None` for an unknown (late, cancelled) or misdirected answer.
    pub(crate) fn take(&self, id: u64, from: &str) -> Option<Waiter> {
        self.waiting.remove_if(&id, |_, (node, _)| node.as_str() == from).map(|(_, (_, waiter))| waiter)
    }

    /// Forgets a request whose requester gave up.
    pub(crate) fn cancel(&self, id: u64) {
        self.waiting.remove(&id);
    }

    /// Fails every request to `node`.
    pub(crate) fn fail_node(&self, node: &str) {
        let ids: Vec<u64> =
            self.waiting.iter().filter(|entry| entry.value().0.as_str() == node).map(|entry| *entry.key()).collect();
        for id in ids {
            if let Some((_, (_, waiter))) = self.waiting.remove(&id) {
                waiter.fail_no_connection();
            }
        }
    }

    /// Requests waiting now.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// See [`Pending::guard`].
pub(crate) struct Guard<'a> {
    pending: &'a Pending,
    id: u64,
    armed: bool,
}

impl Guard<'_> {
    /// The answer came: nothing to forget.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pending.cancel(self.id);
        }
    }
}

/// Decodes a reply's payload for a call or stop waiter.
pub(crate) fn answer(waiter: Waiter, result: Result<Bytes, noex_proto::CallFailure>) {
    use noex_proto::CallFailure;
    match waiter {
        Waiter::Call(reply, callee) => reply.send(result.map_err(|failure| match failure {
            CallFailure::NoProc => CallError::NoProc(callee),
            CallFailure::NotEncodable => CallError::NotEncodable,
            CallFailure::Exited(reason) => CallError::Exited(reason),
            CallFailure::Decode(message) => CallError::Decode(message),
            CallFailure::Timeout => CallError::Exited(noex_core::ExitReason::Killed),
            CallFailure::ReplyDropped => CallError::ReplyDropped,
        })),
        Waiter::Stop(reply, stop_timeout) => {
            let _ = reply.send(match result {
                Ok(_) => Ok(()),
                Err(CallFailure::Timeout) => Err(StopError::Timeout(stop_timeout)),
                Err(_) => Err(StopError::NoProc),
            });
        }
        Waiter::Spawn(reply, _) => {
            let _ = reply.send(Err(SpawnError::Protocol("a call reply answered a spawn".into())));
        }
    }
}
