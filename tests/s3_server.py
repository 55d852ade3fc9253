"""A real S3-compatible server for the storage tests: Garage, single node, on 127.0.0.1.

scripts/install-garage.sh builds the binary (cached outside the clone); scripts/test.sh passes
its path in HOTWIRE_GARAGE_BIN. Garage runs with data and metadata fsync on, as a production
single-node store would, and creates one bucket and key at start (`--default-bucket`).
"""

import os
import secrets
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

START_TIMEOUT_S = 30.0
REGION = "garage"
BUCKET = "hotwire"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            # A connect to a free ephemeral port can meet itself (TCP simultaneous open).
            return s.getsockname() != s.getpeername()
    except OSError:
        return False


class Garage:
    """One Garage process; `env()` gives the credentials a broker needs, `storage_url(prefix)`
    a storage URL under the shared bucket."""

    def __init__(self, binary, workdir, preexec_fn=None):
        self.binary = str(binary)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "garage.log"
        self.config_path = self.workdir / "garage.toml"
        self.s3_port = _free_port()
        self.rpc_port = _free_port()
        self.access_key = "GK" + secrets.token_hex(12)
        self.secret_key = secrets.token_hex(32)
        self.preexec_fn = preexec_fn
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def storage_url(self, prefix):
        return f"s3://{BUCKET}/{prefix}?endpoint={self.endpoint}&region={REGION}"

    def env(self):
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def _write_config(self):
        self.config_path.write_text(f"""
metadata_dir = "{self.workdir / 'meta'}"
data_dir = "{self.workdir / 'data'}"
db_engine = "sqlite"
replication_factor = 1
metadata_fsync = true
data_fsync = true
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{secrets.token_hex(32)}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{self.s3_port}"
root_domain = ".s3.garage.localhost"
""")

    def start(self):
        if self.proc is None:
            self._write_config()
        env = dict(os.environ,
                   GARAGE_DEFAULT_ACCESS_KEY=self.access_key,
                   GARAGE_DEFAULT_SECRET_KEY=self.secret_key,
                   GARAGE_DEFAULT_BUCKET=BUCKET,
                   RUST_LOG=os.environ.get("GARAGE_LOG", "warn"))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path), "server", "--single-node",
                 "--default-bucket"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(self.s3_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"garage exited with code {self.proc.returncode}\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"garage did not listen on {self.endpoint}\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM and wait (the S3 port closes: an outage as a client sees it)."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def list_objects(self, prefix):
        """{key: (size, etag)} of the bucket's objects under `prefix`, as the S3 API lists them
        (ListObjectsV2 signed with SigV4 by curl; one page of up to 1000 keys)."""
        out = subprocess.run(
            ["curl", "--silent", "--show-error", "--fail", "--max-time", "30",
             "--aws-sigv4", f"aws:amz:{REGION}:s3",
             "--user", f"{self.access_key}:{self.secret_key}",
             # SHA-256 of the empty body, which Garage requires to be stated.
             "--header", "x-amz-content-sha256: "
             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             # Encoded as SigV4 signs it (curl signs the query as written).
             f"{self.endpoint}/{BUCKET}?list-type=2&prefix={quote(prefix, safe='')}"],
            capture_output=True, check=True, timeout=60).stdout
        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        root = ET.fromstring(out)
        return {c.findtext("s3:Key", namespaces=ns):
                (int(c.findtext("s3:Size", namespaces=ns)),
                 c.findtext("s3:ETag", namespaces=ns).strip('"'))
                for c in root.findall("s3:Contents", ns)}

    def log_tail(self, lines=40):
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as e:
            return f"(no garage log: {e})"
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)
