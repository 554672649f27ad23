//! Framing: each frame is a 4-byte big-endian length followed by one protobuf `Envelope`.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::convert::NodeNames;
use crate::{Frame, ProtoError, wire};

/// The largest frame accepted once a connection is authenticated, unless configured otherwise.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// The largest frame accepted before authentication: handshake frames are tiny, and a stranger must not make
/// a node buffer megabytes.
pub const HANDSHAKE_MAX_FRAME: usize = 64 * 1024;

/// Encodes [`Frame`]s and decodes them, for `tokio_util::codec::Framed`.
///
/// A length prefix above the limit is an error as soon as the 4 bytes are read, before any payload is buffered;
/// that error ends the stream. A frame whose payload is not a valid message yields `Ok(Some(Err(..)))`: the
/// stream stays in sync and the caller decides whether to drop the frame or the connection.
pub struct FrameCodec {
    limit: usize,
    names: NodeNames,
}

impl std::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCodec").field("limit", &self.limit).finish()
    }
}

impl FrameCodec {
    /// A codec for a connection that has not authenticated yet ([`HANDSHAKE_MAX_FRAME`]).
    pub fn handshake() -> Self {
        Self::with_limit(HANDSHAKE_MAX_FRAME)
    }

    /// A codec with the given frame limit.
    pub fn with_limit(max_frame: usize) -> Self {
        FrameCodec { limit: max_frame.min(u32::MAX as usize), names: NodeNames::default() }
    }

    /// Changes the frame limit (after authentication, say).
    pub fn set_limit(&mut self, max_frame: usize) {
        self.limit = max_frame.min(u32::MAX as usize);
    }

    /// The current frame limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The complete frame at the start of `src`, if it is a cast to a pid: viewed in place, with its size on the
    /// wire (the caller advances `src` by it once done with the view). `None` for an incomplete frame or any
    /// other frame, which [`decode`](Decoder::decode) then handles (and judges).
    pub fn view_cast<'a>(&self, src: &'a [u8]) -> Option<(crate::view::CastView<'a>, usize)> {
        let len = u32::from_be_bytes(*src.first_chunk::<4>()?) as usize;
        if len > self.limit || src.len() < 4 + len {
            return None;
        }
        Some((crate::view::view_cast(&src[4..4 + len])?, 4 + len))
    }

    /// Appends a `Cast` frame to the pid `target` whose payload (`payload_len` bytes) `payload` writes in
    /// place: the same bytes as encoding the `Frame::Cast`, without building it (the cast hot path). Returns its
    /// size on the wire, or `TooLarge` (nothing appended).
    pub fn encode_cast(
        &self,
        target: &noex_core::Pid,
        from: &noex_core::Pid,
        payload_len: usize,
        payload: impl FnOnce(&mut [u8]),
        dst: &mut BytesMut,
    ) -> Result<usize, ProtoError> {
        crate::hot::encode_cast(dst, target, from, payload_len, self.limit(), payload)
    }
}

impl Decoder for FrameCodec {
    type Item = Result<Frame, ProtoError>;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, ProtoError> {
        // The length prefix by hand (tokio-util's `LengthDelimitedCodec` measured as a tenth of a cast's decoding).
        let Some(prefix) = src.first_chunk::<4>() else { return Ok(None) };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > self.limit {
            return Err(ProtoError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes announced, over the limit of {}", self.limit),
            )));
        }
        if src.len() < 4 + len {
            // Room for the whole frame at once: it then arrives without regrowing the buffer.
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        // `freeze` keeps the buffer: the envelope's `bytes` fields become slices of it, not copies.
        let payload = src.split_to(len).freeze();
        if let Some(decoded) = crate::hot::decode(&payload, &mut self.names) {
            return Ok(Some(decoded));
        }
        let names = &mut self.names;
        let decoded = wire::Envelope::decode(payload)
            .map_err(ProtoError::from)
            .and_then(|envelope| Frame::from_wire(envelope, names));
        Ok(Some(decoded))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        if let Some(len) = crate::hot::encoded_len(&frame) {
            if len > self.limit() {
                return Err(ProtoError::TooLarge { len, limit: self.limit() });
            }
            dst.reserve(4 + len);
            dst.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
            crate::hot::encode(&frame, dst);
            return Ok(());
        }
        let envelope = wire::Envelope::from(frame);
        let len = envelope.encoded_len();
        if len > self.limit() {
            return Err(ProtoError::TooLarge { len, limit: self.limit() });
        }
        dst.reserve(4 + len);
        // The limit is at most what fits in the prefix (`with_limit` caps it).
        dst.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        envelope.encode(dst).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(())
    }
}
