//! See `hotwire_fuzz::broker::internal_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::broker::internal_records(data));
