//! The fuzz corpora of the stored formats, replayed on the stable toolchain: every committed
//! crash reproducer (`fuzz/regressions/TARGET/`) runs through the same code as its fuzz target
//! (`fuzz/src/storage.rs`, included here) without a panic, and every seed (`fuzz/corpus/`)
//! stays a valid object or checkpoint. A short smoke run of
//! random mutations runs each target in CI ([`smoke::smoke`]); coverage-guided fuzzing is
//! `scripts/fuzz.sh`.

use dfs_adapter::fuzzing::{decode_checkpoint, parse_object};
use dfs_adapter::ObjectId;

#[allow(dead_code)]
#[path = "../../fuzz/src/input.rs"]
mod input;
#[path = "../../fuzz/src/smoke.rs"]
mod smoke;
#[path = "../../fuzz/src/storage.rs"]
mod targets;

const HERE: &str = env!("CARGO_MANIFEST_DIR");

fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    smoke::files(HERE, kind, target)
}

fn replay(target: &str, run: fn(&[u8])) {
    smoke::replay(HERE, target, run);
}

#[test]
fn flush_object_reproducers_stay_fixed() {
    replay("flush_object", targets::flush_object);
}

#[test]
fn manifest_reproducers_stay_fixed() {
    replay("manifest", targets::manifest);
}

#[test]
fn object_seeds_are_valid_objects() {
    let seeds = files("corpus", "flush_object");
    assert!(!seeds.is_empty());
    for (name, bytes) in seeds {
        // After the mode byte; every seed is object 7.
        let parsed = parse_object(ObjectId(7), &bytes[1..]);
        assert!(parsed.is_ok(), "flush_object/{name}: {parsed:?}");
    }
}

#[test]
fn checkpoint_seeds_are_valid_checkpoints() {
    let seeds = files("corpus", "manifest");
    assert!(!seeds.is_empty());
    for (name, bytes) in seeds {
        let file = match bytes[0] & 1 {
            1 => input::with_checkpoint_crc(&bytes[1..]),
            _ => bytes[1..].to_vec(),
        };
        let decoded = decode_checkpoint(targets::MANIFEST_SEQ, &file);
        assert!(decoded.is_ok(), "manifest/{name}: {decoded:?}");
    }
}

#[test]
fn flush_object_survives_a_smoke_run() {
    smoke::smoke(HERE, "flush_object", targets::flush_object);
}

#[test]
fn manifest_survives_a_smoke_run() {
    smoke::smoke(HERE, "manifest", targets::manifest);
}
