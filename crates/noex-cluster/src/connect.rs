//! Connecting: the accept loop and the dial loops (with jittered backoff), and driving the handshake over a
//! real connection, with the frame limit switched on success.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use noex_proto::{Frame, FrameCodec, NodeId, RejectReason};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_util::codec::{Decoder, Framed};

use crate::admission::{Attempt, End};
use crate::cluster::Inner;
use crate::event::ClusterEvent;
use crate::handshake::{Acceptor, Dialer, HandshakeError, Peer, Step};
use crate::slots::Slot;

/// What the acceptor's owner says about a peer that presented a valid `Hello`.
pub(crate) enum Admission {
    Admit,
    Refuse(RejectReason),
}

/// Runs the dialer's side; on success the connection is authenticated.
pub(crate) async fn dial<T>(
    framed: &mut Framed<T, FrameCodec>,
    mut dialer: Dialer,
    hello: Frame,
) -> Result<Peer, HandshakeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    send(framed, hello).await?;
    loop {
        match dialer.on_frame(receive(framed).await?) {
            Step::Send(frame) => send(framed, frame).await?,
            Step::Done(peer, reply) => {
                if let Some(frame) = reply {
                    send(framed, frame).await?;
                }
                return Ok(peer);
            }
            Step::Fail(error, reply) => return Err(fail(framed, error, reply).await),
        }
    }
}

/// Runs the acceptor's side; `admit` decides, once the `Hello` checks out, whether this peer may connect. On
/// success the peer is authenticated, and the frame returned (`Welcome`, with our proof) is what ends its
/// handshake: the caller sends it once it has decided to keep the connection. Every wait on the peer holds a
/// place in `slot`'s source queue (see `slots.rs`).
pub(crate) async fn accept(
    framed: &mut Framed<TcpStream, FrameCodec>,
    slot: &Slot,
    mut acceptor: Acceptor,
    admit: impl FnOnce(&Peer) -> Admission,
) -> Result<(Peer, Frame), HandshakeError> {
    let peer = match acceptor.on_hello(receive_in(framed, slot).await?) {
        Ok(peer) => peer,
        Err((error, reject)) => return Err(fail(framed, error, reject.map(Frame::Reject)).await),
    };
    if let Admission::Refuse(reason) = admit(&peer) {
        return Err(fail(framed, HandshakeError::Rejected(reason), Some(Frame::Reject(reason))).await);
    }
    send(framed, acceptor.challenge()).await?;
    match acceptor.on_proof(receive_in(framed, slot).await?) {
        Step::Done(peer, Some(welcome)) => Ok((peer, welcome)),
        Step::Done(_, None) => unreachable!("the acceptor ends the handshake with Welcome"),
        Step::Fail(error, reply) => Err(fail(framed, error, reply).await),
        Step::Send(_) => unreachable!("the acceptor's proof step ends the handshake"),
    }
}

/// The peer's next frame, awaited in its source's queue. If a newer connection from the same address takes the
/// place first, the frame may still have arrived (this task was merely slow to read it): what the socket holds is
/// read without waiting and decoded. Otherwise the connection is idle, and is closed (`Idle`).
async fn receive_in(framed: &mut Framed<TcpStream, FrameCodec>, slot: &Slot) -> Result<Frame, HandshakeError> {
    {
        let wait = slot.wait();
        tokio::select! {
            biased;
            frame = receive(framed) => return frame,
            () = wait.displaced() => {}
        }
    }
    arrived(framed).unwrap_or(Err(HandshakeError::Idle))
}

/// A frame already in the read buffer or the socket, if there is a whole one. The socket is read directly (it is
/// non-blocking), since the runtime may not have noticed yet that it is readable; the codec is stateless between
/// frames, so a fresh one decodes what the connection's own would.
fn arrived(framed: &mut Framed<TcpStream, FrameCodec>) -> Option<Result<Frame, HandshakeError>> {
    use std::io::Read;
    let mut chunk = [0u8; 4096];
    let read = (&*socket2::SockRef::from(framed.get_ref())).read(&mut chunk).unwrap_or(0);
    framed.read_buffer_mut().extend_from_slice(&chunk[..read]);
    let mut codec = FrameCodec::with_limit(framed.codec().limit());
    match codec.decode(framed.read_buffer_mut()) {
        Ok(Some(Ok(frame))) => Some(Ok(frame)),
        Ok(Some(Err(malformed))) | Err(malformed) => Some(Err(HandshakeError::Malformed(malformed))),
        Ok(None) => None,
    }
}

async fn send<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, FrameCodec>,
    frame: Frame,
) -> Result<(), HandshakeError> {
    framed.send(frame).await.map_err(|_| HandshakeError::Closed)
}

async fn receive<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, FrameCodec>,
) -> Result<Frame, HandshakeError> {
    match framed.next().await {
        Some(Ok(Ok(frame))) => Ok(frame),
        Some(Ok(Err(malformed))) | Some(Err(malformed)) => Err(HandshakeError::Malformed(malformed)),
        None => Err(HandshakeError::Closed),
    }
}

/// Sends the refusal, if any (best effort: the peer may be gone), and hands back the error.
async fn fail<T: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<T, FrameCodec>,
    error: HandshakeError,
    reply: Option<Frame>,
) -> HandshakeError {
    if let Some(frame) = reply {
        let _ = framed.send(frame).await;
    }
    error
}

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => serve(&inner, stream, address),
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Starts the handshake of an accepted connection in a slot of its own, or closes it at once if every slot is
/// taken (`Slots::take` logs the episode).
fn serve(inner: &Arc<Inner>, stream: TcpStream, address: SocketAddr) {
    if let Some(slot) = inner.handshakes.take(address.ip()) {
        inner.tasks.spawn(accept_one(inner.clone(), stream, address, slot));
    }
}

async fn accept_one(inner: Arc<Inner>, stream: TcpStream, address: SocketAddr, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let config = &inner.settings.config;
    let mut framed = Framed::new(stream, FrameCodec::with_limit(config.handshake_max_frame));
    let acceptor = Acceptor::new(inner.local.clone(), inner.creation, inner.settings.cookie.clone());
    // Held until the connection is registered or refused: meanwhile our own dial to that node waits.
    let mut in_progress = None;
    let handshake = accept(&mut framed, &slot, acceptor, |peer| match inner.admit(peer) {
        Ok(guard) => {
            in_progress = Some(guard);
            Admission::Admit
        }
        Err(reason) => Admission::Refuse(reason),
    });
    // Unauthenticated until the proof checks out: the whole exchange gets the short pre-authentication deadline.
    match tokio::time::timeout(config.preauth_timeout, handshake).await {
        Ok(Ok((peer, welcome))) => {
            inner.register(peer, End::Acceptor { welcome }, framed);
        }
        Ok(Err(HandshakeError::Rejected(RejectReason::Duplicate))) => {
            tracing::debug!(%address, "refused a duplicate connection");
        }
        // Logged by the slots, a few lines per flood rather than one per connection.
        Ok(Err(HandshakeError::Idle)) => {}
        Ok(Err(error)) => tracing::warn!(%address, %error, "inbound handshake failed"),
        Err(_) => slot.timed_out(),
    }
    drop(in_progress);
}

pub(crate) async fn dial_loop(inner: Arc<Inner>, node: NodeId) {
    let config = &inner.settings.config;
    let mut delay = config.reconnect_min;
    // Subscribed before the first attempt, so that a connection the peer opens meanwhile ends the wait at once.
    let mut events = inner.events.subscribe();
    let mut deferred_since: Option<Instant> = None;
    loop {
        if inner.leaving.is_cancelled() {
            break;
        }
        // A handshake that claims to come from `node` is unauthenticated until its proof: waiting for such ones
        // longer than an inbound handshake can last (the pre-authentication deadline) would let a stranger who
        // sends `Hello`s in its name keep us from dialing it.
        let impatient = deferred_since.is_some_and(|since| since.elapsed() >= config.preauth_timeout);
        match inner.begin_attempt(&node, impatient) {
            Attempt::Connected => return,
            Attempt::Deferred => {
                deferred_since.get_or_insert_with(Instant::now);
                // `node` is dialing us; its handshake most likely ends with it up, which ends the wait at once.
                if !pause(&inner, &mut events, &node, jittered(config.reconnect_min)).await {
                    break;
                }
                continue;
            }
            Attempt::Started => deferred_since = None,
        }
        let attempt = tokio::time::timeout(config.handshake_timeout, dial_once(&inner, &node)).await;
        inner.lock().attempting.remove(&node);
        match attempt {
            // Connected: the next round ends the loop, under the lock that `connection_lost` takes.
            Ok(Ok(())) => continue,
            Ok(Err(error)) => tracing::debug!(%node, %error, "dial failed; will retry"),
            Err(_) => tracing::debug!(%node, "dial timed out; will retry"),
        }
        if !pause(&inner, &mut events, &node, jittered(delay)).await {
            break;
        }
        delay = (delay * 2).min(config.reconnect_max);
    }
    inner.lock().dialing.remove(&node);
}

/// Waits for `delay`, or until `node` is reported up; false if this node started leaving meanwhile.
async fn pause(inner: &Inner, events: &mut broadcast::Receiver<ClusterEvent>, node: &NodeId, delay: Duration) -> bool {
    let came_up = async {
        loop {
            match events.recv().await {
                Ok(ClusterEvent::NodeUp(info)) if info.node == *node => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = inner.leaving.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
        () = came_up => true,
    }
}

async fn dial_once(inner: &Arc<Inner>, node: &NodeId) -> Result<(), HandshakeError> {
    let stream = TcpStream::connect(node.address()).await.map_err(|_| HandshakeError::Closed)?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, FrameCodec::with_limit(inner.settings.config.handshake_max_frame));
    let (dialer, hello) =
        Dialer::start(inner.local.clone(), inner.creation, node.clone(), inner.settings.cookie.clone());
    match dial(&mut framed, dialer, hello).await {
        Ok(peer) => {
            inner.register(peer, End::Dialer, framed);
            Ok(())
        }
        // The peer's own connection to us should win; keep checking until it is up (the loop ends then).
        Err(error @ HandshakeError::Rejected(RejectReason::Duplicate)) => Err(error),
        Err(error @ (HandshakeError::BadProof | HandshakeError::Rejected(_) | HandshakeError::WrongPeer { .. })) => {
            tracing::warn!(%node, %error, "handshake refused");
            Err(error)
        }
        Err(error) => Err(error),
    }
}

/// `delay` scaled by a random factor in [0.5, 1.5), so that nodes that lost each other do not redial in step.
fn jittered(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    delay.mul_f64(0.5 + f64::from(random) / f64::from(u32::MAX))
}
