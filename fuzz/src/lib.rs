//! The fuzz targets' bodies, one function per target, each calling production decoders.
//!
//! They live here rather than in `fuzz_targets/` so that the stable test suites of the owning
//! crates can include the same files (`#[path]`) and replay the committed corpora and crash
//! reproducers (`fuzz/corpus/`, `fuzz/regressions/`) without nightly or libFuzzer.

pub mod broker;
pub mod control;
pub mod input;
pub mod storage;
