//! The bench's command line: bad input gets clear errors and exit code 2, an unreachable
//! broker exit code 1, `limits` writes its JSON, and `--spawn-broker` runs a broker itself.

mod common;

use common::{bench, check_files, check_result, hotwire_bin, workload};

#[test]
fn a_bad_workload_file_is_refused_with_its_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(workload("batched"))
        .unwrap()
        .replace("partitions = 4", "partitions = 0")
        .replace("count = 2", "count = 0");
    std::fs::write(&path, text).unwrap();
    let path_text = path.display().to_string();
    let output = bench(&[
        "run",
        "-w",
        &path_text,
        "-b",
        "127.0.0.1:1",
        "-o",
        "/nonexistent",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("topics.partitions"), "{stderr}");
    assert!(stderr.contains("producers.count"), "{stderr}");

    std::fs::write(&path, "name = \"x\"\n[topics]\npartitons = 1\n").unwrap();
    let output = bench(&[
        "run",
        "-w",
        &path_text,
        "-b",
        "127.0.0.1:1",
        "-o",
        "/nonexistent",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("partitons"));

    let output = bench(&[
        "run",
        "-w",
        "/nonexistent.toml",
        "-b",
        "127.0.0.1:1",
        "-o",
        "/x",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));

    let output = bench(&["run", "-w", &workload("batched"), "-o", "/x"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--bootstrap or --spawn-broker is required"
    );
    let output = bench(&[
        "run",
        "-w",
        &workload("batched"),
        "-b",
        "x:1",
        "-o",
        "/x",
        "--scale",
        "-1",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn an_unreachable_broker_fails_with_its_address() {
    let output = bench(&[
        "run",
        "-w",
        &workload("batched"),
        "-b",
        "127.0.0.1:1",
        "-o",
        "/tmp/unused",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no Kafka broker answered at 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn limits_probe_writes_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (dir_text, out_text) = (
        dir.path().display().to_string(),
        out.path().display().to_string(),
    );
    let output = bench(&[
        "limits",
        "--dir",
        &dir_text,
        "-o",
        &out_text,
        "--fsync-count",
        "20",
        "--sequential-size",
        "4MiB",
        "--tcp-duration",
        "200ms",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("write + fsync: p50"));
    let text = std::fs::read_to_string(out.path().join("limits.json")).unwrap();
    let limits: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(limits["fsync"]["count"], 20);
    for key in ["p50_ms", "p99_ms", "p99_9_ms"] {
        assert!(limits["fsync"][key].as_f64().unwrap() > 0.0);
    }
    assert_eq!(limits["sequential"]["bytes"], 4 << 20);
    assert!(limits["loopback_tcp"]["mb_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn spawn_broker_runs_a_workload_on_a_broker_of_its_own() {
    let out = tempfile::tempdir().unwrap();
    let out_text = out.path().display().to_string();
    let binary = hotwire_bin().display().to_string();
    let output = bench(&[
        "run",
        "-w",
        &workload("tailing-e2e"),
        "-o",
        &out_text,
        "--spawn-broker",
        &binary,
        "--broker-arg=--group-initial-rebalance-delay-ms=0",
        "--duration",
        "1s",
        "--warmup",
        "0",
        "--scale",
        "0.05",
        "--label",
        "hotwire",
    ]);
    assert!(output.status.success(), "{output:?}");
    let result = check_files(out.path());
    check_result(&result, "tailing-e2e", &["main"]);
    assert_eq!(result["label"], "hotwire");
}
