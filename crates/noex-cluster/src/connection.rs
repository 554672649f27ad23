//! An authenticated connection's two tasks: a reader that dispatches frames and notes when the peer was last
//! heard, and a writer (`Outbound::run`) that drains what senders could not write directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use noex_proto::{Frame, FrameCodec, ProtoError};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::cluster::Inner;
use crate::credit::InboundCredit;
use crate::event::{DownReason, NodeInfo};
use crate::outbound::{CAST_OVERHEAD, Outbound};
use crate::routing::HandlerCache;

pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) peer: NodeInfo,
    pub(crate) close: CancellationToken,
    /// Cancelled when this node leaves: the writer sends `Goodbye` and stops.
    pub(crate) leave: CancellationToken,
    /// When the last frame arrived, in milliseconds since `started`; read by the liveness thread.
    last_read: AtomicU64,
    started: Instant,
    /// Written by the reader only.
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    /// What this connection's casts gave back as they were consumed; flushed by the liveness thread.
    pub(crate) credit: Arc<InboundCredit>,
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        peer: NodeInfo,
        close: CancellationToken,
        leave: CancellationToken,
        credit: Arc<InboundCredit>,
    ) -> Self {
        Connection {
            id,
            peer,
            close,
            leave,
            last_read: AtomicU64::new(0),
            started: Instant::now(),
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            credit,
        }
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

/// What a connection's reader starts from: the socket's read half, the codec of the handshake (with its
/// interned names), and the bytes the handshake read past its last frame.
pub(crate) struct Incoming {
    pub(crate) socket: OwnedReadHalf,
    pub(crate) codec: FrameCodec,
    pub(crate) buffer: BytesMut,
}

/// Spawns the reader and the writer of an authenticated connection on the application's runtime (where the
/// processes that use it run, so that frames reach them without a thread hop); returns the writer's handle (it
/// ends after `Goodbye` when leaving). Heartbeats and silence detection are the liveness thread's job.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    connection: Arc<Connection>,
    incoming: Incoming,
    outbound: Arc<Outbound>,
) -> tokio::task::JoinHandle<()> {
    inner.tasks.spawn(read(inner.clone(), connection.clone(), incoming, outbound.clone()));
    inner.tasks.spawn(async move { outbound.run(&connection.close, &connection.leave).await })
}

/// Room made in the read buffer before each read: one read takes in many small frames.
const READ_CHUNK: usize = 64 << 10;

/// Reads the connection until it closes: every complete frame in the buffer is handled, then one more read.
/// A hand-written loop rather than `FramedRead`: a frame goes straight from the codec to its handler, without
/// a `select!` and several moves of the decoded frame per frame.
async fn read(inner: Arc<Inner>, connection: Arc<Connection>, incoming: Incoming, outbound: Arc<Outbound>) {
    let Incoming { mut socket, mut codec, mut buffer } = incoming;
    let peer = &connection.peer.node;
    let mut frames_in = 0;
    // Made once: a fresh `cancelled()` per read costs a waiter registration per read.
    let closed = connection.close.cancelled();
    tokio::pin!(closed);
    let mut handlers = HandlerCache::default();
    let reason = 'read: loop {
        loop {
            // The hot path: a cast to a pid is delivered from where it lies in the buffer (no frame is built);
            // anything else, or a cast the handler does not take this way, is decoded in full below.
            let mut fallback = None;
            if let Some((cast, wire)) = codec.view_cast(&buffer) {
                if connection.close.is_cancelled() {
                    break 'read DownReason::ConnectionClosed;
                }
                let receipt = cast_receipt(&connection.credit, wire);
                let viewed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inner.dispatch_cast_view(&mut handlers, peer, &cast, receipt)
                }));
                match viewed {
                    Ok(Ok(())) => {}
                    Ok(Err(receipt)) => fallback = Some(receipt),
                    Err(_) => tracing::error!(%peer, "a frame handler panicked; the cast was dropped"),
                }
                if fallback.is_none() {
                    frames_in += 1;
                    connection.frames_in.store(frames_in, Ordering::Relaxed);
                    buffer.advance(wire);
                    continue;
                }
            }
            let before = buffer.len();
            let decoded = match codec.decode(&mut buffer) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%peer, %error, "closing connection: unreadable stream");
                    break 'read DownReason::ConnectionClosed;
                }
            };
            if connection.close.is_cancelled() {
                // Closed meanwhile (failed, replaced, or we are stopping): deliver nothing more. (A heartbeat
                // timeout reports the node down just before it closes, so a frame may still follow `node_down`;
                // `FrameHandler::node_down` says so.)
                break 'read DownReason::ConnectionClosed;
            }
            frames_in += 1;
            connection.frames_in.store(frames_in, Ordering::Relaxed);
            let wire = before - buffer.len();
            let context = Dispatch { outbound: &outbound, credit: &connection.credit };
            if let Some(reason) = handle(&inner, &mut handlers, &context, peer, decoded, wire, fallback) {
                break 'read reason;
            }
        }
        // Room for many small frames per read. Not while a large frame is half read: the codec has reserved
        // exactly what it lacks, and topping up would copy the whole frame into a larger buffer.
        let free = buffer.capacity() - buffer.len();
        if free == 0 || (buffer.len() <= READ_CHUNK && free < READ_CHUNK / 4) {
            buffer.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            read = socket.read_buf(&mut buffer) => read,
            () = &mut closed => break DownReason::ConnectionClosed,
        };
        match read {
            Ok(0) if buffer.is_empty() => break DownReason::ConnectionClosed,
            Ok(0) => {
                tracing::warn!(%peer, pending = buffer.len(), "connection closed in the middle of a frame");
                break DownReason::ConnectionClosed;
            }
            // Silence is judged by bytes, not whole frames: a large frame arriving slowly is not a dead peer.
            Ok(n) => {
                connection.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                connection.heard();
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection: read failed");
                break DownReason::ConnectionClosed;
            }
        }
    };
    connection.close.cancel();
    // Closed by a sender past the hard bound: the peer is down because it did not keep up.
    let reason = if outbound.is_overloaded() { DownReason::Overloaded } else { reason };
    inner.connection_lost(&connection, reason);
}

/// What the reader's frame handling needs of its connection.
struct Dispatch<'a> {
    outbound: &'a Outbound,
    credit: &'a Arc<InboundCredit>,
}

/// Handles one decoded frame (`wire` bytes long); `Some(reason)` ends the connection.
fn handle(
    inner: &Arc<Inner>,
    handlers: &mut HandlerCache,
    context: &Dispatch<'_>,
    peer: &noex_proto::NodeId,
    decoded: Result<Frame, ProtoError>,
    wire: usize,
    receipt: Option<noex_core::Receipt>,
) -> Option<DownReason> {
    match decoded {
        Err(ProtoError::UnknownKind) => {
            tracing::debug!(%peer, "ignoring a frame of a kind this version does not know");
        }
        Err(error) => {
            tracing::warn!(%peer, %error, "closing connection: malformed frame");
            return Some(DownReason::ConnectionClosed);
        }
        Ok(Frame::Heartbeat) => {}
        Ok(Frame::CastCredit { consumed, window }) => {
            context.credit.peer_window(window);
            context.outbound.credit(consumed);
        }
        Ok(Frame::Goodbye) => return Some(DownReason::GracefulShutdown),
        Ok(Frame::Members(members)) => {
            for member in members {
                inner.dial(member.node);
            }
        }
        Ok(Frame::Hello(_) | Frame::Challenge(_) | Frame::Proof(_) | Frame::Welcome { .. } | Frame::Reject(_)) => {
            tracing::warn!(%peer, "closing connection: handshake frame after authentication");
            return Some(DownReason::ConnectionClosed);
        }
        Ok(other) => {
            // A cast spends the sender's window until the process it is for has consumed it: its receipt goes
            // with it. The cost is reckoned as the sender did, from the bytes on the wire.
            let receipt = match receipt {
                Some(receipt) => Some(receipt),
                None => matches!(other, Frame::Cast(_)).then(|| cast_receipt(context.credit, wire)),
            };
            // A layer above that panics must not leave a connection that heartbeats but never reads.
            let dispatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inner.dispatch(handlers, peer, other, receipt)
            }));
            if dispatched.is_err() {
                tracing::error!(%peer, "a frame handler panicked; the frame was dropped");
            }
        }
    }
    None
}

/// The receipt of a cast `wire` bytes long: its cost, reckoned as the sender did (see `outbound.rs`).
fn cast_receipt(credit: &Arc<InboundCredit>, wire: usize) -> noex_core::Receipt {
    let cost = u32::try_from(wire as u64 + CAST_OVERHEAD).unwrap_or(u32::MAX);
    noex_core::Receipt::new(credit.clone(), cost)
}
