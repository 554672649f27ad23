//! Driving the handshake over a real connection, with the frame limit switched on success.

use futures_util::{SinkExt, StreamExt};
use noex_proto::{Frame, FrameCodec, RejectReason};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::handshake::{Acceptor, Dialer, HandshakeError, Peer, Step};

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

/// Runs the acceptor's side; `admit` decides, once the `Hello` checks out, whether this peer may connect.
pub(crate) async fn accept<T>(
    framed: &mut Framed<T, FrameCodec>,
    mut acceptor: Acceptor,
    admit: impl FnOnce(&Peer) -> Admission,
) -> Result<Peer, HandshakeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let peer = match acceptor.on_hello(receive(framed).await?) {
        Ok(peer) => peer,
        Err((error, reject)) => return Err(fail(framed, error, reject.map(Frame::Reject)).await),
    };
    if let Admission::Refuse(reason) = admit(&peer) {
        return Err(fail(framed, HandshakeError::Rejected(reason), Some(Frame::Reject(reason))).await);
    }
    send(framed, acceptor.challenge()).await?;
    match acceptor.on_proof(receive(framed).await?) {
        Step::Done(peer, reply) => {
            if let Some(frame) = reply {
                send(framed, frame).await?;
            }
            Ok(peer)
        }
        Step::Fail(error, reply) => Err(fail(framed, error, reply).await),
        Step::Send(_) => unreachable!("the acceptor's proof step ends the handshake"),
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
