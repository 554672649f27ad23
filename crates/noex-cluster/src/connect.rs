//! Connecting: the accept loop and the dial loops (with jittered backoff), and driving the handshake over a
//! real connection, with the frame limit switched on success.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use noex_proto::{Frame, FrameCodec, NodeId, RejectReason};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::codec::{Decoder, Framed};

use crate::admission::{Attempt, End};
use crate::cluster::Inner;
use crate::event::{ClusterEvent, Refusal};
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
            Ok((stream, address)) => serve(accepted_one(&inner), stream, address),
            Err(error) => accept_failed(&inner, &error).await,
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

/// An accept succeeded: ends an episode of refused sockets, if one was in progress.
fn accepted_one(inner: &Arc<Inner>) -> &Arc<Inner> {
    inner.socket_obtained();
    inner
}

/// An accept failed (out of file descriptors, most often): pauses, doubling from 10 ms to 1 s while the failures
/// last, rather than spin on a listener that stays readable; one warning per episode (see `exhaustion.rs`). The
/// connection waits in the listen backlog meanwhile.
async fn accept_failed(inner: &Inner, error: &std::io::Error) {
    tracing::debug!(node = %inner.local, %error, "accept failed");
    let pause = inner.socket_refused(error, "accept");
    tokio::select! {
        () = inner.shutdown.cancelled() => {}
        () = tokio::time::sleep(pause) => {}
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
            inner.register(peer, End::Acceptor { welcome: Box::new(welcome) }, framed);
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

pub(crate) async fn dial_loop(inner: Arc<Inner>, node: NodeId, up: Arc<Notify>) {
    let config = &inner.settings.config;
    let mut delay = config.reconnect_min;
    let mut deferred_since: Option<Instant> = None;
    // The last refusal told (each cause once, not at every retry).
    let mut refused: Option<Refusal> = None;
    // A node learned from a peer is given up once it has been unreachable this long (a seed never is).
    let give_up = (!inner.settings.seeds().contains(&node)).then(|| Instant::now() + config.forget_after);
    loop {
        if inner.leaving.is_cancelled() {
            break;
        }
        if give_up.is_some_and(|at| Instant::now() >= at) {
            tracing::info!(%node, "node unreachable for forget_after; no longer dialed");
            break;
        }
        // A handshake that claims to come from `node` is unauthenticated until its proof: waiting for such ones
        // longer than an inbound handshake can last (the pre-authentication deadline) would let a stranger who
        // sends `Hello`s in its name keep us from dialing it.
        let impatient = deferred_since.is_some_and(|since| since.elapsed() >= config.preauth_timeout);
        match inner.begin_attempt(&node, impatient) {
            Attempt::Connected | Attempt::Left => return,
            Attempt::Deferred => {
                deferred_since.get_or_insert_with(Instant::now);
                // `node` is dialing us; its handshake most likely ends with it up, which ends the wait at once.
                if !pause(&inner, &up, jittered(config.reconnect_min)).await {
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
            // The peer's own dial to us is in flight and wins: wait for its connection to come up (which ends the
            // pause at once), re-checking at the first backoff step rather than doubling it.
            Ok(Err(HandshakeError::Rejected(RejectReason::Duplicate))) => {
                if !pause(&inner, &up, jittered(config.reconnect_min)).await {
                    break;
                }
                continue;
            }
            Ok(Err(error)) => {
                tracing::debug!(%node, %error, "dial failed; will retry");
                if let Some(refusal) = refusal(&error).filter(|refusal| refused.as_ref() != Some(refusal)) {
                    let _ =
                        inner.events.send(ClusterEvent::DialRefused { node: node.clone(), refusal: refusal.clone() });
                    refused = Some(refusal);
                }
            }
            Err(_) => tracing::debug!(%node, "dial timed out; will retry"),
        }
        if !pause(&inner, &up, jittered(delay)).await {
            break;
        }
        delay = (delay * 2).min(config.reconnect_max);
    }
    inner.lock().dialing.remove(&node);
}

/// What a failed dial tells of the other side's refusal, if it refused.
fn refusal(error: &HandshakeError) -> Option<Refusal> {
    match error {
        HandshakeError::Rejected(RejectReason::NotAllowed) | HandshakeError::BadProof => Some(Refusal::NotAllowed),
        HandshakeError::WrongPeer { found, .. } => Some(Refusal::WrongNode { found: found.clone() }),
        HandshakeError::Version(version) => Some(Refusal::Version(*version)),
        _ => None,
    }
}

/// Waits for `delay`, or until the node is up (`up` is notified by `register`, and keeps the notification if it
/// came before the wait); false if this node started leaving meanwhile.
async fn pause(inner: &Inner, up: &Notify, delay: Duration) -> bool {
    tokio::select! {
        () = inner.leaving.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
        () = up.notified() => true,
    }
}

async fn dial_once(inner: &Arc<Inner>, node: &NodeId) -> Result<(), HandshakeError> {
    let stream = connect(inner, node).await?;
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

/// Opens the TCP connection of a dial. Out of file descriptors, the attempt fails as any other and the dial loop
/// backs off; the episode is counted and logged once with the accept loop's (see `exhaustion.rs`).
async fn connect(inner: &Inner, node: &NodeId) -> Result<TcpStream, HandshakeError> {
    match TcpStream::connect(node.address()).await {
        Ok(stream) => {
            inner.socket_obtained();
            Ok(stream)
        }
        Err(error) => {
            if crate::exhaustion::out_of_descriptors(&error) {
                inner.socket_refused(&error, "dial");
            }
            Err(HandshakeError::Unreachable(error.kind()))
        }
    }
}

/// `delay` scaled by a random factor in [0.5, 1.5), so that nodes that lost each other do not redial in step.
fn jittered(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    delay.mul_f64(0.5 + f64::from(random) / f64::from(u32::MAX))
}
