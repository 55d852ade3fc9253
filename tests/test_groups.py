"""Consumer groups with confluent-kafka (librdkafka; runs under Debian's 2.0.x and the venv's
newest): rebalancing on join, leave and member crash; ListGroups / DescribeGroups / DeleteGroups.

The broker runs with GROUP_BROKER_ARGS (no initial rebalance delay, minimum session timeout 1 s).
Consumers use librdkafka's defaults (range,roundrobin assignors, 45 s session, 3 s heartbeat,
auto-commit every 5 s) plus auto.offset.reset=earliest where a test needs every record.
"""

import time

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition
from helpers import (GroupMember, RemoteGroupMember, SequenceProducer, admin_client,
                     cover_problem, create_topic, end_offsets, group_committed, group_described,
                     groups_legacy, groups_listed, has_new_group_admin, kafka_error_code,
                     make_producer, produce_all, pump_until, short, wait_for_balanced_group,
                     wait_until)

pytestmark = [pytest.mark.clients, pytest.mark.usefixtures("librdkafka")]

PARTITIONS = 6
CRASH_SESSION_MS = 3000


def test_rebalance_on_join_leave_and_crash(module_group_broker, tmp_path):
    bootstrap = module_group_broker.bootstrap
    topic, group = "rebalanced", "g-rebalance"
    create_topic(bootstrap, topic, PARTITIONS)
    # Records keep arriving through every rebalance; the group must consume each at least once.
    producer = SequenceProducer(bootstrap, topic, PARTITIONS, b"rb", rate=400)
    producer.start()
    conf = {"auto.offset.reset": "earliest"}
    members = [GroupMember(name, bootstrap, group, [topic], conf) for name in ("a", "b", "c")]
    remote = None
    try:
        # Three members: two partitions each.
        first = wait_for_balanced_group(members, topic, PARTITIONS, [2, 2, 2], timeout=60)
        print("3 members:", first)

        # A fourth joins (a child process, so that it can crash later): 2+2+1+1.
        remote = RemoteGroupMember("d", bootstrap, group, [topic],
                                   dict(conf, **{"session.timeout.ms": CRASH_SESSION_MS,
                                                 "heartbeat.interval.ms": 500}),
                                   tmp_path / "member-d.log")
        members.append(remote)
        four = wait_for_balanced_group(members, topic, PARTITIONS, [1, 1, 2, 2], timeout=60)
        print("4 members:", four)

        # One leaves cleanly (LeaveGroup on close): the other three share its partitions.
        leaver = members.pop(0)
        leaver.close()
        after_leave = wait_for_balanced_group(members, topic, PARTITIONS, [2, 2, 2], timeout=60)
        print("after a left:", after_leave)
        assert set(four["a"]) <= {tp for tps in after_leave.values() for tp in tps}

        # One crashes (SIGKILL, no LeaveGroup): after its 3 s session timeout the two left
        # share everything.
        remote.kill9()
        killed_at = time.monotonic()
        assert remote.records, f"member d consumed nothing before the crash\n{remote.log_tail()}"
        members.remove(remote)
        after_crash = wait_for_balanced_group(members, topic, PARTITIONS, [3, 3], timeout=60)
        took = time.monotonic() - killed_at
        print(f"after d crashed ({took:.1f} s):", after_crash)
        assert took >= CRASH_SESSION_MS / 2000, \
            f"d's partitions were reassigned {took:.1f} s after its crash, before its session " \
            f"timeout of {CRASH_SESSION_MS} ms"

        count = producer.finish()
        # Every record is consumed at least once, and the group's commits reach the end.
        end = end_offsets(bootstrap, topic, PARTITIONS)
        assert sum(end.values()) == count
        pump_until(members, lambda: group_committed(bootstrap, group, topic, PARTITIONS) == end,
                   60, f"the group's committed offsets to reach the ends {end}")
    finally:
        if producer.is_alive():
            producer.abandon()
        if remote is not None:
            remote.kill9()
        for m in members:
            m.close()

    everyone = members + [leaver, remote]
    errors = {m.name: m.errors[:5] for m in everyone if m.errors}
    assert not errors, f"consumer errors: {errors}"
    acked = {(d.partition, d.offset): d.value for d in producer.log.delivered}
    consumed = {}
    for m in everyone:
        for r in m.records:
            assert acked.get((r.partition, r.offset)) == r.value, \
                f"member {m.name} read {short(r.value)} at {topic}[{r.partition}]@{r.offset}, " \
                f"which holds {short(acked.get((r.partition, r.offset)))}"
            consumed.setdefault((r.partition, r.offset), []).append(m.name)
    missing = sorted(set(acked) - set(consumed))
    assert not missing, f"{len(missing)} of {len(acked)} records never consumed by the group, " \
                        f"e.g. {missing[:10]}"
    again = sum(len(names) - 1 for names in consumed.values())
    print(f"{len(acked)} records, {again} consumed more than once (after rebalances)")


def _subscribe_and_balance(bootstrap, topic, group, partitions, names):
    members = [GroupMember(name, bootstrap, group, [topic],
                           {"auto.offset.reset": "earliest", "client.id": name})
               for name in names]
    per = partitions // len(names)
    wait_for_balanced_group(members, topic, partitions, [per] * len(names), timeout=60)
    return members


def _assert_described(view, group, state, members):
    """`view` (a GroupView) shows `group` in `state` with exactly `members` (GroupMember)."""
    assert view.group_id == group
    assert view.state == state, f"{group}: state {view.state}, expected {state}"
    assert view.protocol_type == "consumer", f"{group}: protocol type {view.protocol_type!r}"
    got = sorted((m.client_id, m.assignment) for m in view.members)
    want = sorted((m.name, m.assignment()) for m in members)
    assert got == want, f"{group}: members (client id, assignment) {got}, expected {want}"
    assert len({m.member_id for m in view.members}) == len(members), view.members
    if members:
        assert view.protocol == "range", f"{group}: assignor {view.protocol!r}"


def test_list_and_describe_groups(module_group_broker):
    bootstrap = module_group_broker.bootstrap
    topic, group = "described", "g-described"
    create_topic(bootstrap, topic, 4)
    produce_all(make_producer(bootstrap), topic,
                [{"value": b"v%d" % i, "partition": i % 4} for i in range(40)]).assert_no_failures()
    members = _subscribe_and_balance(bootstrap, topic, group, 4, ["m1", "m2"])
    admin = admin_client(bootstrap)
    try:
        pump_until(members, lambda: len({(r.partition, r.offset) for m in members
                                         for r in m.records}) == 40, 30, "40 records consumed")
        legacy = groups_legacy(admin)
        assert group in legacy, f"{group} not listed by list_groups: {sorted(legacy)}"
        _assert_described(legacy[group], group, "Stable", members)
        if has_new_group_admin(admin):
            listed = groups_listed(admin)
            assert listed.get(group) == ("Stable", False), listed
            _assert_described(group_described(admin, group), group, "Stable", members)
    finally:
        for m in members:
            m.close()

    # All members left: Empty, no members; the committed offsets stay.
    def empty():
        view = groups_legacy(admin).get(group)
        return view is not None and view.state == "Empty" and view
    view = wait_until(empty, 30, f"{group} to be Empty")
    _assert_described(view, group, "Empty", [])
    if has_new_group_admin(admin):
        assert groups_listed(admin).get(group) == ("Empty", False)
        _assert_described(group_described(admin, group), group, "Empty", [])
    assert group_committed(bootstrap, group, topic, 4) == {p: 10 for p in range(4)}


def test_delete_groups(module_group_broker):
    bootstrap = module_group_broker.bootstrap
    admin = admin_client(bootstrap)
    if not hasattr(admin, "delete_consumer_groups"):
        pytest.skip("this confluent-kafka binding has no AdminClient.delete_consumer_groups "
                    "(kafka-python's delete_groups covers DeleteGroups)")
    topic, group = "deleted", "g-deleted"
    create_topic(bootstrap, topic, 2)
    produce_all(make_producer(bootstrap), topic,
                [{"value": b"v%d" % i, "partition": i % 2} for i in range(10)]).assert_no_failures()
    members = _subscribe_and_balance(bootstrap, topic, group, 2, ["only"])
    try:
        pump_until(members, lambda: len(members[0].records) == 10, 30, "10 records consumed")
        members[0].consumer.commit(offsets=[TopicPartition(topic, p, 5) for p in range(2)],
                                   asynchronous=False)
        future = admin.delete_consumer_groups([group], request_timeout=15)[group]
        with pytest.raises(KafkaException) as busy:
            future.result(timeout=15)
        assert kafka_error_code(busy.value) == KafkaError.NON_EMPTY_GROUP, busy.value
        assert groups_legacy(admin)[group].state == "Stable"
    finally:
        for m in members:
            m.close()
    wait_until(lambda: groups_legacy(admin).get(group, None) and
               groups_legacy(admin)[group].state == "Empty", 30, f"{group} to be Empty")
    assert group_committed(bootstrap, group, topic, 2) == {0: 5, 1: 5}

    admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=15)
    assert group not in groups_legacy(admin)
    assert group not in groups_listed(admin)
    assert group_committed(bootstrap, group, topic, 2) == {0: OFFSET_INVALID, 1: OFFSET_INVALID}

    # Deleting it again: it no longer exists.
    with pytest.raises(KafkaException) as gone:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=15)
    assert kafka_error_code(gone.value) == KafkaError.GROUP_ID_NOT_FOUND, gone.value

    # A deleted group can be used again from scratch: it starts at the beginning.
    again = _subscribe_and_balance(bootstrap, topic, group, 2, ["again"])
    try:
        pump_until(again, lambda: len(again[0].records) == 10, 30, "10 records consumed again")
        assert cover_problem({"again": again[0].assignment()}, topic, 2) is None
    finally:
        for m in again:
            m.close()


@pytest.mark.parametrize("strategy", ["roundrobin", "cooperative-sticky"])
def test_client_chosen_assignors_are_relayed(module_group_broker, strategy):
    """The broker relays whatever assignment the group leader computes: roundrobin, and the
    incremental cooperative protocol (members keep partitions across rebalances)."""
    bootstrap = module_group_broker.bootstrap
    topic, group = f"assignor-{strategy}", f"g-{strategy}"
    create_topic(bootstrap, topic, PARTITIONS)
    conf = {"auto.offset.reset": "earliest", "partition.assignment.strategy": strategy}
    members = [GroupMember("a", bootstrap, group, [topic], conf)]
    try:
        alone = wait_for_balanced_group(members, topic, PARTITIONS, [6], timeout=60)
        members.append(GroupMember("b", bootstrap, group, [topic], conf))
        pair = wait_for_balanced_group(members, topic, PARTITIONS, [3, 3], timeout=60)
        if strategy == "cooperative-sticky":
            # Sticky: the first member kept half of what it had, nothing moved back and forth.
            assert set(pair["a"]) <= set(alone["a"])
        members.append(GroupMember("c", bootstrap, group, [topic], conf))
        trio = wait_for_balanced_group(members, topic, PARTITIONS, [2, 2, 2], timeout=60)
        if strategy == "cooperative-sticky":
            assert set(trio["a"]) <= set(pair["a"]) and set(trio["b"]) <= set(pair["b"])
    finally:
        for m in members:
            m.close()
