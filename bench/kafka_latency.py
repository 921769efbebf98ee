"""Commit-to-consumer latency of sluice's Kafka records, for bench/kafka.sh.

usage: kafka_latency.py BOOTSTRAP REGISTRY_URL TOPIC COUNT TIMEOUT_S READY_FILE
Subscribes to TOPIC from the earliest offset, touches READY_FILE once partitions are assigned,
and notes the wall-clock time at which each record is handed to the application (records are
taken in batches of up to 1000, each stamped when its batch arrives; decoding waits until all
COUNT records are in, so it does not slow reception). Then decodes each value with the
registry's AvroDeserializer and takes latency = arrival time - source.ts_us (the PostgreSQL
commit time in the envelope). Both clocks are this machine's. Prints
`p50_ms=.. p99_ms=.. max_ms=.. records=..`.
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
        batch = consumer.consume(num_messages=1000, timeout=0.05)
        now_us = time.time_ns() // 1000
        for msg in batch:
            if msg.error() is None and msg.value() is not None:
                arrived.append((now_us, msg.value()))
    consumer.close()
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    context = SerializationContext(topic, MessageField.VALUE)
    latencies = sorted(
        (at - deserializer(value, context)["source"]["ts_us"]) / 1000.0 for at, value in arrived
    )
    if not latencies:
        sys.exit("no records arrived")

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100.0 * len(latencies)))]

    print(f"p50_ms={pct(50):.1f} p99_ms={pct(99):.1f} max_ms={latencies[-1]:.1f} records={len(latencies)}")


if __name__ == "__main__":
    main()
