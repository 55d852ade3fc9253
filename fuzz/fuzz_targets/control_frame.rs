//! See `hotwire_fuzz::control::control_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::control::control_frame(data));
