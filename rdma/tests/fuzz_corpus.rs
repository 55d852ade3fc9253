//! The control-frame fuzz corpus, replayed on the stable toolchain: every committed crash
//! reproducer (`fuzz/regressions/control_frame/`) runs through the same code as the fuzz target
//! (`fuzz/src/control.rs`, included here) without a panic, and every seed
//! (`fuzz/corpus/control_frame/`) stays a valid frame. A short smoke run of random mutations
//! runs the target in CI ([`smoke::smoke`]); coverage-guided fuzzing is `scripts/fuzz.sh`.

use rdma::control::{read_frame_plain, Request, Response};

#[path = "../../fuzz/src/smoke.rs"]
mod smoke;
#[path = "../../fuzz/src/control.rs"]
mod targets;

const HERE: &str = env!("CARGO_MANIFEST_DIR");

fn files(kind: &str) -> Vec<(String, Vec<u8>)> {
    smoke::files(HERE, kind, "control_frame")
}

#[test]
fn control_frame_reproducers_stay_fixed() {
    smoke::replay(HERE, "control_frame", targets::control_frame);
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

#[test]
fn control_frame_survives_a_smoke_run() {
    smoke::smoke(HERE, "control_frame", targets::control_frame);
}

#[test]
fn a_smoke_run_finds_a_shallow_crash_and_saves_its_input() {
    fn fragile(data: &[u8]) {
        assert!(data.len() >= 4, "a short input");
    }
    let length = std::time::Duration::from_secs(30);
    let failed =
        std::panic::catch_unwind(|| smoke::smoke_with(HERE, "control_frame", fragile, 42, length));
    let message = *failed.unwrap_err().downcast::<String>().unwrap();
    let saved = message.split("saved as ").nth(1).unwrap();
    let saved = saved.split(' ').next().unwrap();
    assert!(std::fs::read(saved).unwrap().len() < 4, "{message}");
    std::fs::remove_file(saved).unwrap();
}
