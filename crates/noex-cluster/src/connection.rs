//! An authenticated connection's two tasks: a reader that dispatches frames and watches for silence, and a
//! writer (`Outbound::run`) that drains what senders could not write directly and heartbeats when idle.

use std::sync::Arc;

use futures_util::StreamExt;
use noex_proto::{Frame, FrameCodec, ProtoError};
use tokio::io::AsyncRead;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::cluster::Inner;
use crate::event::{DownReason, NodeInfo};
use crate::outbound::Outbound;

pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) peer: NodeInfo,
    pub(crate) close: CancellationToken,
    /// Cancelled when this node leaves: the writer sends `Goodbye` and stops.
    pub(crate) leave: CancellationToken,
}

/// Spawns the reader and the writer of an authenticated connection on the cluster's I/O runtime; returns the
/// writer's handle (it ends after `Goodbye` when leaving).
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    connection: Connection,
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    outbound: Arc<Outbound>,
) -> tokio::task::JoinHandle<()> {
    let connection = Arc::new(connection);
    inner.io.spawn(read(inner.clone(), connection.clone(), reader));
    let idle = inner.settings.config.heartbeat_interval;
    inner.io.spawn(async move { outbound.run(idle, &connection.close, &connection.leave).await })
}

async fn read<R: AsyncRead + Send + Unpin>(
    inner: Arc<Inner>,
    connection: Arc<Connection>,
    mut reader: FramedRead<R, FrameCodec>,
) {
    let timeout = inner.settings.config.failure_timeout;
    let peer = &connection.peer.node;
    let reason = loop {
        let next = tokio::select! {
            () = connection.close.cancelled() => break DownReason::ConnectionClosed,
            next = tokio::time::timeout(timeout, reader.next()) => next,
        };
        match next {
            Err(_) => break DownReason::HeartbeatTimeout,
            Ok(None) => break DownReason::ConnectionClosed,
            Ok(Some(Err(error))) => {
                tracing::warn!(%peer, %error, "closing connection: unreadable stream");
                break DownReason::ConnectionClosed;
            }
            Ok(Some(Ok(Err(ProtoError::UnknownKind)))) => {
                tracing::debug!(%peer, "ignoring a frame of a kind this version does not know");
            }
            Ok(Some(Ok(Err(error)))) => {
                tracing::warn!(%peer, %error, "closing connection: malformed frame");
                break DownReason::ConnectionClosed;
            }
            Ok(Some(Ok(Ok(frame)))) => match frame {
                Frame::Heartbeat => {}
                Frame::Goodbye => break DownReason::GracefulShutdown,
                Frame::Members(members) => {
                    for member in members {
                        inner.dial(member.node);
                    }
                }
                Frame::Hello(_) | Frame::Challenge(_) | Frame::Proof(_) | Frame::Welcome | Frame::Reject(_) => {
                    tracing::warn!(%peer, "closing connection: handshake frame after authentication");
                    break DownReason::ConnectionClosed;
                }
                other => {
                    // A layer above that panics must not leave a connection that heartbeats but never reads.
                    let dispatched =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.dispatch(peer, other)));
                    if dispatched.is_err() {
                        tracing::error!(%peer, "a frame handler panicked; the frame was dropped");
                    }
                }
            },
        }
    };
    connection.close.cancel();
    inner.connection_lost(&connection, reason);
}
