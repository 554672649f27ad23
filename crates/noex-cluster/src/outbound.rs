//! The sending side of a connection. A frame is encoded by the sender, under the connection's lock, and when
//! nothing is waiting to be written it goes straight to the socket from the sender's own thread, without waking
//! another task (a thread wake-up costs more than the write). When the socket is busy, frames pile up in one
//! buffer that the connection's writer task drains: many frames per write syscall. Unwritten bytes stay in that
//! buffer, under the lock, so the liveness thread can push them out itself when the writer's runtime is busy.
//!
//! Flow control (see `docs/concepts.md`, "Flow control"): casts spend a window of credit that the peer gives
//! back as its processes consume them (`CastCredit` frames); a cast that finds the window spent is refused
//! (`CastMode::IfRoom`) or waits for room (`cast_room`), unless it is fire-and-forget. Every frame, cast or signal,
//! counts towards the hard bound on queued bytes; past it the connection is closed as overloaded.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use noex_proto::{Frame, FrameCodec, NodeId, ProtoError};
use tokio::sync::Notify;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use crate::stats::{ConnectionStats, FullEpisodes};
use crate::sync::{AtomicBool, Instant, Mutex, MutexGuard};

#[cfg(all(test, noex_loom))]
mod model;
mod socket;

pub(crate) use socket::WriteSocket;

/// A connection that wrote less than this ago is taken to be streaming (see `Outbound::send`). Request/response
/// traffic, which waits a network round trip between frames, stays below it and keeps the direct write.
const STREAMING: Duration = Duration::from_micros(10);

/// Below this many bytes buffered, the writer yields once before writing, to gather more.
const COALESCE: usize = 16 << 10;

/// Buffers up to this size are always kept for reuse once written; larger ones only while a burst lasts.
const MAX_SPARE: usize = 4 << 20;

/// What a cast costs of the window besides its bytes on the wire: about what it occupies in a mailbox.
pub(crate) const CAST_OVERHEAD: u64 = 64;

/// What a cast does when the cast window is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastMode {
    /// Goes anyway (fire and forget): it spends the window, but is never refused for room.
    Always,
    /// Refused (`QueueFull`), and counted as refused (`try_cast`).
    IfRoom,
    /// Refused, and counted as a wait: the caller waits with `cast_room` and tries again (`cast_await`).
    BeforeWait,
}

/// A cast to a pid, not yet encoded.
pub struct CastFrame<'a> {
    /// The process it is for.
    pub target: &'a noex_core::Pid,
    /// Its sender.
    pub from: &'a noex_core::Pid,
    /// The message, written in place.
    pub payload: &'a dyn noex_core::WirePayload,
}

/// Why a frame was not queued.
pub(crate) enum Refused {
    Closed,
    /// The cast window is spent (a cast that may be refused only).
    Full,
    TooLarge {
        len: usize,
        limit: usize,
    },
}

/// How the connection's limits are set.
pub(crate) struct Limits {
    pub(crate) max_frame: usize,
    /// Bytes that may wait in the buffer; past them the connection is closed as overloaded.
    pub(crate) hard: usize,
    /// Cost of casts that may be sent and not yet consumed by the peer.
    pub(crate) cast_window: u64,
}

pub(crate) struct Outbound {
    socket: WriteSocket,
    state: Mutex<Pending>,
    wake: Notify,
    /// Woken when the cast window has room again, or the connection closed.
    room: Notify,
    hard_limit: usize,
    cast_window: u64,
    /// Set once the connection is closed for good (a lock-free answer to "is this handle stale?").
    retired: AtomicBool,
    /// Set when the connection was closed because the hard bound was reached: the node is down as overloaded.
    overloaded: AtomicBool,
    /// The connection's close signal: cancelled to close it from a sender's thread (overload).
    close: CancellationToken,
    peer: NodeId,
}

struct Pending {
    /// What the writer took and the socket did not accept yet: written before `buffer`. Kept apart, not copied
    /// back in front of what senders appended meanwhile (a copy of every byte a slow peer makes wait).
    front: BytesMut,
    buffer: BytesMut,
    /// The allocation of the last chunk written, cleared, for `buffer` to take next time: two buffers take
    /// turns, so a stream of frames allocates (and page-faults) nothing once they are large enough.
    spare: BytesMut,
    codec: FrameCodec,
    /// The writer task is draining: senders must append, not write.
    writer_owns: bool,
    /// The writer is writing bytes it took out of `buffer`, outside the lock: nobody else may touch the socket.
    writing: bool,
    /// The socket failed; nothing more is accepted or written.
    closed: bool,
    /// `Goodbye` is queued; nothing more is accepted, what is buffered is still written.
    leaving: bool,
    /// When bytes last reached the socket.
    last_write: Instant,
    /// Bytes the writer took out of `buffer` and has not written yet.
    in_flight: usize,
    /// Total cost of the casts sent, and of those the peer says it consumed (cumulative, from `CastCredit`).
    cast_sent: u64,
    cast_consumed: u64,
    /// A sender waits in `cast_room`.
    waiting: bool,
    stats: ConnectionStats,
    full: FullEpisodes,
}

impl Pending {
    /// Bytes accepted and not yet written.
    fn queued(&self) -> usize {
        self.front.len() + self.buffer.len() + self.in_flight
    }

    /// Cost of the casts sent and not yet consumed by the peer.
    fn window_used(&self) -> u64 {
        self.cast_sent - self.cast_consumed
    }
}

/// How a write attempt went.
enum Wrote {
    All,
    Blocked,
    Failed,
}

impl Outbound {
    pub(crate) fn new(socket: WriteSocket, limits: Limits, close: CancellationToken, peer: NodeId) -> Self {
        Outbound {
            socket,
            state: Mutex::new(Pending {
                front: BytesMut::new(),
                buffer: BytesMut::new(),
                spare: BytesMut::new(),
                codec: FrameCodec::with_limit(limits.max_frame),
                writer_owns: false,
                writing: false,
                closed: false,
                leaving: false,
                last_write: Instant::now(),
                in_flight: 0,
                cast_sent: 0,
                cast_consumed: 0,
                waiting: false,
                stats: ConnectionStats::default(),
                full: FullEpisodes::default(),
            }),
            wake: Notify::new(),
            room: Notify::new(),
            hard_limit: limits.hard,
            cast_window: limits.cast_window,
            retired: AtomicBool::new(false),
            overloaded: AtomicBool::new(false),
            close,
            peer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues or writes `frame`, a signal or a fire-and-forget cast: never refused for want of cast credit (a
    /// cast still spends it); frames are written in the order they were accepted. Past the hard bound the
    /// connection is closed as overloaded and the frame refused.
    pub(crate) fn send(&self, frame: Frame) -> Result<(), Refused> {
        let mut pending = self.lock();
        self.admit(&mut pending)?;
        let is_cast = matches!(frame, Frame::Cast(_));
        self.enqueue(pending, is_cast, |pending| append(pending, frame))
    }

    /// A cast to a pid, encoded in place (no frame, no payload buffer): the hot path; `mode` says what happens
    /// when the window is spent.
    pub(crate) fn send_cast(&self, cast: &CastFrame<'_>, mode: CastMode) -> Result<(), Refused> {
        let mut pending = self.lock();
        self.admit_cast(&mut pending, mode)?;
        self.enqueue(pending, true, |pending| {
            let Pending { codec, buffer, stats, .. } = pending;
            let payload = cast.payload;
            let written = codec
                .encode_cast(cast.target, cast.from, payload.wire_len(), |dst| payload.write(dst), buffer)
                .map_err(|error| match error {
                    ProtoError::TooLarge { len, limit } => Refused::TooLarge { len, limit },
                    _ => Refused::Closed,
                })?;
            stats.frames_out += 1;
            stats.peak_queued_bytes = stats.peak_queued_bytes.max(buffer.len());
            Ok(written)
        })
    }

    /// `admit`, and for a cast that may be refused, whether the window has room.
    fn admit_cast(&self, pending: &mut Pending, mode: CastMode) -> Result<(), Refused> {
        self.admit(pending)?;
        if mode != CastMode::Always && pending.window_used() >= self.cast_window {
            match mode {
                CastMode::BeforeWait => pending.stats.casts_waited += 1,
                _ => pending.stats.casts_refused += 1,
            }
            pending.full.begin();
            return Err(Refused::Full);
        }
        Ok(())
    }

    /// Resolves once the cast window has room (at once if it has), or with `Closed` once the connection is.
    pub(crate) async fn cast_room(&self) -> Result<(), Refused> {
        loop {
            // Armed before looking, so that credit arriving in between is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut pending = self.lock();
                if pending.closed || pending.leaving {
                    return Err(Refused::Closed);
                }
                if pending.window_used() < self.cast_window {
                    return Ok(());
                }
                pending.full.begin();
                pending.waiting = true;
            }
            room.await;
        }
    }

    /// The peer has consumed casts of a total cost of `consumed` (cumulative) on this connection.
    pub(crate) fn credit(&self, consumed: u64) {
        let wake = {
            let mut pending = self.lock();
            // Never more than was sent: a peer cannot grant itself an unbounded window.
            pending.cast_consumed = pending.cast_consumed.max(consumed.min(pending.cast_sent));
            if pending.window_used() >= self.cast_window {
                return;
            }
            if let Some(summary) = pending.full.end() {
                tracing::info!(peer = %self.peer, "{summary}");
            }
            std::mem::take(&mut pending.waiting)
        };
        if wake {
            self.room.notify_waiters();
        }
    }

    /// What this connection has sent and queued so far.
    pub(crate) fn stats(&self) -> ConnectionStats {
        let pending = self.lock();
        let mut stats = pending.stats.clone();
        stats.queued_bytes = pending.queued();
        stats.cast_window_used = pending.window_used();
        stats.full_episodes = pending.full.episodes();
        stats.full_time = pending.full.total();
        stats
    }

    /// Whether the connection was closed because the peer fell past the hard bound.
    pub(crate) fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Acquire)
    }

    /// Whether one more frame may be queued; past the hard bound, closes the connection as overloaded.
    fn admit(&self, pending: &mut Pending) -> Result<(), Refused> {
        if pending.closed || pending.leaving {
            return Err(Refused::Closed);
        }
        let queued = pending.queued();
        if queued < self.hard_limit {
            return Ok(());
        }
        tracing::warn!(
            peer = %self.peer,
            queued,
            limit = self.hard_limit,
            "the peer does not keep up: outbound bytes past the hard bound; closing the connection (overloaded)"
        );
        self.overloaded.store(true, Ordering::Release);
        self.fail(pending);
        Err(Refused::Closed)
    }

    /// Appends an admitted frame (`append` encodes it and returns its size) and writes it now if the connection
    /// is idle.
    fn enqueue(
        &self,
        mut pending: MutexGuard<'_, Pending>,
        is_cast: bool,
        append: impl FnOnce(&mut Pending) -> Result<usize, Refused>,
    ) -> Result<(), Refused> {
        let len = append(&mut pending)?;
        if is_cast {
            pending.cast_sent += len as u64 + CAST_OVERHEAD;
            pending.stats.casts_out += 1;
        }
        if pending.writer_owns || pending.writing {
            return Ok(());
        }
        // A connection that wrote moments ago is streaming: hand the bytes to the writer, which sends what
        // piles up meanwhile in one syscall, instead of a syscall per frame from here.
        let streaming = pending.last_write.elapsed() < STREAMING;
        if !streaming {
            match self.write(&mut pending, false) {
                Wrote::All => return Ok(()),
                Wrote::Blocked => {}
                Wrote::Failed => {
                    // Accepted, then lost with the connection, which is now reported down.
                    self.fail(&mut pending);
                    return Ok(());
                }
            }
        }
        // Streaming or busy socket: the writer takes over.
        pending.writer_owns = true;
        drop(pending);
        self.wake.notify_one();
        Ok(())
    }

    /// Whether the connection is closed for good (it failed, or is no longer the node's current one).
    pub(crate) fn is_closed(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Refuses every frame from now on (the connection is no longer the node's current one).
    pub(crate) fn close(&self) {
        self.retire(&mut self.lock());
    }

    /// Closes the connection as overloaded on behalf of a layer above (see `NodeSender::close_overloaded`).
    pub(crate) fn close_overloaded(&self) {
        self.overloaded.store(true, Ordering::Release);
        self.fail(&mut self.lock());
    }

    /// Closes the connection from here (the socket failed, or the peer fell past the hard bound): retired at
    /// once, and the reader told, which reports the node down.
    fn fail(&self, pending: &mut Pending) {
        self.retire(pending);
        self.close.cancel();
    }

    /// Closed for good: what is still buffered is counted as discarded, waiters for room are woken.
    fn retire(&self, pending: &mut Pending) {
        if !pending.closed {
            pending.closed = true;
            pending.stats.discarded_bytes += (pending.queued()) as u64;
            // Nothing more will be written: the memory goes now, not when the last handle does.
            (pending.front, pending.buffer, pending.spare) = Default::default();
            if let Some(summary) = pending.full.end() {
                tracing::info!(peer = %self.peer, "{summary} (then closed)");
            }
        }
        self.retired.store(true, Ordering::Release);
        // No lock of the waiters is held here: they hold the state lock only while looking.
        self.room.notify_waiters();
    }

    /// From the liveness thread: a heartbeat if nothing reached the socket for `idle` (past the queue limit:
    /// it is tiny), and a push of whatever is buffered, with a raw non-blocking send that needs no runtime.
    pub(crate) fn keep_alive(&self, idle: Duration) {
        let mut pending = self.lock();
        if pending.closed {
            return;
        }
        if pending.last_write.elapsed() >= idle && append(&mut pending, Frame::Heartbeat).is_err() {
            return;
        }
        let unwritten = !pending.front.is_empty() || !pending.buffer.is_empty();
        if !unwritten || pending.writing {
            return;
        }
        match self.write(&mut pending, true) {
            Wrote::All => {}
            Wrote::Failed => self.fail(&mut pending),
            // Left to the writer, which waits for room: else the bytes would wait for the next sender or tick
            // (found by the model `a_heartbeat_the_socket_refuses_is_written_once_it_has_room`).
            Wrote::Blocked if !pending.writer_owns => {
                pending.writer_owns = true;
                drop(pending);
                self.wake.notify_one();
            }
            Wrote::Blocked => {}
        }
    }

    /// Whether the peer has sent bytes that nobody has read yet: then the peer is alive and only our reader is
    /// late (its runtime is busy). A peek, so nothing is consumed; the socket is non-blocking.
    pub(crate) fn has_unread_input(&self) -> bool {
        self.socket.has_unread_input()
    }

    /// The connection's writer task: drains what senders could not write directly, and on `leave` sends
    /// `Goodbye` (past the queue limit) and stops.
    pub(crate) async fn run(&self, close: &CancellationToken, leave: &CancellationToken) {
        let mut leaving = false;
        loop {
            if !leaving {
                // Biased (close, then leave, then work): no random branch order, which model builds could not
                // replay.
                tokio::select! {
                    biased;
                    () = close.cancelled() => break,
                    () = leave.cancelled() => {
                        leaving = true;
                        let mut pending = self.lock();
                        if append(&mut pending, Frame::Goodbye).is_err() {
                            break;
                        }
                        pending.leaving = true;
                        pending.writer_owns = true;
                        drop(pending);
                        self.room.notify_waiters(); // senders waiting for room: nothing more is accepted
                    }
                    () = self.wake.notified() => {}
                }
            }
            if !self.drain(close).await || leaving {
                break;
            }
        }
        self.retire(&mut self.lock());
        close.cancel();
    }

    /// Writes everything buffered; false if the connection failed or closed meanwhile.
    ///
    /// The bytes are taken out of the buffer and written without the lock, so that senders keep appending while
    /// the syscall runs (and the next write takes all of that at once). What the socket does not take is kept, in
    /// `front`, before waiting: written first next time, and where the liveness thread can push it if this
    /// runtime stalls.
    async fn drain(&self, close: &CancellationToken) -> bool {
        let mut gathered = false;
        loop {
            let taken = {
                let mut pending = self.lock();
                if pending.closed {
                    return false;
                }
                if pending.front.is_empty() && pending.buffer.is_empty() {
                    pending.writer_owns = false;
                    return true;
                }
                // A stream of small frames: let senders append for a moment before the system call, so that
                // each write carries many frames (a write per few frames costs more than the frames themselves).
                if !gathered && pending.front.is_empty() && pending.buffer.len() < COALESCE {
                    None
                } else {
                    Some(self.take_chunk(&mut pending))
                }
            };
            let Some(mut chunk) = taken else {
                gathered = true;
                tokio::task::yield_now().await;
                continue;
            };
            gathered = false;
            let written = chunk.len();
            let wrote = loop {
                match self.socket.try_write(&chunk) {
                    Ok(n) => {
                        chunk.advance(n);
                        if chunk.is_empty() {
                            break Wrote::All;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break Wrote::Blocked,
                    Err(_) => break Wrote::Failed,
                }
            };
            {
                let mut pending = self.lock();
                pending.writing = false;
                pending.in_flight = 0;
                pending.stats.bytes_out += (written - chunk.len()) as u64;
                pending.last_write = Instant::now();
                match wrote {
                    Wrote::All => {
                        // Kept for the next turn while it is needed: a large one goes once a write uses little of
                        // it (the burst is over), and memory with it.
                        if chunk.capacity() <= MAX_SPARE || written > chunk.capacity() / 8 {
                            chunk.clear();
                            pending.spare = chunk;
                        }
                        continue;
                    }
                    Wrote::Failed => {
                        self.retire(&mut pending);
                        return false;
                    }
                    // What is left goes first next time, ahead of what was appended meanwhile.
                    Wrote::Blocked => pending.front = chunk,
                }
            }
            tokio::select! {
                biased;
                () = close.cancelled() => return false,
                ready = self.socket.writable() => if ready.is_err() { return false },
            }
        }
    }

    /// Takes the next bytes to write, front first, for the writer to write outside the lock.
    fn take_chunk(&self, pending: &mut Pending) -> BytesMut {
        // Owned from here even if no sender handed over (bytes the liveness thread could not push): no sender may
        // write to the socket directly while this chunk is on its way.
        pending.writer_owns = true;
        pending.writing = true;
        let chunk = if pending.front.is_empty() {
            let spare = std::mem::take(&mut pending.spare);
            std::mem::replace(&mut pending.buffer, spare)
        } else {
            std::mem::take(&mut pending.front)
        };
        pending.in_flight = chunk.len();
        chunk
    }

    /// Writes from the buffer until it is empty or the socket is full. `raw` bypasses tokio's cached readiness,
    /// which only the (possibly busy) runtime refreshes.
    fn write(&self, pending: &mut Pending, raw: bool) -> Wrote {
        loop {
            let Pending { front, buffer, .. } = &mut *pending;
            let next = if front.is_empty() { buffer } else { front };
            if next.is_empty() {
                return Wrote::All;
            }
            let written = if raw { self.socket.send_now(next) } else { self.socket.try_write(next) };
            match written {
                Ok(n) => {
                    next.advance(n);
                    pending.stats.bytes_out += n as u64;
                    pending.last_write = Instant::now();
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Wrote::Blocked,
                // The caller retires the connection.
                Err(_) => return Wrote::Failed,
            }
        }
    }
}

/// Encodes `frame` at the end of the buffer; returns its size on the wire.
fn append(pending: &mut Pending, frame: Frame) -> Result<usize, Refused> {
    let Pending { codec, buffer, stats, .. } = pending;
    let before = buffer.len();
    match codec.encode(frame, buffer) {
        Ok(()) => {}
        Err(ProtoError::TooLarge { len, limit }) => return Err(Refused::TooLarge { len, limit }),
        Err(_) => return Err(Refused::Closed),
    }
    stats.frames_out += 1;
    stats.peak_queued_bytes = stats.peak_queued_bytes.max(buffer.len());
    Ok(buffer.len() - before)
}
