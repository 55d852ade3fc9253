//! See `hotwire_fuzz::broker::kafka_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::broker::kafka_request(data));
