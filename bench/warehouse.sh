#!/usr/bin/env bash
# warehouse.sh -- how fast sluice applies a change stream to each warehouse target, compared with
# the target's own bulk load of the same number of rows, in the same run.
#
# A throwaway PostgreSQL cluster gets the workload of throughput.sh (N inserts, N updates, N/10
# deletes, BATCH rows per transaction on the 10-column `bench` table) while one slot per target
# exists. Then, per target:
#   sluice:   `sluice run` with only that sink (postgres: database `wh` of the same cluster;
#             clickhouse: a private Debian clickhouse-server), timed from start until the slot's
#             confirmed_flush_lsn reaches the workload's end; the target is then checked to hold
#             exactly the N - N/10 live rows.
#   baseline: the target's own load of CHANGES rows of the same shape from a prepared file
#             (postgres: COPY FROM; clickhouse: INSERT ... FORMAT JSONEachRow over HTTP with curl)
#             into a fresh table shaped like the sink's.
# Ends with: RESULT name=warehouse-postgres changes=... sluice_rows_per_s=...
#              baseline_rows_per_s=... ratio=...   (and the same for warehouse-clickhouse)
#
# Environment: N=100000  BATCH=1000  PGBIN=<newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release --features sink-postgres,sink-clickhouse>
#   TARGETS="postgres clickhouse"  MAX_BATCH_EVENTS=4096 (pipeline.max_batch_events)  TIMEOUT_S=1800  RUN_AS=postgres (server OS user under root)
set -euo pipefail

N=${N:-100000}
BATCH=${BATCH:-1000}
NDEL=$((N / 10))
CHANGES=$((N + N + NDEL))
LIVE=$((N - NDEL))
TARGETS=${TARGETS:-postgres clickhouse}
TIMEOUT_S=${TIMEOUT_S:-1800}
# Events per batch handed to a sink: each batch is one PostgreSQL transaction and at least one
# ClickHouse insert (one part), so warehouse targets like larger batches than the default 4096.
MAX_BATCH_EVENTS=${MAX_BATCH_EVENTS:-4096}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=bench PUB=bench_pub

die() { echo "ERROR: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }
rate() { awk -v c="$1" -v s="$2" 'BEGIN{printf "%.0f", c / s}'; }

# ---------------------------------------------------------------- binaries
if [[ -z ${PGBIN:-} ]]; then
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
for b in initdb pg_ctl psql; do [[ -x $PGBIN/$b ]] || die "$PGBIN/$b not found (set PGBIN)"; done
[[ " $TARGETS " == *" clickhouse "* ]] && { command -v clickhouse-server >/dev/null && command -v curl >/dev/null \
    || die "clickhouse-server and curl are needed (apt-get install -y clickhouse-server curl)"; }
if [[ -z ${SLUICE_BIN:-} ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin sluice --features sink-kafka,sink-postgres,sink-clickhouse) >&2
    SLUICE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ -x $SLUICE_BIN ]] || die "sluice binary not found at $SLUICE_BIN"

# ---------------------------------------------------------------- throwaway servers
AS_SERVER=()
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-warehouse.XXXXXX")
if [[ $EUID -eq 0 ]]; then
    RUN_AS=${RUN_AS:-postgres}
    id "$RUN_AS" >/dev/null 2>&1 || die "running as root needs an OS user $RUN_AS for the server"
    chmod 755 "$WORKDIR"; chown "$RUN_AS" "$WORKDIR"
    AS_SERVER=(runuser -u "$RUN_AS" --)
fi
PGDATA=$WORKDIR/data
SLUICE_PID="" CH_PID=""
cleanup() {
    set +e
    [[ -n $SLUICE_PID ]] && kill -KILL "$SLUICE_PID" 2>/dev/null
    [[ -n $CH_PID ]] && kill -KILL "$CH_PID" 2>/dev/null && wait "$CH_PID" 2>/dev/null
    [[ -f $PGDATA/postmaster.pid ]] && "${AS_SERVER[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while port_in_use "$p"; do p=$((p + 1)); done; echo "$p"; }
PORT=$(free_port "${PORT:-56432}")
(cd "$WORKDIR" && "${AS_SERVER[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null) \
    || die "initdb failed"
# Durability is off on the source side only for the workload's speed; the target database `wh`
# shares the cluster (and its settings) with the source, so does the baseline COPY.
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
psql_in() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -d "host=127.0.0.1 port=$PORT user=postgres dbname=$1" "${@:2}"; }
psql_in postgres -c "CREATE DATABASE $DB" -c "CREATE DATABASE wh"
sql() { psql_in "$DB" -c "$1"; }

if [[ " $TARGETS " == *" clickhouse "* ]]; then
    CH_DIR=$WORKDIR/clickhouse; mkdir -p "$CH_DIR/log"
    CH_PORT=$(free_port 18123)
    sed -e "s#/var/lib/clickhouse/#$CH_DIR/data/#g; s#/var/log/clickhouse-server/#$CH_DIR/log/#g" \
        -e "s#<http_port>8123</http_port>#<http_port>$CH_PORT</http_port><listen_host>127.0.0.1</listen_host>#" \
        -e "s#<tcp_port>9000</tcp_port>#<tcp_port>$(free_port 19000)</tcp_port>#" \
        -e "s#<interserver_http_port>9009</interserver_http_port>#<interserver_http_port>$(free_port 19009)</interserver_http_port>#" \
        -e "s#<users_config>users.xml</users_config>#<users_config>$CH_DIR/users.xml</users_config>#" \
        /etc/clickhouse-server/config.xml >"$CH_DIR/config.xml"
    cp /etc/clickhouse-server/users.xml "$CH_DIR/users.xml"
    (cd "$CH_DIR" && exec clickhouse-server --config-file="$CH_DIR/config.xml" >"$CH_DIR/stdout.log" 2>&1) &
    CH_PID=$!
    CH_URL=http://127.0.0.1:$CH_PORT
    for _ in $(seq 600); do curl -sf "$CH_URL/ping" >/dev/null && break; sleep 0.1; done
    curl -sf "$CH_URL/ping" >/dev/null || die "clickhouse did not start: $(tail -5 "$CH_DIR/log/clickhouse-server.err.log")"
fi
ch() { curl -sS --fail-with-body "$CH_URL/" --data-binary "$1"; }

# ---------------------------------------------------------------- schema and workload
sql "
CREATE TABLE bench (
  id bigint PRIMARY KEY, i int NOT NULL, t text NOT NULL, amount numeric(12,2) NOT NULL,
  ts timestamptz NOT NULL, flag boolean NOT NULL, u uuid NOT NULL, j jsonb NOT NULL,
  d double precision NOT NULL, note varchar(64)
) WITH (autovacuum_enabled = false);
CREATE PUBLICATION $PUB FOR TABLE bench;
CREATE FUNCTION bench_row(g bigint) RETURNS bench LANGUAGE sql AS \$\$
  SELECT g, (g % 100000)::int, md5(g::text) || lpad(g::text, 18, '0'),
         (g % 10000000) / 100.0, now(), g % 2 = 0, md5(g::text || 'u')::uuid,
         jsonb_build_object('k', g, 'tag', 'tag' || (g % 100), 'ok', g % 3 = 0),
         g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note-' || g END
\$\$;
CREATE PROCEDURE bench_workload(n bigint, ndel bigint, batch int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint;
BEGIN
  s := 1;
  WHILE s <= n LOOP
    INSERT INTO bench SELECT (bench_row(g)).* FROM generate_series(s, least(s + batch - 1, n)) g;
    COMMIT; s := s + batch;
  END LOOP;
  s := 1;
  WHILE s <= n LOOP
    UPDATE bench SET i = i + 1, amount = amount + 1, ts = now(), flag = NOT flag,
                     j = j || '{\"upd\": 1}', d = d + 0.5, note = coalesce(note, 'upd')
     WHERE id BETWEEN s AND least(s + batch - 1, n);
    COMMIT; s := s + batch;
  END LOOP;
  s := 1;
  WHILE s <= ndel LOOP
    DELETE FROM bench WHERE id BETWEEN s AND least(s + batch - 1, ndel);
    COMMIT; s := s + batch;
  END LOOP;
END \$\$;" >/dev/null
for target in $TARGETS; do
    sql "SELECT pg_create_logical_replication_slot('sluice_$target', 'pgoutput')" >/dev/null
done
log "workload: $N inserts, $N updates, $NDEL deletes in transactions of $BATCH rows"
sql "CALL bench_workload($N, $NDEL, $BATCH)"
END=$(sql "SELECT pg_current_wal_lsn()")

# ---------------------------------------------------------------- sluice, one target at a time
mkfifo "$WORKDIR/sleep.fifo"
exec {SLEEP_FD}<>"$WORKDIR/sleep.fifo"
run_sluice() {  # run_sluice TARGET SINK_TOML -> sets SLUICE_S
    local target=$1 slot=sluice_$1
    cat >"$WORKDIR/$target.toml" <<EOF
[pipeline]
name = "bench"
max_batch_events = $MAX_BATCH_EVENTS

[source]
type = "postgres"
connection = "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
slot = "$slot"
publication = "$PUB"
tables = ["public.bench"]
snapshot_mode = "never"

[[sink]]
name = "$target"
$2
EOF
    log "sluice: $target sink to $END"
    local t0=$EPOCHREALTIME
    RUST_LOG=${RUST_LOG:-warn} "$SLUICE_BIN" run --config "$WORKDIR/$target.toml" \
        >"$WORKDIR/$target.out" 2>"$WORKDIR/$target.err" &
    SLUICE_PID=$!
    local deadline=$((SECONDS + TIMEOUT_S))
    until [[ $(sql "SELECT coalesce(confirmed_flush_lsn >= '$END', false) FROM pg_replication_slots WHERE slot_name = '$slot'") == t ]]; do
        kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/$target.err" >&2; die "sluice exited early"; }
        ((SECONDS < deadline)) || { tail -50 "$WORKDIR/$target.err" >&2; die "sluice did not reach $END in ${TIMEOUT_S}s"; }
        read -r -t 0.1 -u "$SLEEP_FD" || true
    done
    local t1=$EPOCHREALTIME
    kill -TERM "$SLUICE_PID"
    local rc=0; wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    ((rc == 0)) || { tail -50 "$WORKDIR/$target.err" >&2; die "sluice exited with $rc after SIGTERM"; }
    SLUICE_S=$(elapsed "$t0" "$t1")
}

declare -A RESULT_S RESULT_BASE
if [[ " $TARGETS " == *" postgres "* ]]; then
    run_sluice postgres "type = \"postgres\"
connection = \"postgres://postgres@127.0.0.1:$PORT/wh?sslmode=disable\""
    RESULT_S[postgres]=$SLUICE_S
    got=$(psql_in wh -c "SELECT count(*) FROM public.bench")
    [[ $got == "$LIVE" ]] || die "postgres target holds $got rows, expected $LIVE"
    # Baseline: COPY of CHANGES rows of the same shape into a fresh table like the sink's.
    psql_in "$DB" -c "\\copy (SELECT (bench_row(g)).*, g, false FROM generate_series(1, $CHANGES) g) TO '$WORKDIR/rows.copy'"
    psql_in wh -c "CREATE TABLE baseline (LIKE public.bench INCLUDING ALL)"
    t0=$EPOCHREALTIME
    psql_in wh -c "\\copy baseline FROM '$WORKDIR/rows.copy'"
    t1=$EPOCHREALTIME
    RESULT_BASE[postgres]=$(elapsed "$t0" "$t1")
    rm -f "$WORKDIR/rows.copy"
fi
if [[ " $TARGETS " == *" clickhouse "* ]]; then
    run_sluice clickhouse "type = \"clickhouse\"
url = \"$CH_URL\"
database = \"wh\""
    RESULT_S[clickhouse]=$SLUICE_S
    got=$(ch "SELECT count() FROM wh.bench FINAL WHERE _deleted = 0")
    [[ $got == "$LIVE" ]] || die "clickhouse target holds $got live rows, expected $LIVE"
    # Baseline: the same JSONEachRow shape the sink sends, CHANGES rows, one HTTP insert.
    psql_in "$DB" -c "SELECT json_build_object('id', r.id, 'i', r.i, 't', r.t, 'amount', r.amount::numeric(12,2), 'ts', extract(epoch FROM r.ts)::bigint::text, 'flag', r.flag::int, 'u', r.u, 'j', r.j::text, 'd', r.d, 'note', r.note, '_version', g, '_deleted', 0) FROM generate_series(1, $CHANGES) g, bench_row(g) r" >"$WORKDIR/rows.json"
    ch "CREATE TABLE wh.baseline AS wh.bench" >/dev/null
    t0=$EPOCHREALTIME
    curl -sS --fail-with-body "$CH_URL/?query=INSERT%20INTO%20wh.baseline%20FORMAT%20JSONEachRow" --data-binary "@$WORKDIR/rows.json" >"$WORKDIR/insert.out" || die "baseline insert: $(cat "$WORKDIR/insert.out")"
    t1=$EPOCHREALTIME
    RESULT_BASE[clickhouse]=$(elapsed "$t0" "$t1")
    got=$(ch "SELECT count() FROM wh.baseline")
    [[ $got == "$CHANGES" ]] || die "clickhouse baseline loaded $got rows, expected $CHANGES"
    rm -f "$WORKDIR/rows.json"
fi

# ---------------------------------------------------------------- report
echo
echo "=== warehouse: $CHANGES changes ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; max_batch_events=$MAX_BATCH_EVENTS) ==="
printf '%-12s %10s %14s %12s %16s %7s\n' target sluice_s sluice_rows/s baseline_s baseline_rows/s ratio
for target in $TARGETS; do
    s=${RESULT_S[$target]} b=${RESULT_BASE[$target]}
    printf '%-12s %10s %14s %12s %16s %7s\n' "$target" "$s" "$(rate "$CHANGES" "$s")" "$b" \
        "$(rate "$CHANGES" "$b")" "$(awk -v s="$s" -v b="$b" 'BEGIN{printf "%.2f", b / s}')"
done
for target in $TARGETS; do
    s=${RESULT_S[$target]} b=${RESULT_BASE[$target]}
    echo "RESULT name=warehouse-$target changes=$CHANGES sluice_rows_per_s=$(rate "$CHANGES" "$s") baseline_rows_per_s=$(rate "$CHANGES" "$b") ratio=$(awk -v s="$s" -v b="$b" 'BEGIN{printf "%.2f", b / s}') max_batch_events=$MAX_BATCH_EVENTS"
done
