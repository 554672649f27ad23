//! The outbound half: how the runtime's operations on pids of other nodes become frames.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use noex_cluster::{CastMode, NodeId, SendError};
use noex_core::{
    BoxFuture, CallError, CallReply, Callee, CastError, Distribution, ExitReason, MonitorRef, NodeName, Pid,
    RemoteWatcher, StopError, WirePayload,
};
use noex_proto::{Call, Demonitor, Exit, Frame, LinkPair, Monitor, Stop, Target};
use tokio::sync::oneshot;

use crate::pending::Waiter;
use crate::remote::Inner;

/// How long past a remote stop's own timeout the requester waits for the target node's answer.
const STOP_ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// The runtime's [`Distribution`], backed by the node's [`Remote`](crate::Remote).
pub(crate) struct Route(pub(crate) Arc<Inner>);

pub(crate) fn call_send_error(error: SendError, node: &NodeName) -> CallError {
    match error {
        SendError::TooLarge { len, limit } => {
            CallError::Decode(format!("the message ({len} bytes) exceeds the frame limit of {limit} bytes"))
        }
        _ => CallError::NoConnection(node.clone()),
    }
}

impl Distribution for Route {
    fn call(&self, target: &Pid, payload: Bytes, timeout: Duration, reply: CallReply) -> Result<u64, CallError> {
        let inner = &self.0;
        let call_id = inner.pending.insert(target.node(), Waiter::Call(reply, Callee::Pid(target.clone())));
        let call =
            Call { call_id, target: Target::Pid(target.clone()), from: inner.node_pid.clone(), payload, timeout };
        match inner.send(target.node(), Frame::Call(call)) {
            Ok(()) => Ok(call_id),
            Err(error) => {
                inner.pending.cancel(call_id);
                Err(call_send_error(error, target.node()))
            }
        }
    }

    fn cancel_call(&self, _node: &NodeName, call: u64) {
        self.0.pending.cancel(call);
    }

    fn cast(&self, target: &Pid, payload: &dyn WirePayload) {
        if let Err(error) = self.0.send_cast_to(target, payload, CastMode::Always) {
            self.0.cast_dropped(target.node(), &error);
        }
    }

    fn try_cast(&self, target: &Pid, payload: &dyn WirePayload, will_wait: bool) -> Result<(), CastError> {
        let mode = if will_wait { CastMode::BeforeWait } else { CastMode::IfRoom };
        self.0.send_cast_to(target, payload, mode).map_err(|error| match error {
            SendError::QueueFull(_) => CastError::Full(target.clone()),
            error => {
                // Not a condition a retry can change: dropped as the fire-and-forget form drops it.
                self.0.cast_dropped(target.node(), &error);
                CastError::NoConnection(target.clone())
            }
        })
    }

    fn cast_room(&self, target: &Pid) -> BoxFuture<Result<(), CastError>> {
        let sender = self.0.sender(target.node());
        let target = target.clone();
        Box::pin(async move {
            match sender {
                Ok(sender) => sender.cast_room().await.map_err(|_| CastError::NoConnection(target)),
                Err(_) => Err(CastError::NoConnection(target)),
            }
        })
    }

    fn monitor(&self, watcher: RemoteWatcher) {
        let inner = &self.0;
        let frame = Frame::Monitor(Monitor {
            monitor_id: watcher.monitor().id(),
            watcher: inner.node_pid.clone(),
            target: Target::Pid(watcher.target().clone()),
        });
        let node = watcher.target().node().clone();
        let monitor = watcher.monitor().clone();
        // Recorded first: the DOWN may come back before `send` returns.
        inner.outgoing.insert(watcher);
        if inner.send(&node, frame).is_err() {
            if let Some(watcher) = inner.outgoing.remove(&monitor) {
                watcher.deliver(ExitReason::NoConnection);
            }
        }
    }

    fn demonitor(&self, monitor: &MonitorRef, target: &Pid) {
        let inner = &self.0;
        if inner.outgoing.remove(monitor).is_some() {
            let frame = Frame::Demonitor(Demonitor { monitor_id: monitor.id(), watcher: inner.node_pid.clone() });
            // Not sent only if the node is gone, which ends the monitor there too.
            inner.send_signal(target.node(), frame);
        }
    }

    fn link(&self, local: &Pid, remote: &Pid) {
        let inner = &self.0;
        inner.links.insert(local, remote);
        let frame = Frame::Link(LinkPair { from: local.clone(), to: remote.clone() });
        if inner.send(remote.node(), frame).is_err() {
            inner.links.remove(local, remote);
            if let Some(runtime) = inner.runtime.upgrade() {
                runtime.exit_from_remote(local, remote.clone(), ExitReason::NoConnection, true);
            }
        }
    }

    fn unlink(&self, local: &Pid, remote: &Pid) {
        let inner = &self.0;
        inner.links.remove(local, remote);
        inner.send_signal(remote.node(), Frame::Unlink(LinkPair { from: local.clone(), to: remote.clone() }));
    }

    fn exit(&self, from: &Pid, to: &Pid, reason: ExitReason, linked: bool) {
        let inner = &self.0;
        if linked {
            inner.links.remove(from, to);
        }
        // If the node is gone, its processes linked with `from` already got `noconnection` there.
        inner.send_signal(to.node(), Frame::Exit(Exit { from: from.clone(), to: to.clone(), reason, linked }));
    }

    fn stop(&self, target: &Pid, reason: ExitReason, timeout: Duration) -> BoxFuture<Result<(), StopError>> {
        let inner = self.0.clone();
        let target = target.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let call_id = inner.pending.insert(target.node(), Waiter::Stop(reply, timeout));
            let guard = inner.pending.guard(call_id);
            let from = inner.node_pid.clone();
            let node = target.node().clone();
            if inner.send(&node, Frame::Stop(Stop { call_id, target, from, reason, timeout })).is_err() {
                return Err(StopError::NoConnection);
            }
            match tokio::time::timeout(timeout.saturating_add(STOP_ANSWER_MARGIN), answer).await {
                Ok(answered) => {
                    guard.disarm(); // the entry is already gone; on a timeout the guard forgets it
                    answered.unwrap_or(Err(StopError::NoConnection))
                }
                Err(_) => Err(StopError::Timeout(timeout)),
            }
        })
    }

    fn is_connected(&self, node: &NodeName) -> bool {
        node.as_str().parse::<NodeId>().is_ok_and(|id| self.0.cluster.is_connected(&id))
    }
}
