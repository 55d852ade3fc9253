"""ACLs: CreateAcls, DescribeAcls and DeleteAcls from confluent-kafka's AdminClient, and the
authorizer (`--acl-authorizer true`) applied to unmodified clients over SASL.

alice may write and read one topic (literal) and use the groups whose names start with
`alice-` (prefixed); everything else is refused with Kafka's authorization errors, and
Metadata hides the topics she may not describe. A client that did not authenticate (the
plaintext listener) is `User:ANONYMOUS` and may do nothing. The ACLs survive a restart, and a
deleted one stops counting at once.
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from helpers import consume_all
from test_sasl import ADMIN_PASSWORD, PASSWORD, sasl_conf, start_sasl_broker

# Debian's confluent-kafka (1.7) has no ACL admin API: these run with the newest clients.
pytestmark = pytest.mark.clients
if not hasattr(pytest.importorskip("confluent_kafka.admin"), "AclBinding"):
    pytest.skip("this confluent-kafka has no ACL admin API (1.9 and later have)",
                allow_module_level=True)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,  # noqa: E402
                                   AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType)


@pytest.fixture
def acl_broker(broker_factory, tmp_path):
    return start_sasl_broker(broker_factory, tmp_path, ["--acl-authorizer", "true"])


def admin_client(broker, user="admin", password=ADMIN_PASSWORD):
    conf = sasl_conf(broker, "SCRAM-SHA-512", user, password) if user else {}
    bootstrap = broker.sasl_ssl if user else broker.bootstrap
    return AdminClient({"bootstrap.servers": bootstrap, **conf})


def alice_conf(broker):
    return {"bootstrap.servers": broker.sasl_ssl, **sasl_conf(broker, "SCRAM-SHA-256")}


def allow(operation, resource_type, name, pattern=ResourcePatternType.LITERAL):
    return AclBinding(resource_type, name, pattern, "User:alice", "*", operation,
                      AclPermissionType.ALLOW)


def produce(conf, topic, count=5, idempotent=False):
    """Produces `count` records; the delivery errors (empty when all were acknowledged)."""
    producer = Producer({"acks": "all", "message.timeout.ms": 15000,
                         "enable.idempotence": idempotent, **conf})
    errors = []
    for i in range(count):
        producer.produce(topic, value=f"{topic}-{i}".encode(),
                         on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(30) == 0
    return errors


def group_consume(conf, topic, group, wanted, timeout=30):
    """Consumes in `group` until `wanted` records or an error; (values, errors)."""
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    values, errors = [], []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < wanted and not errors and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error():
                    errors.append(msg.error())
                else:
                    values.append(msg.value().decode())
        if values:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values, errors


def create_acls(admin, bindings):
    for future in admin.create_acls(bindings).values():
        future.result(30)


def described(admin):
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    return sorted((b.restype, b.name, b.resource_pattern_type, b.principal, b.operation)
                  for b in admin.describe_acls(everything).result(30))


def test_acls_decide_what_each_principal_may_do_and_survive_a_restart(acl_broker):
    broker = acl_broker
    admin = admin_client(broker)
    shared, secret = f"shared-{uuid.uuid4().hex[:6]}", f"secret-{uuid.uuid4().hex[:6]}"
    for future in admin.create_topics([NewTopic(shared, 1, 1), NewTopic(secret, 1, 1)]).values():
        future.result(30)
    bindings = [allow(AclOperation.WRITE, ResourceType.TOPIC, shared),
                allow(AclOperation.READ, ResourceType.TOPIC, shared),
                allow(AclOperation.READ, ResourceType.GROUP, "alice-",
                      ResourcePatternType.PREFIXED)]
    create_acls(admin, bindings)
    expected = sorted((b.restype, b.name, b.resource_pattern_type, b.principal, b.operation)
                      for b in bindings)
    assert described(admin) == expected

    alice = alice_conf(broker)
    # Her topic: an idempotent producer (WRITE on a topic is enough), then her group.
    assert produce(alice, shared, idempotent=True) == []
    values, errors = group_consume(alice, shared, "alice-readers", 5)
    assert (values, errors) == ([f"{shared}-{i}" for i in range(5)], [])
    # Not hers.
    errors = produce(alice, secret)
    assert errors and all(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errors), \
        errors
    values, errors = group_consume(alice, shared, "bobs-group", 1, timeout=20)
    assert values == [] and any(e.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
                                for e in errors), errors
    listed = admin_client(broker, "alice", PASSWORD).list_topics(timeout=30).topics
    assert shared in listed and secret not in listed, sorted(listed)
    # DescribeAcls answers CLUSTER_AUTHORIZATION_FAILED; librdkafka (to 2.12 at least) drops
    # that error and reports an empty list (kafka-python's test below sees the error).
    assert described(admin_client(broker, "alice", PASSWORD)) == []
    # Unauthenticated clients are User:ANONYMOUS, which no ACL names.
    errors = produce({"bootstrap.servers": broker.bootstrap}, shared)
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    with pytest.raises(Exception, match="CLUSTER_AUTHORIZATION_FAILED"):
        create_acls(admin_client(broker, None), bindings[:1])

    broker.restart()
    admin = admin_client(broker)
    assert described(admin) == expected
    assert produce(alice, shared) == []
    # Her WRITE goes: refused at once.
    write_only = AclBindingFilter(ResourceType.TOPIC, shared, ResourcePatternType.LITERAL,
                                  "User:alice", None, AclOperation.WRITE, AclPermissionType.ANY)
    deleted = admin.delete_acls([write_only])[write_only].result(30)
    assert [(b.name, b.operation) for b in deleted] == [(shared, AclOperation.WRITE)]
    errors = produce(alice, shared)
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    records = consume_all(broker.sasl_ssl, shared, 1, timeout=30,
                          conf={**sasl_conf(broker, "SCRAM-SHA-256"),
                                "group.id": "alice-check"})
    assert len(records[0]) == 10


def test_acl_apis_answer_security_disabled_without_the_authorizer(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(Exception, match="SECURITY_DISABLED|[Ss]ecurity"):
        create_acls(admin, [binding])


def test_kafka_pythons_admin_client_creates_describes_and_deletes_acls(acl_broker):
    pytest.importorskip("kafka", minversion="3.0")
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, KafkaAdminClient, ResourcePattern,
                             ResourcePatternFilter)
    from kafka.admin import ResourceType as Type
    from kafka.errors import ClusterAuthorizationFailedError
    broker = acl_broker

    def client(user, password):
        return KafkaAdminClient(bootstrap_servers=broker.sasl_ssl, security_protocol="SASL_SSL",
                                sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user,
                                sasl_plain_password=password, ssl_cafile=str(broker.ca))

    admin = client("admin", ADMIN_PASSWORD)
    acl = ACL(principal="User:bob", host="*", operation=ACLOperation.READ,
              permission_type=ACLPermissionType.ALLOW,
              resource_pattern=ResourcePattern(Type.TOPIC, "bobs-",
                                               ACLResourcePatternType.PREFIXED))
    assert admin.create_acls([acl]) == {"succeeded": [acl], "failed": []}
    # A filter matching every binding that applies to topic bobs-data.
    applying = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                         permission_type=ACLPermissionType.ANY,
                         resource_pattern=ResourcePatternFilter(Type.TOPIC, "bobs-data",
                                                                ACLResourcePatternType.MATCH))
    acls, error = admin.describe_acls(applying)
    assert [(a.principal, a.resource_pattern.resource_name) for a in acls] == \
        [("User:bob", "bobs-")], error
    alice = client("alice", PASSWORD)
    with pytest.raises(ClusterAuthorizationFailedError):
        alice.describe_acls(applying)
    [(_, deleted, error)] = admin.delete_acls([applying])
    assert [a.principal for a in deleted] == ["User:bob"], error
    assert admin.describe_acls(applying)[0] == []
    admin.close()
    alice.close()


def test_describe_cluster_and_authorized_operations_follow_the_acls(acl_broker):
    """DescribeCluster, and the authorized operations of Metadata (describe_topics) and
    DescribeCluster: everything for a super user, what the ACLs allow for alice."""
    from confluent_kafka import TopicCollection
    broker = acl_broker
    admin = admin_client(broker)
    topic = f"ops-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    create_acls(admin, [allow(AclOperation.WRITE, ResourceType.TOPIC, topic)])

    cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
    assert [(n.id, n.port) for n in cluster.nodes] == [(0, broker.sasl_ssl_port)]
    assert cluster.controller.id == 0 and cluster.cluster_id
    assert AclOperation.ALTER in cluster.authorized_operations
    described = admin.describe_topics(TopicCollection([topic]),
                                      include_authorized_operations=True)[topic].result(30)
    assert AclOperation.DELETE in described.authorized_operations

    alice = admin_client(broker, "alice", PASSWORD)
    cluster = alice.describe_cluster(include_authorized_operations=True).result(30)
    assert not cluster.authorized_operations, cluster.authorized_operations
    described = alice.describe_topics(TopicCollection([topic]),
                                      include_authorized_operations=True)[topic].result(30)
    assert sorted(described.authorized_operations, key=lambda o: o.value) == \
        [AclOperation.WRITE, AclOperation.DESCRIBE]


def test_client_certificates_are_principals_the_acls_judge(broker_factory, tmp_path):
    """On an SSL listener with a client CA, a client's principal is its certificate's subject,
    mapped by --ssl-principal-mapping-rules (`CN=Writer` becomes `User:writer`): ACLs for
    User:writer let that certificate produce and read, another (`CN=nobody`) gets
    TOPIC_AUTHORIZATION_FAILED, and one no rule maps (`CN=mapless1`) is turned away."""
    from test_tls import Authority, kcat_conf, kcat_fails, metric, produce_and_read_back, \
        ssl_broker, ssl_conf
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = Authority(directory, "ca")
    broker = ssl_broker(broker_factory, {"server": ca.issue("server", san="IP:127.0.0.1")}, extra=[
        "--tls-client-ca-file", ca.cert, "--acl-authorizer", "true",
        # The PLAINTEXT listener's clients (User:ANONYMOUS) administer the ACLs here.
        "--super-users", "User:ANONYMOUS",
        "--ssl-principal-mapping-rules", "RULE:^CN=([a-zA-Z]+)$/$1/L"])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = "certified"
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    create_acls(admin, [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                   "User:writer", "*", operation, AclPermissionType.ALLOW)
                        for operation in (AclOperation.WRITE, AclOperation.READ)])

    writer = ssl_conf(ca.cert, ca.issue("Writer"))
    assert produce_and_read_back(broker.ssl_bootstrap, writer, topic) == \
        [f"{topic}-{i}" for i in range(50)]
    nobody = {"bootstrap.servers": broker.ssl_bootstrap, **ssl_conf(ca.cert, ca.issue("nobody"))}
    errors = produce(nobody, topic, count=1)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors

    refused = metric(broker, "hotwire_tls_handshake_failures_total")
    kcat_fails("-b", broker.ssl_bootstrap, *kcat_conf(ssl_conf(ca.cert, ca.issue("mapless1"))),
               "-L", "-m", "2")
    assert metric(broker, "hotwire_tls_handshake_failures_total") > refused
    assert broker.running()
