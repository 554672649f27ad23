//! Loom models of the outbound hand-off: senders writing directly or handing over to the writer task, the
//! liveness thread pushing heartbeats and stalled bytes, a close and a leave, all racing each other over one socket
//! (a model socket: `socket.rs`) whose room the models give out.
//!
//! Run with `RUSTFLAGS="--cfg noex_loom" cargo test -p noex-cluster --lib --release ::model::` (see
//! docs/architecture.md, "Models"). The writer task and every wait run under `loom::future::block_on`, whose
//! waker unparks its thread: a lost wake-up (bytes queued that nobody will write) leaves every thread blocked,
//! which loom reports as a deadlock.
//!
//! What they prove, on the frames' order as decoded from the socket's bytes: no frame is lost or doubled, one
//! sender's frames keep their order, no two writes ever overlap, nothing refused or accepted after a close or a
//! leave is written, and after a close no write begins but the one already under way.

use bytes::BytesMut;
use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use noex_core::check_model;
use noex_proto::{Frame, FrameCodec};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use super::{Limits, Outbound, WriteSocket};

/// A frame that carries a number: what the models send.
fn numbered(n: u64) -> Frame {
    Frame::CastCredit { consumed: n, window: 0 }
}

/// Bytes of one numbered frame on the wire.
fn frame_len() -> usize {
    let mut bytes = BytesMut::new();
    FrameCodec::with_limit(1 << 20).encode(numbered(1), &mut bytes).unwrap();
    bytes.len()
}

/// A connection whose socket has room for `room` bytes, with its close and leave tokens.
fn connection(room: usize) -> (Arc<Outbound>, CancellationToken, CancellationToken) {
    let close = CancellationToken::new();
    let limits = Limits { max_frame: 1 << 20, hard: 1 << 20, cast_window: u64::MAX };
    let peer = "peer@127.0.0.1:1".parse().unwrap();
    (Arc::new(Outbound::new(WriteSocket::model(room), limits, close.clone(), peer)), close, CancellationToken::new())
}

/// The connection's writer task, on a thread of its own.
fn writer(outbound: &Arc<Outbound>, close: &CancellationToken, leave: &CancellationToken) -> thread::JoinHandle<()> {
    let (outbound, close, leave) = (outbound.clone(), close.clone(), leave.clone());
    thread::spawn(move || block_on(outbound.run(&close, &leave)))
}

/// Senders on threads of their own, one per list, each sending its numbers in order; each returns those accepted.
fn senders<const N: usize>(outbound: &Arc<Outbound>, lists: [&'static [u64]; N]) -> Vec<thread::JoinHandle<Vec<u64>>> {
    lists
        .into_iter()
        .map(|numbers| {
            let outbound = outbound.clone();
            thread::spawn(move || numbers.iter().copied().filter(|&n| outbound.send(numbered(n)).is_ok()).collect())
        })
        .collect()
}

/// The peer, on a thread of its own, reading enough to make room for everything.
fn peer_reads(outbound: &Arc<Outbound>) -> thread::JoinHandle<()> {
    let outbound = outbound.clone();
    thread::spawn(move || outbound.socket.make_room(1 << 20))
}

/// The frames on the wire so far; a frame cut short by the end is left out.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut codec = FrameCodec::with_limit(1 << 20);
    let mut bytes = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut bytes).expect("the wire carries whole frames, one after another") {
        frames.push(frame.expect("every frame on the wire decodes"));
    }
    frames
}

/// What the frames on the wire are: numbers, heartbeats, and whether a goodbye ends them.
#[derive(Debug, Default)]
struct Seen {
    numbers: Vec<u64>,
    heartbeats: usize,
    goodbye_last: bool,
}

fn seen(bytes: &[u8]) -> Seen {
    let mut seen = Seen::default();
    for frame in frames(bytes) {
        assert!(!seen.goodbye_last, "a frame after the goodbye");
        match frame {
            Frame::CastCredit { consumed, .. } => seen.numbers.push(consumed),
            Frame::Heartbeat => seen.heartbeats += 1,
            Frame::Goodbye => seen.goodbye_last = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

/// Waits until the wire carries every one of `numbers`.
fn wait_for(outbound: &Outbound, numbers: &[u64]) {
    block_on(outbound.socket.written_until(|bytes| {
        let seen = seen(bytes).numbers;
        numbers.iter().all(|n| seen.contains(n))
    }));
}

/// `seen` holds each of `sent` exactly once, and each sender's frames in the order it sent them.
fn assert_once_in_order(seen: &[u64], senders: &[&[u64]]) {
    let mut all: Vec<u64> = senders.iter().flat_map(|sent| sent.iter().copied()).collect();
    all.sort_unstable();
    let mut got = seen.to_vec();
    got.sort_unstable();
    assert_eq!(got, all, "each frame exactly once: {seen:?}");
    for sent in senders {
        let order: Vec<u64> = seen.iter().copied().filter(|n| sent.contains(n)).collect();
        assert_eq!(&order, sent, "one sender's frames out of order: {seen:?}");
    }
}

/// Two senders on a socket with room for one frame, which the peer then reads: the first frame goes directly,
/// the rest wait for room and are handed over to the writer. The writer is always woken to write them (else this
/// deadlocks), each frame reaches the wire once, in its sender's order, and the goodbye comes last.
#[test]
fn senders_hand_over_to_the_writer_and_every_frame_is_written_once_in_order() {
    check_model(Some(2), || {
        let (outbound, close, leave) = connection(frame_len());
        let writer = writer(&outbound, &close, &leave);
        let senders = senders(&outbound, [&[1, 2], &[11]]);
        let peer = peer_reads(&outbound);
        for (sender, sent) in senders.into_iter().zip([vec![1, 2], vec![11]]) {
            assert_eq!(sender.join().unwrap(), sent, "an open connection refused");
        }
        wait_for(&outbound, &[1, 2, 11]);
        leave.cancel();
        writer.join().unwrap();
        peer.join().unwrap();
        let seen = seen(&outbound.socket.wire().bytes);
        assert_once_in_order(&seen.numbers, &[&[1, 2], &[11]]);
        assert!(seen.goodbye_last, "the goodbye ends the stream");
    });
}

/// The liveness thread pushes a heartbeat and stalled bytes from outside the runtime while a sender sends and the
/// writer drains, on a socket that is full until the peer reads: the writes never overlap, nothing is lost or
/// doubled, and the sender's frames keep their order.
#[test]
fn the_liveness_push_never_overlaps_the_writer_nor_reorders() {
    check_model(Some(2), || {
        let (outbound, close, leave) = connection(0);
        let writer = writer(&outbound, &close, &leave);
        let sender = {
            let outbound = outbound.clone();
            thread::spawn(move || {
                for n in [1, 2] {
                    assert!(outbound.send(numbered(n)).is_ok(), "an open connection refused");
                }
            })
        };
        let liveness = {
            let outbound = outbound.clone();
            thread::spawn(move || outbound.keep_alive(std::time::Duration::ZERO))
        };
        let peer = peer_reads(&outbound);
        sender.join().unwrap();
        liveness.join().unwrap();
        wait_for(&outbound, &[1, 2]);
        peer.join().unwrap();
        leave.cancel();
        writer.join().unwrap();
        let seen = seen(&outbound.socket.wire().bytes);
        assert_once_in_order(&seen.numbers, &[&[1, 2]]);
        assert_eq!(seen.heartbeats, 1, "the one heartbeat queued, written once");
    });
}

/// A heartbeat that the liveness thread queues on a full socket, with no sender to come after it, is written
/// once the peer reads: the writer takes it over rather than leave it to the next tick.
#[test]
fn a_heartbeat_the_socket_refuses_is_written_once_it_has_room() {
    check_model(Some(2), || {
        let (outbound, close, leave) = connection(0);
        let writer = writer(&outbound, &close, &leave);
        outbound.keep_alive(std::time::Duration::ZERO);
        let peer = peer_reads(&outbound);
        block_on(outbound.socket.written_until(|bytes| seen(bytes).heartbeats == 1));
        peer.join().unwrap();
        leave.cancel();
        writer.join().unwrap();
    });
}

/// A close racing a sender and the writer: what is refused is never written, what is written is the start of
/// what was accepted (in order, no gaps: the rest is discarded), no write begins after the close returned but
/// the one that was under way (its bytes already taken from the buffer), and the writer stops.
#[test]
fn a_close_stops_the_writes_and_refuses_what_follows() {
    check_model(Some(2), || {
        let (outbound, close, leave) = connection(frame_len());
        let writer = writer(&outbound, &close, &leave);
        let sender = {
            let outbound = outbound.clone();
            thread::spawn(move || [1, 2, 3].into_iter().filter(|&n| outbound.send(numbered(n)).is_ok()).collect())
        };
        let peer = peer_reads(&outbound);
        outbound.close();
        // Whether a write is under way, and the seal, in one step: the socket's lock is taken under the state's,
        // in the senders' order.
        let under_way = {
            let pending = outbound.lock();
            outbound.socket.wire().sealed = true;
            pending.writing
        };
        close.cancel();
        let accepted: Vec<u64> = sender.join().unwrap();
        writer.join().unwrap();
        peer.join().unwrap();
        assert!(outbound.send(numbered(4)).is_err(), "a closed connection accepted");
        let wire = outbound.socket.wire();
        let seen = seen(&wire.bytes);
        assert!(accepted.starts_with(&seen.numbers), "written {:?}, accepted {accepted:?}", seen.numbers);
        assert!(
            wire.writes_after_seal <= usize::from(under_way),
            "{} writes began after the close, with {} under way",
            wire.writes_after_seal,
            usize::from(under_way)
        );
    });
}

/// A leave racing two senders: every frame accepted before the goodbye is written before it, every frame after
/// it is refused, the goodbye is written once and last, and the writer ends.
#[test]
fn a_leave_writes_what_was_accepted_then_the_goodbye_last() {
    check_model(Some(2), || {
        let (outbound, close, leave) = connection(frame_len());
        let writer = writer(&outbound, &close, &leave);
        let senders = senders(&outbound, [&[1, 2], &[11]]);
        let peer = peer_reads(&outbound);
        leave.cancel();
        let accepted: Vec<Vec<u64>> = senders.into_iter().map(|sender| sender.join().unwrap()).collect();
        writer.join().unwrap();
        peer.join().unwrap();
        let seen = seen(&outbound.socket.wire().bytes);
        assert_once_in_order(&seen.numbers, &[&accepted[0], &accepted[1]]);
        assert!(seen.goodbye_last, "the goodbye ends the stream");
        assert!(outbound.send(numbered(4)).is_err(), "a connection that said goodbye accepted");
    });
}
