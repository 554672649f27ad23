//! libFuzzer's entry point for `noex_fuzz::observer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| noex_fuzz::observer(data));
