//! The handshake step by step, without sockets: who may learn what, and every way it fails.

use super::*;

fn id(text: &str) -> NodeId {
    text.parse().unwrap()
}

fn a() -> NodeId {
    id("a@127.0.0.1:1")
}

fn b() -> NodeId {
    id("b@127.0.0.1:2")
}

/// A dialer `a` (creation 1) and an acceptor `b` (creation 2), and the dialer's `Hello`.
fn pair(dial_cookie: &str, accept_cookie: &str) -> (Dialer, Acceptor, Frame) {
    let (dialer, hello) = Dialer::start(a(), 1, b(), Cookie::new(dial_cookie));
    (dialer, Acceptor::new(b(), 2, Cookie::new(accept_cookie)), hello)
}

/// The frame a step says to send.
fn sent(step: Step) -> Frame {
    match step {
        Step::Send(frame) => frame,
        other => panic!("expected a frame to send, got {other:?}"),
    }
}

/// Runs the handshake up to the dialer's proof; returns the machines and that proof.
fn up_to_proof(dial_cookie: &str, accept_cookie: &str) -> (Dialer, Acceptor, Frame) {
    let (mut dialer, mut acceptor, hello) = pair(dial_cookie, accept_cookie);
    assert_eq!(acceptor.on_hello(hello).expect("hello is fine"), Peer { node: a(), creation: 1 });
    let proof = sent(dialer.on_frame(acceptor.challenge()));
    (dialer, acceptor, proof)
}

#[test]
fn matching_cookies_authenticate_both_sides_dialer_first() {
    let (mut dialer, mut acceptor, proof) = up_to_proof("secret", "secret");
    assert!(matches!(proof, Frame::Proof(_)), "the dialer proves first");
    let welcome = match acceptor.on_proof(proof) {
        Step::Done(Peer { node, creation: 1 }, Some(welcome @ Frame::Welcome { .. })) if node == a() => welcome,
        other => panic!("the acceptor should take the dialer and answer Welcome: {other:?}"),
    };
    assert!(matches!(dialer.on_frame(welcome), Step::Done(Peer { creation: 2, .. }, None)));
}

#[test]
fn a_client_that_never_proves_learns_only_a_random_nonce() {
    // Two acceptors with different cookies answer the same Hello: their challenges differ in the nonce only, so
    // nothing a client sees before proving depends on the cookie (no offline oracle).
    let (_, hello) = Dialer::start(a(), 1, b(), Cookie::new("guess"));
    let mut one = Acceptor::new(b(), 2, Cookie::new("secret"));
    let mut other = Acceptor::new(b(), 2, Cookie::new("something else entirely"));
    one.on_hello(hello.clone()).unwrap();
    other.on_hello(hello).unwrap();
    let (Frame::Challenge(one), Frame::Challenge(other)) = (one.challenge(), other.challenge()) else {
        panic!("challenges")
    };
    assert_ne!(one.nonce, other.nonce, "fresh nonces");
    assert_eq!(one.nonce.len(), NONCE_LEN);
    assert_eq!(Challenge { nonce: Bytes::new(), ..one }, Challenge { nonce: Bytes::new(), ..other });
}

#[test]
fn a_wrong_cookie_on_either_side_is_caught_by_the_acceptor_before_it_proves() {
    for (dial_cookie, accept_cookie) in [("guess", "secret"), ("secret", "guess")] {
        let (mut dialer, mut acceptor, proof) = up_to_proof(dial_cookie, accept_cookie);
        let refusal = match acceptor.on_proof(proof) {
            Step::Fail(HandshakeError::BadProof, Some(refusal @ Frame::Reject(RejectReason::NotAllowed))) => refusal,
            other => panic!("the acceptor refuses a proof made with another cookie: {other:?}"),
        };
        assert!(matches!(
            dialer.on_frame(refusal),
            Step::Fail(HandshakeError::Rejected(RejectReason::NotAllowed), None)
        ));
    }
}

#[test]
fn a_replayed_proof_fails() {
    // An eavesdropper records a Hello and the Proof that followed, and replays both on a new connection.
    let (mut dialer, mut acceptor, hello) = pair("secret", "secret");
    acceptor.on_hello(hello.clone()).unwrap();
    let proof = sent(dialer.on_frame(acceptor.challenge()));
    assert!(matches!(acceptor.on_proof(proof.clone()), Step::Done(..)));
    let mut replayed_to = Acceptor::new(b(), 2, Cookie::new("secret"));
    replayed_to.on_hello(hello).unwrap();
    assert!(
        matches!(replayed_to.on_proof(proof), Step::Fail(HandshakeError::BadProof, Some(_))),
        "the acceptor's fresh nonce makes every transcript new"
    );
}

#[test]
fn the_dialer_refuses_a_welcome_whose_proof_is_wrong() {
    // An impostor that does not know the cookie can answer Hello and "accept" any proof; its Welcome gives it away.
    let (mut dialer, _, _) = up_to_proof("secret", "secret");
    let forged = Frame::Welcome { proof: Bytes::from_static(&[0; 32]) };
    assert!(matches!(dialer.on_frame(forged), Step::Fail(HandshakeError::BadProof, None)));

    // A Welcome from a real acceptor of another handshake (another dialer nonce) does not fit either.
    let (mut dialer, _, _) = up_to_proof("secret", "secret");
    let (_, mut acceptor, proof) = up_to_proof("secret", "secret");
    let Step::Done(_, Some(other_welcome)) = acceptor.on_proof(proof) else { panic!("authenticated") };
    assert!(matches!(dialer.on_frame(other_welcome), Step::Fail(HandshakeError::BadProof, None)));
}

#[test]
fn frames_out_of_order_are_refused() {
    let (mut dialer, mut acceptor, hello) = pair("s", "s");
    let early_welcome = Frame::Welcome { proof: Bytes::from_static(&[0; 32]) };
    assert!(matches!(dialer.on_frame(early_welcome), Step::Fail(HandshakeError::Unexpected("welcome"), None)));
    assert!(matches!(
        acceptor.on_proof(Frame::Proof(Bytes::from_static(&[0; 32]))),
        Step::Fail(HandshakeError::Unexpected("proof"), None)
    ));
    acceptor.on_hello(hello).unwrap();
    assert!(matches!(acceptor.on_proof(Frame::Heartbeat), Step::Fail(HandshakeError::Unexpected("heartbeat"), None)));
}

#[test]
fn the_dialer_refuses_an_impostor_and_the_acceptor_refuses_bad_hellos() {
    let c = id("c@127.0.0.1:3");
    let (mut dialer, hello) = Dialer::start(a(), 1, b(), Cookie::new("s"));
    let mut impostor = Acceptor::new(c, 3, Cookie::new("s"));
    impostor.on_hello(hello).unwrap();
    assert!(matches!(dialer.on_frame(impostor.challenge()), Step::Fail(HandshakeError::WrongPeer { .. }, _)));

    let mut acceptor = Acceptor::new(a(), 1, Cookie::new("s"));
    let (_, own_hello) = Dialer::start(a(), 9, id("x@127.0.0.1:9"), Cookie::new("s"));
    assert!(matches!(acceptor.on_hello(own_hello), Err((HandshakeError::SelfConnection, _))));
    let old = Frame::Hello(Hello { version: 1, node: id("z@h:1"), creation: 1, nonce: Bytes::from_static(&[0; 32]) });
    assert!(matches!(acceptor.on_hello(old), Err((HandshakeError::Version(1), _))));
    let short = Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: id("z@h:1"),
        creation: 1,
        nonce: Bytes::from_static(&[0; 4]),
    });
    assert!(matches!(acceptor.on_hello(short), Err((HandshakeError::ShortNonce, _))));
    assert!(matches!(acceptor.on_hello(Frame::Heartbeat), Err((HandshakeError::Unexpected("heartbeat"), None))));
}
