//! The socket an [`Outbound`](super::Outbound) writes to: the write half of the connection's TCP stream, or in
//! model builds (`--cfg noex_loom`) a socket of the model's making, whose room the model sets and which checks
//! that no two writes ever overlap.

#[cfg(not(noex_loom))]
pub(crate) use tcp::WriteSocket;

#[cfg(noex_loom)]
pub(crate) use model::WriteSocket;

#[cfg(not(noex_loom))]
mod tcp {
    use std::io;

    use tokio::net::tcp::OwnedWriteHalf;

    /// The write half of a connection.
    pub(crate) struct WriteSocket(OwnedWriteHalf);

    impl WriteSocket {
        pub(crate) fn new(half: OwnedWriteHalf) -> Self {
            WriteSocket(half)
        }

        /// A non-blocking write, after tokio's cached readiness.
        pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
            self.0.try_write(bytes)
        }

        /// A non-blocking write that bypasses tokio's cached readiness, which only the (possibly busy) runtime
        /// refreshes: for the liveness thread.
        pub(crate) fn send_now(&self, bytes: &[u8]) -> io::Result<usize> {
            socket2::SockRef::from(self.0.as_ref()).send(bytes)
        }

        /// Resolves once the socket may take bytes again.
        pub(crate) async fn writable(&self) -> io::Result<()> {
            self.0.writable().await
        }

        /// Whether the peer has sent bytes that nobody has read yet. A peek, so nothing is consumed; the socket
        /// is non-blocking.
        pub(crate) fn has_unread_input(&self) -> bool {
            let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
            matches!(socket2::SockRef::from(self.0.as_ref()).peek(&mut probe), Ok(n) if n > 0)
        }
    }
}

#[cfg(noex_loom)]
mod model {
    use std::io;

    use bytes::BytesMut;
    use loom::sync::Mutex;
    use tokio::sync::Notify;

    /// A socket that takes as many bytes as the model gives it room for, and records them.
    pub(crate) struct WriteSocket {
        wire: Mutex<Wire>,
        /// Woken when room is made (for `writable`).
        room_made: Notify,
        /// Woken after every write (for a model waiting to see bytes on the wire).
        wrote: Notify,
    }

    /// What the socket was given, and the state a model inspects.
    #[derive(Default)]
    pub(crate) struct Wire {
        pub(crate) bytes: BytesMut,
        /// Bytes it takes before it would block.
        pub(crate) room: usize,
        /// A write is under way (between its two steps).
        writing: bool,
        /// Set by a model once the connection is closed: writes that begin after it are counted.
        pub(crate) sealed: bool,
        pub(crate) writes_after_seal: usize,
    }

    impl WriteSocket {
        /// Model builds open no connections: this is here so that the crate builds.
        pub(crate) fn new(_: tokio::net::tcp::OwnedWriteHalf) -> Self {
            unreachable!("model builds open no connections")
        }

        /// A socket with room for `room` bytes.
        #[cfg(test)]
        pub(crate) fn model(room: usize) -> Self {
            WriteSocket {
                wire: Mutex::new(Wire { room, ..Wire::default() }),
                room_made: Notify::new(),
                wrote: Notify::new(),
            }
        }

        pub(crate) fn wire(&self) -> loom::sync::MutexGuard<'_, Wire> {
            self.wire.lock().unwrap()
        }

        /// A write in two steps, so that loom may run another thread in the middle of it: one that writes too is
        /// caught (bytes of two writes would interleave on a real socket, or at least lose their order).
        pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
            {
                let mut wire = self.wire();
                assert!(!wire.writing, "two writes to the socket at once");
                if wire.room == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                wire.writing = true;
                if wire.sealed {
                    wire.writes_after_seal += 1;
                }
            }
            let written = {
                let mut wire = self.wire();
                let n = wire.room.min(bytes.len());
                wire.bytes.extend_from_slice(&bytes[..n]);
                wire.room -= n;
                wire.writing = false;
                n
            };
            self.wrote.notify_one();
            Ok(written)
        }

        pub(crate) fn send_now(&self, bytes: &[u8]) -> io::Result<usize> {
            self.try_write(bytes)
        }

        pub(crate) async fn writable(&self) -> io::Result<()> {
            loop {
                let made = self.room_made.notified();
                if self.wire().room > 0 {
                    return Ok(());
                }
                made.await;
            }
        }

        pub(crate) fn has_unread_input(&self) -> bool {
            false
        }

        /// The peer reads: `room` more bytes fit.
        #[cfg(test)]
        pub(crate) fn make_room(&self, room: usize) {
            self.wire().room += room;
            self.room_made.notify_one();
        }

        /// Waits until the bytes on the wire satisfy `done`.
        #[cfg(test)]
        pub(crate) async fn written_until(&self, done: impl Fn(&[u8]) -> bool) {
            loop {
                let wrote = self.wrote.notified();
                if done(&self.wire().bytes) {
                    return;
                }
                wrote.await;
            }
        }
    }
}
