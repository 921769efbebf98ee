"""Produce 0, 1, 2, ... to one topic until a file appears, then print every acknowledged value.

usage: produce_counting.py BOOTSTRAP TOPIC DIR MODE

MODE is the kafka sink's producer: "idempotent" (acks=all, idempotence, five requests in
flight, the default) or "one-in-flight" (acks=all, no idempotence, one request in flight: the
sink's `idempotence = false`). Either never gives up on a record while the broker is away.

While it produces, DIR/acknowledged holds how many records were acknowledged so far. Once
DIR/stop exists it stops producing, waits until every record is acknowledged or failed, and
prints the acknowledged values, one per line. On stderr: a summary line, failed deliveries,
and a line "duplicate BASE COUNT" for each batch the broker answered "duplicate sequence
number", which the client takes as acknowledged (BASE is the batch's first sequence number,
equal to its first value while the producer keeps one producer id).
"""
import logging
import os
import re
import sys

from confluent_kafka import Producer

# librdkafka's notice when the broker answers a retried batch "duplicate sequence number".
DUPLICATE = re.compile(r"DUPSEQ.* with (\d+) message\(s\).*base seq (\d+)")


class DuplicateAnswers(logging.Handler):
    """Keeps (base sequence, count) of each batch the broker called a duplicate."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def emit(self, record):
        found = DUPLICATE.search(record.getMessage())
        if found:
            self.batches.append((int(found.group(2)), int(found.group(1))))


def main():
    bootstrap, topic, directory, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    stop_file = os.path.join(directory, "stop")
    progress_file = os.path.join(directory, "acknowledged")
    duplicates = DuplicateAnswers()
    logger = logging.getLogger("librdkafka")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(duplicates)
    settings = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 600000,
        "debug": "eos",
    }
    if mode == "idempotent":
        settings.update({"enable.idempotence": True, "max.in.flight.requests.per.connection": 5})
    elif mode == "one-in-flight":
        settings.update({"enable.idempotence": False, "max.in.flight.requests.per.connection": 1})
    else:
        sys.exit(f"unknown mode {mode!r}")
    producer = Producer(settings, logger=logger)
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
    print(
        f"sent={sent} acknowledged={len(acknowledged)} failed={len(failed)} unsettled={left} "
        f"duplicate_answers={len(duplicates.batches)}",
        file=sys.stderr,
    )
    for value, error in failed[:10]:
        print(f"failed {value}: {error}", file=sys.stderr)
    for base, count in duplicates.batches:
        print(f"duplicate {base} {count}", file=sys.stderr)


if __name__ == "__main__":
    main()
