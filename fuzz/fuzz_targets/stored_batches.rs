//! See `hotwire_fuzz::broker::stored_batches`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::broker::stored_batches(data));
