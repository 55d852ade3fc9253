//! Shared by the bench's integration tests: a Hotwire broker started by the test, the bench
//! binary, and checks of the files a run writes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hotwire_bench::readiness::{answers_kafka, loopback_port};
use serde_json::Value;

/// The Hotwire binary: $HOTWIRE_BIN, else target/release/hotwire, else target/debug/hotwire.
/// Tests never build it themselves; they fail with instructions instead.
pub fn hotwire_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HOTWIRE_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HOTWIRE_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    for profile in ["release", "debug"] {
        let path = target.join(profile).join("hotwire");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "no Hotwire binary for the bench tests: build it first (`cargo build --release -p hotwire-broker`) \
         or set HOTWIRE_BIN (looked in {}/{{release,debug}}/hotwire)",
        target.display()
    );
}

/// A free loopback port no other test of this process was given (tests run in parallel, and a
/// port is only free until some broker binds it).
pub fn unique_port() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let addr = loopback_port().unwrap();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// A Hotwire process on a free loopback port and its own storage, killed on drop.
pub struct Broker {
    pub addr: SocketAddr,
    child: Child,
    _storage: tempfile::TempDir,
}

impl Broker {
    /// Starts Hotwire with a group's first rebalance not delayed (tests have no stragglers
    /// to wait for) and `extra` flags.
    pub fn start(extra: &[&str]) -> Broker {
        let storage = tempfile::tempdir().unwrap();
        let addr = unique_port();
        let mut child = Command::new(hotwire_bin())
            .args(["--listen", &addr.to_string()])
            .args(["--storage", &format!("fs://{}", storage.path().display())])
            .args([
                "--log-level",
                "warn",
                "--group-initial-rebalance-delay-ms",
                "0",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_kafka(addr, Duration::from_millis(500)) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("hotwire exited ({status}) before listening on {addr}");
            }
            assert!(
                Instant::now() < deadline,
                "hotwire did not answer Kafka requests on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            addr,
            child,
            _storage: storage,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shipped workload file.
pub fn workload(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workloads")
        .join(format!("{name}.toml"))
        .display()
        .to_string()
}

/// Runs the bench binary; prints its output (shown when a test fails).
pub fn bench(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_hotwire-bench"))
        .args(args)
        .output()
        .unwrap();
    println!("$ hotwire-bench {}", args.join(" "));
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The short settings every test run uses: seconds, not minutes, at 5% of the rates.
pub const SHORT: &[&str] = &["--duration", "2s", "--warmup", "1s", "--scale", "0.05"];

/// Runs a shipped workload against `broker` with `extra` arguments; returns result.json.
pub fn run_workload(name: &str, broker: &Broker, out: &Path, extra: &[&str]) -> Value {
    let file = workload(name);
    let out_text = out.display().to_string();
    let bootstrap = broker.bootstrap();
    let mut args = vec!["run", "-w", &file, "-b", &bootstrap, "-o", &out_text];
    args.extend_from_slice(extra);
    let output = bench(&args);
    assert!(
        output.status.success(),
        "hotwire-bench run {name} failed: {output:?}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("p99.99"), "no table printed");
    assert!(
        stdout.contains("coordinated omission"),
        "no note on coordinated omission"
    );
    check_files(out)
}

/// Checks the plots and returns the parsed result.json.
pub fn check_files(out: &Path) -> Value {
    for plot in ["latency.svg", "throughput.svg"] {
        let text = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(
            text.contains("<svg") && text.contains("</svg>"),
            "{plot} is not an SVG"
        );
        assert!(
            text.contains("<polyline") || text.contains("<path"),
            "{plot} draws nothing"
        );
    }
    let text = std::fs::read_to_string(out.join("result.json")).unwrap();
    serde_json::from_str(&text).expect("result.json is valid JSON")
}

/// Asserts the fields every result has, with the expected phases, and returns the phases.
pub fn check_result<'a>(result: &'a Value, name: &str, phases: &[&str]) -> &'a Vec<Value> {
    assert_eq!(result["tool"], "hotwire-bench");
    assert_eq!(result["workload"]["name"], name);
    assert_eq!(result["errors"], 0, "errors: {}", result["warnings"]);
    assert!(result["latency_note"]
        .as_str()
        .unwrap()
        .contains("coordinated omission"));
    assert!(result["started_unix_s"].as_u64().unwrap() > 0);
    assert!(!result["topics"].as_array().unwrap().is_empty());
    let found = result["phases"].as_array().unwrap();
    let names: Vec<&str> = found.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, phases);
    for phase in found {
        let produce = &phase["produce"];
        assert!(
            produce["acked"].as_u64().unwrap() > 0,
            "nothing acked in {phase}"
        );
        assert!(produce["records_per_s"].as_f64().unwrap() > 0.0);
        assert!(produce["mb_per_s"].as_f64().unwrap() > 0.0);
        check_percentiles(&produce["latency"]);
    }
    let timeline = result["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty());
    for key in [
        "t_s",
        "acked_per_s",
        "acked_mb_per_s",
        "produce_p99_ms",
        "phase",
    ] {
        assert!(timeline[0].get(key).is_some(), "timeline point lacks {key}");
    }
    found
}

/// Asserts a percentile summary is complete and ordered.
pub fn check_percentiles(p: &Value) {
    let keys = [
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p99_9_ms",
        "p99_99_ms",
        "max_ms",
    ];
    let values: Vec<f64> = keys
        .iter()
        .map(|k| {
            p[k].as_f64()
                .unwrap_or_else(|| panic!("{k} missing in {p}"))
        })
        .collect();
    assert!(p["count"].as_u64().unwrap() > 0);
    assert!(values[0] > 0.0);
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {p}"
    );
}
