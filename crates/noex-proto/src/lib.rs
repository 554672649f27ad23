//! The noex-rs wire protocol.
//!
//! The protocol is defined in `proto/noex/v1/noex.proto` and described in `docs/protocol.md`. This crate compiles
//! it (with protox, no system `protoc`), keeps the generated types to itself, and gives the layers above:
//!
//! - [`Frame`]: every message kind as hand-written types, converted with `TryFrom`, so a malformed message is a
//!   [`ProtoError`], never a panic;
//! - [`FrameCodec`]: 4-byte big-endian length-prefixed framing with a frame limit enforced before buffering;
//! - [`NodeId`]: a node's `name@host:port` identity, validated;
//! - [`auth`]: the handshake's HMAC-SHA256 proofs.
//!
//! ```
//! use bytes::BytesMut;
//! use noex_proto::{Frame, FrameCodec};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = FrameCodec::handshake();
//! let mut buffer = BytesMut::new();
//! codec.encode(Frame::Heartbeat, &mut buffer).unwrap();
//! assert_eq!(&buffer[..4], &[0, 0, 0, 2], "length prefix, then the envelope");
//! assert_eq!(codec.decode(&mut buffer).unwrap().unwrap().unwrap(), Frame::Heartbeat);
//! ```

pub mod auth;
mod codec;
mod convert;
mod error;
mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hot;
mod node_id;
mod view;

/// The generated protobuf types; private so that only [`Frame`] crosses the crate boundary.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
mod wire {
    include!(concat!(env!("OUT_DIR"), "/noex.v1.rs"));
}

pub use codec::{DEFAULT_MAX_FRAME, FrameCodec, HANDSHAKE_MAX_FRAME};
pub use error::ProtoError;
pub use frame::{
    Call, CallFailure, Cast, Challenge, Demonitor, Down, Exit, Frame, FullSync, GroupPids, GroupsSync, Hello, LinkPair,
    Member, Monitor, Registration, RegistryEntry, RegistrySync, RejectReason, Reply, SpawnBonds, SpawnFailure,
    SpawnReply, SpawnRequest, Stop, Target,
};
pub use node_id::{Host, MAX_NAME_LEN, NodeId, NodeIdError};
pub use view::{CastView, PidView};

/// The protocol version this crate speaks. Version 2: the dialer proves first, the acceptor's proof travels in
/// `Welcome` (version 1's acceptor proved first, in `Challenge`, which gave any client an offline oracle).
/// Version 3: full registry syncs in chunks (`FullSync`), and no registration time on the wire (conflicts are
/// settled by node id).
pub const PROTOCOL_VERSION: u32 = 3;
