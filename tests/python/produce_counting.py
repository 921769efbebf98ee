"""Produce 0, 1, 2, ... to one topic until a file appears, then print every acknowledged value.

usage: produce_counting.py BOOTSTRAP TOPIC DIR

While it produces, DIR/acknowledged holds how many records were acknowledged so far. The
producer has the kafka sink's delivery settings (acks=all, idempotence, five requests in flight)
and never gives up on a record while the broker is away. Once DIR/stop exists it stops
producing, waits until every record is acknowledged or failed, and prints the acknowledged
values, one per line; failed deliveries go to stderr with a count.
"""
import os
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, directory = sys.argv[1], sys.argv[2], sys.argv[3]
    stop_file = os.path.join(directory, "stop")
    progress_file = os.path.join(directory, "acknowledged")
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 5,
            "message.timeout.ms": 600000,
        }
    )
    acknowledged, failed = [], []

    def report(error, message):
        if error is None:
            acknowledged.append(message.value().decode())
        else:
            failed.append((message.value().decode(), str(error)))

    sent = 0
    while not os.path.exists(stop_file):
        try:
            producer.produce(topic, key=str(sent % 50), value=str(sent), on_delivery=report)
            sent += 1
        except BufferError:
            producer.poll(0.05)
        if sent % 100 == 0:
            producer.poll(0.01)
            with open(progress_file + ".new", "w") as progress:
                progress.write(str(len(acknowledged)))
            os.replace(progress_file + ".new", progress_file)
        else:
            producer.poll(0)
    left = producer.flush(300)
    for value in acknowledged:
        print(value)
    print(f"sent={sent} acknowledged={len(acknowledged)} failed={len(failed)} unsettled={left}", file=sys.stderr)
    for value, error in failed[:10]:
        print(f"failed {value}: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
