//! What can be wrong with bytes that arrived from the network.

/// A frame that could not be read. Every variant means: log it, and close the connection if the stream can no
/// longer be trusted (all but `UnknownKind` and `Invalid`, which leave the framing intact).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The stream failed or a length prefix exceeded the frame limit (rejected before its payload is buffered).
    #[error("framing: {0}")]
    Io(#[from] std::io::Error),
    /// A frame to send is larger than the frame limit; nothing of it was written.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The frame's encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not a valid protobuf `Envelope`.
    #[error("cannot decode frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The envelope carries no body this version knows (empty, or a kind from a newer protocol).
    #[error("frame carries no known message kind")]
    UnknownKind,
    /// A field is missing or has a value this protocol does not allow.
    #[error("invalid field '{field}': {reason}")]
    Invalid {
        /// The field's path, as `call.target`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ProtoError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ProtoError::Invalid { field, reason: reason.into() }
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        ProtoError::invalid(field, "missing")
    }
}
