//! The fuzz targets of noex-rs, as plain functions of arbitrary bytes.
//!
//! Each function feeds hostile input to one piece of the protocol and panics only when an invariant breaks: a
//! decoder panics itself, two decoders disagree on the same bytes, or a decoded frame does not survive being
//! encoded again. `fuzz/` (a cargo-fuzz package outside the workspace, run with `fuzz/run`) calls them under
//! libFuzzer; `tests/corpus.rs` replays the checked-in corpus through them on stable, so CI guards what the
//! fuzzers found.
//!
//! ```
//! // Any bytes at all: garbage is an error, never a panic.
//! noex_fuzz::frame(&[0x0a, 0xff, 0xff]);
//! noex_fuzz::codec(&[1, 0, 0, 0, 2, 0x0a, 0x00]);
//! noex_fuzz::handshake(&[2, 0xff, 7]);
//! ```

mod frames;
mod observer;

pub use frames::{codec, frame};
pub use noex_cluster::fuzzing::handshake;
pub use noex_pg::fuzzing::groups;
pub use noex_registry::fuzzing::registry;
pub use observer::observer;

/// A fuzz target: any bytes in; a panic means an invariant broke.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and its fuzz binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("codec", codec),
    ("handshake", handshake),
    ("registry", registry),
    ("observer", observer),
    ("groups", groups),
];
