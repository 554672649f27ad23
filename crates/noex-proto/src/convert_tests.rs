//! Every frame kind survives encode -> decode; malformed ones are typed errors.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use noex_core::{ExitReason, Pid};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use super::*;
use crate::FrameCodec;

fn node(text: &str) -> NodeId {
    text.parse().unwrap()
}

fn a_pid(id: u64) -> Pid {
    Pid::new(node("n1@127.0.0.1:4369").node_name(), 3, id)
}

fn round_trip(frame: Frame) -> Frame {
    let mut codec = FrameCodec::with_limit(1 << 20);
    let mut buffer = BytesMut::new();
    codec.encode(frame, &mut buffer).unwrap();
    let decoded = codec.decode(&mut buffer).unwrap().expect("a whole frame").expect("a valid frame");
    assert!(buffer.is_empty());
    decoded
}

#[test]
fn every_frame_kind_round_trips() {
    let frames = vec![
        Frame::Hello(Hello { version: 1, node: node("a@h:1"), creation: 7, nonce: Bytes::from_static(&[1; 16]) }),
        Frame::Challenge(Challenge {
            version: 1,
            node: node("b@[::1]:2"),
            creation: 8,
            nonce: Bytes::from_static(&[2; 16]),
        }),
        Frame::Proof(Bytes::from_static(&[4; 32])),
        Frame::Welcome { proof: Bytes::from_static(&[3; 32]) },
        Frame::Reject(RejectReason::NotAllowed),
        Frame::Reject(RejectReason::Duplicate),
        Frame::Heartbeat,
        Frame::Members(vec![Member { node: node("c@10.0.0.1:3"), creation: 9 }]),
        Frame::Goodbye,
        Frame::CastCredit { consumed: u64::MAX, window: 1 << 20 },
        Frame::Call(Call {
            call_id: 1,
            target: Target::Name("counter:x".into()),
            from: a_pid(1),
            payload: Bytes::from_static(b"payload"),
            timeout: Duration::from_millis(5000),
        }),
        Frame::Reply(Reply { call_id: 1, result: Ok(Bytes::from_static(b"reply")) }),
        Frame::Reply(Reply { call_id: 2, result: Err(CallFailure::Exited(ExitReason::error("boom"))) }),
        Frame::Reply(Reply { call_id: 3, result: Err(CallFailure::NoProc) }),
        Frame::Cast(Cast { target: Target::Pid(a_pid(2)), from: a_pid(1), payload: Bytes::new() }),
        Frame::SpawnRequest(SpawnRequest {
            spawn_id: 4,
            behaviour: "counter".into(),
            init_args: Bytes::from_static(b"args"),
            name: Some("counter:x".into()),
            registration: Registration::Global,
            timeout: Duration::from_secs(10),
            from: a_pid(1),
            bonds: Some(Box::new(SpawnBonds {
                link: Some(a_pid(3)),
                supervisor: None,
                restart: noex_core::Restart::Transient,
            })),
        }),
        Frame::SpawnReply(SpawnReply { spawn_id: 4, result: Ok(a_pid(5)) }),
        Frame::SpawnReply(SpawnReply { spawn_id: 5, result: Err(SpawnFailure::NameTaken("x".into())) }),
        Frame::Monitor(Monitor { monitor_id: 6, watcher: a_pid(1), target: Target::Pid(a_pid(2)) }),
        Frame::Demonitor(Demonitor { monitor_id: 6, watcher: a_pid(1) }),
        Frame::Down(Down { monitor_id: 6, watcher: a_pid(1), pid: a_pid(2), reason: ExitReason::NoConnection }),
        Frame::Link(LinkPair { from: a_pid(1), to: a_pid(2) }),
        Frame::Unlink(LinkPair { from: a_pid(1), to: a_pid(2) }),
        Frame::Exit(Exit { from: a_pid(2), to: a_pid(1), reason: ExitReason::Killed, linked: true }),
        Frame::Stop(Stop {
            call_id: 8,
            target: a_pid(1),
            from: a_pid(2),
            reason: ExitReason::Shutdown,
            timeout: Duration::from_secs(5),
        }),
        Frame::RegistrySync(RegistrySync {
            full: Some(FullSync { id: 3, first: true, last: false }),
            entries: vec![RegistryEntry { name: "n".into(), pid: a_pid(3) }],
            removed: vec!["old".into()],
            answer_wanted: true,
        }),
        Frame::RegistrySync(RegistrySync {
            full: None,
            entries: Vec::new(),
            removed: vec!["gone".into()],
            answer_wanted: false,
        }),
        Frame::GroupsSync(GroupsSync {
            scope: "pg".into(),
            joined: vec![GroupPids { group: "workers".into(), pids: vec![a_pid(1), a_pid(1), a_pid(2)] }],
            left: vec![GroupPids { group: "old".into(), pids: vec![a_pid(3)] }],
            full: None,
            answer_wanted: false,
        }),
        Frame::GroupsSync(GroupsSync {
            scope: "other".into(),
            joined: Vec::new(),
            left: Vec::new(),
            full: Some(FullSync { id: 9, first: true, last: true }),
            answer_wanted: true,
        }),
        Frame::ObserverQuery { query_id: 7, query: Bytes::from_static(b"top") },
        Frame::ObserverReply { query_id: 7, snapshot: Bytes::from_static(b"snap") },
    ];
    for frame in frames {
        assert_eq!(round_trip(frame.clone()), frame);
    }
}

fn decode_payload(payload: &[u8]) -> Result<Frame, ProtoError> {
    let mut buffer = BytesMut::new();
    buffer.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    buffer.extend_from_slice(payload);
    FrameCodec::handshake().decode(&mut buffer).unwrap().expect("a whole frame")
}

#[test]
fn malformed_payloads_are_typed_errors() {
    assert!(matches!(decode_payload(&[0xff, 0xff, 0xff]), Err(ProtoError::Decode(_))));
    assert!(matches!(decode_payload(&[]), Err(ProtoError::UnknownKind)), "an empty envelope");
    // Field 99 of the envelope: a kind from a newer protocol.
    assert!(matches!(decode_payload(&[0x9a, 0x06, 0x00]), Err(ProtoError::UnknownKind)));

    let empty_members = wire::Envelope::from(Frame::Members(vec![])).encode_to_vec();
    assert!(decode_payload(&empty_members).is_ok());
    let hello = wire::Envelope {
        body: Some(wire::envelope::Body::Hello(wire::Hello {
            protocol_version: 1,
            node_id: "not a node id".into(),
            creation: 1,
            nonce: Bytes::new(),
        })),
    };
    let error = decode_payload(&hello.encode_to_vec()).unwrap_err();
    assert_eq!(error.to_string(), "invalid field 'hello.node_id': missing '@' between name and host");

    let handshake_cases = [
        (wire::envelope::Body::Hello(wire::Hello { node_id: "a@h:1".into(), ..Default::default() }), "hello.creation"),
        (
            wire::envelope::Body::Challenge(wire::Challenge { node_id: "a@h:1".into(), ..Default::default() }),
            "challenge.creation",
        ),
        (wire::envelope::Body::Proof(wire::Proof { proof: Bytes::from_static(&[1; 31]) }), "proof.proof"),
        (wire::envelope::Body::Welcome(wire::Welcome::default()), "welcome.proof"),
    ];
    for (body, field) in handshake_cases {
        let error = decode_payload(&wire::Envelope { body: Some(body) }.encode_to_vec()).unwrap_err();
        assert!(matches!(error, ProtoError::Invalid { field: f, .. } if f == field), "{field}: {error}");
    }

    let call_without_target =
        wire::Envelope { body: Some(wire::envelope::Body::Call(wire::Call { call_id: 1, ..Default::default() })) };
    let error = decode_payload(&call_without_target.encode_to_vec()).unwrap_err();
    assert_eq!(error.to_string(), "invalid field 'call.target': missing");
}

#[test]
fn a_node_id_in_another_spelling_than_its_canonical_one_is_refused() {
    let members = |node_id: &str| {
        let member = wire::Member { node_id: node_id.into(), creation: 1 };
        wire::Envelope { body: Some(wire::envelope::Body::Members(wire::Members { members: vec![member] })) }
            .encode_to_vec()
    };
    assert!(decode_payload(&members("a@127.0.0.1:4")).is_ok());
    for other in ["a@127.0.0.1:04", "a@[0:0::1]:4", "a@127.0.0.1:+4"] {
        assert!(decode_payload(&members(other)).is_err(), "{other} accepted");
    }
}

#[test]
fn an_oversized_length_prefix_is_rejected_before_its_payload_arrives() {
    let mut codec = FrameCodec::handshake();
    let mut buffer = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(codec.decode(&mut buffer), Err(ProtoError::Io(_))));
    let mut just_over = BytesMut::from(&u32::try_from(crate::HANDSHAKE_MAX_FRAME + 1).unwrap().to_be_bytes()[..]);
    assert!(matches!(FrameCodec::handshake().decode(&mut just_over), Err(ProtoError::Io(_))));
}

#[test]
fn a_truncated_frame_waits_for_the_rest() {
    let mut codec = FrameCodec::handshake();
    let mut whole = BytesMut::new();
    codec.encode(Frame::Goodbye, &mut whole).unwrap();
    let mut partial = BytesMut::from(&whole[..whole.len() - 1]);
    assert!(codec.decode(&mut partial).unwrap().is_none());
    partial.extend_from_slice(&whole[whole.len() - 1..]);
    assert_eq!(codec.decode(&mut partial).unwrap().unwrap().unwrap(), Frame::Goodbye);
}

#[test]
fn two_frames_in_one_read_both_decode() {
    let mut codec = FrameCodec::handshake();
    let mut buffer = BytesMut::new();
    codec.encode(Frame::Heartbeat, &mut buffer).unwrap();
    codec.encode(Frame::Goodbye, &mut buffer).unwrap();
    assert_eq!(codec.decode(&mut buffer).unwrap().unwrap().unwrap(), Frame::Heartbeat);
    assert_eq!(codec.decode(&mut buffer).unwrap().unwrap().unwrap(), Frame::Goodbye);
}

#[test]
fn encoding_refuses_frames_over_the_limit() {
    let mut codec = FrameCodec::with_limit(16);
    let big = Frame::ObserverReply { query_id: 1, snapshot: Bytes::from(vec![0; 64]) };
    let mut buffer = BytesMut::new();
    assert!(matches!(codec.encode(big, &mut buffer), Err(ProtoError::TooLarge { len: 70.., limit: 16 })));
    assert!(buffer.is_empty(), "nothing of a refused frame is written");
}

#[test]
fn payloads_are_slices_of_the_received_buffer() {
    let payload = Bytes::from(vec![7u8; 1024]);
    let frame = Frame::Cast(Cast { target: Target::Name("x".into()), from: a_pid(1), payload: payload.clone() });
    let mut codec = FrameCodec::with_limit(1 << 20);
    let mut buffer = BytesMut::new();
    codec.encode(frame, &mut buffer).unwrap();
    let start = buffer.as_ptr() as usize;
    let end = start + buffer.len();
    let Frame::Cast(cast) = codec.decode(&mut buffer).unwrap().unwrap().unwrap() else { panic!() };
    let at = cast.payload.as_ptr() as usize;
    assert!(at >= start && at < end, "no copy of the payload");
    assert_eq!(cast.payload, payload);
}
