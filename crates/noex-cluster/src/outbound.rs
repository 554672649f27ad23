//! The sending side of a connection. A frame is encoded by the sender, under the connection's lock, and when
//! nothing is waiting to be written it goes straight to the socket from the sender's own thread, without waking
//! another task (a thread wake-up costs more than the write). When the socket is busy, frames pile up in one
//! buffer that the connection's writer task drains: many frames per write syscall.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use noex_proto::{Frame, FrameCodec, ProtoError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

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
    /// Frames that may wait in the buffer before senders are refused.
    limit: usize,
}

struct Pending {
    buffer: BytesMut,
    codec: FrameCodec,
    /// Frames in `buffer`.
    frames: usize,
    /// The writer task is draining: senders must append, not write.
    writer_owns: bool,
    closed: bool,
    last_send: Instant,
}

impl Outbound {
    pub(crate) fn new(socket: OwnedWriteHalf, max_frame: usize, limit: usize) -> Self {
        Outbound {
            socket,
            state: Mutex::new(Pending {
                buffer: BytesMut::new(),
                codec: FrameCodec::with_limit(max_frame),
                frames: 0,
                writer_owns: false,
                closed: false,
                last_send: Instant::now(),
            }),
            wake: Notify::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues or writes `frame`; frames are written in the order they were accepted.
    pub(crate) fn send(&self, frame: Frame) -> Result<(), Refused> {
        let mut pending = self.lock();
        if pending.closed {
            return Err(Refused::Closed);
        }
        if pending.frames >= self.limit {
            return Err(Refused::Full);
        }
        self.append(&mut pending, frame)?;
        if pending.writer_owns {
            return Ok(());
        }
        while !pending.buffer.is_empty() {
            match self.socket.try_write(&pending.buffer) {
                Ok(written) => pending.buffer.advance(written),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    pending.closed = true;
                    break;
                }
            }
        }
        if pending.buffer.is_empty() && !pending.closed {
            pending.frames = 0;
        } else {
            // Busy socket: the writer takes over. Failed socket: the writer notices and closes the connection.
            pending.writer_owns = true;
            drop(pending);
            self.wake.notify_one();
        }
        Ok(())
    }

    fn append(&self, pending: &mut Pending, frame: Frame) -> Result<(), Refused> {
        let Pending { codec, buffer, .. } = pending;
        match codec.encode(frame, buffer) {
            Ok(()) => {}
            Err(ProtoError::TooLarge { len, limit }) => return Err(Refused::TooLarge { len, limit }),
            Err(_) => return Err(Refused::Closed),
        }
        pending.frames += 1;
        pending.last_send = Instant::now();
        Ok(())
    }

    /// How long since a frame was last accepted for this connection.
    pub(crate) fn idle_for(&self) -> Duration {
        self.lock().last_send.elapsed()
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
                        if self.append(&mut pending, Frame::Goodbye).is_err() {
                            break;
                        }
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
        close.cancel();
    }

    /// Writes everything buffered; false if the connection failed or closed meanwhile.
    async fn drain(&self, close: &CancellationToken) -> bool {
        loop {
            let chunk = {
                let mut pending = self.lock();
                if pending.closed {
                    return false;
                }
                if pending.buffer.is_empty() {
                    pending.writer_owns = false;
                    pending.frames = 0;
                    return true;
                }
                pending.writer_owns = true;
                pending.frames = 0;
                pending.buffer.split()
            };
            let mut chunk = chunk;
            while !chunk.is_empty() {
                tokio::select! {
                    () = close.cancelled() => return false,
                    ready = self.socket.writable() => if ready.is_err() { return false },
                }
                match self.socket.try_write(&chunk) {
                    Ok(written) => chunk.advance(written),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return false,
                }
            }
        }
    }
}
