//! The handshake under hostile input, for the fuzz targets (feature `fuzzing`; not a stable API). The state
//! machines are driven here, where they are visible, and the target in `crates/noex-fuzz` calls this.

use bytes::BytesMut;
use noex_proto::{Frame, FrameCodec, NodeId};
use tokio_util::codec::{Decoder, Encoder};

use crate::Cookie;
use crate::handshake::{Acceptor, Dialer, Step};

/// Feeds `data` to the handshake. Its first byte chooses who the input plays:
/// - a stranger talking to an acceptor: it must never be authenticated (it does not know the cookie);
/// - a stranger answering a dialer: the dialer must never take the connection up;
/// - a man in the middle of a genuine exchange who flips bytes of the frames in flight: if both ends
///   authenticate, they agree on who is who, and every frame arrived as sent.
///
/// Panics only when one of these breaks.
pub fn handshake(data: &[u8]) {
    let Some((&scenario, rest)) = data.split_first() else { return };
    match scenario % 3 {
        0 => stranger_to_acceptor(rest),
        1 => stranger_to_dialer(rest),
        _ => tampered_exchange(rest),
    }
}

fn ids() -> (NodeId, NodeId) {
    ("dialer@127.0.0.1:4001".parse().expect("valid"), "acceptor@127.0.0.1:4002".parse().expect("valid"))
}

fn cookie() -> Cookie {
    Cookie::new("the fuzzed cluster's secret")
}

/// The frames a byte stream holds, as a connection's reader would decode them (malformed ones end it).
fn frames(stream: &[u8]) -> Vec<Frame> {
    let mut codec = FrameCodec::handshake();
    let mut buffer = BytesMut::from(stream);
    let mut frames = Vec::new();
    while let Ok(Some(Ok(frame))) = codec.decode(&mut buffer) {
        frames.push(frame);
    }
    frames
}

fn stranger_to_acceptor(stream: &[u8]) {
    let (_, acceptor_id) = ids();
    let mut acceptor = Acceptor::new(acceptor_id, 1, cookie());
    let mut frames = frames(stream).into_iter();
    let Some(hello) = frames.next() else { return };
    if acceptor.on_hello(hello).is_err() {
        return;
    }
    let Frame::Challenge(_) = acceptor.challenge() else { panic!("an acceptor answers a Hello with a Challenge") };
    // One answer ends the handshake either way.
    let Some(answer) = frames.next() else { return };
    match acceptor.on_proof(answer) {
        Step::Done(peer, _) => panic!("a stranger was authenticated as {peer:?}"),
        Step::Fail(..) => {}
        Step::Send(frame) => panic!("an acceptor sent {frame:?} after the challenge"),
    }
}

fn stranger_to_dialer(stream: &[u8]) {
    let (dialer_id, acceptor_id) = ids();
    let (mut dialer, _hello) = Dialer::start(dialer_id, 1, acceptor_id, cookie());
    for frame in frames(stream) {
        match dialer.on_frame(frame) {
            Step::Done(peer, _) => panic!("a dialer took up a connection with a stranger posing as {peer:?}"),
            Step::Fail(..) => return,
            Step::Send(_) => {}
        }
    }
}

/// Both ends genuine; every frame passes through the mutator (which may flip bytes of its encoding).
fn tampered_exchange(flips: &[u8]) {
    let (dialer_id, acceptor_id) = ids();
    let mut mutator = Mutator { flips, tampered: false };
    let (mut dialer, hello) = Dialer::start(dialer_id.clone(), 1, acceptor_id.clone(), cookie());
    let mut acceptor = Acceptor::new(acceptor_id.clone(), 2, cookie());
    let Some(hello) = mutator.pass(hello) else { return };
    let Ok(dialer_as_seen) = acceptor.on_hello(hello) else { return };
    let Some(challenge) = mutator.pass(acceptor.challenge()) else { return };
    let proof = match dialer.on_frame(challenge) {
        Step::Send(proof) => proof,
        Step::Fail(..) => return,
        Step::Done(..) => panic!("a dialer was done before the acceptor proved itself"),
    };
    let Some(proof) = mutator.pass(proof) else { return };
    let welcome = match acceptor.on_proof(proof) {
        Step::Done(peer, Some(welcome)) => {
            assert_eq!(peer, dialer_as_seen, "the acceptor authenticated another dialer than it greeted");
            assert_eq!((&peer.node, peer.creation), (&dialer_id, 1), "the acceptor was fooled about the dialer");
            welcome
        }
        Step::Fail(..) => return,
        other => panic!("an acceptor answered a proof with {other:?}"),
    };
    let Some(welcome) = mutator.pass(welcome) else { return };
    if let Step::Done(peer, _) = dialer.on_frame(welcome) {
        assert_eq!((&peer.node, peer.creation), (&acceptor_id, 2), "the dialer was fooled about the acceptor");
        assert!(!mutator.tampered, "both ends authenticated an exchange whose frames were altered");
    }
}

/// Flips bytes of frames in flight, as the input says: each frame takes one byte of input, which (if non-zero)
/// is xored into the frame's encoding at a position taken from the next byte.
struct Mutator<'a> {
    flips: &'a [u8],
    tampered: bool,
}

impl Mutator<'_> {
    /// The frame as it arrives: as sent, altered, or `None` if the alteration made it unreadable.
    fn pass(&mut self, frame: Frame) -> Option<Frame> {
        let (&mask, rest) = self.flips.split_first().unwrap_or((&0, &[]));
        let (&at, rest) = rest.split_first().unwrap_or((&0, &[]));
        self.flips = rest;
        if mask == 0 {
            return Some(frame);
        }
        let mut codec = FrameCodec::handshake();
        let mut bytes = BytesMut::new();
        codec.encode(frame.clone(), &mut bytes).expect("a handshake frame encodes");
        // Past the length prefix, so that the frame stays whole.
        let at = 4 + usize::from(at) % (bytes.len() - 4).max(1);
        if at < bytes.len() {
            bytes[at] ^= mask;
        }
        let arrived = codec.decode(&mut bytes).ok().flatten()?.ok()?;
        self.tampered |= arrived != frame;
        Some(arrived)
    }
}
