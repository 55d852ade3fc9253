"""What a broker on S3 leaves in the bucket, read back through the S3 API itself.

Flush objects larger than `storage_slice_mib` are multipart uploads (an S3 ETag of a multipart
object ends in -<parts>); smaller ones single PUTs; everything reads back after a kill -9.
"""

import pytest
from conftest import BrokerFactory
from helpers import consume_all, create_topic, make_producer, produce_all

PARTITIONS = 2
RECORD = 64 * 1024


@pytest.fixture
def s3_factory(hotwire_bin, tmp_path, garage):
    factory = BrokerFactory(hotwire_bin, tmp_path, storage=garage)
    yield factory
    factory.cleanup()


def test_large_flushes_are_multipart_uploads_and_read_back(s3_factory, garage):
    # Flushes gather up to 24 MiB for 2 s, so big objects form; slices of 5 MiB.
    broker = s3_factory(extra_args=["--storage-slice-mib", "5", "--storage-slice-concurrency", "3",
                                    "--flush-max-bytes", str(24 << 20),
                                    "--flush-interval-ms", "2000"])
    create_topic(broker.bootstrap, "big", PARTITIONS)
    values = [bytes([i % 251]) * 16 + i.to_bytes(4, "big") * (RECORD // 4) for i in range(600)]
    log = produce_all(make_producer(broker.bootstrap, {"linger.ms": 50, "batch.size": 1 << 20,
                                                       "message.max.bytes": 2 << 20}),
                      "big", [{"value": v, "partition": i % PARTITIONS}
                              for i, v in enumerate(values)])
    log.assert_no_failures()

    prefix = broker.storage_url.split("/", 3)[3].split("?", 1)[0]
    objects = garage.list_objects(f"{prefix}/wal/")
    assert objects, f"no flush objects under {prefix}/wal/"
    parts = {key: int(etag.rsplit("-", 1)[1]) if "-" in etag else 1
             for key, (_, etag) in objects.items()}
    sizes = {key: size for key, (size, _) in objects.items()}
    multipart = [k for k, n in parts.items() if n > 1]
    assert multipart, f"no multipart flush object: sizes {sizes}, parts {parts}"
    for key in multipart:
        # One part per started 5 MiB slice.
        assert parts[key] == -(-sizes[key] // (5 << 20)), (key, sizes[key], parts[key])

    broker.kill9()
    broker.start()
    records = consume_all(broker.bootstrap, "big", PARTITIONS)
    got = sorted(r.value for rs in records.values() for r in rs)
    assert got == sorted(values)
