//! The serde codec (postcard, noex-core's `serde` feature) against prost, on the same message.

use std::hint::black_box;
use std::time::{Duration, Instant};

use noex_core::Encodable;
use serde::{Deserialize, Serialize};

use crate::report::median;

const MESSAGES: usize = 1_000_000;
const RUNS: usize = 5;

/// A key-value write as a prost message: a string key, an i64, a bytes value and an enum.
#[derive(Clone, PartialEq, prost::Message)]
struct ProstEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(int64, tag = "2")]
    version: i64,
    #[prost(bytes = "vec", tag = "3")]
    value: Vec<u8>,
    #[prost(enumeration = "ProstKind", tag = "4")]
    kind: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
enum ProstKind {
    Put = 0,
    Delete = 1,
}

/// The same write as a plain Rust type. `serde_bytes` makes the value one byte string rather than a sequence of
/// 100 integers (what serde does with a bare `Vec<u8>`: same bytes in postcard, but slower).
#[derive(Serialize, Deserialize)]
struct SerdeEntry {
    key: String,
    version: i64,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    kind: SerdeKind,
}

#[derive(Serialize, Deserialize)]
enum SerdeKind {
    #[allow(dead_code)] // Only Delete is sent; Put is there so that the enum has a choice to encode.
    Put,
    Delete,
}

noex_core::serde_encodable!(SerdeEntry);

/// Encode (sized, then written into a reused buffer, as a remote cast is) and decode, per message, for the serde
/// codec (ours) and prost (base), interleaved run by run.
pub(crate) fn codec() -> String {
    let key = "user:1234567".to_string();
    let value: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    let version = 1_700_000_000_123;
    let serde = SerdeEntry { key: key.clone(), version, value: value.clone(), kind: SerdeKind::Delete };
    let prost = ProstEntry { key, version, value, kind: ProstKind::Delete as i32 };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(round_trips(&serde));
        base.push(round_trips(&prost));
    }
    let per_msg = |total: Duration| total.as_secs_f64() * 1e9 / MESSAGES as f64;
    let (ours, base) = (median(ours), median(base));
    format!(
        "case=codec n={MESSAGES} ns_per_msg={:.1} bytes_per_msg={} base_ns_per_msg={:.1} base_bytes_per_msg={} ratio={:.2}",
        per_msg(ours),
        serde.wire_len(),
        per_msg(base),
        prost.wire_len(),
        ours.as_secs_f64() / base.as_secs_f64()
    )
}

fn round_trips<M: Encodable>(msg: &M) -> Duration {
    let mut buffer = Vec::with_capacity(256);
    let start = Instant::now();
    for _ in 0..MESSAGES {
        buffer.clear();
        buffer.resize(msg.wire_len(), 0);
        black_box(msg).encode_wire_into(&mut buffer);
        black_box(M::decode_wire_slice(black_box(&buffer)).expect("decodes"));
    }
    start.elapsed()
}
