//! The control-frame fuzz corpus, replayed on the stable toolchain: every committed crash
//! reproducer (`fuzz/regressions/control_frame/`) runs through the same code as the fuzz target
//! (`fuzz/src/control.rs`, included here) without a panic, and every seed
//! (`fuzz/corpus/control_frame/`) stays a valid frame. Fuzzing itself: `scripts/fuzz.sh`.

use std::path::Path;

use rdma::control::{read_frame_plain, Request, Response};

#[path = "../../fuzz/src/control.rs"]
mod targets;

/// The files of `fuzz/KIND/control_frame/`, by name (none when the directory does not exist).
fn files(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join("control_frame");
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

#[test]
fn control_frame_reproducers_stay_fixed() {
    for (name, bytes) in files("regressions") {
        eprintln!("replaying fuzz/regressions/control_frame/{name}");
        targets::control_frame(&bytes);
    }
}

#[test]
fn frame_seeds_decode() {
    let seeds = files("corpus");
    assert!(seeds.len() >= 10, "{} seeds", seeds.len());
    for (name, bytes) in seeds {
        if name.starts_with("request-") {
            let frame = read_frame_plain::<Request>(&mut &bytes[..]);
            assert!(frame.is_ok(), "{name}: {frame:?}");
        } else {
            let frame = read_frame_plain::<Response>(&mut &bytes[..]);
            assert!(frame.is_ok(), "{name}: {frame:?}");
        }
    }
}
