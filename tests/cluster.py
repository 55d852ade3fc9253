"""A Hotwire cluster on loopback for the end-to-end tests: one etcd and several brokers sharing
one storage root (an fs:// directory, or a prefix on the session's S3 server).

Brokers run with a 1 s etcd lease (etcd started with a 500 ms election timeout, which allows
it) and read the cluster every 50 ms, so that a failover takes about a second or two.
"""

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from conftest import Broker, _die_with_parent, free_port
from confluent_kafka.admin import AdminClient


class Etcd:
    """One etcd member with its own data directory on loopback."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc = None
        self.binary = os.environ.get("HOTWIRE_ETCD_BIN") or shutil.which("etcd")
        if not self.binary:
            raise RuntimeError("etcd not found: the cluster tests need Debian's etcd-server "
                               "(scripts/test.sh installs it) or HOTWIRE_ETCD_BIN")

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    def start(self):
        client = f"http://{self.endpoint}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.workdir / "etcd.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--name", "e2e", "--data-dir", str(self.workdir / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"e2e={peer}",
             "--election-timeout", "500", "--heartbeat-interval", "50"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 20
        import urllib.request
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                    if b'"health":"true"' in r.read():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("etcd did not become healthy in 20 s")

    def range(self, prefix):
        """{key: value} of every key under `prefix` (etcd's JSON gateway)."""
        import base64
        import json
        import urllib.request
        raw = prefix.encode()
        end = raw[:-1] + bytes([raw[-1] + 1])
        body = json.dumps({"key": base64.b64encode(raw).decode(),
                           "range_end": base64.b64encode(end).decode()}).encode()
        request = urllib.request.Request(f"http://{self.endpoint}/v3/kv/range", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            kvs = json.loads(r.read()).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"]))
                for kv in kvs}

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class ClusterBroker(Broker):
    """A broker of the cluster: shared storage, its own node id."""

    def __init__(self, binary, workdir, node_id, storage_url, env, cluster_args):
        super().__init__(binary, workdir, extra_args=cluster_args, env=env)
        self.node_id = node_id
        self.storage_url = storage_url
        self.extra_args = ["--node-id", str(node_id), *cluster_args]

    def pause(self):
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)


class Cluster:
    """etcd plus `size` brokers on one storage root."""

    def __init__(self, binary, base_dir, storage=None, size=3, shards=8, lease_s=1,
                 extra_args=(), per_broker_args=None):
        self.base_dir = Path(base_dir)
        self.etcd = Etcd(self.base_dir / "etcd").start()
        name = f"c{uuid.uuid4().hex[:8]}"
        if storage is None:
            root = self.base_dir / "shared-storage"
            root.mkdir(parents=True, exist_ok=True)
            storage_url, env = f"fs://{root.resolve()}", {}
        else:
            storage_url, env = storage.storage_url(name), storage.env()
        args = ["--cluster", f"etcd://{self.etcd.endpoint}/{name}",
                "--cluster-shards", str(shards), "--cluster-lease-s", str(lease_s),
                "--cluster-poll-ms", "50",
                "--group-min-session-timeout-ms", "1000",
                "--group-initial-rebalance-delay-ms", "0",
                *[str(a) for a in extra_args]]
        own = per_broker_args or [[] for _ in range(size)]
        self.brokers = [
            ClusterBroker(binary, self.base_dir / f"node{n}", n, storage_url, env,
                          [*args, *own[n - 1]])
            for n in range(1, size + 1)
        ]
        self.name = name
        self.shards = shards
        for broker in self.brokers:
            broker.start()
        self.wait_settled()

    def shard_assignments(self):
        """{shard: assignment} as etcd holds them."""
        prefix = f"/hotwire/{self.name}/shards/"
        return {int(k[len(prefix):]): v for k, v in self.etcd.range(prefix).items()}

    def wait_settled(self, timeout=60):
        """Until every shard is led by a running broker, none is moving, and the running brokers
        lead as many shards each, give or take one."""
        def settled():
            shards = self.shard_assignments()
            running = {b.node_id for b in self.brokers if b.running()}
            if len(shards) < self.shards:
                return False
            counts = {n: 0 for n in running}
            for a in shards.values():
                if a.get("moving_to") is not None or a.get("leader") not in running:
                    return False
                counts[a["leader"]] += 1
            return max(counts.values()) - min(counts.values()) <= 1
        deadline = time.monotonic() + timeout
        while not settled():
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not settled after {timeout} s: "
                                     f"{self.shard_assignments()}")
            time.sleep(0.05)

    @property
    def bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers)

    def broker(self, node_id):
        return next(b for b in self.brokers if b.node_id == node_id)

    def live_bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers if b.running())

    def leaders(self, topic, timeout=30):
        """{partition: leader node id} once every partition has a leader."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            admin = AdminClient({"bootstrap.servers": self.live_bootstrap()})
            try:
                md = admin.list_topics(topic, timeout=5)
                t = md.topics.get(topic)
                if t is not None and t.error is None and t.partitions:
                    last = {p.id: p.leader for p in t.partitions.values()}
                    if all(leader >= 0 for leader in last.values()):
                        return last
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = e
            time.sleep(0.1)
        raise AssertionError(f"{topic}: not every partition has a leader within {timeout} s: {last}")

    def wait_topic_everywhere(self, topic, timeout=30):
        """Until every running broker describes `topic` with a leader for each partition: a
        topic is created in etcd and each broker learns of it at its next read of the cluster,
        as Kafka brokers learn of one from the controller; a client asking a broker that has
        not yet would see no topic (and a group consumer would wait for its next metadata
        refresh, minutes later, before it is assigned anything)."""
        deadline = time.monotonic() + timeout
        for broker in [b for b in self.brokers if b.running()]:
            while True:
                admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                try:
                    t = admin.list_topics(topic, timeout=5).topics.get(topic)
                    if t is not None and t.error is None and t.partitions and all(
                            p.leader >= 0 for p in t.partitions.values()):
                        break
                except Exception:  # noqa: BLE001 - retried until the deadline
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic} not known to {broker.bootstrap} in {timeout} s")
                time.sleep(0.05)

    def wait_leader_not(self, topic, partition, node_id, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = self.leaders(topic, timeout=timeout)
            if leaders[partition] != node_id and any(
                    b.node_id == leaders[partition] and b.running() for b in self.brokers):
                return leaders[partition]
            time.sleep(0.05)
        raise AssertionError(f"{topic}[{partition}] still led by {node_id} after {timeout} s")

    def kill(self):
        for broker in self.brokers:
            if broker.running():
                try:
                    broker.resume()
                except OSError:
                    pass
            broker.kill9()
        self.etcd.kill()

    def log_tails(self, lines=40):
        return "\n".join(b.log_tail(lines) for b in self.brokers)
