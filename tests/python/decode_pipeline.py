"""Decode sluice's wire records with Confluent's own deserializer, fetching writer schemas from
the schema registry by the id in each record (exactly what a Kafka consumer does).

usage: decode_pipeline.py REGISTRY_URL RECORDS_JSON
RECORDS_JSON: [{"topic": ..., "key": base64 | null, "value": base64 | null}, ...]
Prints one JSON object per record: {"topic", "key_schema_id", "value_schema_id", "key", "value"}.
"""
import base64
import json
import struct
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def schema_id(framed):
    magic, ident = struct.unpack(">bI", framed[:5])
    assert magic == 0, f"magic byte {magic}"
    return ident


def main():
    url, path = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": url})
    deserializer = AvroDeserializer(client)
    with open(path) as f:
        records = json.load(f)
    for record in records:
        topic = record["topic"]
        out = {"topic": topic}
        if record["key"] is not None:
            key = base64.b64decode(record["key"])
            out["key_schema_id"] = schema_id(key)
            out["key"] = deserializer(key, SerializationContext(topic, MessageField.KEY))
        if record["value"] is None:
            # A tombstone: no schema, no value.
            out["value"] = None
        else:
            value = base64.b64decode(record["value"])
            out["value_schema_id"] = schema_id(value)
            out["value"] = deserializer(value, SerializationContext(topic, MessageField.VALUE))
        print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
