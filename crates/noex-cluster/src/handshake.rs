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
    /// The handshake took longer than allowed.
    #[error("handshake timed out")]
    Timeout,
    /// The connection closed or failed.
    #[error("connection closed during the handshake")]
    Closed,
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

/// The dialing side.
pub(crate) struct Dialer {
    local: NodeId,
    creation: u32,
    expected: NodeId,
    cookie: Cookie,
    nonce: Bytes,
    /// Set once the challenge checked out.
    peer: Option<Peer>,
}

impl Dialer {
    /// Starts a handshake with `expected`; returns the `Hello` to send first.
    pub(crate) fn start(local: NodeId, creation: u32, expected: NodeId, cookie: Cookie) -> (Self, Frame) {
        let nonce = fresh_nonce();
        let hello =
            Frame::Hello(Hello { version: PROTOCOL_VERSION, node: local.clone(), creation, nonce: nonce.clone() });
        (Dialer { local, creation, expected, cookie, nonce, peer: None }, hello)
    }

    pub(crate) fn on_frame(&mut self, frame: Frame) -> Step {
        match (frame, &self.peer) {
            (Frame::Challenge(challenge), None) => self.on_challenge(challenge),
            (Frame::Welcome, Some(peer)) => Step::Done(peer.clone(), None),
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
        let handshake = Handshake {
            version: PROTOCOL_VERSION,
            dialer: (&self.local, self.creation),
            acceptor: (&challenge.node, challenge.creation),
            dialer_nonce: &self.nonce,
            acceptor_nonce: &challenge.nonce,
        };
        if !auth::verify(self.cookie.as_bytes(), Role::Acceptor, &handshake, &challenge.proof) {
            return Step::Fail(HandshakeError::BadProof, reject);
        }
        let proof = auth::proof(self.cookie.as_bytes(), Role::Dialer, &handshake);
        self.peer = Some(Peer { node: challenge.node, creation: challenge.creation });
        Step::Send(Frame::Proof(Bytes::copy_from_slice(&proof)))
    }
}

/// The accepting side.
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

    /// The `Challenge` answering the accepted `Hello`.
    pub(crate) fn challenge(&self) -> Frame {
        let hello = self.hello.as_ref().expect("challenge follows an accepted hello");
        let proof = auth::proof(self.cookie.as_bytes(), Role::Acceptor, &self.transcript(hello));
        Frame::Challenge(Challenge {
            version: PROTOCOL_VERSION,
            node: self.local.clone(),
            creation: self.creation,
            nonce: self.nonce.clone(),
            proof: Bytes::copy_from_slice(&proof),
        })
    }

    /// Checks the dialer's `Proof`.
    pub(crate) fn on_proof(&mut self, frame: Frame) -> Step {
        let Some(hello) = &self.hello else { return Step::Fail(HandshakeError::Unexpected(kind(&frame)), None) };
        let proof = match frame {
            Frame::Proof(proof) => proof,
            Frame::Reject(reason) => return Step::Fail(HandshakeError::Rejected(reason), None),
            other => return Step::Fail(HandshakeError::Unexpected(kind(&other)), None),
        };
        if !auth::verify(self.cookie.as_bytes(), Role::Dialer, &self.transcript(hello), &proof) {
            return Step::Fail(HandshakeError::BadProof, Some(Frame::Reject(RejectReason::NotAllowed)));
        }
        Step::Done(Peer { node: hello.node.clone(), creation: hello.creation }, Some(Frame::Welcome))
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
        Frame::Welcome => "welcome",
        Frame::Reject(_) => "reject",
        Frame::Heartbeat => "heartbeat",
        Frame::Members(_) => "members",
        Frame::Goodbye => "goodbye",
        _ => "process traffic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    /// Runs a whole handshake between the two machines; returns what each side concluded.
    fn run(dial_cookie: &str, accept_cookie: &str) -> (Step, Option<Step>) {
        let (a, b) = (id("a@127.0.0.1:1"), id("b@127.0.0.1:2"));
        let (mut dialer, hello) = Dialer::start(a.clone(), 1, b.clone(), Cookie::new(dial_cookie));
        let mut acceptor = Acceptor::new(b, 2, Cookie::new(accept_cookie));
        let peer = acceptor.on_hello(hello).expect("hello is fine");
        assert_eq!(peer, Peer { node: a, creation: 1 });
        match dialer.on_frame(acceptor.challenge()) {
            Step::Send(proof) => {
                let accepted = acceptor.on_proof(proof);
                match accepted {
                    Step::Done(_, Some(Frame::Welcome)) => (dialer.on_frame(Frame::Welcome), Some(accepted)),
                    other => (other, None),
                }
            }
            other => (other, None),
        }
    }

    #[test]
    fn matching_cookies_authenticate_both_sides() {
        let (dialer, acceptor) = run("secret", "secret");
        assert!(matches!(dialer, Step::Done(Peer { creation: 2, .. }, None)));
        assert!(matches!(acceptor, Some(Step::Done(Peer { creation: 1, .. }, Some(Frame::Welcome)))));
    }

    #[test]
    fn a_wrong_cookie_is_caught_by_the_dialer_first() {
        let (dialer, acceptor) = run("secret", "other");
        assert!(matches!(dialer, Step::Fail(HandshakeError::BadProof, Some(Frame::Reject(RejectReason::NotAllowed)))));
        assert!(acceptor.is_none(), "the dialer never sends its proof");
    }

    #[test]
    fn a_forged_proof_is_caught_by_the_acceptor() {
        let (a, b) = (id("a@127.0.0.1:1"), id("b@127.0.0.1:2"));
        let mut acceptor = Acceptor::new(b, 2, Cookie::new("secret"));
        let (_, hello) = Dialer::start(a, 1, acceptor.local.clone(), Cookie::new("guess"));
        acceptor.on_hello(hello).unwrap();
        let step = acceptor.on_proof(Frame::Proof(Bytes::from_static(&[0; 32])));
        assert!(matches!(step, Step::Fail(HandshakeError::BadProof, Some(Frame::Reject(RejectReason::NotAllowed)))));
    }

    #[test]
    fn the_dialer_refuses_an_impostor_and_the_acceptor_refuses_bad_hellos() {
        let (a, b, c) = (id("a@127.0.0.1:1"), id("b@127.0.0.1:2"), id("c@127.0.0.1:3"));
        let (mut dialer, hello) = Dialer::start(a.clone(), 1, b, Cookie::new("s"));
        let mut impostor = Acceptor::new(c, 3, Cookie::new("s"));
        impostor.on_hello(hello).unwrap();
        assert!(matches!(dialer.on_frame(impostor.challenge()), Step::Fail(HandshakeError::WrongPeer { .. }, _)));

        let mut acceptor = Acceptor::new(a.clone(), 1, Cookie::new("s"));
        let (_, own_hello) = Dialer::start(a.clone(), 9, id("x@127.0.0.1:9"), Cookie::new("s"));
        assert!(matches!(acceptor.on_hello(own_hello), Err((HandshakeError::SelfConnection, _))));
        let old =
            Frame::Hello(Hello { version: 0, node: id("z@h:1"), creation: 1, nonce: Bytes::from_static(&[0; 32]) });
        assert!(matches!(acceptor.on_hello(old), Err((HandshakeError::Version(0), _))));
        let short = Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            node: id("z@h:1"),
            creation: 1,
            nonce: Bytes::from_static(&[0; 4]),
        });
        assert!(matches!(acceptor.on_hello(short), Err((HandshakeError::ShortNonce, _))));
        assert!(matches!(acceptor.on_hello(Frame::Heartbeat), Err((HandshakeError::Unexpected("heartbeat"), None))));
    }
}
