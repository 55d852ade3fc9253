"""Shared fixtures for the Hotwire end-to-end tests.

A test gets a running broker from the `broker` fixture (or several from `broker_factory`).
Each broker runs the real `hotwire` binary ($HOTWIRE_BIN, default target/release/hotwire) on a
free loopback port with its own storage, and writes its log to a file whose tail is attached to
the report of any failing test that used it.

Storage is a local fs:// directory, except in modules marked `backends`: those run once on
fs:// and once on a real S3-compatible server (Garage, started once per session on 127.0.0.1
from $HOTWIRE_GARAGE_BIN, which scripts/test.sh installs), each broker under its own prefix.
"""

import ctypes
import faulthandler
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from s3_server import Garage

REPO_ROOT = Path(__file__).resolve().parent.parent
# No test may run longer than this: the watchdog dumps every thread's stack and exits, and the
# brokers die with pytest (PR_SET_PDEATHSIG), so a hang can never stall CI.
TEST_TIMEOUT_S = float(os.environ.get("HOTWIRE_TEST_TIMEOUT_S", "480"))
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 80

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # Runs in the child between fork and exec: kill the broker if pytest dies.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One hotwire process; restartable on the same port and storage."""

    def __init__(self, binary, workdir, extra_args=(), env=None, storage=None):
        self.binary = str(binary)
        self.workdir = Path(workdir)
        self.storage = self.workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "hotwire.log"
        self.port = free_port()
        self.extra_args = [str(a) for a in extra_args]
        storage_env = {}
        if storage is None:
            self.storage_url = f"fs://{self.storage.resolve()}"
        else:
            self.storage_url = storage.storage_url(f"{self.workdir.parent.name}-{uuid.uuid4().hex}")
            storage_env = storage.env()
        self.env = dict(os.environ, **storage_env, **(env or {}))
        self.proc = None
        self.starts = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def argv(self):
        return [
            self.binary,
            "--listen", self.bootstrap,
            "--storage", self.storage_url,
            *self.extra_args,
        ]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        assert not self.running(), "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"hotwire exited with code {rc} during start-up\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    # A connect to a free ephemeral port can meet itself (TCP simultaneous
                    # open): a connection from the port to itself is not the broker listening.
                    if s.getsockname() != s.getpeername():
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(
                    f"hotwire did not accept connections on {self.bootstrap} within "
                    f"{START_TIMEOUT_S:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, and insist on a clean exit (code 0) within `timeout` seconds."""
        assert self.running(), f"broker is not running\n{self.log_tail()}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            pytest.fail(f"hotwire did not exit within {timeout:.0f} s of SIGTERM\n{self.log_tail()}")
        assert rc == 0, f"hotwire exited with code {rc} after SIGTERM\n{self.log_tail()}"

    def kill9(self):
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def restart(self):
        """Graceful stop (if running), then start again on the same port and storage."""
        if self.running():
            self.stop()
        return self.start()

    def cpu_seconds(self):
        """User + system CPU time the broker process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no broker log: {e})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)


class BrokerFactory:
    def __init__(self, binary, base_dir, storage=None):
        self.binary = binary
        self.base_dir = Path(base_dir)
        self.storage = storage
        self.brokers = []

    def __call__(self, extra_args=(), env=None, start=True):
        workdir = self.base_dir / f"broker{len(self.brokers)}"
        broker = Broker(self.binary, workdir, extra_args=extra_args, env=env,
                        storage=self.storage)
        self.brokers.append(broker)
        return broker.start() if start else broker

    def cleanup(self):
        for broker in self.brokers:
            broker.kill9()


@pytest.fixture(scope="session")
def hotwire_bin():
    binary = Path(os.environ.get("HOTWIRE_BIN", REPO_ROOT / "target" / "release" / "hotwire"))
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"hotwire binary not found at {binary}: build it (cargo build --release) "
                    "or set HOTWIRE_BIN")
    return binary.resolve()


# ---------------------------------------------------------------------------------------------
# Storage backends: fs:// everywhere; fs:// and S3 (Garage) in modules marked `backends`.


def pytest_generate_tests(metafunc):
    if "storage_kind" in metafunc.fixturenames:
        kinds = ["fs", "s3"] if metafunc.definition.get_closest_marker("backends") else ["fs"]
        metafunc.parametrize("storage_kind", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def storage_kind(request):
    return request.param


@pytest.fixture(scope="session")
def garage(tmp_path_factory):
    """The session's Garage server (started on first use)."""
    binary = os.environ.get("HOTWIRE_GARAGE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("HOTWIRE_GARAGE_BIN must name a Garage binary for the S3 storage tests: "
                    "scripts/install-garage.sh builds one (scripts/test.sh sets this)")
    server = Garage(binary, tmp_path_factory.mktemp("garage"), preexec_fn=_die_with_parent)
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def storage_backend(storage_kind, request):
    """None for fs:// (each broker's own directory), else the S3 server brokers store in."""
    return request.getfixturevalue("garage") if storage_kind == "s3" else None


@pytest.fixture
def broker_factory(hotwire_bin, tmp_path, storage_backend):
    factory = BrokerFactory(hotwire_bin, tmp_path, storage=storage_backend)
    yield factory
    factory.cleanup()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture(scope="module")
def module_broker(hotwire_bin, tmp_path_factory, storage_backend):
    """One broker shared by every test of a module (each test uses its own topics)."""
    factory = BrokerFactory(hotwire_bin, tmp_path_factory.mktemp("hotwire"),
                            storage=storage_backend)
    yield factory()
    factory.cleanup()


# Group coordinator settings that keep group tests fast: no initial rebalance delay, and a
# minimum session timeout low enough for a crashed member to expire in a few seconds.
GROUP_BROKER_ARGS = ("--group-min-session-timeout-ms", "1000",
                     "--group-initial-rebalance-delay-ms", "0")


@pytest.fixture
def group_broker(broker_factory):
    """A broker of this test alone (restart or kill it freely) with GROUP_BROKER_ARGS."""
    return broker_factory(extra_args=GROUP_BROKER_ARGS)


@pytest.fixture(scope="module")
def module_group_broker(hotwire_bin, tmp_path_factory, storage_backend):
    """One broker with GROUP_BROKER_ARGS shared by a module (each test uses its own topics and
    groups, and never restarts it)."""
    factory = BrokerFactory(hotwire_bin, tmp_path_factory.mktemp("hotwire"),
                            storage=storage_backend)
    yield factory(extra_args=GROUP_BROKER_ARGS)
    factory.cleanup()


# ---------------------------------------------------------------------------------------------
# Client versions: the same modules run under Debian's python3-confluent-kafka (librdkafka 2.0.x)
# and under the venv of scripts/test.sh (newest librdkafka, kafka-python, aiokafka).


def _client_versions():
    versions = {}
    try:
        import confluent_kafka
        versions["confluent-kafka"] = confluent_kafka.version()[0]
        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    for module, name in (("kafka", "kafka-python"), ("aiokafka", "aiokafka")):
        try:
            versions[name] = __import__(module).__version__
        except ImportError:
            pass
    return versions


CLIENT_VERSIONS = _client_versions()


def pytest_report_header(config):
    found = ", ".join(f"{k} {v}" for k, v in CLIENT_VERSIONS.items()) or "none"
    return f"kafka clients: {found}"


@pytest.fixture(params=[CLIENT_VERSIONS.get("librdkafka", "none")],
                ids=lambda v: f"librdkafka-{v}")
def librdkafka(request):
    """The librdkafka version under test, as a parameter so that it shows in the test ids of
    modules that use it (pytestmark = pytest.mark.usefixtures("librdkafka"))."""
    return request.param


_WATCHDOG_FD = []


def pytest_configure(config):
    # The watchdog must write to the real stderr: output captured by pytest is lost when it
    # exits the process. The capture plugin keeps a copy of the original fd 2.
    capman = config.pluginmanager.getplugin("capturemanager")
    err = getattr(getattr(capman, "_global_capturing", None), "err", None)
    saved = getattr(err, "targetfd_save", None)
    _WATCHDOG_FD.append(os.dup(saved if saved is not None else 2))


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True, file=_WATCHDOG_FD[0])
    yield
    faulthandler.cancel_dump_traceback_later()


def _brokers_of(item):
    found = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Broker):
            found.append(value)
        elif isinstance(value, BrokerFactory):
            found.extend(value.brokers)
        elif isinstance(getattr(value, "brokers", None), list):
            # A cluster (tests/cluster.py): every broker's log.
            found.extend(b for b in value.brokers if isinstance(b, Broker))
    return list({id(b): b for b in found}.values())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in _brokers_of(item):
            report.sections.append((f"hotwire log ({broker.log_path})", broker.log_tail()))
