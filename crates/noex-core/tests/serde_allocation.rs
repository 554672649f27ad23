//! A short frame that claims a huge collection fails without a large allocation (the serde codec, feature `serde`).
//!
//! Its own test binary: the counting allocator is global to the process, and this is the binary's only test, so
//! nothing else allocates while it measures.

use std::alloc::System;
use std::collections::{BTreeMap, HashMap};

use cap::Cap;
use noex_core::Encodable;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// What a hostile frame may make the decoder allocate. A sequence claiming more elements than the frame has bytes
/// gives serde no size hint (it then reserves nothing ahead of the elements); a map passes on the count it
/// claims, and serde reserves at most 1 MiB of entries ahead of them (a hash map rounds its table up: 2.1 MiB
/// measured for `HashMap<u64, Vec<u8>>`).
const BUDGET: usize = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
enum Hostile {
    Words(Vec<u64>),
    Nested(Vec<Vec<u64>>),
    Text(String),
    Blob(Vec<u8>),
    Map(HashMap<u64, Vec<u8>>),
    Tree(BTreeMap<String, String>),
}

noex_core::serde_encodable!(Hostile);

#[test]
fn huge_length_prefixes_fail_within_a_small_allocation() {
    // A varint of 2^63 - 1 after each variant index (and twice for the nested one): ten bytes claiming exabytes.
    let huge = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    let one_million = [0xC0, 0x84, 0x3D];
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for variant in 0..6u8 {
        frames.push([&[variant][..], &huge].concat());
        frames.push([&[variant][..], &one_million, &[1, 2, 3]].concat());
    }
    frames.push([&[1][..], &huge, &huge].concat());
    frames.push([&[1][..], &one_million, &one_million, &[1, 2, 3]].concat());

    let before = ALLOCATOR.allocated();
    // An allocation past the limit aborts this binary: the failure this test exists to catch.
    ALLOCATOR.set_limit(before + BUDGET).expect("limit above what is in use");
    for frame in &frames {
        let result = Hostile::decode_wire_slice(frame);
        assert!(result.is_err(), "{frame:?} decoded as {result:?}");
    }
    ALLOCATOR.set_limit(usize::MAX).expect("limit lifted");
}
