//! See `hotwire_fuzz::storage::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotwire_fuzz::storage::manifest(data));
