"""Commit-to-consumer latency of sluice's Kafka records, for bench/kafka.sh.

usage: kafka_latency.py BOOTSTRAP REGISTRY_URL TOPIC COUNT TIMEOUT_S READY_FILE
Subscribes to TOPIC from the earliest offset, touches READY_FILE once partitions are assigned,
and notes the wall-clock time at which each record is handed to the application (records are
taken in batches of up to 100, each stamped when its batch is returned; decoding waits until all
COUNT records are in, so it does not slow reception). The first record is left out of the
figures: it made the topic, before the consumer subscribed. Then decodes each value with the
registry's AvroDeserializer and takes latency = arrival time - source.ts_us (the PostgreSQL
commit time in the envelope). Both clocks are this machine's. Also reports the produce side
alone: the record's timestamp (CreateTime, taken by sluice's producer when the record is
handed to it) - source.ts_us. Prints
`p50_ms=.. p99_ms=.. max_ms=.. produce_p50_ms=.. produce_p99_ms=.. records=..`.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    bootstrap, registry_url, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    count, timeout, ready_file = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sluice-bench-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 5,
            "fetch.min.bytes": 1,
        }
    )

    def on_assign(c, partitions):
        open(ready_file, "w").close()

    consumer.subscribe([topic], on_assign=on_assign)
    arrived = []
    deadline = time.monotonic() + timeout
    while len(arrived) < count and time.monotonic() < deadline:
        # A short timeout: consume() returns when it has num_messages or the timeout passed,
        # and the stamp is taken after it returns.
        batch = consumer.consume(num_messages=100, timeout=0.002)
        now_us = time.time_ns() // 1000
        for msg in batch:
            if msg.error() is None and msg.value() is not None:
                arrived.append((now_us, msg.timestamp()[1] * 1000, msg.value()))
    consumer.close()
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    context = SerializationContext(topic, MessageField.VALUE)
    latencies, produced = [], []
    for at, created_us, value in arrived[1:]:
        committed_us = deserializer(value, context)["source"]["ts_us"]
        latencies.append((at - committed_us) / 1000.0)
        produced.append((created_us - committed_us) / 1000.0)
    if not latencies:
        sys.exit("no records arrived")
    latencies.sort()
    produced.sort()

    def pct(values, p):
        return values[min(len(values) - 1, int(p / 100.0 * len(values)))]

    print(
        f"p50_ms={pct(latencies, 50):.1f} p99_ms={pct(latencies, 99):.1f} "
        f"max_ms={latencies[-1]:.1f} produce_p50_ms={pct(produced, 50):.1f} "
        f"produce_p99_ms={pct(produced, 99):.1f} records={len(latencies)}"
    )


if __name__ == "__main__":
    main()
