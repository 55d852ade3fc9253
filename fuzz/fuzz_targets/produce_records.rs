//! See `hotwire_fuzz::broker::produce_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::broker::produce_records(data));
