//! See `hotwire_fuzz::storage::flush_object`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::storage::flush_object(data));
