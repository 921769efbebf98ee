"""Decode sluice's Confluent-framed Avro events with fastavro, a third-party decoder.

Usage: decode_envelope.py DIR
DIR holds key.avsc and value.avsc (the writer schemas) and events.bin: records of
<u32 big-endian length><framed key><u32 length><framed value>, a zero key length meaning a
null key. Prints one JSON document: a list of {"key_id", "key", "value_id", "value"}, with
bytes as {"hex": ...} and decimals as their exact text, so the Rust test asserts the values.
"""

import decimal
import io
import json
import struct
import sys

import fastavro


def load(path):
    with open(path) as f:
        return fastavro.parse_schema(json.load(f))


def unframe(message, schema):
    if message[0] != 0:
        raise SystemExit(f"bad magic byte {message[0]}")
    (schema_id,) = struct.unpack(">I", message[1:5])
    return schema_id, fastavro.schemaless_reader(io.BytesIO(message[5:]), schema)


def plain(value):
    if isinstance(value, (bytes, bytearray)):
        return {"hex": value.hex()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return {"float": "NaN"}
    if hasattr(value, "isoformat"):
        return {"iso": value.isoformat()}
    return value


def main():
    directory = sys.argv[1]
    key_schema = load(f"{directory}/key.avsc")
    value_schema = load(f"{directory}/value.avsc")
    with open(f"{directory}/events.bin", "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        (key_len,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        key_id, key = (None, None)
        if key_len:
            key_id, key = unframe(data[pos : pos + key_len], key_schema)
            pos += key_len
        (value_len,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        value_id, value = unframe(data[pos : pos + value_len], value_schema)
        pos += value_len
        out.append({"key_id": key_id, "key": plain(key), "value_id": value_id, "value": plain(value)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
