//! The handshake as a plain state machine: frames in, frames out, no I/O. The async driver lives in
//! `connect.rs`; the exchange itself is specified in `docs/protocol.md`.

use bytes::Bytes;
use noex_proto::auth::{self, Handshake, MIN_NONCE_LEN, NONCE_LEN, Role};
use noex_proto::{Challenge, Frame, Hello, NodeId, PROTOCOL_VERSION, ProtoError, RejectReason};

use crate::Cookie;

/// Why a handshake failed. The peer only ever learns `NOT_ALLOWED` or `DUPLICATE`; this is for our logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {0}, we speak {PROTOCOL_VERSION}")]
    Version(u32),
    /// The node that answered is not the one dialed.
    #[error("dialed {expected} but {found} answered")]
    WrongPeer {
        /// Who we dialed.
        expected: String,
        /// Who answered.
        found: String,
    },
    /// The peer dialed us under our own node id.
    #[error("peer claims to be this node")]
    SelfConnection,
    /// The peer's nonce is too short to make the proof unique.
    #[error("peer's nonce is shorter than {MIN_NONCE_LEN} bytes")]
    ShortNonce,
    /// The peer's proof does not match the shared secret (wrong cookie, or tampering).
    #[error("peer failed authentication (wrong cookie?)")]
    BadProof,
    /// The peer refused us.
    #[error("peer rejected the handshake ({0:?})")]
    Rejected(RejectReason),
    /// A frame that has no place at this step.
    #[error("unexpected {0} frame during the handshake")]
    Unexpected(&'static str),
    /// The connection sent nothing while a newer one from the same address needed its place (see `slots.rs`).
    #[error("idle connection closed for a newer one from the same address")]
    Idle,
    /// The handshake took longer than allowed.
    #[error("handshake timed out")]
    Timeout,
    /// The connection closed or failed.
    #[error("connection closed during the handshake")]
    Closed,
    /// No connection could be made (refused, unreachable, out of file descriptors).
    #[error("cannot connect: {0}")]
    Unreachable(std::io::ErrorKind),
    /// The peer sent something that is not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] ProtoError),
}

/// Who a handshake authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer's node id.
    pub node: NodeId,
    /// The peer's incarnation.
    pub creation: u32,
}

/// What to do after feeding a frame to a state machine.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this frame and wait for the next one.
    Send(Frame),
    /// Authenticated; send the frame, if any, and the connection is up.
    Done(Peer, Option<Frame>),
    /// Failed; send the frame, if any, then close.
    Fail(HandshakeError, Option<Frame>),
}

/// The dialing side. It proves first (as in Erlang): its `Proof` answers the acceptor's `Challenge`, and it takes
/// the connection up only once the acceptor's proof, in `Welcome`, checks out.
pub(crate) struct Dialer {
    local: NodeId,
    creation: u32,
    expected: NodeId,
    cookie: Cookie,
    nonce: Bytes,
    /// Set once the challenge checked out and our proof is sent: the acceptor and its nonce.
    challenged: Option<(Peer, Bytes)>,
}

impl Dialer {
    /// Starts a handshake with `expected`; returns the `Hello` to send first.
    pub(crate) fn start(local: NodeId, creation: u32, expected: NodeId, cookie: Cookie) -> (Self, Frame) {
        let nonce = fresh_nonce();
        let hello =
            Frame::Hello(Hello { version: PROTOCOL_VERSION, node: local.clone(), creation, nonce: nonce.clone() });
        (Dialer { local, creation, expected, cookie, nonce, challenged: None }, hello)
    }

    pub(crate) fn on_frame(&mut self, frame: Frame) -> Step {
        match (frame, self.challenged.is_some()) {
            (Frame::Challenge(challenge), false) => self.on_challenge(challenge),
            (Frame::Welcome { proof }, true) => self.on_welcome(&proof),
            (Frame::Reject(reason), _) => Step::Fail(HandshakeError::Rejected(reason), None),
            (other, _) => Step::Fail(HandshakeError::Unexpected(kind(&other)), None),
        }
    }

    fn on_challenge(&mut self, challenge: Challenge) -> Step {
        let reject = Some(Frame::Reject(RejectReason::NotAllowed));
        if challenge.version != PROTOCOL_VERSION {
            return Step::Fail(HandshakeError::Version(challenge.version), reject);
        }
        if challenge.node != self.expected {
            return Step::Fail(
                HandshakeError::WrongPeer { expected: self.expected.to_string(), found: challenge.node.to_string() },
                reject,
            );
        }
        if challenge.nonce.len() < MIN_NONCE_LEN {
            return Step::Fail(HandshakeError::ShortNonce, reject);
        }
        let peer = Peer { node: challenge.node, creation: challenge.creation };
        let proof = auth::proof(self.cookie.as_bytes(), Role::Dialer, &self.transcript(&peer, &challenge.nonce));
        self.challenged = Some((peer, challenge.nonce));
        Step::Send(Frame::Proof(Bytes::copy_from_slice(&proof)))
    }

    /// The acceptor has registered the connection and proves in turn. A `Welcome` whose proof is wrong comes from
    /// a node that does not know the cookie (it could not have checked ours): the connection is dropped unused.
    fn on_welcome(&self, proof: &[u8]) -> Step {
        let Some((peer, nonce)) = &self.challenged else { unreachable!("on_frame checks the step") };
        if !auth::verify(self.cookie.as_bytes(), Role::Acceptor, &self.transcript(peer, nonce), proof) {
            return Step::Fail(HandshakeError::BadProof, None);
        }
        Step::Done(peer.clone(), None)
    }

    fn transcript<'a>(&'a self, acceptor: &'a Peer, acceptor_nonce: &'a [u8]) -> Handshake<'a> {
        Handshake {
            version: PROTOCOL_VERSION,
            dialer: (&self.local, self.creation),
            acceptor: (&acceptor.node, acceptor.creation),
            dialer_nonce: &self.nonce,
            acceptor_nonce,
        }
    }
}

/// The accepting side. It sends nothing that depends on the cookie before it has verified the dialer's proof
/// (see "Handshake" in `docs/architecture.md`).
pub(crate) struct Acceptor {
    local: NodeId,
    creation: u32,
    cookie: Cookie,
    nonce: Bytes,
    hello: Option<Hello>,
}

impl Acceptor {
    pub(crate) fn new(local: NodeId, creation: u32, cookie: Cookie) -> Self {
        Acceptor { local, creation, cookie, nonce: fresh_nonce(), hello: None }
    }

    /// Checks the dialer's `Hello`; on success the caller decides whether to admit the peer (one connection per
    /// pair) and then sends [`challenge`](Self::challenge) or a `Reject`.
    pub(crate) fn on_hello(&mut self, frame: Frame) -> Result<Peer, (HandshakeError, Option<RejectReason>)> {
        let reject = Some(RejectReason::NotAllowed);
        let hello = match frame {
            Frame::Hello(hello) => hello,
            other => return Err((HandshakeError::Unexpected(kind(&other)), None)),
        };
        if hello.version != PROTOCOL_VERSION {
            return Err((HandshakeError::Version(hello.version), reject));
        }
        if hello.node == self.local {
            return Err((HandshakeError::SelfConnection, reject));
        }
        if hello.nonce.len() < MIN_NONCE_LEN {
            return Err((HandshakeError::ShortNonce, reject));
        }
        let peer = Peer { node: hello.node.clone(), creation: hello.creation };
        self.hello = Some(hello);
        Ok(peer)
    }

    /// The `Challenge` answering the accepted `Hello`: our identity and a fresh nonce, nothing keyed.
    pub(crate) fn challenge(&self) -> Frame {
        Frame::Challenge(Challenge {
            version: PROTOCOL_VERSION,
            node: self.local.clone(),
            creation: self.creation,
            nonce: self.nonce.clone(),
        })
    }

    /// Checks the dialer's `Proof`; on success the `Welcome` to send (once the connection is registered) carries
    /// our own proof.
    pub(crate) fn on_proof(&mut self, frame: Frame) -> Step {
        let Some(hello) = &self.hello else { return Step::Fail(HandshakeError::Unexpected(kind(&frame)), None) };
        let proof = match frame {
            Frame::Proof(proof) => proof,
            Frame::Reject(reason) => return Step::Fail(HandshakeError::Rejected(reason), None),
            other => return Step::Fail(HandshakeError::Unexpected(kind(&other)), None),
        };
        let transcript = self.transcript(hello);
        if !auth::verify(self.cookie.as_bytes(), Role::Dialer, &transcript, &proof) {
            return Step::Fail(HandshakeError::BadProof, Some(Frame::Reject(RejectReason::NotAllowed)));
        }
        let ours = auth::proof(self.cookie.as_bytes(), Role::Acceptor, &transcript);
        let welcome = Frame::Welcome { proof: Bytes::copy_from_slice(&ours) };
        Step::Done(Peer { node: hello.node.clone(), creation: hello.creation }, Some(welcome))
    }

    fn transcript<'a>(&'a self, hello: &'a Hello) -> Handshake<'a> {
        Handshake {
            version: PROTOCOL_VERSION,
            dialer: (&hello.node, hello.creation),
            acceptor: (&self.local, self.creation),
            dialer_nonce: &hello.nonce,
            acceptor_nonce: &self.nonce,
        }
    }
}

fn fresh_nonce() -> Bytes {
    let mut nonce = [0u8; NONCE_LEN];
    // The OS generator failing is not something a node can run without; say so plainly.
    getrandom::fill(&mut nonce).expect("the operating system's random generator is unavailable");
    Bytes::copy_from_slice(&nonce)
}

/// A frame's kind, for log lines.
pub(crate) fn kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello(_) => "hello",
        Frame::Challenge(_) => "challenge",
        Frame::Proof(_) => "proof",
        Frame::Welcome { .. } => "welcome",
        Frame::Reject(_) => "reject",
        Frame::Heartbeat => "heartbeat",
        Frame::Members(_) => "members",
        Frame::Goodbye => "goodbye",
        _ => "process traffic",
    }
}

#[cfg(test)]
mod tests;
