//! Liveness: heartbeats and failure detection, on a thread of their own so that processes that hog every
//! application worker cannot starve them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::StartError;
use crate::cluster::Inner;
use crate::event::DownReason;

/// A current-thread tokio runtime on its own OS thread, for heartbeats and failure detection. It runs until
/// the returned token is cancelled.
pub(crate) fn liveness_runtime() -> Result<(tokio::runtime::Handle, CancellationToken), StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| StartError::Io(e.to_string()))?;
    let handle = runtime.handle().clone();
    let done = CancellationToken::new();
    let until = done.clone();
    std::thread::Builder::new()
        .name("noex-cluster-liveness".into())
        .spawn(move || runtime.block_on(until.cancelled()))
        .map_err(|e| StartError::Io(e.to_string()))?;
    Ok((handle, done))
}

/// Every half heartbeat interval: heartbeats for connections that sent nothing for an interval, and a node-down
/// for connections silent past the failure timeout. Silence is judged by what arrived, not by what our reader got
/// to process: if the peer's bytes are waiting unread, the peer is alive and only our runtime is busy.
pub(crate) async fn liveness(inner: std::sync::Weak<Inner>) {
    let Some(period) =
        inner.upgrade().map(|i| (i.settings.config.heartbeat_interval / 2).max(Duration::from_millis(5)))
    else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Holding the node only for the duration of a tick: a node nobody holds any more is not kept alive here.
        let Some(inner) = inner.upgrade() else { return };
        if inner.shutdown.is_cancelled() {
            return;
        }
        let config = &inner.settings.config;
        let links: Vec<_> =
            inner.lock().peers.values().map(|link| (link.connection.clone(), link.outbound.clone())).collect();
        for (connection, outbound) in links {
            outbound.keep_alive(config.heartbeat_interval);
            // Consumption below a grant step is granted here, so no sender waits on a leftover for long.
            connection.credit.flush();
            if connection.silent_for() < config.failure_timeout {
                continue;
            }
            // Unread bytes mean the peer is alive and our reader is late; but not forever (a reader that is stuck
            // for good must not hide a dead peer). Re-check after the peek: the reader may have just caught up.
            let stuck = connection.silent_for() >= config.failure_timeout * 3;
            if (stuck || !outbound.has_unread_input()) && connection.silent_for() >= config.failure_timeout {
                // Report first, then close: the reader, woken by the close, must find the node already down
                // (else it would report `connection_closed`).
                inner.connection_lost(&connection, DownReason::HeartbeatTimeout);
                connection.close.cancel();
            }
        }
    }
}
