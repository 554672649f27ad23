//! The sending side of a connection. A frame is encoded by the sender, under the connection's lock, and when
//! nothing is waiting to be written it goes straight to the socket from the sender's own thread, without waking
//! another task (a thread wake-up costs more than the write). When the socket is busy, frames pile up in one
//! buffer that the connection's writer task drains: many frames per write syscall. Unwritten bytes stay in that
//! buffer, under the lock, so the liveness thread can push them out itself when the writer's runtime is busy.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use noex_proto::{Frame, FrameCodec, ProtoError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

/// A connection that wrote less than this ago is taken to be streaming (see `Outbound::send`). Request/response
/// traffic, which waits a network round trip between frames, stays below it and keeps the direct write.
const STREAMING: Duration = Duration::from_micros(10);

/// Buffers up to this size are always kept for reuse once written; larger ones only while a burst lasts.
const MAX_SPARE: usize = 4 << 20;

/// Why a frame was not queued.
pub(crate) enum Refused {
    Closed,
    Full,
    TooLarge { len: usize, limit: usize },
}

pub(crate) struct Outbound {
    socket: OwnedWriteHalf,
    state: Mutex<Pending>,
    wake: Notify,
    /// Bytes that may wait in the buffer before senders are refused.
    limit: usize,
    /// Set once the connection is closed for good (a lock-free answer to "is this handle stale?").
    retired: std::sync::atomic::AtomicBool,
}

struct Pending {
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
}

/// How a write attempt went.
enum Wrote {
    All,
    Blocked,
    Failed,
}

impl Outbound {
    pub(crate) fn new(socket: OwnedWriteHalf, max_frame: usize, limit: usize) -> Self {
        Outbound {
            socket,
            state: Mutex::new(Pending {
                buffer: BytesMut::new(),
                spare: BytesMut::new(),
                codec: FrameCodec::with_limit(max_frame),
                writer_owns: false,
                writing: false,
                closed: false,
                leaving: false,
                last_write: Instant::now(),
            }),
            wake: Notify::new(),
            limit,
            retired: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues or writes `frame`; frames are written in the order they were accepted.
    pub(crate) fn send(&self, frame: Frame) -> Result<(), Refused> {
        let mut pending = self.lock();
        if pending.closed || pending.leaving {
            return Err(Refused::Closed);
        }
        if pending.buffer.len() >= self.limit {
            return Err(Refused::Full);
        }
        append(&mut pending, frame)?;
        if pending.writer_owns || pending.writing {
            return Ok(());
        }
        // A connection that wrote moments ago is streaming: hand the bytes to the writer, which sends what
        // piles up meanwhile in one syscall, instead of a syscall per frame from here.
        let streaming = pending.last_write.elapsed() < STREAMING;
        if !streaming {
            if let Wrote::All = self.write(&mut pending, false) {
                return Ok(());
            }
        }
        // Streaming or busy socket: the writer takes over. Failed socket: the writer notices and closes it.
        pending.writer_owns = true;
        drop(pending);
        self.wake.notify_one();
        Ok(())
    }

    /// Whether the connection is closed for good (it failed, or is no longer the node's current one).
    pub(crate) fn is_closed(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Refuses every frame from now on (the connection is no longer the node's current one).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.retired.store(true, std::sync::atomic::Ordering::Release);
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
        if !pending.buffer.is_empty() && !pending.writing {
            self.write(&mut pending, true);
        }
    }

    /// Whether the peer has sent bytes that nobody has read yet: then the peer is alive and only our reader is
    /// late (its runtime is busy). A peek, so nothing is consumed; the socket is non-blocking.
    pub(crate) fn has_unread_input(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(socket2::SockRef::from(self.socket.as_ref()).peek(&mut probe), Ok(n) if n > 0)
    }

    /// The connection's writer task: drains what senders could not write directly, and on `leave` sends
    /// `Goodbye` (past the queue limit) and stops.
    pub(crate) async fn run(&self, close: &CancellationToken, leave: &CancellationToken) {
        let mut leaving = false;
        loop {
            if !leaving {
                tokio::select! {
                    () = close.cancelled() => break,
                    () = leave.cancelled() => {
                        leaving = true;
                        let mut pending = self.lock();
                        if append(&mut pending, Frame::Goodbye).is_err() {
                            break;
                        }
                        pending.leaving = true;
                        pending.writer_owns = true;
                    }
                    () = self.wake.notified() => {}
                }
            }
            if !self.drain(close).await || leaving {
                break;
            }
        }
        self.lock().closed = true;
        self.retired.store(true, std::sync::atomic::Ordering::Release);
        close.cancel();
    }

    /// Writes everything buffered; false if the connection failed or closed meanwhile.
    ///
    /// The bytes are taken out of the buffer and written without the lock, so that senders keep appending while
    /// the syscall runs (and the next write takes all of that at once). What the socket does not take goes back
    /// to the front of the buffer before waiting, where the liveness thread can push it if this runtime stalls.
    async fn drain(&self, close: &CancellationToken) -> bool {
        loop {
            let mut chunk = {
                let mut pending = self.lock();
                if pending.closed {
                    return false;
                }
                if pending.buffer.is_empty() {
                    pending.writer_owns = false;
                    return true;
                }
                // Owned from here even if no sender handed over (bytes the liveness thread could not push): no
                // sender may write to the socket directly while this chunk is on its way.
                pending.writer_owns = true;
                pending.writing = true;
                let spare = std::mem::take(&mut pending.spare);
                std::mem::replace(&mut pending.buffer, spare)
            };
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
                        pending.closed = true;
                        return false;
                    }
                    Wrote::Blocked => {
                        // What is left goes back in front of what was appended meanwhile.
                        let mut appended = std::mem::replace(&mut pending.buffer, chunk);
                        pending.buffer.extend_from_slice(&appended);
                        appended.clear();
                        if appended.capacity() <= MAX_SPARE {
                            pending.spare = appended;
                        }
                    }
                }
            }
            tokio::select! {
                () = close.cancelled() => return false,
                ready = self.socket.writable() => if ready.is_err() { return false },
            }
        }
    }

    /// Writes from the buffer until it is empty or the socket is full. `raw` bypasses tokio's cached readiness,
    /// which only the (possibly busy) runtime refreshes.
    fn write(&self, pending: &mut Pending, raw: bool) -> Wrote {
        while !pending.buffer.is_empty() {
            let written = if raw {
                socket2::SockRef::from(self.socket.as_ref()).send(&pending.buffer)
            } else {
                self.socket.try_write(&pending.buffer)
            };
            match written {
                Ok(n) => {
                    pending.buffer.advance(n);
                    pending.last_write = Instant::now();
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Wrote::Blocked,
                Err(_) => {
                    pending.closed = true;
                    return Wrote::Failed;
                }
            }
        }
        Wrote::All
    }
}

fn append(pending: &mut Pending, frame: Frame) -> Result<(), Refused> {
    let Pending { codec, buffer, .. } = pending;
    match codec.encode(frame, buffer) {
        Ok(()) => {}
        Err(ProtoError::TooLarge { len, limit }) => return Err(Refused::TooLarge { len, limit }),
        Err(_) => return Err(Refused::Closed),
    }
    Ok(())
}
