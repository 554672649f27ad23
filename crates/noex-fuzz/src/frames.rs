//! Targets for the frame decoders: the hand-written hot path against prost's, the reader's in-place cast view
//! against both, and the framing codec over a stream cut anywhere.

use bytes::{Bytes, BytesMut};
use noex_proto::fuzzing::{decode_hot, decode_prost, view_cast};
use noex_proto::{Frame, FrameCodec, NodeId, ProtoError, Target};
use tokio_util::codec::{Decoder, Encoder};

/// One envelope (the bytes after the length prefix) through every decoder that may see it.
pub fn frame(data: &[u8]) {
    let envelope = Bytes::copy_from_slice(data);
    let slow = decode_prost(envelope.clone());
    if let Some(hot) = decode_hot(&envelope) {
        match (&hot, &slow) {
            (Ok(hot), Ok(slow)) => assert_eq!(hot, slow, "the hot decoder and prost read different frames"),
            (Err(_), Err(_)) => {}
            _ => panic!("the hot decoder and prost disagree: {hot:?} against {slow:?}"),
        }
    }
    // The view checks no names: the reader delivers a viewed cast only if its names are byte for byte the
    // peer's and this node's, which are valid. So it must agree with the decoder when its names are valid.
    if let Some(view) = view_cast(data).filter(|view| valid_node(view.target.node) && valid_node(view.from.node)) {
        let Ok(Frame::Cast(cast)) = &slow else { panic!("viewed as a cast, decoded as {slow:?}") };
        let Target::Pid(target) = &cast.target else { panic!("viewed as a cast to a pid, decoded as {cast:?}") };
        assert_eq!(view.target.node, target.node().as_str().as_bytes());
        assert_eq!((view.target.creation, view.target.id), (target.creation(), target.id()));
        assert_eq!(view.from.node, cast.from.node().as_str().as_bytes());
        assert_eq!((view.from.creation, view.from.id), (cast.from.creation(), cast.from.id()));
        assert_eq!(view.payload, &cast.payload[..]);
    }
    if let Ok(frame) = slow {
        // What we accept, we can say again, and it means the same.
        let again = reencode(&frame).unwrap_or_else(|error| panic!("{frame:?} decoded but does not encode: {error}"));
        assert_eq!(again, frame, "a frame changed through encoding");
    }
}

/// A byte stream, as a connection's reader sees it, cut into reads of a size the input chooses: the frames (and
/// errors) it yields do not depend on where the reads end, and nothing panics.
pub fn codec(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else { return };
    let read_size = usize::from(cut % 64) + 1;
    // A small limit, so that the fuzzer reaches the over-limit path with small inputs.
    let limit = 4096;
    let whole = decode_stream(stream, stream.len().max(1), limit);
    let cut = decode_stream(stream, read_size, limit);
    assert_eq!(whole, cut, "the frames depend on how the stream was cut");
}

fn valid_node(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(|name| name.parse::<NodeId>().is_ok_and(|id| id.as_str() == name))
}

fn reencode(frame: &Frame) -> Result<Frame, ProtoError> {
    let mut codec = FrameCodec::with_limit(usize::MAX);
    let mut buffer = BytesMut::new();
    codec.encode(frame.clone(), &mut buffer)?;
    match codec.decode(&mut buffer)? {
        Some(decoded) => decoded,
        None => panic!("an encoded frame is incomplete"),
    }
}

/// What a reader makes of `stream` arriving `read_size` bytes at a time: each frame's outcome (as text, since
/// errors do not compare), and how the stream ended.
fn decode_stream(stream: &[u8], read_size: usize, limit: usize) -> Vec<String> {
    let mut codec = FrameCodec::with_limit(limit);
    let mut buffer = BytesMut::new();
    let mut outcomes = Vec::new();
    for chunk in stream.chunks(read_size) {
        buffer.extend_from_slice(chunk);
        loop {
            let viewed = codec.view_cast(&buffer);
            if let Some((view, len)) =
                viewed.filter(|(view, _)| valid_node(view.target.node) && valid_node(view.from.node))
            {
                // The reader's fast path takes the frame here; the decoder must read the same bytes the same way.
                let viewed = format!("{:?}", view.payload);
                let mut copy = BytesMut::from(&buffer[..len]);
                match codec.decode(&mut copy) {
                    Ok(Some(Ok(Frame::Cast(cast)))) => assert_eq!(format!("{:?}", &cast.payload[..]), viewed),
                    other => panic!("viewed as a cast, decoded as {other:?}"),
                }
            }
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => outcomes.push(format!("{frame:?}")),
                Ok(None) => break,
                Err(error) => {
                    // A framing error ends the stream.
                    outcomes.push(format!("end: {error}"));
                    return outcomes;
                }
            }
        }
    }
    outcomes
}
