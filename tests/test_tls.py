"""TLS: an SSL listener beside the plaintext one (Kafka's `listeners`), served to unmodified
clients.

kcat and confluent-kafka (librdkafka, on OpenSSL), kafka-python and aiokafka (Python's ssl)
produce and consume over SSL and are told the SSL listener's address, not the plaintext one. A
client that does not trust the broker's CA, a plaintext client, junk and a silent socket on the
SSL port are refused (and counted) while the broker keeps serving everyone else. With a client
CA, only clients holding a certificate it signed get in. SIGHUP loads a new certificate for new
connections, and a broken one is refused while the current one stays.

Certificates come from the `openssl` command (scripts/test.sh installs it). The tests run with
Debian's clients; those marked `clients` (kafka-python, aiokafka, the librdkafka round trip) run
again with the newest ones.
"""

import asyncio
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka import Producer

from conftest import free_port
from helpers import consume_all, kcat, wait_until

MESSAGES = 50


def openssl(directory, *args):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (apt-get install openssl)")
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


class Authority:
    """A certificate authority in `directory`, issuing P-256 certificates."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        openssl(directory, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={name}")
        self.cert = directory / f"{name}.pem"

    def issue(self, name, san=None):
        """(certificate, key) for `name`; `san` e.g. "IP:127.0.0.1" for a server."""
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
        openssl(self.dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl(self.dir, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{self.name}.pem",
                "-CAkey", f"{self.name}.key", "-CAcreateserial", "-out", f"{name}.pem",
                "-days", "2", "-extfile", ext.name)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"


@pytest.fixture
def pki(tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = Authority(directory, "ca")
    other = Authority(directory, "other-ca")
    server = ca.issue("server", san="IP:127.0.0.1,DNS:localhost")
    return {"dir": directory, "ca": ca, "other": other, "server": server}


def ssl_broker(broker_factory, pki, extra=()):
    """A broker with PLAINTEXT on its usual port and SSL on another; metrics served."""
    broker = broker_factory(start=False)
    broker.ssl_port = free_port()
    broker.metrics_port = free_port()
    cert, key = pki["server"]
    broker.extra_args += [
        "--listeners", f"PLAINTEXT://127.0.0.1:{broker.port},SSL://127.0.0.1:{broker.ssl_port}",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--metrics-listen", f"127.0.0.1:{broker.metrics_port}",
        *[str(a) for a in extra],
    ]
    broker.ssl_bootstrap = f"127.0.0.1:{broker.ssl_port}"
    return broker.start()


def ssl_conf(ca, cert=None):
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(ca)}
    if cert is not None:
        conf["ssl.certificate.location"] = str(cert[0])
        conf["ssl.key.location"] = str(cert[1])
    return conf


def kcat_conf(conf):
    return [arg for k, v in conf.items() for arg in ("-X", f"{k}={v}")]


def kcat_fails(*args, timeout=30):
    """kcat's stderr, asserting that it failed."""
    proc = subprocess.run(["kcat", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    assert proc.returncode != 0, f"kcat {' '.join(args)} succeeded: {proc.stdout[-500:]!r}"
    return proc.stderr.decode(errors="replace")


def metric(broker, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics",
                                timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def produce_and_read_back(bootstrap, conf, topic):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, **conf})
    failures = []
    for i in range(MESSAGES):
        producer.produce(topic, value=f"{topic}-{i}".encode(),
                         on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(60) == 0 and not failures, failures[:3]
    records = consume_all(bootstrap, topic, 1, timeout=60, conf=conf)
    return [r.value.decode() for r in records[0]]


@pytest.mark.clients
def test_librdkafka_clients_produce_and_consume_over_ssl_and_are_told_its_address(
        broker_factory, pki):
    broker = ssl_broker(broker_factory, pki)
    conf = ssl_conf(pki["ca"].cert)
    listing = kcat("-b", broker.ssl_bootstrap, *kcat_conf(conf), "-L").stdout.decode()
    assert f"at {broker.ssl_bootstrap}" in listing, listing
    listing = kcat("-b", broker.bootstrap, "-L").stdout.decode()
    assert f"at {broker.bootstrap}" in listing, listing

    values = produce_and_read_back(broker.ssl_bootstrap, conf, "over-tls")
    assert values == [f"over-tls-{i}" for i in range(MESSAGES)]
    # The same log through the plaintext listener.
    plain = consume_all(broker.bootstrap, "over-tls", 1, timeout=60)
    assert [r.value.decode() for r in plain[0]] == values

    kcat("-b", broker.ssl_bootstrap, *kcat_conf(conf), "-P", "-t", "kcat-tls",
         stdin=b"one\ntwo\n")
    out = kcat("-b", broker.ssl_bootstrap, *kcat_conf(conf), "-C", "-t", "kcat-tls",
               "-o", "beginning", "-e").stdout
    assert out.split() == [b"one", b"two"]


@pytest.mark.clients
def test_kafka_python_produces_and_consumes_over_ssl(broker_factory, pki):
    kafka = pytest.importorskip("kafka", minversion="3.0")
    broker = ssl_broker(broker_factory, pki)
    ca = str(pki["ca"].cert)
    producer = kafka.KafkaProducer(bootstrap_servers=broker.ssl_bootstrap,
                                   security_protocol="SSL", ssl_cafile=ca, acks="all")
    for i in range(MESSAGES):
        producer.send("kafka-python-tls", f"m-{i}".encode())
    producer.flush(60)
    producer.close()
    consumer = kafka.KafkaConsumer("kafka-python-tls", bootstrap_servers=broker.ssl_bootstrap,
                                   security_protocol="SSL", ssl_cafile=ca,
                                   auto_offset_reset="earliest", consumer_timeout_ms=15000,
                                   group_id=None)
    got = [m.value.decode() for m in consumer]
    consumer.close()
    assert got == [f"m-{i}" for i in range(MESSAGES)]


@pytest.mark.clients
def test_aiokafka_produces_and_consumes_over_ssl(broker_factory, pki):
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.helpers import create_ssl_context

    broker = ssl_broker(broker_factory, pki)

    async def run():
        context = create_ssl_context(cafile=str(pki["ca"].cert))
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.ssl_bootstrap,
                                             security_protocol="SSL", ssl_context=context,
                                             acks="all")
        await producer.start()
        try:
            for i in range(MESSAGES):
                await producer.send_and_wait("aiokafka-tls", f"a-{i}".encode())
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer("aiokafka-tls",
                                             bootstrap_servers=broker.ssl_bootstrap,
                                             security_protocol="SSL", ssl_context=context,
                                             auto_offset_reset="earliest")
        await consumer.start()
        got = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < MESSAGES and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                got += [m.value.decode() for msgs in batches.values() for m in msgs]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [f"a-{i}" for i in range(MESSAGES)]


def test_refused_and_silent_connections_to_the_ssl_port_do_not_disturb_the_broker(
        broker_factory, pki):
    broker = ssl_broker(broker_factory, pki, extra=["--request-read-timeout-ms", "1000"])
    conf = ssl_conf(pki["ca"].cert)
    # A client that trusts another CA, and a plaintext client on the SSL port.
    err = kcat_fails("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(pki["other"].cert)),
                     "-L", "-m", "2")
    assert "certificate verify failed" in err, err
    kcat_fails("-b", broker.ssl_bootstrap, "-L", "-m", "2")
    # Junk, a Kafka frame in the clear, and sockets closed at once.
    api_versions = b"\x00\x00\x00\x0e" + b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04junk"
    for i in range(300):
        with socket.create_connection(("127.0.0.1", broker.ssl_port), timeout=5) as s:
            if i % 3 == 0:
                s.sendall(b"\x16\x03\x01\xff\xff" + bytes(range(256)) * 4)
            elif i % 3 == 1:
                s.sendall(api_versions)
    # A socket that never speaks is closed once request_read_timeout_ms has passed.
    with socket.create_connection(("127.0.0.1", broker.ssl_port), timeout=10) as silent:
        started = time.monotonic()
        try:
            assert silent.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 8
    wait_until(lambda: metric(broker, "hotwire_tls_handshake_failures_total") >= 302, 20,
               "the refused handshakes counted")
    # Everyone else is still served, on both listeners.
    assert produce_and_read_back(broker.ssl_bootstrap, conf, "after-junk") == \
        [f"after-junk-{i}" for i in range(MESSAGES)]
    assert broker.running()
    kcat("-b", broker.bootstrap, "-L")


def test_with_a_client_ca_only_clients_holding_its_certificates_get_in(broker_factory, pki):
    ca, other = pki["ca"], pki["other"]
    broker = ssl_broker(broker_factory, pki, extra=["--tls-client-ca-file", ca.cert])
    client = ca.issue("client")
    stranger = other.issue("stranger")
    kcat_fails("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(ca.cert)), "-L", "-m", "2")
    kcat_fails("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(ca.cert, stranger)),
               "-L", "-m", "2")
    conf = ssl_conf(ca.cert, client)
    assert produce_and_read_back(broker.ssl_bootstrap, conf, "mtls") == \
        [f"mtls-{i}" for i in range(MESSAGES)]


def test_sighup_reloads_the_certificate_for_new_connections(broker_factory, pki):
    ca, other = pki["ca"], pki["other"]
    broker = ssl_broker(broker_factory, pki)
    kcat("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(ca.cert)), "-L")
    # The operator replaces the files with a certificate from another CA and signals.
    cert, key = pki["server"]
    renewed_cert, renewed_key = other.issue("renewed", san="IP:127.0.0.1")
    shutil.copy(renewed_cert, cert)
    shutil.copy(renewed_key, key)
    broker.proc.send_signal(1)  # SIGHUP
    wait_until(lambda: "TLS certificate and key reloaded" in broker.log_path.read_text(), 10,
               "the reload logged")
    kcat("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(other.cert)), "-L")
    kcat_fails("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(ca.cert)), "-L", "-m", "2")
    # A broken file is refused at the next SIGHUP; the current certificate stays.
    key.write_text("not a key\n")
    broker.proc.send_signal(1)
    wait_until(lambda: "TLS not reloaded" in broker.log_path.read_text(), 10,
               "the failed reload logged")
    assert broker.running()
    kcat("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(other.cert)), "-L")
