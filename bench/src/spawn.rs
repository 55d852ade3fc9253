//! `--spawn-broker`: starts a broker binary (Hotwire's command line) on a free loopback port
//! and a scratch storage directory for the length of a run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::readiness::{answers_kafka, loopback_port};

/// How long the broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker process, killed when dropped.
pub struct SpawnedBroker {
    child: Child,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    log: PathBuf,
    /// Holds the scratch directory (removed on drop) unless the user named one.
    _scratch: Option<tempfile::TempDir>,
}

impl SpawnedBroker {
    /// Starts `binary --listen 127.0.0.1:PORT --storage fs://DIR ARGS...`, where DIR is
    /// `storage` or a new temporary directory, and waits until it answers Kafka requests. The
    /// broker's output goes to `broker.log` beside the data.
    pub fn start(binary: &Path, storage: Option<&Path>, args: &[String]) -> Result<SpawnedBroker> {
        let (scratch, dir) = match storage {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(BenchError::io(format!("creating {}", dir.display())))?;
                (None, dir.to_path_buf())
            }
            None => {
                let scratch = tempfile::Builder::new()
                    .prefix("hotwire-bench-broker-")
                    .tempdir()
                    .map_err(BenchError::io("creating a scratch storage directory"))?;
                let dir = scratch.path().to_path_buf();
                (Some(scratch), dir)
            }
        };
        let dir = dir
            .canonicalize()
            .map_err(BenchError::io(format!("resolving {}", dir.display())))?;
        let data = dir.join("data");
        let log = dir.join("broker.log");
        let log_file = std::fs::File::create(&log)
            .map_err(BenchError::io(format!("creating {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(BenchError::io("duplicating the broker log handle"))?;
        let addr = free_port()?;
        // A metrics endpoint for the per-client fetch counters, unless the caller chose one.
        let (metrics, metrics_flag) = match given_metrics_listen(args) {
            Some(given) => (given, Vec::new()),
            None => {
                let metrics = free_port()?;
                let flag = vec!["--metrics-listen".to_string(), metrics.to_string()];
                (Some(metrics), flag)
            }
        };
        let child = Command::new(binary)
            .args(["--listen", &addr.to_string()])
            .args(["--storage", &format!("fs://{}", data.display())])
            .args(&metrics_flag)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(BenchError::io(format!("starting {}", binary.display())))?;
        let mut broker = SpawnedBroker {
            child,
            addr,
            metrics,
            log,
            _scratch: scratch,
        };
        broker.wait_ready()?;
        tracing::info!(
            "started {} on {addr}, data in {}",
            binary.display(),
            data.display()
        );
        Ok(broker)
    }

    /// The `host:port` to bootstrap from.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Its Prometheus endpoint (`--metrics-listen`), if known.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics.map(|addr| format!("http://{addr}/metrics"))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Broker(format!(
                    "the spawned broker exited ({status}) before listening; its log:\n{}",
                    self.log_tail()
                )));
            }
            if answers_kafka(self.addr, Duration::from_millis(500)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Broker(format!(
                    "the spawned broker did not answer Kafka requests on {} within {}s; its log:\n{}",
                    self.addr,
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port nobody uses right now.
fn free_port() -> Result<SocketAddr> {
    loopback_port().map_err(BenchError::io("finding a free port"))
}

/// The address of a `--metrics-listen` among `args` (`Some(None)`: given, but unparsable).
fn given_metrics_listen(args: &[String]) -> Option<Option<SocketAddr>> {
    let at = args
        .iter()
        .position(|a| a == "--metrics-listen" || a.starts_with("--metrics-listen="))?;
    let value = match args[at].split_once('=') {
        Some((_, value)) => Some(value),
        None => args.get(at + 1).map(String::as_str),
    };
    Some(value.and_then(|v| v.parse().ok()))
}
