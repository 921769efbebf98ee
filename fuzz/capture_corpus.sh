#!/usr/bin/env bash
# Rebuild fuzz/corpus/pgoutput_decode from real pgoutput messages: a throwaway PostgreSQL with
# wal_level=logical, a few tables of many types, then inserts, updates (with old keys and
# unchanged TOAST values), deletes, a truncate, logical messages, a schema change and a
# transaction big enough to be streamed. Each seed is a run of messages in the fuzz target's
# framing (2-byte big-endian length, then the message). Needs PostgreSQL's server binaries and
# psql; run as root (initdb runs as the postgres OS user) or as an ordinary user.
set -euo pipefail
cd "$(dirname "$0")"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
as_pg=(); [[ $EUID -eq 0 ]] && { chown postgres "$dir"; as_pg=(runuser -u postgres --); }
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
fsync = off
logical_decoding_work_mem = '64kB'
CONF
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
trap '"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; rm -rf "$dir"' EXIT
sql() { psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }

sql >/dev/null <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (id int PRIMARY KEY, n numeric(12,3), f float8, t text, b bytea, ts timestamptz,
                    d date, j jsonb, u uuid, a int[], m mood, r int4range, big text);
CREATE TABLE nokey (x int, y text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
CREATE PUBLICATION fuzz FOR ALL TABLES;
SELECT pg_create_logical_replication_slot('fuzz', 'pgoutput');
INSERT INTO kinds VALUES (1, 12.345, 'NaN', 'hello', '\xdeadbeef', '2024-02-29 12:00+02', 'infinity',
    '{"a": [1, null]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,NULL,3}', 'happy', '[1,10)',
    repeat('toast ', 3000));
UPDATE kinds SET t = 'changed', n = -0.5 WHERE id = 1;
UPDATE kinds SET id = 2 WHERE id = 1;
INSERT INTO nokey VALUES (1, 'a'), (NULL, NULL);
UPDATE nokey SET y = 'b' WHERE x = 1;
DELETE FROM nokey WHERE x IS NULL;
SELECT pg_logical_emit_message(true, 'fuzz-prefix', 'transactional content');
SELECT pg_logical_emit_message(false, 'fuzz-prefix', '\x00ff'::bytea);
ALTER TABLE kinds ADD COLUMN extra int DEFAULT 7;
INSERT INTO kinds (id, t) VALUES (3, 'after alter');
DELETE FROM kinds WHERE id = 3;
TRUNCATE nokey;
INSERT INTO nokey SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g;
SQL

# One seed per slice of the change list, so each stays small and starts at a message boundary.
rm -rf corpus/pgoutput_decode && mkdir -p corpus/pgoutput_decode
sql -c "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('fuzz', NULL, NULL,
        'proto_version', '2', 'publication_names', 'fuzz', 'streaming', 'on', 'messages', 'true')" \
    >"$dir/messages.hex"
python3 - "$dir/messages.hex" corpus/pgoutput_decode <<'PY'
import sys, struct, pathlib
messages = [bytes.fromhex(line) for line in open(sys.argv[1]).read().split()]
out = pathlib.Path(sys.argv[2])
def frame(run):
    return b"".join(struct.pack(">H", len(m)) + m for m in run if len(m) < 65536)
# Every message alone, then runs of 8 (relation cache and transactions carry over), then all.
for i, m in enumerate(messages[:60]):
    (out / f"single-{i:03}").write_bytes(frame([m]))
for start in range(0, min(len(messages), 400), 8):
    (out / f"run-{start:04}").write_bytes(frame(messages[start:start + 8]))
(out / "everything").write_bytes(frame(messages)[:1 << 16])
print(f"{len(messages)} messages", file=sys.stderr)
PY
