//! Hand-written encoding and decoding of the frames on the message hot path (`Call`, `Cast`, and `Reply` with a
//! payload), byte for byte what prost produces for the same envelope.
//!
//! Why: through the generated types, every pid's node name becomes a `String` on both sides and nested lengths
//! are computed more than once; for a small cast that was most of the cost of a message. Here pids are written
//! straight from their shared name, and read back through the connection's [`NodeNames`] without allocating.
//! Every other frame, and any envelope these functions do not recognise, goes through prost.

use bytes::{Bytes, BytesMut};
use noex_core::Pid;
use prost::encoding::{DecodeContext, WireType, encoded_len_varint};

use crate::convert::NodeNames;
use crate::{Call, Cast, Frame, ProtoError, Reply, Target};

const CALL: u32 = 20;
const REPLY: u32 = 21;
pub(crate) const CAST: u32 = 22;

/// The largest protobuf field number.
const MAX_TAG: u64 = (1 << 29) - 1;

/// Length of a length-delimited field with tag < 16 (one key byte) and a body of `len` bytes.
fn delimited(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Length of a varint field with tag < 16, or 0 for the proto3 default.
fn scalar(value: u64) -> usize {
    if value == 0 { 0 } else { 1 + encoded_len_varint(value) }
}

fn pid_len(pid: &Pid) -> usize {
    let node = pid.node().as_str().len();
    (if node == 0 { 0 } else { delimited(node) }) + scalar(pid.creation().into()) + scalar(pid.id())
}

fn target_len(target: &Target) -> usize {
    match target {
        Target::Pid(pid) => delimited(pid_len(pid)),
        Target::Name(name) => delimited(name.len()),
    }
}

/// Where the encoders write: a slice of exactly the frame's size, so every write is a plain store (`BytesMut`'s
/// own `BufMut` checks capacity on every byte, and a varint is written a byte at a time).
type Out<'a> = &'a mut [u8];

fn put_varint(mut value: u64, dst: &mut Out<'_>) {
    let mut n = 0;
    while value >= 0x80 {
        dst[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    dst[n] = value as u8;
    put_advance(dst, n + 1);
}

fn put_advance(dst: &mut Out<'_>, n: usize) {
    let rest = std::mem::take(dst);
    *dst = &mut rest[n..];
}

fn put_raw(bytes: &[u8], dst: &mut Out<'_>) {
    dst[..bytes.len()].copy_from_slice(bytes);
    put_advance(dst, bytes.len());
}

fn put_delimited_header(tag: u32, len: usize, dst: &mut Out<'_>) {
    put_varint(u64::from(tag << 3 | WireType::LengthDelimited as u32), dst);
    put_varint(len as u64, dst);
}

fn put_scalar(tag: u32, value: u64, dst: &mut Out<'_>) {
    if value != 0 {
        put_varint(u64::from(tag << 3 | WireType::Varint as u32), dst);
        put_varint(value, dst);
    }
}

fn put_pid(tag: u32, pid: &Pid, dst: &mut Out<'_>) {
    put_delimited_header(tag, pid_len(pid), dst);
    let node = pid.node().as_str();
    if !node.is_empty() {
        put_delimited_header(1, node.len(), dst);
        put_raw(node.as_bytes(), dst);
    }
    put_scalar(2, pid.creation().into(), dst);
    put_scalar(3, pid.id(), dst);
}

fn put_target(tag: u32, target: &Target, dst: &mut Out<'_>) {
    put_delimited_header(tag, target_len(target), dst);
    match target {
        Target::Pid(pid) => put_pid(1, pid, dst),
        Target::Name(name) => {
            put_delimited_header(2, name.len(), dst);
            put_raw(name.as_bytes(), dst);
        }
    }
}

fn put_bytes(tag: u32, bytes: &Bytes, always: bool, dst: &mut Out<'_>) {
    if always || !bytes.is_empty() {
        put_delimited_header(tag, bytes.len(), dst);
        put_raw(bytes, dst);
    }
}

/// The envelope of a hot frame: its body tag and body length, or `None` for any other frame.
fn body_len(frame: &Frame) -> Option<(u32, usize)> {
    Some(match frame {
        Frame::Call(call) => {
            let payload = if call.payload.is_empty() { 0 } else { delimited(call.payload.len()) };
            let len = scalar(call.call_id)
                + delimited(target_len(&call.target))
                + delimited(pid_len(&call.from))
                + payload
                + scalar(millis(call).into());
            (CALL, len)
        }
        Frame::Cast(cast) => {
            let payload = if cast.payload.is_empty() { 0 } else { delimited(cast.payload.len()) };
            (CAST, delimited(target_len(&cast.target)) + delimited(pid_len(&cast.from)) + payload)
        }
        // A oneof member is written even when empty.
        Frame::Reply(Reply { call_id, result: Ok(payload) }) => (REPLY, scalar(*call_id) + delimited(payload.len())),
        _ => return None,
    })
}

fn millis(call: &Call) -> u32 {
    u32::try_from(call.timeout.as_millis()).unwrap_or(u32::MAX)
}

/// The encoded envelope length of a hot frame, or `None` if `frame` is not one.
pub(crate) fn encoded_len(frame: &Frame) -> Option<usize> {
    let (_, len) = body_len(frame)?;
    Some(2 + encoded_len_varint(len as u64) + len)
}

/// Appends the envelope of a hot frame (without the length prefix); the caller checked [`encoded_len`].
pub(crate) fn encode(frame: &Frame, buffer: &mut BytesMut) {
    let Some((tag, len)) = body_len(frame) else { return };
    let start = buffer.len();
    let total = 2 + encoded_len_varint(len as u64) + len;
    buffer.resize(start + total, 0);
    let mut out: Out<'_> = &mut buffer[start..];
    let dst = &mut out;
    put_delimited_header(tag, len, dst);
    match frame {
        Frame::Call(call) => {
            put_scalar(1, call.call_id, dst);
            put_target(2, &call.target, dst);
            put_pid(3, &call.from, dst);
            put_bytes(4, &call.payload, false, dst);
            put_scalar(5, millis(call).into(), dst);
        }
        Frame::Cast(cast) => {
            put_target(1, &cast.target, dst);
            put_pid(2, &cast.from, dst);
            put_bytes(3, &cast.payload, false, dst);
        }
        Frame::Reply(Reply { call_id, result: Ok(payload) }) => {
            put_scalar(1, *call_id, dst);
            put_bytes(2, payload, true, dst);
        }
        _ => {}
    }
    debug_assert!(out.is_empty(), "the computed length is what was written");
}

/// Appends a whole `Cast` frame to a pid, length prefix included, with a payload of `payload_len` bytes that
/// `payload` writes in place: byte for byte what [`encode`] writes for the same `Frame::Cast`, without building
/// the frame or a buffer for the payload. Returns the frame's size on the wire.
pub(crate) fn encode_cast(
    buffer: &mut BytesMut,
    target: &Pid,
    from: &Pid,
    payload_len: usize,
    limit: usize,
    payload: impl FnOnce(&mut [u8]),
) -> Result<usize, ProtoError> {
    let payload_field = if payload_len == 0 { 0 } else { delimited(payload_len) };
    let body = delimited(delimited(pid_len(target))) + delimited(pid_len(from)) + payload_field;
    let len = 2 + encoded_len_varint(body as u64) + body;
    if len > limit {
        return Err(ProtoError::TooLarge { len, limit });
    }
    let start = buffer.len();
    buffer.resize(start + 4 + len, 0);
    let mut out: Out<'_> = &mut buffer[start..];
    let dst = &mut out;
    put_raw(&(len as u32).to_be_bytes(), dst);
    put_delimited_header(CAST, body, dst);
    // `Cast.target` is a `Target` whose field 1 is the pid.
    put_delimited_header(1, delimited(pid_len(target)), dst);
    put_pid(1, target, dst);
    put_pid(2, from, dst);
    if payload_len != 0 {
        put_delimited_header(3, payload_len, dst);
        payload(&mut dst[..payload_len]);
        put_advance(dst, payload_len);
    }
    debug_assert!(out.is_empty(), "the computed length is what was written");
    Ok(4 + len)
}

fn invalid(field: &'static str, error: impl std::fmt::Display) -> ProtoError {
    ProtoError::invalid(field, error.to_string())
}

/// A cursor over the envelope's bytes. Plain slices, no reference counting: only a payload becomes a `Bytes`
/// (a slice of the read buffer, not a copy).
struct Reader<'a> {
    envelope: &'a Bytes,
    /// The bytes of this message, ending where it ends.
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(envelope: &'a Bytes) -> Self {
        Reader { envelope, buf: envelope, at: 0 }
    }

    #[inline]
    fn has_remaining(&self) -> bool {
        self.at < self.buf.len()
    }

    /// Almost every varint in a hot frame is a single byte (keys, lengths, small ids): that case is one load and
    /// one compare; the general loop is out of line.
    #[inline]
    fn varint(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        match self.buf.get(self.at) {
            Some(&byte) if byte < 0x80 => {
                self.at += 1;
                Ok(u64::from(byte))
            }
            _ => self.varint_slow(field),
        }
    }

    #[cold]
    fn varint_slow(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for shift in 0..10 {
            let Some(&byte) = self.buf.get(self.at) else {
                return Err(invalid(field, "truncated varint"));
            };
            self.at += 1;
            // The tenth byte holds the 64th bit alone: anything more overflows, and prost refuses it.
            if shift == 9 && byte > 1 {
                return Err(invalid(field, "varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (shift * 7);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(invalid(field, "varint too long"))
    }

    #[inline]
    fn key(&mut self, field: &'static str) -> Result<(u32, WireType), ProtoError> {
        let key = self.varint(field)?;
        // Field numbers are 1 ..= 2^29 - 1; anything else goes the slow way and is refused there.
        match (key & 7, key >> 3) {
            (0, tag @ 1..=MAX_TAG) => Ok((tag as u32, WireType::Varint)),
            (2, tag @ 1..=MAX_TAG) => Ok((tag as u32, WireType::LengthDelimited)),
            _ => Self::other_key(key, field),
        }
    }

    #[cold]
    fn other_key(key: u64, field: &'static str) -> Result<(u32, WireType), ProtoError> {
        let wire_type = WireType::try_from(key & 7).map_err(|e| invalid(field, e))?;
        let tag = key >> 3;
        if !(1..=MAX_TAG).contains(&tag) {
            return Err(invalid(field, "bad tag"));
        }
        let tag = tag as u32;
        Ok((tag, wire_type))
    }

    /// The body of a length-delimited field, as a reader over it.
    #[inline]
    fn delimited(&mut self, wire_type: WireType, field: &'static str) -> Result<Reader<'a>, ProtoError> {
        if wire_type != WireType::LengthDelimited {
            return Err(invalid(field, "wrong wire type"));
        }
        let len = self.varint(field)?;
        let rest = self.buf.len() - self.at;
        if len > rest as u64 {
            return Err(invalid(field, "truncated"));
        }
        let end = self.at + len as usize;
        let body = Reader { envelope: self.envelope, buf: &self.buf[..end], at: self.at };
        self.at = end;
        Ok(body)
    }

    #[inline]
    fn scalar(&mut self, wire_type: WireType, field: &'static str) -> Result<u64, ProtoError> {
        if wire_type != WireType::Varint {
            return Err(invalid(field, "wrong wire type"));
        }
        self.varint(field)
    }

    fn bytes(&self) -> &'a [u8] {
        &self.buf[self.at..]
    }

    #[cold]
    fn skip(&mut self, wire_type: WireType, tag: u32, field: &'static str) -> Result<(), ProtoError> {
        let mut rest = &self.buf[self.at..];
        let before = rest.len();
        prost::encoding::skip_field(wire_type, tag, &mut rest, DecodeContext::default())
            .map_err(|e| invalid(field, e))?;
        self.at += before - rest.len();
        Ok(())
    }
}

fn take_pid(mut body: Reader<'_>, names: &mut NodeNames, field: &'static str) -> Result<Pid, ProtoError> {
    let (mut node, mut creation, mut id): (&[u8], u32, u64) = (&[], 0, 0);
    while body.has_remaining() {
        match body.key(field)? {
            (1, wire_type) => node = body.delimited(wire_type, field)?.bytes(),
            (2, wire_type) => creation = body.scalar(wire_type, field)? as u32,
            (3, wire_type) => id = body.scalar(wire_type, field)?,
            (tag, wire_type) => body.skip(wire_type, tag, field)?,
        }
    }
    let node = match names.known(node) {
        Some(known) => known,
        None => names.name(std::str::from_utf8(node).map_err(|e| invalid(field, e))?, field)?,
    };
    Ok(Pid::new(node, creation, id))
}

fn take_target(mut body: Reader<'_>, names: &mut NodeNames, field: &'static str) -> Result<Target, ProtoError> {
    let mut target = None;
    while body.has_remaining() {
        match body.key(field)? {
            (1, wire_type) => {
                let pid = take_pid(body.delimited(wire_type, field)?, names, field)?;
                if matches!(target, Some(Target::Pid(_))) {
                    // prost merges a message field that comes twice: not a shape this decoder takes.
                    return Err(ProtoError::invalid(field, "pid given twice"));
                }
                target = Some(Target::Pid(pid));
            }
            (2, wire_type) => {
                let name =
                    std::str::from_utf8(body.delimited(wire_type, field)?.bytes()).map_err(|e| invalid(field, e))?;
                if name.is_empty() {
                    return Err(invalid(field, "empty name"));
                }
                target = Some(Target::Name(name.to_owned()));
            }
            (tag, wire_type) => body.skip(wire_type, tag, field)?,
        }
    }
    target.ok_or_else(|| ProtoError::missing(field))
}

/// Decodes an envelope that holds a hot frame; `None` (untouched) for any other envelope, and for any envelope
/// this decoder cannot read exactly as prost would: an error of any kind, or a message field given twice (prost
/// merges the two). prost then judges it, so that the same bytes mean the same on either path (the `frame` fuzz
/// target compares them).
pub(crate) fn decode(envelope: &Bytes, names: &mut NodeNames) -> Option<Result<Frame, ProtoError>> {
    let mut reader = Reader::new(envelope);
    let (tag, wire_type) = reader.key("envelope").ok()?;
    if !matches!(tag, CALL | REPLY | CAST) || wire_type != WireType::LengthDelimited {
        return None;
    }
    let body = reader.delimited(wire_type, "envelope").ok()?;
    // Exactly one body and nothing after it; anything else is prost's to judge.
    if reader.has_remaining() {
        return None;
    }
    match tag {
        CALL => decode_call(body, names).ok().map(Ok),
        CAST => decode_cast(body, names).ok().map(Ok),
        _ => decode_reply(body),
    }
}

/// Fills a message field that may come once (see `decode`).
fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), ProtoError> {
    if slot.is_some() {
        return Err(ProtoError::invalid("envelope", "message field given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn payload(body: Reader<'_>) -> Bytes {
    // `buf` is a prefix-aligned view of `envelope`, so its bounds are the envelope's.
    body.envelope.slice(body.at..body.buf.len())
}

fn decode_call(mut body: Reader<'_>, names: &mut NodeNames) -> Result<Frame, ProtoError> {
    let (mut call_id, mut target, mut from, mut data, mut timeout_ms) = (0, None, None, Bytes::new(), 0u64);
    while body.has_remaining() {
        match body.key("call")? {
            (1, w) => call_id = body.scalar(w, "call.call_id")?,
            (2, w) => once(&mut target, take_target(body.delimited(w, "call.target")?, names, "call.target")?)?,
            (3, w) => once(&mut from, take_pid(body.delimited(w, "call.from")?, names, "call.from")?)?,
            (4, w) => data = payload(body.delimited(w, "call.payload")?),
            (5, w) => timeout_ms = u64::from(body.scalar(w, "call.timeout_ms")? as u32),
            (tag, w) => body.skip(w, tag, "call")?,
        }
    }
    Ok(Frame::Call(Call {
        call_id,
        target: target.ok_or_else(|| ProtoError::missing("call.target"))?,
        from: from.ok_or_else(|| ProtoError::missing("call.from"))?,
        payload: data,
        timeout: std::time::Duration::from_millis(timeout_ms),
    }))
}

fn decode_cast(mut body: Reader<'_>, names: &mut NodeNames) -> Result<Frame, ProtoError> {
    let (mut target, mut from, mut data) = (None, None, Bytes::new());
    while body.has_remaining() {
        match body.key("cast")? {
            (1, w) => once(&mut target, take_target(body.delimited(w, "cast.target")?, names, "cast.target")?)?,
            (2, w) => once(&mut from, take_pid(body.delimited(w, "cast.from")?, names, "cast.from")?)?,
            (3, w) => data = payload(body.delimited(w, "cast.payload")?),
            (tag, w) => body.skip(w, tag, "cast")?,
        }
    }
    Ok(Frame::Cast(Cast {
        target: target.ok_or_else(|| ProtoError::missing("cast.target"))?,
        from: from.ok_or_else(|| ProtoError::missing("cast.from"))?,
        payload: data,
    }))
}

/// Only replies that carry a payload; an error reply goes through prost.
fn decode_reply(mut body: Reader<'_>) -> Option<Result<Frame, ProtoError>> {
    let (mut call_id, mut data) = (0, None);
    while body.has_remaining() {
        let step = match body.key("reply") {
            Ok((1, w)) => body.scalar(w, "reply.call_id").map(|id| call_id = id),
            Ok((2, w)) => body.delimited(w, "reply.payload").map(|p| data = Some(payload(p))),
            Ok((3, _)) => return None,
            Ok((tag, w)) => body.skip(w, tag, "reply"),
            Err(error) => Err(error),
        };
        step.ok()?;
    }
    Some(Ok(Frame::Reply(Reply { call_id, result: Ok(data?) })))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use noex_core::NodeName;
    use prost::Message;
    use tokio_util::codec::Encoder;

    use super::*;
    use crate::wire;

    fn pid(node: &str, creation: u32, id: u64) -> Pid {
        Pid::new(NodeName::new(node), creation, id)
    }

    fn frames() -> Vec<Frame> {
        let a = pid("a@127.0.0.1:4369", 7, 1);
        let b = pid("node-b@[::1]:4370", u32::MAX, u64::MAX);
        vec![
            Frame::Call(Call {
                call_id: 1,
                target: Target::Pid(b.clone()),
                from: a.clone(),
                payload: Bytes::from_static(b"hello"),
                timeout: Duration::from_secs(5),
            }),
            Frame::Call(Call {
                call_id: 0,
                target: Target::Name("svc".into()),
                from: pid("a@h:1", 0, 0),
                payload: Bytes::new(),
                timeout: Duration::ZERO,
            }),
            Frame::Cast(Cast { target: Target::Pid(a.clone()), from: b.clone(), payload: Bytes::from(vec![9; 300]) }),
            Frame::Cast(Cast { target: Target::Name("x".into()), from: a, payload: Bytes::new() }),
            Frame::Reply(Reply { call_id: u64::MAX, result: Ok(Bytes::from_static(b"r")) }),
            Frame::Reply(Reply { call_id: 3, result: Ok(Bytes::new()) }),
        ]
    }

    #[test]
    fn a_cast_encoded_in_place_is_the_same_bytes_as_its_frame() {
        for payload in [Bytes::new(), Bytes::from(vec![9; 3]), Bytes::from(vec![7; 300])] {
            let (target, from) = (pid("a@127.0.0.1:1", 7, 1), pid("b@[::1]:2", 1 << 31, 300));
            let frame =
                Frame::Cast(Cast { target: Target::Pid(target.clone()), from: from.clone(), payload: payload.clone() });
            let mut expected = BytesMut::new();
            crate::FrameCodec::with_limit(1 << 20).encode(frame, &mut expected).unwrap();
            let mut written = BytesMut::from(&b"before"[..]);
            let size =
                encode_cast(&mut written, &target, &from, payload.len(), 1 << 20, |dst| dst.copy_from_slice(&payload));
            assert_eq!(size.unwrap(), expected.len());
            assert_eq!(&written[6..], &expected[..]);
            let too_small = encode_cast(&mut BytesMut::new(), &target, &from, payload.len(), 10, |_| ());
            assert!(matches!(too_small, Err(ProtoError::TooLarge { .. })));
        }
    }

    #[test]
    fn hot_frames_encode_byte_for_byte_as_prost_does_and_decode_back() {
        for frame in frames() {
            let by_prost = wire::Envelope::from(frame.clone()).encode_to_vec();
            let mut by_hand = BytesMut::new();
            assert_eq!(encoded_len(&frame), Some(by_prost.len()), "{frame:?}");
            encode(&frame, &mut by_hand);
            assert_eq!(&by_hand[..], &by_prost[..], "{frame:?}");
            let decoded = decode(&by_hand.freeze(), &mut NodeNames::default()).expect("a hot frame").unwrap();
            assert_eq!(decoded, frame);
        }
    }

    #[test]
    fn other_frames_and_error_replies_are_left_to_prost() {
        let error = Frame::Reply(Reply { call_id: 1, result: Err(crate::CallFailure::NoProc) });
        for frame in [Frame::Heartbeat, error] {
            assert_eq!(encoded_len(&frame), None);
            let bytes = Bytes::from(wire::Envelope::from(frame).encode_to_vec());
            assert!(decode(&bytes, &mut NodeNames::default()).is_none());
        }
    }

    #[test]
    fn damaged_hot_frames_are_errors_or_left_to_prost_never_panics() {
        for frame in frames() {
            let mut encoded = BytesMut::new();
            encode(&frame, &mut encoded);
            let encoded = encoded.freeze();
            for cut in 0..encoded.len() {
                let _ = decode(&encoded.slice(..cut), &mut NodeNames::default());
            }
            for at in 0..encoded.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut damaged = encoded.to_vec();
                    damaged[at] ^= flip;
                    let _ = decode(&Bytes::from(damaged), &mut NodeNames::default());
                }
            }
        }
    }
}
