//! An authenticated connection's two tasks: a reader that dispatches frames and watches for silence, and a
//! writer that drains the outbound queue, many frames per flush, with heartbeats when idle.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use noex_proto::{Frame, FrameCodec, ProtoError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::cluster::Inner;
use crate::event::{DownReason, NodeInfo};

/// How many queued frames the writer encodes before it flushes, when the queue is busy.
const WRITE_BATCH: usize = 256;

pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) peer: NodeInfo,
    pub(crate) close: CancellationToken,
    /// Cancelled when this node leaves: the writer sends `Goodbye` and stops.
    pub(crate) leave: CancellationToken,
}

/// Spawns the reader and writer of an authenticated connection on the cluster's I/O runtime.
pub(crate) fn spawn<T>(
    inner: &Arc<Inner>,
    connection: Connection,
    reader: FramedRead<tokio::io::ReadHalf<T>, FrameCodec>,
    writer: FramedWrite<tokio::io::WriteHalf<T>, FrameCodec>,
    outbox: mpsc::Receiver<Frame>,
) -> tokio::task::JoinHandle<()>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let connection = Arc::new(connection);
    inner.io.spawn(read(inner.clone(), connection.clone(), reader));
    inner.io.spawn(write(inner.clone(), connection, writer, outbox))
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

async fn write<W: AsyncWrite + Send + Unpin>(
    inner: Arc<Inner>,
    connection: Arc<Connection>,
    mut writer: FramedWrite<W, FrameCodec>,
    mut outbox: mpsc::Receiver<Frame>,
) {
    let idle = inner.settings.config.heartbeat_interval;
    let peer = &connection.peer.node;
    loop {
        let first = tokio::select! {
            () = connection.close.cancelled() => break,
            () = connection.leave.cancelled() => Frame::Goodbye,
            next = tokio::time::timeout(idle, outbox.recv()) => match next {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => Frame::Heartbeat,
            },
        };
        let mut goodbye = first == Frame::Goodbye;
        let mut written = feed(&mut writer, first, peer).await;
        // Encode what else is queued, then one flush: many frames per write syscall when busy.
        for _ in 0..WRITE_BATCH {
            if goodbye || !written {
                break;
            }
            let Ok(frame) = outbox.try_recv() else { break };
            goodbye = frame == Frame::Goodbye;
            written = feed(&mut writer, frame, peer).await;
        }
        let flushed = tokio::select! {
            () = connection.close.cancelled() => false,
            flushed = writer.flush() => flushed.is_ok(),
        };
        if !written || !flushed || goodbye {
            break;
        }
    }
    let _ = tokio::time::timeout(idle, writer.close()).await;
    connection.close.cancel();
}

/// Encodes one frame into the write buffer; false if the connection is unusable. A frame over the size limit
/// is dropped with an error log (nothing of it was written), and the connection goes on.
async fn feed<W: AsyncWrite + Send + Unpin>(
    writer: &mut FramedWrite<W, FrameCodec>,
    frame: Frame,
    peer: &noex_proto::NodeId,
) -> bool {
    match writer.feed(frame).await {
        Ok(()) => true,
        Err(ProtoError::TooLarge { len, limit }) => {
            tracing::error!(%peer, len, limit, "frame over the size limit was not sent");
            true
        }
        Err(_) => false,
    }
}
