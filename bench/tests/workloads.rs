//! A short run of every shipped workload against a Hotwire broker started by the test:
//! the run succeeds and writes a result.json with the expected fields and two SVG plots.

mod common;

use common::{check_percentiles, check_result, run_workload, Broker, SHORT};

#[test]
fn batched() {
    let broker = Broker::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let result = run_workload("batched", &broker, out.path(), SHORT);
    let phases = check_result(&result, "batched", &["main"]);
    assert!(
        phases[0]["end_to_end"].is_null(),
        "batched has no consumers"
    );
    assert_eq!(result["coordinated_omission_corrected"], true);
    assert_eq!(phases[0]["target_rate"], 1000.0);
}

#[test]
fn fragmented() {
    let broker = Broker::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let result = run_workload("fragmented", &broker, out.path(), SHORT);
    check_result(&result, "fragmented", &["main"]);
    assert_eq!(result["workload"]["topics"]["partitions"], 64);
}

#[test]
fn tailing_e2e() {
    let broker = Broker::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let result = run_workload("tailing-e2e", &broker, out.path(), SHORT);
    let phases = check_result(&result, "tailing-e2e", &["main"]);
    let e2e = &phases[0]["end_to_end"];
    assert!(e2e["consumed"].as_u64().unwrap() > 0);
    check_percentiles(&e2e["latency"]);
    let timeline = result["timeline"].as_array().unwrap();
    assert!(timeline.iter().any(|p| p["e2e_p99_ms"].is_f64()));
}

#[test]
fn catch_up() {
    // A hot cache smaller than the (scaled) 12.8 MiB backlog, so catch-up reads go to storage.
    let metrics = common::unique_port().to_string();
    let broker = Broker::start(&[
        "--hot-cache-mib",
        "8",
        "--hot-block-kib",
        "1024",
        "--metrics-listen",
        &metrics,
    ]);
    let out = tempfile::tempdir().unwrap();
    let url = format!("http://{metrics}/metrics");
    // Phases long enough for the readers to catch up, so the catch-up phase ends early.
    let extra = [
        "--duration",
        "10s",
        "--warmup",
        "1s",
        "--scale",
        "0.05",
        "--broker-metrics",
        &url,
    ];
    let result = run_workload("catch-up", &broker, out.path(), &extra);
    let phases = check_result(&result, "catch-up", &["baseline", "catch-up"]);
    assert!(result["prefill"]["records"].as_u64().unwrap() > 0);
    assert!(result["prefill"]["mb_per_s"].as_f64().unwrap() > 0.0);
    for phase in phases {
        check_percentiles(&phase["end_to_end"]["latency"]);
    }
    assert!(phases[0]["catch_up"].is_null());
    let catch_up = &phases[1]["catch_up"];
    assert_eq!(catch_up["consumers"], 2);
    assert!(catch_up["records"].as_u64().unwrap() > 0, "{catch_up}");
    assert!(
        catch_up["records_to_catch_up"].as_u64().unwrap()
            >= result["prefill"]["records"].as_u64().unwrap()
    );
    // The catch-up phase measures catching up only: it ends once the readers have caught up.
    let caught_up_after_s = catch_up["caught_up_after_s"].as_f64().expect("caught up");
    let phase_s = phases[1]["duration_s"].as_f64().unwrap();
    assert!(
        phase_s < caught_up_after_s + 1.0 && phase_s < 10.0,
        "the catch-up phase lasted {phase_s} s; the readers caught up after {caught_up_after_s} s"
    );
    // The broker's per-client counters, scraped around each phase: the tailing consumer read
    // in both phases, and the readers' start of the backlog came from storage.
    assert!(phases[0]["broker_reads"]["tailing_hot_ratio"].is_f64());
    assert!(phases[0]["broker_reads"]["catch_up_hot_ratio"].is_null());
    let readers = &phases[1]["broker_reads"]["per_client"]["hotwire-bench-catch-up"];
    assert!(readers["cold"].as_u64().unwrap() > 0, "{readers}");
    assert!(
        phases[1]["broker_reads"]["catch_up_hot_ratio"]
            .as_f64()
            .unwrap()
            < 1.0
    );
}

#[test]
fn max_throughput() {
    let broker = Broker::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--duration",
        "1s",
        "--warmup",
        "1s",
        "--scale",
        "0.05",
        "--max-steps",
        "3",
    ];
    let result = run_workload("max-throughput", &broker, out.path(), &args);
    let max = &result["max_throughput"];
    let steps = max["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 3);
    assert_eq!(steps[0]["target_rate"], 500.0);
    assert!(max["stopped_because"].is_string());
    assert!(max.get("sustained_rate").is_some());
    let names: Vec<String> = (1..=steps.len()).map(|i| format!("step-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    check_result(&result, "max-throughput", &names);
}
