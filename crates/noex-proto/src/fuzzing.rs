//! The decoders one at a time, for fuzz targets and their corpus replay (feature `fuzzing`; not a stable API):
//! the reader runs the hand-written decoder first and prost's for everything else, so a fuzz target compares
//! them on the same bytes.

use bytes::Bytes;
use prost::Message;

use crate::convert::NodeNames;
use crate::{CastView, Frame, ProtoError, wire};

/// The hand-written decoder of calls, casts and replies; `None` for an envelope it leaves to prost.
pub fn decode_hot(envelope: &Bytes) -> Option<Result<Frame, ProtoError>> {
    crate::hot::decode(envelope, &mut NodeNames::default())
}

/// prost's decoder and the conversion into a [`Frame`], for any envelope.
pub fn decode_prost(envelope: Bytes) -> Result<Frame, ProtoError> {
    let envelope = wire::Envelope::decode(envelope)?;
    Frame::from_wire(envelope, &mut NodeNames::default())
}

/// The reader's in-place view of a cast to a pid; `None` for anything else.
pub fn view_cast(envelope: &[u8]) -> Option<CastView<'_>> {
    crate::view::view_cast(envelope)
}
