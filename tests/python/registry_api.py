"""Drive sluice's schema registry with Confluent's own Python client, unchanged.

Usage: python3 registry_api.py http://127.0.0.1:PORT

Exercises SchemaRegistryClient (register, get_schema, get_latest_version, get_version,
get_versions, lookup_schema, test_compatibility, set/get config, modes, delete_subject) and
round-trips a record through AvroSerializer / AvroDeserializer in the Confluent wire format.
Prints one line per check and `registry api ok` at the end; any failure raises (exit 1).
"""

import struct
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

ORDER_V1 = """
{"type": "record", "name": "Order", "namespace": "shop",
 "fields": [{"name": "id", "type": "long"},
            {"name": "item", "type": "string"}]}
"""
# Adds an optional field with a default: compatible under every level.
ORDER_V2 = """
{"type": "record", "name": "Order", "namespace": "shop",
 "fields": [{"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": null}]}
"""
# Adds a required field without a default: BACKWARD-incompatible.
ORDER_REQUIRED = """
{"type": "record", "name": "Order", "namespace": "shop",
 "fields": [{"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "quantity", "type": "int"}]}
"""


def check(label, condition, detail=""):
    if not condition:
        raise AssertionError(f"{label}: {detail}")
    print(f"ok {label}")


def expect_error(label, code, call):
    try:
        call()
    except SchemaRegistryError as e:
        check(label, e.error_code == code, f"expected error code {code}, got {e.error_code}: {e}")
        return
    raise AssertionError(f"{label}: expected error code {code}, the call succeeded")


def main(url):
    client = SchemaRegistryClient({"url": url})
    subject = "shop.orders-value"

    check("schema types", client.get_schema_types() == ["AVRO"], client.get_schema_types())

    id1 = client.register_schema(subject, Schema(ORDER_V1, "AVRO"))
    # A second client has no cache: the server itself must answer with the same id.
    fresh = SchemaRegistryClient({"url": url})
    spaced = ORDER_V1.replace(",", " , ")
    check("same schema, same id", fresh.register_schema(subject, Schema(spaced, "AVRO")) == id1)
    other = fresh.register_schema("shop.archive-value", Schema(ORDER_V1, "AVRO"))
    check("same schema in another subject, same global id", other == id1, (other, id1))

    fetched = fresh.get_schema(id1)
    check("get_schema by id", fetched.schema_type == "AVRO" and '"Order"' in fetched.schema_str)

    id2 = client.register_schema(subject, Schema(ORDER_V2, "AVRO"))
    check("a new schema gets a new id", id2 > id1, (id1, id2))
    latest = client.get_latest_version(subject)
    check("latest version", (latest.version, latest.schema_id) == (2, id2), latest)
    first = client.get_version(subject, 1)
    check("version 1", first.schema_id == id1 and first.subject == subject, first)
    check("versions", client.get_versions(subject) == [1, 2], client.get_versions(subject))
    check("subjects", sorted(client.get_subjects()) == ["shop.archive-value", subject])
    found = client.lookup_schema(subject, Schema(ORDER_V1, "AVRO"))
    check("lookup", (found.version, found.schema_id) == (1, id1), found)
    versions = client.get_schema_versions(id1)
    pairs = sorted((v.subject, v.version) for v in versions)
    check("versions of an id", pairs == [("shop.archive-value", 1), (subject, 1)], pairs)

    check("compatible candidate", client.test_compatibility(subject, Schema(ORDER_V2, "AVRO")))
    check(
        "incompatible candidate",
        client.test_compatibility(subject, Schema(ORDER_REQUIRED, "AVRO")) is False,
    )
    expect_error(
        "registering an incompatible schema",
        409,
        lambda: client.register_schema(subject, Schema(ORDER_REQUIRED, "AVRO")),
    )
    expect_error("unknown subject", 40401, lambda: client.get_latest_version("no-such-subject"))
    expect_error("unknown version", 40402, lambda: client.get_version(subject, 42))
    expect_error("unknown id", 40403, lambda: fresh.get_schema(9999))
    expect_error(
        "invalid schema", 42201, lambda: client.register_schema(subject, Schema('{"type": "nope"}', "AVRO"))
    )
    expect_error(
        "invalid level", 42203, lambda: client.set_compatibility(subject_name=subject, level="SIDEWAYS")
    )

    check("global level defaults to BACKWARD", client.get_compatibility() == "BACKWARD")
    client.set_compatibility(subject_name=subject, level="NONE")
    check("subject level set", client.get_compatibility(subject) == "NONE")
    check(
        "NONE accepts anything",
        client.test_compatibility(subject, Schema(ORDER_REQUIRED, "AVRO")),
    )
    client.set_compatibility(level="FULL_TRANSITIVE")
    check("global level set", client.get_config().compatibility_level == "FULL_TRANSITIVE")
    client.set_compatibility(level="BACKWARD")

    check("mode defaults to READWRITE", client.get_global_mode() == "READWRITE")
    client.update_global_mode("READONLY")
    expect_error(
        "read-only refuses registrations",
        42205,
        lambda: fresh.register_schema("another-value", Schema(ORDER_V1, "AVRO")),
    )
    client.update_global_mode("READWRITE")

    # The Confluent wire format, end to end: serializer registers and frames, deserializer
    # fetches the writer schema by id from the registry.
    topic = "shop.payments"
    serializer = AvroSerializer(fresh, ORDER_V2)
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = {"id": 7, "item": "lamp", "note": None}
    payload = serializer(record, ctx)
    magic, schema_id = struct.unpack(">bI", payload[:5])
    check("wire format header", magic == 0 and schema_id == id2, (magic, schema_id))
    reader = AvroDeserializer(SchemaRegistryClient({"url": url}))
    check("deserialized record", reader(payload, ctx) == record, reader(payload, ctx))
    check("serializer registered the topic subject", "shop.payments-value" in client.get_subjects())

    deleted = client.delete_subject("shop.archive-value")
    check("soft delete returns versions", deleted == [1], deleted)
    check("soft-deleted subject is hidden", "shop.archive-value" not in client.get_subjects())
    check(
        "deleted subjects listed on request",
        "shop.archive-value" in client.get_subjects(deleted=True),
    )
    check("schema still readable by id", fresh.get_schema(id1) is not None)
    deleted = client.delete_subject("shop.archive-value", permanent=True)
    check("permanent delete after soft delete", deleted == [1], deleted)
    expect_error(
        "permanent delete needs a soft delete first",
        40405,
        lambda: client.delete_subject(subject, permanent=True),
    )
    print("registry api ok")


if __name__ == "__main__":
    main(sys.argv[1])
