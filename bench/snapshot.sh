#!/usr/bin/env bash
# snapshot.sh -- how fast sluice reads an existing table (an initial snapshot), compared with
# `COPY (SELECT ...) TO STDOUT` of the same table in the same run (PostgreSQL's fastest way out).
#
# A throwaway cluster gets a table of N rows (the columns of throughput.sh's workload). Then:
#   baseline: psql -c "COPY (SELECT * FROM bench) TO STDOUT" >/dev/null, timed (after one
#             untimed run that warms the cache for both readers);
#   sluice:   `sluice run` with snapshot_mode = "initial_only" and a null sink (type="memory",
#             retain=false), timed from start until it exits by itself once every chunk is
#             acknowledged; its peak RSS (VmHWM) is sampled while it runs.
# Ends with: RESULT name=snapshot rows=... sluice_rows_per_s=... baseline_rows_per_s=...
#            ratio=... peak_rss_mib=...
#
# Environment: N=5000000  CHUNK_ROWS=50000  THREADS=2  PGBIN=<pg_config --bindir | newest
#   /usr/lib/postgresql/*/bin>  SLUICE_BIN=<built here with cargo build --release>
#   TIMEOUT_S=1800  RUN_AS=postgres (OS user for the server when run as root)
set -euo pipefail

N=${N:-5000000}
CHUNK_ROWS=${CHUNK_ROWS:-50000}
THREADS=${THREADS:-2}
SKIP_SLUICE=0
TIMEOUT_S=${TIMEOUT_S:-1800}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=bench SLUICE_SLOT=sluice_snapshot_bench

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
if [[ $SKIP_SLUICE != 1 && -z ${SLUICE_BIN:-} ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin sluice) >&2
    SLUICE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ $SKIP_SLUICE == 1 || -x $SLUICE_BIN ]] || die "sluice binary not found at $SLUICE_BIN"

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

# ---------------------------------------------------------------- the table
sql "
CREATE TABLE bench (
  id bigint PRIMARY KEY, i int NOT NULL, t text NOT NULL, amount numeric(12,2) NOT NULL,
  ts timestamptz NOT NULL, flag boolean NOT NULL, u uuid NOT NULL, j jsonb NOT NULL,
  d double precision NOT NULL, note varchar(64)
);" >/dev/null
log "loading $N rows"
t0=$EPOCHREALTIME
sql "
INSERT INTO bench
SELECT g, (g % 100000)::int, md5(g::text) || lpad(g::text, 18, '0'),
       (g % 10000000) / 100.0, now(), g % 2 = 0, md5(g::text || 'u')::uuid,
       jsonb_build_object('k', g, 'tag', 'tag' || (g % 100), 'ok', g % 3 = 0),
       g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note-' || g END
  FROM generate_series(1, $N) g"
sql "VACUUM ANALYZE bench"
TABLE_MB=$(sql "SELECT round(pg_total_relation_size('bench') / 1e6)")
log "loaded in $(elapsed "$t0" "$EPOCHREALTIME") s; $TABLE_MB MB"

# ---------------------------------------------------------------- baseline: COPY TO STDOUT
sql "COPY (SELECT * FROM bench) TO STDOUT" >/dev/null
log "baseline: COPY (SELECT * FROM bench) TO STDOUT"
t0=$EPOCHREALTIME
"$PGBIN/psql" -X -q -d "$CONN" -c "COPY (SELECT * FROM bench) TO STDOUT" >/dev/null
t1=$EPOCHREALTIME
BASE_S=$(elapsed "$t0" "$t1")
BASE_RPS=$(awk -v c="$N" -v s="$BASE_S" 'BEGIN{printf "%.0f", c / s}')

# ---------------------------------------------------------------- sluice: initial_only snapshot
cat >"$WORKDIR/sluice.toml" <<EOF
[pipeline]
name = "bench"

[source]
type = "postgres"
connection = "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
slot = "$SLUICE_SLOT"
tables = ["public.bench"]
snapshot_mode = "initial_only"
snapshot_chunk_rows = $CHUNK_ROWS
snapshot_max_threads = $THREADS
state_dir = "$WORKDIR/state"

[[sink]]
name = "null"
type = "memory"
retain = false
EOF
log "sluice: snapshot of $N rows, chunks of $CHUNK_ROWS, $THREADS threads"
HWM_KIB=0
t0=$EPOCHREALTIME
RUST_LOG=${RUST_LOG:-warn} "$SLUICE_BIN" run --config "$WORKDIR/sluice.toml" \
    >"$WORKDIR/sluice.out" 2>"$WORKDIR/sluice.err" &
SLUICE_PID=$!
deadline=$((SECONDS + TIMEOUT_S))
while kill -0 "$SLUICE_PID" 2>/dev/null; do
    ((SECONDS < deadline)) || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice did not finish in ${TIMEOUT_S}s"; }
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$SLUICE_PID/status" 2>/dev/null || true)
    [[ -n $hwm ]] && ((hwm > HWM_KIB)) && HWM_KIB=$hwm
    sleep 0.2
done
rc=0; wait "$SLUICE_PID" || rc=$?
t1=$EPOCHREALTIME
SLUICE_PID=""
((rc == 0)) || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice exited with $rc"; }
grep -q '"completed":true' "$WORKDIR/state/snapshot-$SLUICE_SLOT.json" \
    || die "the snapshot state does not say completed"
SLUICE_S=$(elapsed "$t0" "$t1")
SLUICE_RPS=$(awk -v c="$N" -v s="$SLUICE_S" 'BEGIN{printf "%.0f", c / s}')
RATIO=$(awk -v a="$SLUICE_RPS" -v b="$BASE_RPS" 'BEGIN{printf "%.2f", a / b}')
PEAK_MIB=$(awk -v k="$HWM_KIB" 'BEGIN{printf "%.1f", k / 1024}')

# ---------------------------------------------------------------- report
echo
echo "=== snapshot: $N rows ($TABLE_MB MB), chunks of $CHUNK_ROWS rows, $THREADS threads ==="
printf '%-34s %10s %12s %14s\n' reader wall_s rows_per_s peak_rss_MiB
printf '%-34s %10s %12s %14s\n' "COPY ... TO STDOUT (psql)" "$BASE_S" "$BASE_RPS" -
printf '%-34s %10s %12s %14s\n' "sluice snapshot (null sink)" "$SLUICE_S" "$SLUICE_RPS" "$PEAK_MIB"
echo "RESULT name=snapshot rows=$N sluice_rows_per_s=$SLUICE_RPS baseline_rows_per_s=$BASE_RPS ratio=$RATIO peak_rss_mib=$PEAK_MIB"
