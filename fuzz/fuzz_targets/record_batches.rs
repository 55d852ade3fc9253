//! See `hotwire_fuzz::broker::record_batches`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::broker::record_batches(data));
