//! Writes the seed inputs of the fuzz corpus (one valid frame of each common kind, and a stream of them all), so
//! that the fuzzers start from real frames: `cargo run -p noex-fuzz --example seeds`.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use noex_core::{ExitReason, NodeName, Pid};
use noex_proto::{Call, CallFailure, Cast, Down, Exit, Frame, FrameCodec, LinkPair, Member, Reply, Stop, Target};
use tokio_util::codec::Encoder;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let node: noex_proto::NodeId = "seed@127.0.0.1:4000".parse().expect("a valid node id");
    let pid = |id| Pid::new(NodeName::new("seed@127.0.0.1:4000"), 1, id);
    let frames = [
        ("heartbeat", Frame::Heartbeat),
        ("goodbye", Frame::Goodbye),
        ("credit", Frame::CastCredit { consumed: 1 << 20, window: 1 << 20 }),
        ("members", Frame::Members(vec![Member { node, creation: 2 }])),
        (
            "cast",
            Frame::Cast(Cast { target: Target::Pid(pid(7)), from: pid(0), payload: Bytes::from_static(b"\x08\x01") }),
        ),
        (
            "call",
            Frame::Call(Call {
                call_id: 1,
                target: Target::Name("counter".into()),
                from: pid(3),
                payload: Bytes::from_static(b"\x08\x02"),
                timeout: Duration::from_secs(5),
            }),
        ),
        ("reply", Frame::Reply(Reply { call_id: 1, result: Ok(Bytes::from_static(b"\x08\x03")) })),
        ("reply-error", Frame::Reply(Reply { call_id: 2, result: Err(CallFailure::Exited(ExitReason::error("x"))) })),
        ("down", Frame::Down(Down { monitor_id: 4, watcher: pid(1), pid: pid(2), reason: ExitReason::NoConnection })),
        ("link", Frame::Link(LinkPair { from: pid(1), to: pid(2) })),
        ("exit", Frame::Exit(Exit { from: pid(1), to: pid(2), reason: ExitReason::Killed, linked: true })),
        (
            "stop",
            Frame::Stop(Stop {
                call_id: 3,
                target: pid(5),
                from: pid(1),
                reason: ExitReason::Normal,
                timeout: Duration::from_secs(1),
            }),
        ),
    ];
    let mut codec = FrameCodec::with_limit(1 << 20);
    let mut stream = BytesMut::new();
    for (name, frame) in frames {
        let mut framed = BytesMut::new();
        codec.encode(frame, &mut framed).map_err(std::io::Error::other)?;
        write(&root.join("frame"), name, &framed[4..])?;
        write(&root.join("codec"), name, &[&[7u8][..], &framed].concat())?;
        stream.extend_from_slice(&framed);
    }
    write(&root.join("codec"), "stream", &[&[3u8][..], &stream].concat())?;
    handshake_seeds(&root.join("handshake"))
}

/// A stranger's Hello and Proof for an acceptor, a stranger's Challenge and Welcome for a dialer, and genuine
/// exchanges with and without a flipped byte.
fn handshake_seeds(folder: &std::path::Path) -> std::io::Result<()> {
    use noex_proto::{Challenge, Hello, PROTOCOL_VERSION};
    let node = |text: &str| text.parse::<noex_proto::NodeId>().expect("a valid node id");
    let encode = |frames: Vec<Frame>| -> std::io::Result<BytesMut> {
        let mut codec = FrameCodec::handshake();
        let mut out = BytesMut::new();
        for frame in frames {
            codec.encode(frame, &mut out).map_err(std::io::Error::other)?;
        }
        Ok(out)
    };
    let nonce = Bytes::from_static(&[9; 32]);
    let proof = Bytes::from_static(&[5; 32]);
    let hello = Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: node("mallory@127.0.0.1:4003"),
        creation: 1,
        nonce: nonce.clone(),
    });
    let challenge = Frame::Challenge(Challenge {
        version: PROTOCOL_VERSION,
        node: node("acceptor@127.0.0.1:4002"),
        creation: 2,
        nonce,
    });
    let to_acceptor = encode(vec![hello, Frame::Proof(proof.clone())])?;
    write(folder, "to-acceptor", &[&[0u8][..], &to_acceptor].concat())?;
    let to_dialer = encode(vec![challenge, Frame::Welcome { proof }])?;
    write(folder, "to-dialer", &[&[1u8][..], &to_dialer].concat())?;
    write(folder, "genuine", &[2])?;
    write(folder, "flipped-proof", &[2, 0, 0, 0, 0, 1, 40])
}

fn write(folder: &std::path::Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    std::fs::write(folder.join(format!("seed-{name}")), data)
}
