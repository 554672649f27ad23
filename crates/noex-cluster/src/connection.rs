//! An authenticated connection's two tasks: a reader that dispatches frames and notes when the peer was last
//! heard, and a writer (`Outbound::run`) that drains what senders could not write directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// When the last frame arrived, in milliseconds since `started`; read by the liveness thread.
    last_read: AtomicU64,
    started: Instant,
}

impl Connection {
    pub(crate) fn new(id: u64, peer: NodeInfo, close: CancellationToken, leave: CancellationToken) -> Self {
        Connection { id, peer, close, leave, last_read: AtomicU64::new(0), started: Instant::now() }
    }

    /// How long since the last frame arrived.
    pub(crate) fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_read.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    pub(crate) fn heard(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read.store(now, Ordering::Relaxed);
    }
}

/// Spawns the reader and the writer of an authenticated connection on the application's runtime (where the
/// processes that use it run, so that frames reach them without a thread hop); returns the writer's handle (it
/// ends after `Goodbye` when leaving). Heartbeats and silence detection are the liveness thread's job.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    connection: Arc<Connection>,
    reader: FramedRead<Heard, FrameCodec>,
    outbound: Arc<Outbound>,
) -> tokio::task::JoinHandle<()> {
    inner.tasks.spawn(read(inner.clone(), connection.clone(), reader));
    inner.tasks.spawn(async move { outbound.run(&connection.close, &connection.leave).await })
}

async fn read<R: AsyncRead + Send + Unpin>(
    inner: Arc<Inner>,
    connection: Arc<Connection>,
    mut reader: FramedRead<R, FrameCodec>,
) {
    let peer = &connection.peer.node;
    // Made once: a fresh `cancelled()` per frame costs a waiter registration per frame.
    let closed = connection.close.cancelled();
    tokio::pin!(closed);
    let reason = loop {
        // The reader first: while frames flow, a close is seen by the `is_cancelled` check below.
        let next = tokio::select! {
            biased;
            next = reader.next() => next,
            () = &mut closed => break DownReason::ConnectionClosed,
        };
        if connection.close.is_cancelled() {
            break DownReason::ConnectionClosed; // declared down meanwhile: deliver nothing more
        }
        match next {
            None => break DownReason::ConnectionClosed,
            Some(Err(error)) => {
                tracing::warn!(%peer, %error, "closing connection: unreadable stream");
                break DownReason::ConnectionClosed;
            }
            Some(Ok(Err(ProtoError::UnknownKind))) => {
                tracing::debug!(%peer, "ignoring a frame of a kind this version does not know");
            }
            Some(Ok(Err(error))) => {
                tracing::warn!(%peer, %error, "closing connection: malformed frame");
                break DownReason::ConnectionClosed;
            }
            Some(Ok(Ok(frame))) => match frame {
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

/// The read half of a connection, noting every read that returns bytes: silence is judged by bytes, not whole
/// frames, so a large frame arriving slowly does not look like a dead peer.
pub(crate) struct Heard {
    inner: OwnedReadHalf,
    connection: Arc<Connection>,
}

impl Heard {
    pub(crate) fn new(inner: OwnedReadHalf, connection: Arc<Connection>) -> Self {
        Heard { inner, connection }
    }
}

impl AsyncRead for Heard {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.heard();
        }
        polled
    }
}
