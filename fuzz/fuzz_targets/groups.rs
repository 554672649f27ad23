//! libFuzzer's entry point for `noex_fuzz::groups`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| noex_fuzz::groups(data));
