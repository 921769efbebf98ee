"""Read every record of a topic as a third-party consumer would (Confluent's Python client with
the registry's AvroDeserializer), until a sentinel key's record has arrived, then on for a
short quiet period so that late duplicates are caught too. It reads every partition of the
topic from its start, assigned directly: no consumer group, so a rebalance on a loaded broker
cannot leave it without partitions.

usage: consume_all.py BOOTSTRAP REGISTRY_URL ISOLATION SENTINEL_ID QUIET_S TIMEOUT_S TOPIC
(over TLS when KAFKA_SSL_CA_LOCATION names the CA to trust: see kafka_tls.py)
ISOLATION is read_committed or read_uncommitted. Prints one JSON object per record, in
consumption order: {"partition", "offset", "id" (the key's id), "op", "n" (after.n or null),
"lsn" (source.lsn or null), "after" (the after image or null, in the plain form of `plain`)}.
Exits 3 when the sentinel did not arrive within TIMEOUT_S.
"""
import decimal
import json
import math
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_tls import tls_settings


def plain(value):
    """A decoded Avro value as plain JSON, each in PostgreSQL's input form where Avro has no
    JSON one: decimals (Connect's and Debezium's variable-scale record) as text, bytes as
    bytea hex, floats as text (NaN and the infinities as the words PostgreSQL reads)."""
    if isinstance(value, dict):
        if set(value) == {"scale", "value"} and isinstance(value["value"], bytes):
            unscaled = int.from_bytes(value["value"], "big", signed=True)
            return str(decimal.Decimal(unscaled).scaleb(-value["scale"]))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float):
        # As text: the shortest form that reads back as the same double (a JSON number may be
        # read back one unit in the last place off).
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def main():
    bootstrap, registry_url, isolation = sys.argv[1], sys.argv[2], sys.argv[3]
    sentinel, quiet, timeout = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    topic = sys.argv[7]
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sluice-test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            **tls_settings(),
        }
    )
    deadline = time.monotonic() + timeout
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions(consumer, topic, deadline)]
    )
    out = []
    quiet_until = None
    try:
        while True:
            now = time.monotonic()
            if quiet_until is not None and now >= quiet_until:
                break
            if quiet_until is None and now >= deadline:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            key = deserializer(msg.key(), SerializationContext(topic, MessageField.KEY))
            value = msg.value()
            value = (
                None
                if value is None
                else deserializer(value, SerializationContext(topic, MessageField.VALUE))
            )
            after = (value or {}).get("after") or {}
            out.append(
                {
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "id": key["id"],
                    "op": None if value is None else value["op"],
                    "n": after.get("n"),
                    "lsn": None if value is None else value["source"]["lsn"],
                    "after": plain(after) or None,
                }
            )
            if key["id"] == sentinel and value is not None:
                # Anything still to come after the sentinel is a late duplicate: keep reading
                # until the topic has been quiet for a while.
                quiet_until = time.monotonic() + quiet
            elif quiet_until is not None:
                quiet_until = time.monotonic() + quiet
        if quiet_until is None:
            report_stall(consumer, out)
    finally:
        consumer.close()
    for record in out:
        print(json.dumps(record, default=str))
    if quiet_until is None:
        print(f"the sentinel {sentinel} did not arrive in {timeout} s", file=sys.stderr)
        sys.exit(3)


def partitions(consumer, topic, deadline):
    """The partition numbers of `topic`, once the broker's metadata lists them."""
    while True:
        metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if metadata is not None and metadata.error is None and metadata.partitions:
            return sorted(metadata.partitions)
        if time.monotonic() >= deadline:
            print(f"the topic {topic} has no partitions", file=sys.stderr)
            sys.exit(3)
        time.sleep(0.2)


def report_stall(consumer, out):
    """Where the consumer stood when the sentinel did not come: how much it read, and per
    assigned partition its position against the broker's watermarks (the high one is the
    last stable offset for read_committed), to tell a stuck broker from a missing record."""
    print(f"read {len(out)} records", file=sys.stderr)
    try:
        for tp in consumer.position(consumer.assignment()):
            low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            print(
                f"partition {tp.partition}: position {tp.offset}, watermarks {low}..{high}",
                file=sys.stderr,
            )
    except Exception as error:  # the report is best effort: the exit status says what failed
        print(f"no partition report: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
