//! libFuzzer's entry point for `noex_fuzz::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| noex_fuzz::handshake(data));
