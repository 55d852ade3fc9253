"""A confluent-kafka group consumer as a child process (helpers.RemoteGroupMember), so that a test
can SIGKILL a member. Not a test module.

argv[1] is JSON: bootstrap, group, topics, conf (extra consumer settings), lifetime_s. Writes one
JSON object per line to stdout: {"event": "assigned", "partitions": [[topic, p], ...]},
{"event": "revoked"}, {"event": "record", "partition", "offset", "value"} (value as latin-1) and
{"event": "error", "error"}. A record is reported (and stdout flushed) before its offset is stored
for the auto-commit, so every committed record has been reported. Dies with its parent.
"""

import ctypes
import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError

_PR_SET_PDEATHSIG = 1


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    spec = json.loads(sys.argv[1])
    conf = {"bootstrap.servers": spec["bootstrap"], "group.id": spec["group"],
            "enable.auto.offset.store": False}
    conf.update(spec["conf"])
    consumer = Consumer(conf)

    def on_assign(c, partitions):
        emit(event="assigned", partitions=[[tp.topic, tp.partition] for tp in partitions])

    def on_revoke(c, partitions):
        emit(event="revoked")

    consumer.subscribe(spec["topics"], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.monotonic() + spec["lifetime_s"]
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.1):
                err = msg.error()
                if err is None:
                    emit(event="record", partition=msg.partition(), offset=msg.offset(),
                         value=msg.value().decode("latin-1"))
                    consumer.store_offsets(message=msg)
                elif err.code() != KafkaError._PARTITION_EOF:
                    emit(event="error", error=str(err))
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
