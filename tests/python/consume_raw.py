"""Read the values of one topic with isolation.level=read_committed, as text, one per line.

usage: consume_raw.py BOOTSTRAP EXPECTED_COUNT TIMEOUT_S TOPIC
Reads until EXPECTED_COUNT values arrived (or the timeout), then until the topic has been quiet
for 2 seconds, so that extra records are read too.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer


def main():
    bootstrap, expected, timeout, topic = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sluice-test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < (deadline if quiet_until is None else quiet_until):
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            out.append(msg.value())
            if len(out) >= expected:
                quiet_until = time.monotonic() + 2.0
    finally:
        consumer.close()
    for value in out:
        print("" if value is None else value.decode())


if __name__ == "__main__":
    main()
