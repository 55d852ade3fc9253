//! The fuzz corpora of the stored formats, replayed on the stable toolchain: every committed
//! crash reproducer (`fuzz/regressions/TARGET/`) runs through the same code as its fuzz target
//! (`fuzz/src/storage.rs`, included here) without a panic, and every seed (`fuzz/corpus/`)
//! stays a valid object or checkpoint. Fuzzing itself: `scripts/fuzz.sh`.

use std::path::Path;

use dfs_adapter::fuzzing::{decode_checkpoint, parse_object};
use dfs_adapter::ObjectId;

#[allow(dead_code)]
#[path = "../../fuzz/src/input.rs"]
mod input;
#[path = "../../fuzz/src/storage.rs"]
mod targets;

/// The files of `fuzz/KIND/TARGET/`, by name (none when the directory does not exist).
fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for (name, bytes) in files("regressions", target) {
        eprintln!("replaying fuzz/regressions/{target}/{name}");
        run(&bytes);
    }
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
