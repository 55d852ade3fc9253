//! The fuzz corpora of the broker's decoders, replayed on the stable toolchain: every committed
//! crash reproducer (`fuzz/regressions/TARGET/`) runs through the same code as its fuzz target
//! (`fuzz/src/broker.rs`, included here) without a panic or an abort, and every seed
//! (`fuzz/corpus/TARGET/`) stays a valid input. A short smoke run of
//! random mutations runs each target in CI ([`smoke::smoke`]); coverage-guided fuzzing is
//! `scripts/fuzz.sh`.

use bytes::Bytes;
use hotwire_broker::log::record_batch::check_batches;

#[allow(dead_code)]
#[path = "../../fuzz/src/input.rs"]
mod input;
#[path = "../../fuzz/src/smoke.rs"]
mod smoke;
#[path = "../../fuzz/src/broker.rs"]
mod targets;

const HERE: &str = env!("CARGO_MANIFEST_DIR");

fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    smoke::files(HERE, kind, target)
}

fn replay(target: &str, run: fn(&[u8])) {
    smoke::replay(HERE, target, run);
}

#[test]
fn kafka_request_reproducers_stay_fixed() {
    replay("kafka_request", targets::kafka_request);
}

#[test]
fn record_batches_reproducers_stay_fixed() {
    replay("record_batches", targets::record_batches);
}

#[test]
fn produce_records_reproducers_stay_fixed() {
    replay("produce_records", targets::produce_records);
}

#[test]
fn stored_batches_reproducers_stay_fixed() {
    replay("stored_batches", targets::stored_batches);
}

#[test]
fn internal_records_reproducers_stay_fixed() {
    replay("internal_records", targets::internal_records);
}

#[test]
fn request_seeds_decode() {
    let seeds = files("corpus", "kafka_request");
    assert!(
        seeds.len() > 50,
        "fuzz/corpus/kafka_request has {} seeds",
        seeds.len()
    );
    for (name, bytes) in seeds {
        let decoded = hotwire_broker::protocol::decode_request(Bytes::from(bytes));
        assert!(decoded.is_ok(), "{name}: {decoded:?}");
    }
}

#[test]
fn batch_seeds_pass_the_produce_checks() {
    for target in ["record_batches", "produce_records", "internal_records"] {
        let seeds = files("corpus", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (name, bytes) in seeds {
            // After the mode byte: batches whose CRCs are already valid.
            let checked = check_batches(&bytes[1..]);
            assert!(checked.is_ok(), "{target}/{name}: {checked:?}");
            targets::produce_records(&bytes);
        }
    }
    for (name, bytes) in files("corpus", "stored_batches") {
        // After the mode byte and the timestamp looked for.
        let checked = check_batches(&bytes[9..]);
        assert!(checked.is_ok(), "stored_batches/{name}: {checked:?}");
    }
}

#[test]
fn internal_log_seeds_decode() {
    for (name, bytes) in files("corpus", "internal_records") {
        let decoded =
            hotwire_broker::internal::record::decode_batches(Bytes::from(bytes[1..].to_vec()));
        assert!(decoded.is_ok(), "internal_records/{name}: {decoded:?}");
    }
}

#[test]
fn kafka_request_survives_a_smoke_run() {
    smoke::smoke(HERE, "kafka_request", targets::kafka_request);
}

#[test]
fn record_batches_survive_a_smoke_run() {
    smoke::smoke(HERE, "record_batches", targets::record_batches);
}

#[test]
fn produce_records_survive_a_smoke_run() {
    smoke::smoke(HERE, "produce_records", targets::produce_records);
}

#[test]
fn stored_batches_survive_a_smoke_run() {
    smoke::smoke(HERE, "stored_batches", targets::stored_batches);
}

#[test]
fn internal_records_survive_a_smoke_run() {
    smoke::smoke(HERE, "internal_records", targets::internal_records);
}
