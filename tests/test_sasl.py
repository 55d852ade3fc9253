"""SASL: SASL_PLAINTEXT and SASL_SSL listeners (beside a plaintext one) with PLAIN and
SCRAM-SHA-256/512, users managed with `hotwire users`, served to unmodified clients.

kcat and confluent-kafka (librdkafka), kafka-python and aiokafka authenticate with each
mechanism they have, then produce and consume. Wrong passwords, unknown users and clients that
skip authentication are refused with Kafka's errors; 1,000 failed logins leave the broker
serving (counted in hotwire_sasl_authentication_failures_total), and no password reaches the
log. A user deleted or given a new password is judged by that at the next login.

The librdkafka tests run with Debian's clients; those marked `clients` (kafka-python, aiokafka,
one librdkafka case) run again with the newest ones.
"""

import asyncio
import os
import socket
import struct
import subprocess
import threading
import time

import pytest
from conftest import free_port
from helpers import kcat, wait_until
from test_tls import MESSAGES, Authority, kcat_conf, kcat_fails, metric, produce_and_read_back

PASSWORD = "alice-secret-Pa55"
ADMIN_PASSWORD = "admin-secret-Pa55"


def users(broker, *args, password=None):
    """Runs `hotwire users` against the broker's storage; its output."""
    env = dict(os.environ)
    if password is not None:
        env["HOTWIRE_USER_PASSWORD"] = password
    proc = subprocess.run([broker.binary, "users", "--storage", broker.storage_url, *args],
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.fixture
def sasl_broker(broker_factory, tmp_path):
    """A broker with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners, and user alice."""
    return start_sasl_broker(broker_factory, tmp_path)


def start_sasl_broker(broker_factory, tmp_path, extra_args=()):
    """A broker with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners, users alice and admin
    (a super user), and `extra_args`."""
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = Authority(pki, "ca")
    cert, key = ca.issue("server", san="IP:127.0.0.1")
    broker = broker_factory(start=False)
    broker.sasl_port, broker.sasl_ssl_port, broker.metrics_port = free_port(), free_port(), free_port()
    broker.extra_args += [
        "--listeners",
        f"PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{broker.sasl_port},"
        f"SASL_SSL://127.0.0.1:{broker.sasl_ssl_port}",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--metrics-listen", f"127.0.0.1:{broker.metrics_port}",
        "--super-users", "User:admin",
        *extra_args,
    ]
    broker.ca = ca.cert
    broker.sasl = f"127.0.0.1:{broker.sasl_port}"
    broker.sasl_ssl = f"127.0.0.1:{broker.sasl_ssl_port}"
    assert "SCRAM-SHA-256, SCRAM-SHA-512 set" in users(broker, "set", "alice", password=PASSWORD)
    users(broker, "set", "admin", "--mechanism", "SCRAM-SHA-512", password=ADMIN_PASSWORD)
    return broker.start()


def sasl_conf(broker, mechanism, user="alice", password=PASSWORD, tls=True):
    conf = {"security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}
    if tls:
        conf["ssl.ca.location"] = str(broker.ca)
    return conf


@pytest.mark.parametrize("mechanism,tls", [
    ("PLAIN", False), ("SCRAM-SHA-256", True), ("SCRAM-SHA-512", False),
    pytest.param("SCRAM-SHA-512", True, marks=pytest.mark.clients)])
def test_librdkafka_authenticates_then_produces_and_consumes(sasl_broker, mechanism, tls):
    broker = sasl_broker
    bootstrap = broker.sasl_ssl if tls else broker.sasl
    conf = sasl_conf(broker, mechanism, tls=tls)
    topic = f"sasl-{mechanism.lower()}-{tls}"
    assert produce_and_read_back(bootstrap, conf, topic) == \
        [f"{topic}-{i}" for i in range(MESSAGES)]
    listing = kcat("-b", bootstrap, *kcat_conf(conf), "-L").stdout.decode()
    assert f"at {bootstrap}" in listing, listing


@pytest.mark.clients
def test_kafka_python_authenticates_with_scram_over_tls(sasl_broker):
    kafka = pytest.importorskip("kafka", minversion="3.0")
    broker = sasl_broker
    auth = dict(bootstrap_servers=broker.sasl_ssl, security_protocol="SASL_SSL",
                ssl_cafile=str(broker.ca), sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username="alice", sasl_plain_password=PASSWORD)
    producer = kafka.KafkaProducer(acks="all", **auth)
    for i in range(MESSAGES):
        producer.send("kafka-python-sasl", f"k-{i}".encode())
    producer.flush(60)
    producer.close()
    consumer = kafka.KafkaConsumer("kafka-python-sasl", auto_offset_reset="earliest",
                                   consumer_timeout_ms=15000, group_id=None, **auth)
    got = []
    for m in consumer:  # ends after 15 s without a record, or once all are read
        got.append(m.value.decode())
        if len(got) == MESSAGES:
            break
    consumer.close()
    assert got == [f"k-{i}" for i in range(MESSAGES)]
    bad = dict(auth, sasl_plain_password="wrong")
    with pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaProducer(**bad).close()


@pytest.mark.clients
def test_aiokafka_authenticates_with_scram_over_tls(sasl_broker):
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.helpers import create_ssl_context

    broker = sasl_broker

    async def run():
        auth = dict(bootstrap_servers=broker.sasl_ssl, security_protocol="SASL_SSL",
                    ssl_context=create_ssl_context(cafile=str(broker.ca)),
                    sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                    sasl_plain_password=PASSWORD)
        producer = aiokafka.AIOKafkaProducer(acks="all", **auth)
        await producer.start()
        try:
            for i in range(MESSAGES):
                await producer.send_and_wait("aiokafka-sasl", f"a-{i}".encode())
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer("aiokafka-sasl", auto_offset_reset="earliest",
                                             **auth)
        await consumer.start()
        got = []
        try:
            while len(got) < MESSAGES:
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                got += [m.value.decode() for msgs in batches.values() for m in msgs]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [f"a-{i}" for i in range(MESSAGES)]


def test_wrong_passwords_unknown_users_and_unauthenticated_clients_are_refused(sasl_broker):
    broker = sasl_broker
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        for user, password in (("alice", "wrong"), ("mallory", PASSWORD)):
            err = kcat_fails("-b", broker.sasl_ssl,
                             *kcat_conf(sasl_conf(broker, mechanism, user, password)),
                             "-L", "-m", "2")
            assert "Authentication failed" in err, f"{mechanism} {user}: {err}"
    # A client that does not authenticate gets nothing from the SASL listener.
    kcat_fails("-b", broker.sasl, "-L", "-m", "3")
    # Users are judged at each login: a new password counts at once, a deleted user is out.
    users(broker, "set", "alice", "--mechanism", "SCRAM-SHA-256", password="new-Pa55")
    kcat("-b", broker.sasl, *kcat_conf(sasl_conf(broker, "SCRAM-SHA-256", password="new-Pa55",
                                                 tls=False)), "-L")
    kcat_fails("-b", broker.sasl, *kcat_conf(sasl_conf(broker, "SCRAM-SHA-256", tls=False)),
               "-L", "-m", "2")
    assert users(broker, "list").splitlines() == [
        "admin SCRAM-SHA-512 iterations=8192", "alice SCRAM-SHA-256 iterations=8192",
        "alice SCRAM-SHA-512 iterations=8192"]
    users(broker, "delete", "alice")
    kcat_fails("-b", broker.sasl, *kcat_conf(sasl_conf(broker, "SCRAM-SHA-512", tls=False)),
               "-L", "-m", "2")
    assert users(broker, "list").splitlines() == ["admin SCRAM-SHA-512 iterations=8192"]


def frame(api_key, version, correlation, body):
    header = struct.pack(">hhih", api_key, version, correlation, 6) + b"attack"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    (size,) = struct.unpack(">i", exactly(4))
    return exactly(size)


def failed_plain_login(port, i):
    """SaslHandshake v1 (PLAIN), then SaslAuthenticate v0 with a wrong password: the error
    code answered, and whether the broker then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame(17, 1, 1, struct.pack(">h", 5) + b"PLAIN"))
        assert struct.unpack(">ih", read_frame(s)[:6]) == (1, 0)
        token = b"\x00alice\x00guess-%d" % i
        s.sendall(frame(36, 0, 2, struct.pack(">i", len(token)) + token))
        correlation, error = struct.unpack(">ih", read_frame(s)[:6])
        assert correlation == 2
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:
            closed = True
        return error, closed


def test_a_thousand_failed_logins_leave_the_broker_serving(sasl_broker):
    broker = sasl_broker
    results = []
    lock = threading.Lock()

    def worker(start):
        for i in range(start, 1000, 25):
            outcome = failed_plain_login(broker.sasl_port, i)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 1000
    assert set(results) == {(58, True)}, set(results)  # SASL_AUTHENTICATION_FAILED, closed
    assert metric(broker, "hotwire_sasl_authentication_failures_total") == 1000
    # Everyone else is still served; no password reached the log.
    conf = sasl_conf(broker, "SCRAM-SHA-256")
    assert produce_and_read_back(broker.sasl_ssl, conf, "after-attack") == \
        [f"after-attack-{i}" for i in range(MESSAGES)]
    assert metric(broker, "hotwire_sasl_authentications_total") >= 1
    log = broker.log_path.read_text()
    assert PASSWORD not in log and "guess-" not in log


@pytest.mark.clients
def test_super_users_manage_users_with_the_admin_api(sasl_broker):
    """AlterUserScramCredentials and DescribeUserScramCredentials from confluent-kafka's
    AdminClient: a super user adds, describes and deletes bob (who logs in between); alice, who
    is not one, is refused."""
    from confluent_kafka.admin import AdminClient
    if not hasattr(AdminClient, "alter_user_scram_credentials"):
        pytest.skip("this confluent-kafka has no SCRAM admin API (2.2 and later have)")
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)
    broker = sasl_broker
    admin = AdminClient({"bootstrap.servers": broker.sasl_ssl,
                         **sasl_conf(broker, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD)})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    upsert = UserScramCredentialUpsertion("bob", info, b"bob-Pa55")
    admin.alter_user_scram_credentials([upsert])["bob"].result(30)
    kcat("-b", broker.sasl, *kcat_conf(sasl_conf(broker, "SCRAM-SHA-256", "bob", "bob-Pa55",
                                                 tls=False)), "-L")
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(30)
    assert [(c.mechanism, c.iterations) for c in described.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_256, 4096)]

    alice = AdminClient({"bootstrap.servers": broker.sasl_ssl,
                         **sasl_conf(broker, "SCRAM-SHA-512")})
    with pytest.raises(Exception, match="CLUSTER_AUTHORIZATION_FAILED|super_users"):
        alice.alter_user_scram_credentials([upsert])["bob"].result(30)

    deletion = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)
    admin.alter_user_scram_credentials([deletion])["bob"].result(30)
    kcat_fails("-b", broker.sasl, *kcat_conf(sasl_conf(broker, "SCRAM-SHA-256", "bob",
                                                       "bob-Pa55", tls=False)), "-L", "-m", "2")
    with pytest.raises(Exception, match="RESOURCE_NOT_FOUND|no credentials"):
        admin.describe_user_scram_credentials(["bob"])["bob"].result(30)


@pytest.mark.clients
def test_sessions_with_a_lifetime_are_renewed_or_reconnected_without_losing_a_record(
        broker_factory, tmp_path):
    """--connections-max-reauth-ms 3000: librdkafka 2.2 and newer re-authenticate on their
    connections (KIP-368); older ones (Debian's 2.0.2) ignore the lifetime, are closed at their
    first request after it, and reconnect. Either way a producer sending for 7 s and a group
    consumer reading along lose nothing and see no error."""
    from confluent_kafka import Consumer, Producer, libversion
    broker = start_sasl_broker(broker_factory, tmp_path, ["--connections-max-reauth-ms", "3000"])
    conf = sasl_conf(broker, "SCRAM-SHA-256", tls=False)
    topic = "renewed-sessions"
    producer = Producer({"bootstrap.servers": broker.sasl, "acks": "all", "linger.ms": 5, **conf})
    failures, received = [], []
    # The topic exists before the consumer subscribes (else it is told UNKNOWN_TOPIC_OR_PART).
    producer.produce(topic, value=b"0", on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(30) == 0 and not failures, failures
    sent = 1
    consumer = Consumer({"bootstrap.servers": broker.sasl, "group.id": "renewed",
                         "auto.offset.reset": "earliest", **conf})
    consumer.subscribe([topic])
    deadline = time.time() + 7
    while time.time() < deadline:
        producer.produce(topic, value=str(sent).encode(),
                         on_delivery=lambda err, _msg: err and failures.append(err))
        sent += 1
        producer.poll(0)
        message = consumer.poll(0.05)
        if message is not None:
            assert message.error() is None, message.error()
            received.append(int(message.value()))
    assert producer.flush(60) == 0 and not failures, failures[:3]
    wait_until(lambda: _drain(consumer, received) >= sent, timeout=60,
               what=f"the consumer to read all {sent} records")
    consumer.close()
    assert received == list(range(sent))

    reauthenticated = metric(broker, "hotwire_sasl_reauthentications_total")
    expired = metric(broker, "hotwire_sasl_sessions_expired_total")
    if libversion()[1] >= 0x020200ff:
        assert reauthenticated >= 3 and expired == 0, (reauthenticated, expired)
    else:
        assert expired >= 1, (reauthenticated, expired)


def _drain(consumer, received):
    message = consumer.poll(0.2)
    if message is not None:
        assert message.error() is None, message.error()
        received.append(int(message.value()))
    return len(received)
