//! The cast hot path on the receiving side: a cast to a pid viewed where it lies in a connection's read buffer,
//! so that a reader can deliver it without building a `Frame`, two `Pid`s or a slice of the buffer. Only the
//! exact shape the sender writes (`hot::encode_cast`) is viewed; anything else is left to the full decoder,
//! which judges it.

/// A pid as it lies in a frame: its node's name as raw bytes, not checked or interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidView<'a> {
    /// The node's name, as sent (compare it with a known name's bytes).
    pub node: &'a [u8],
    /// The node's incarnation.
    pub creation: u32,
    /// The process's number on its node.
    pub id: u64,
}

/// A cast to a pid, viewed where it lies in the read buffer: what a reader needs to deliver it without building
/// a `Frame`, two `Pid`s or a slice of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CastView<'a> {
    /// The process it is for.
    pub target: PidView<'a>,
    /// Its sender.
    pub from: PidView<'a>,
    /// The encoded message.
    pub payload: &'a [u8],
}

/// Views an envelope holding a cast to a pid, written the way [`encode_cast`](crate::hot::encode_cast) writes it (each field once, in
/// order). `None` for anything else, including any irregularity: the full decoder then judges the frame.
pub(crate) fn view_cast(envelope: &[u8]) -> Option<CastView<'_>> {
    // Keys as written: envelope field 22 and the cast's fields 1 to 3, each length-delimited.
    const ENVELOPE_CAST: u64 = (crate::hot::CAST as u64) << 3 | 2;
    let mut envelope = Cursor { buf: envelope, at: 0 };
    envelope.expect(ENVELOPE_CAST)?;
    let mut body = Cursor { buf: envelope.delimited()?, at: 0 };
    if !envelope.done() {
        return None;
    }
    body.expect(1 << 3 | 2)?;
    let mut target = Cursor { buf: body.delimited()?, at: 0 };
    target.expect(1 << 3 | 2)?; // a target by name goes the full way
    let target_pid = view_pid(target.delimited()?)?;
    if !target.done() {
        return None;
    }
    body.expect(2 << 3 | 2)?;
    let from = view_pid(body.delimited()?)?;
    let payload = if body.done() {
        &[][..]
    } else {
        body.expect(3 << 3 | 2)?;
        body.delimited()?
    };
    if !body.done() {
        return None;
    }
    Some(CastView { target: target_pid, from, payload })
}

fn view_pid(body: &[u8]) -> Option<PidView<'_>> {
    let mut body = Cursor { buf: body, at: 0 };
    let (mut node, mut creation, mut id): (&[u8], u32, u64) = (&[], 0, 0);
    while !body.done() {
        match body.varint()? {
            0x0a => node = body.delimited()?,
            0x10 => creation = u32::try_from(body.varint()?).ok()?,
            0x18 => id = body.varint()?,
            _ => return None,
        }
    }
    Some(PidView { node, creation, id })
}

/// A bare reader for [`view_cast`]: `None` on anything unexpected, nothing else to say (the full decoder says it).
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in 0..10 {
            let byte = *self.buf.get(self.at)?;
            self.at += 1;
            // Past 64 bits: not the shape the sender writes (prost refuses it); the full decoder judges.
            if shift == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (shift * 7);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    #[inline]
    fn expect(&mut self, key: u64) -> Option<()> {
        (self.varint()? == key).then_some(())
    }

    #[inline]
    fn delimited(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.at.checked_add(len)?;
        let body = self.buf.get(self.at..end)?;
        self.at = end;
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use noex_core::{NodeName, Pid};
    use tokio_util::codec::Encoder;

    use super::*;
    use crate::{Cast, Frame, Target};

    fn pid(node: &str, creation: u32, id: u64) -> Pid {
        Pid::new(NodeName::new(node), creation, id)
    }

    #[test]
    fn a_cast_to_a_pid_is_viewed_in_place_and_anything_else_is_left_to_the_decoder() {
        let (target, from) = (pid("a@127.0.0.1:1", 7, 1), pid("b@[::1]:2", u32::MAX, 1 << 40));
        for payload in [Bytes::new(), Bytes::from(vec![9; 300])] {
            let mut framed = BytesMut::new();
            crate::hot::encode_cast(&mut framed, &target, &from, payload.len(), 1 << 20, |dst| {
                dst.copy_from_slice(&payload)
            })
            .unwrap();
            let view = view_cast(&framed[4..]).expect("a cast to a pid");
            assert_eq!(view.target, PidView { node: b"a@127.0.0.1:1", creation: 7, id: 1 });
            assert_eq!(view.from, PidView { node: b"b@[::1]:2", creation: u32::MAX, id: 1 << 40 });
            assert_eq!(view.payload, &payload[..]);
            // Every truncation is refused, never a panic.
            for end in 0..framed.len() - 4 {
                assert_eq!(view_cast(&framed[4..4 + end]), None, "truncated at {end}");
            }
        }
        let by_name = Frame::Cast(Cast { target: Target::Name("x".into()), from: from.clone(), payload: Bytes::new() });
        let mut framed = BytesMut::new();
        crate::FrameCodec::with_limit(1 << 20).encode(by_name, &mut framed).unwrap();
        assert_eq!(view_cast(&framed[4..]), None, "a cast by name goes the full way");
        let call = Frame::Call(crate::Call {
            call_id: 1,
            target: Target::Pid(target.clone()),
            from: from.clone(),
            payload: Bytes::new(),
            timeout: std::time::Duration::from_secs(1),
        });
        let mut framed = BytesMut::new();
        crate::FrameCodec::with_limit(1 << 20).encode(call, &mut framed).unwrap();
        assert_eq!(view_cast(&framed[4..]), None);
    }
}
