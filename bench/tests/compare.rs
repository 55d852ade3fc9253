//! `compare` against two Hotwire brokers: alternating rounds, ratios, one JSON file.

mod common;

use common::{bench, check_files, workload, Broker};

#[test]
fn compare_alternates_rounds_between_two_brokers_and_prints_ratios() {
    let a = Broker::start(&[]);
    let b = Broker::start(&["--flush-interval-ms", "1"]);
    let out = tempfile::tempdir().unwrap();
    let out_text = out.path().display().to_string();
    let file = workload("tailing-e2e");
    let (a_addr, b_addr) = (a.bootstrap(), b.bootstrap());
    let output = bench(&[
        "compare",
        "-w",
        &file,
        "-o",
        &out_text,
        "--bootstrap-a",
        &a_addr,
        "--bootstrap-b",
        &b_addr,
        "--label-a",
        "default",
        "--label-b",
        "flush-1ms",
        "--rounds",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "0",
        "--scale",
        "0.05",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("B/A"), "{stdout}");
    assert!(stdout.contains("produce p99 ms"), "{stdout}");

    let text = std::fs::read_to_string(out.path().join("compare.json")).unwrap();
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result["order"], serde_json::json!(["A", "B", "B", "A"]));
    assert_eq!(result["a"]["bootstrap"], a_addr.as_str());
    assert_eq!(result["b"]["label"], "flush-1ms");
    let rows = result["rows"].as_array().unwrap();
    let p99 = rows
        .iter()
        .find(|r| r["metric"] == "produce p99 ms")
        .expect("a produce p99 row");
    assert_eq!(p99["a_rounds"].as_array().unwrap().len(), 2);
    assert!(p99["ratio"].as_f64().unwrap() > 0.0);
    assert!(rows.iter().any(|r| r["metric"] == "e2e p99 ms"));

    let runs = result["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        let run_result = check_files(std::path::Path::new(run.as_str().unwrap()));
        assert_eq!(run_result["errors"], 0);
    }
}
