#!/usr/bin/env bash
# search.sh -- documents/s the search sink writes into a search server, compared with the
# server's own bulk rate for the same documents loaded directly.
#
# A throwaway cluster gets the workload of throughput.sh (N inserts, N updates, N/10 deletes,
# BATCH rows per transaction) on the benchmark table while a pgoutput slot exists; a throwaway
# osmem-server (pip install osmem-server) is the search server. Then:
#   sluice:   `sluice run` with one search sink (bulk requests of MAX_BULK actions), timed from
#             start until the slot's confirmed_flush_lsn reaches END, i.e. until the server
#             confirmed every action; documents/s = actions (an index per insert and update, a
#             delete per delete) per second. The index must then hold N - N/10 documents.
#   baseline: a Python loader posts prepared `_bulk` bodies of as many actions (the rows as
#             PostgreSQL's row_to_json prints them, indexed twice with rising external
#             versions, then the N/10 deletes; MAX_BULK actions per request) over one
#             keep-alive connection into a fresh index; only the posting is timed.
# Ends with: RESULT name=search documents=... sluice_docs_per_s=... baseline_docs_per_s=...
#            ratio=... peak_rss_mib=...
#
# Environment: N=20000  BATCH=1000  MAX_BULK=1000  PGBIN=<pg_config --bindir | newest
#   /usr/lib/postgresql/*/bin>  SLUICE_BIN=<built here: cargo build --release --features
#   sink-search>  OSMEM_BIN=<from the osmem_server Python package>  TIMEOUT_S=1800
#   RUN_AS=postgres (OS user for the server when run as root)
set -euo pipefail

N=${N:-20000}
BATCH=${BATCH:-1000}
MAX_BULK=${MAX_BULK:-1000}
NDEL=$((N / 10))
ACTIONS=$((N + N + NDEL))
TIMEOUT_S=${TIMEOUT_S:-1800}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=bench PUB=bench_pub SLUICE_SLOT=sluice_bench

die() { echo "ERROR: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }

# ---------------------------------------------------------------- binaries
if [[ -z ${PGBIN:-} ]]; then
    if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/initdb ]]; then
        PGBIN=$(pg_config --bindir)
    else
        PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    fi
fi
for b in initdb pg_ctl psql; do
    [[ -x $PGBIN/$b ]] || die "$PGBIN/$b not found (set PGBIN)"
done
if [[ -z ${SLUICE_BIN:-} ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --features sink-search --bin sluice) >&2
    SLUICE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ -x $SLUICE_BIN ]] || die "sluice binary not found at $SLUICE_BIN"
if [[ -z ${OSMEM_BIN:-} ]]; then
    OSMEM_BIN=$(python3 -c 'import osmem_server; print(osmem_server.resolve_binary())') \
        || die "osmem-server missing: python3 -m pip install osmem-server"
fi

# ---------------------------------------------------------------- throwaway cluster
# initdb refuses root: the server runs as RUN_AS; the clients (psql, sluice)
# run as whoever we are and connect over TCP as the postgres role with trust auth.
AS_SERVER=()
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
if [[ $EUID -eq 0 ]]; then
    RUN_AS=${RUN_AS:-postgres}
    id "$RUN_AS" >/dev/null 2>&1 || die "running as root needs an OS user $RUN_AS for the server"
    chmod 755 "$WORKDIR"; chown "$RUN_AS" "$WORKDIR"
    AS_SERVER=(runuser -u "$RUN_AS" --)
fi
PGDATA=$WORKDIR/data
SLUICE_PID=""
cleanup() {
    set +e
    [[ -n $SLUICE_PID ]] && kill -KILL "$SLUICE_PID" 2>/dev/null
    [[ -n ${PSQL_PID:-} ]] && kill "$PSQL_PID" 2>/dev/null
    [[ -n ${OSMEM_PID:-} ]] && kill "$OSMEM_PID" 2>/dev/null
    [[ -f $PGDATA/postmaster.pid ]] && "${AS_SERVER[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${PORT:-55432}
while port_in_use "$PORT"; do PORT=$((PORT + 1)); done
(cd "$WORKDIR" && "${AS_SERVER[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null) \
    || die "initdb failed"
# Durability is off: the workload's speed is not what is measured, and both consumers read the
# same WAL either way. wal_sender_timeout=0 so a busy consumer is never cut off.
"${AS_SERVER[@]}" tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORKDIR'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = '512MB'
max_wal_size = '8GB'
wal_sender_timeout = 0
logging_collector = off
log_min_messages = warning
EOF
(cd "$WORKDIR" && "${AS_SERVER[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORKDIR/server.log" -w start >/dev/null) \
    || { cat "$WORKDIR/server.log" >&2; die "server start failed"; }
"$PGBIN/psql" -X -q -d "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" -c "CREATE DATABASE $DB"
CONN="host=127.0.0.1 port=$PORT user=postgres dbname=$DB"
sql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -d "$CONN" -c "$1"; }

# ---------------------------------------------------------------- schema and workload
sql "
CREATE TABLE bench (
  id bigint PRIMARY KEY, i int NOT NULL, t text NOT NULL, amount numeric(12,2) NOT NULL,
  ts timestamptz NOT NULL, flag boolean NOT NULL, u uuid NOT NULL, j jsonb NOT NULL,
  d double precision NOT NULL, note varchar(64)
) WITH (autovacuum_enabled = false);
CREATE PUBLICATION $PUB FOR TABLE bench;
CREATE PROCEDURE bench_insert(n bigint, batch int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint := 1;
BEGIN
  WHILE s <= n LOOP
    INSERT INTO bench
    SELECT g, (g % 100000)::int, md5(g::text) || lpad(g::text, 18, '0'),
           (g % 10000000) / 100.0, now(), g % 2 = 0, md5(g::text || 'u')::uuid,
           jsonb_build_object('k', g, 'tag', 'tag' || (g % 100), 'ok', g % 3 = 0),
           g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note-' || g END
      FROM generate_series(s, least(s + batch - 1, n)) g;
    COMMIT;
    s := s + batch;
  END LOOP;
END \$\$;
CREATE PROCEDURE bench_update(n bigint, batch int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint := 1;
BEGIN
  WHILE s <= n LOOP
    UPDATE bench SET i = i + 1, amount = amount + 1, ts = now(), flag = NOT flag,
                     j = j || '{\"upd\": 1}', d = d + 0.5, note = coalesce(note, 'upd')
     WHERE id BETWEEN s AND least(s + batch - 1, n);
    COMMIT;
    s := s + batch;
  END LOOP;
END \$\$;
CREATE PROCEDURE bench_delete(n bigint, batch int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint := 1;
BEGIN
  WHILE s <= n LOOP
    DELETE FROM bench WHERE id BETWEEN s AND least(s + batch - 1, n);
    COMMIT;
    s := s + batch;
  END LOOP;
END \$\$;" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$SLUICE_SLOT', 'pgoutput')" >/dev/null
rows_json() {  # the table's rows as `id<TAB>json`, for the baseline's prepared bodies
    "$PGBIN/psql" -X -q -At -d "$CONN" \
        -c "COPY (SELECT id, row_to_json(b) FROM bench b ORDER BY id) TO STDOUT" >"$1"
}
log "workload: $N inserts, $N updates, $NDEL deletes in transactions of $BATCH rows"
t0=$EPOCHREALTIME
sql "CALL bench_insert($N, $BATCH)"
rows_json "$WORKDIR/inserted.tsv"
sql "CALL bench_update($N, $BATCH)"
rows_json "$WORKDIR/updated.tsv"
sql "CALL bench_delete($NDEL, $BATCH)"
t1=$EPOCHREALTIME
END=$(sql "SELECT pg_current_wal_lsn()")
log "workload done in $(elapsed "$t0" "$t1") s up to $END"

# ---------------------------------------------------------------- search server
SPORT=$((PORT + 1000))
while port_in_use "$SPORT"; do SPORT=$((SPORT + 1)); done
"$OSMEM_BIN" -addr "127.0.0.1:$SPORT" -no-stdin-watch >"$WORKDIR/osmem.log" 2>&1 &
OSMEM_PID=$!
SURL=http://127.0.0.1:$SPORT
for _ in $(seq 1 200); do curl -sf "$SURL/" >/dev/null && break; sleep 0.05; done
curl -sf "$SURL/" >/dev/null || die "osmem-server did not start"

# ---------------------------------------------------------------- sluice with a search sink
cat >"$WORKDIR/sluice.toml" <<TOML
[pipeline]
name = "bench"

[source]
type = "postgres"
connection = "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
slot = "$SLUICE_SLOT"
publication = "$PUB"
tables = ["public.bench"]
snapshot_mode = "never"

[[sink]]
name = "search"
type = "search"
url = "$SURL"
max_bulk_actions = $MAX_BULK
TOML
# One psql session answers the 50 ms polls: a new connection per poll would steal CPU from
# the daemon being measured.
coproc POLL { "$PGBIN/psql" -X -q -At -d "$CONN" 2>&1; }
PSQL_PID=$POLL_PID
reached() {
    echo "SELECT coalesce(confirmed_flush_lsn >= '$END', false) FROM pg_replication_slots WHERE slot_name = '$SLUICE_SLOT';" >&"${POLL[1]}"
    local answer; read -r answer <&"${POLL[0]}"; [[ $answer == t ]]
}
mkfifo "$WORKDIR/sleep.fifo"
exec {SLEEP_FD}<>"$WORKDIR/sleep.fifo"
log "sluice: search sink to $END"
t0=$EPOCHREALTIME
RUST_LOG=${RUST_LOG:-warn} "$SLUICE_BIN" run --config "$WORKDIR/sluice.toml" \
    >"$WORKDIR/sluice.out" 2>"$WORKDIR/sluice.err" &
SLUICE_PID=$!
deadline=$((SECONDS + TIMEOUT_S))
until reached; do
    kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice exited early"; }
    ((SECONDS < deadline)) || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice did not reach $END in ${TIMEOUT_S}s"; }
    read -r -t 0.05 -u "$SLEEP_FD" || true   # 50 ms: a read on a silent fifo, no fork
done
t1=$EPOCHREALTIME
HWM_KIB=$(awk '/^VmHWM:/{print $2}' "/proc/$SLUICE_PID/status")
kill -TERM "$SLUICE_PID"
rc=0; wait "$SLUICE_PID" || rc=$?
SLUICE_PID=""
((rc == 0)) || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice exited with $rc after SIGTERM"; }
SLUICE_S=$(elapsed "$t0" "$t1")
SLUICE_DPS=$(awk -v c="$ACTIONS" -v s="$SLUICE_S" 'BEGIN{printf "%.0f", c / s}')
PEAK_MIB=$(awk -v k="$HWM_KIB" 'BEGIN{printf "%.1f", k / 1024}')
curl -sf -XPOST "$SURL/bench.public.bench/_refresh" >/dev/null
INDEXED=$(curl -sf "$SURL/bench.public.bench/_count" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
[[ $INDEXED == $((N - NDEL)) ]] || die "the index holds $INDEXED documents, the table $((N - NDEL))"

# ---------------------------------------------------------------- baseline: direct bulk loader
log "baseline: $ACTIONS prepared _bulk actions posted directly"
cat >"$WORKDIR/loader.py" <<'PY'
import http.client, json, sys, time

port, max_bulk, ndel = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
index = "baseline"
actions = []

def index_rows(path, version):
    with open(path) as f:
        for line in f:
            doc_id, doc = line.rstrip("\n").split("\t", 1)
            meta = {"index": {"_index": index, "_id": doc_id, "version": version,
                              "version_type": "external"}}
            actions.append(json.dumps(meta) + "\n" + doc + "\n")

index_rows(sys.argv[4], 1)
index_rows(sys.argv[5], 2)
for i in range(1, ndel + 1):
    meta = {"delete": {"_index": index, "_id": str(i), "version": 3, "version_type": "external"}}
    actions.append(json.dumps(meta) + "\n")
bodies = ["".join(actions[i:i + max_bulk]).encode() for i in range(0, len(actions), max_bulk)]

conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("PUT", "/" + index, body=b"{}", headers={"Content-Type": "application/json"})
conn.getresponse().read()
t0 = time.perf_counter()
for body in bodies:
    conn.request("POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
    response = conn.getresponse()
    result = json.loads(response.read())
    statuses = [next(iter(item.values()))["status"] for item in result["items"]]
    if response.status != 200 or any(s >= 300 and s not in (404, 409) for s in statuses):
        sys.exit("a baseline bulk request failed")
t1 = time.perf_counter()
print(f"{len(actions)} {t1 - t0:.3f}")
PY
read -r BASE_ACTIONS BASE_S < <(python3 "$WORKDIR/loader.py" "$SPORT" "$MAX_BULK" "$NDEL" \
    "$WORKDIR/inserted.tsv" "$WORKDIR/updated.tsv") || die "the baseline loader failed"
[[ $BASE_ACTIONS == "$ACTIONS" ]] || die "the baseline posted $BASE_ACTIONS actions, not $ACTIONS"
BASE_DPS=$(awk -v c="$ACTIONS" -v s="$BASE_S" 'BEGIN{printf "%.0f", c / s}')
RATIO=$(awk -v a="$SLUICE_DPS" -v b="$BASE_DPS" 'BEGIN{printf "%.2f", a / b}')

# ---------------------------------------------------------------- report
echo
echo "=== search: $ACTIONS bulk actions ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; $MAX_BULK actions/request) ==="
printf '%-36s %10s %12s %14s\n' loader wall_s docs_per_s peak_rss_MiB
printf '%-36s %10s %12s %14s\n' "direct _bulk (python, prepared)" "$BASE_S" "$BASE_DPS" -
printf '%-36s %10s %12s %14s\n' "sluice (postgres -> search sink)" "$SLUICE_S" "$SLUICE_DPS" "$PEAK_MIB"
echo "RESULT name=search documents=$ACTIONS sluice_docs_per_s=$SLUICE_DPS baseline_docs_per_s=$BASE_DPS ratio=$RATIO peak_rss_mib=$PEAK_MIB"
