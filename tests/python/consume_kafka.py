"""Read sluice's records back from Kafka as a third-party consumer would: Confluent's Python
client, with the registry's AvroDeserializer for keys and values.

usage: consume_kafka.py BOOTSTRAP REGISTRY_URL EXPECTED_COUNT TIMEOUT_S TOPIC [TOPIC...]
(over TLS when KAFKA_SSL_CA_LOCATION names the CA to trust: see kafka_tls.py)
Polls from the earliest offset with a fresh group until EXPECTED_COUNT records arrived or the
timeout passed (the broker's high watermark is not trusted: records are counted), then goes on
until the topics have been quiet for 2 seconds (at most 6 seconds in all, for topics that never
go quiet, such as heartbeats), so that a late duplicate or an extra record is caught rather
than left unread, then prints
one JSON object per record, in consumption order:
{"topic", "partition", "offset", "key", "value" (null for a tombstone), "headers": {name: text}}.
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kafka_tls import tls_settings


def main():
    bootstrap, registry_url = sys.argv[1], sys.argv[2]
    expected, timeout = int(sys.argv[3]), float(sys.argv[4])
    topics = sys.argv[5:]
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sluice-test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            **tls_settings(),
        }
    )
    consumer.subscribe(topics)
    out = []
    deadline = time.monotonic() + timeout
    quiet = 2.0
    quiet_until = None
    drain_until = None
    try:
        while time.monotonic() < (deadline if quiet_until is None else quiet_until):
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            topic = msg.topic()
            key = msg.key()
            value = msg.value()
            out.append(
                {
                    "topic": topic,
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "key": None
                    if key is None
                    else deserializer(key, SerializationContext(topic, MessageField.KEY)),
                    "value": None
                    if value is None
                    else deserializer(value, SerializationContext(topic, MessageField.VALUE)),
                    "headers": {
                        name: None if raw is None else raw.decode()
                        for name, raw in (msg.headers() or [])
                    },
                }
            )
            if len(out) >= expected:
                now = time.monotonic()
                if drain_until is None:
                    drain_until = now + 3 * quiet
                quiet_until = min(now + quiet, drain_until)
    finally:
        consumer.close()
    for record in out:
        print(json.dumps(record, default=str))


if __name__ == "__main__":
    main()
