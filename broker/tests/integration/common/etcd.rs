//! A throwaway etcd server on loopback for the cluster tests (Debian's `etcd-server`, which
//! the test command installs).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd member with its own data directory, killed when dropped.
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client: SocketAddr,
    peer: SocketAddr,
}

impl EtcdServer {
    /// Starts etcd with a 500 ms election timeout, so that leases of 1 s are allowed (etcd's
    /// shortest TTL is 1.5 election timeouts), and waits until it answers.
    pub fn start() -> Self {
        let mut server = Self {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            client: super::free_port(),
            peer: super::free_port(),
        };
        server.launch();
        server
    }

    /// The client URL (`http://127.0.0.1:port`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// A `--cluster` URL for the cluster `name` on this server.
    pub fn cluster_url(&self, name: &str) -> String {
        format!("etcd://{}/{name}", self.client)
    }

    /// Kills etcd at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        let bin = std::env::var("HOTWIRE_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let client = format!("http://{}", self.client);
        let peer = format!("http://{}", self.peer);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new(&bin)
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--election-timeout", "500", "--heartbeat-interval", "50"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {bin} ({e}): the cluster tests need etcd (Debian etcd-server, \
                     installed by scripts/test.sh; or set HOTWIRE_ETCD_BIN)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ready = std::net::TcpStream::connect(self.client)
                .and_then(|mut s| {
                    use std::io::{Read, Write};
                    s.set_read_timeout(Some(Duration::from_secs(1)))?;
                    s.write_all(b"GET /health HTTP/1.0\r\n\r\n")?;
                    let mut answer = String::new();
                    s.read_to_string(&mut answer)?;
                    Ok(answer.contains("\"health\":\"true\""))
                })
                .unwrap_or(false);
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy in 20 s");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
