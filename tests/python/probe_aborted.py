"""Whether a broker hides aborted transactions from read_committed consumers, as Kafka
specifies: produce a record in a transaction and abort it, then commit a second one, and read
the topic back with isolation.level=read_committed.

usage: probe_aborted.py BOOTSTRAP
Prints "hidden" when only the committed record is read, "shown" when the aborted one is too.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap = sys.argv[1]
    topic = f"probe-aborted-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 60
    while b"committed" not in seen and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            seen.append(msg.value())
    consumer.close()
    if b"committed" not in seen:
        sys.exit("the committed record never arrived")
    print("shown" if b"aborted" in seen else "hidden")


if __name__ == "__main__":
    main()
