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
#   pg_recvlogical: on one more slot, --start --endpos=END -f /dev/null, timed once: the
#             source's own rate for the same WAL, for the benchmark report.
# Ends with: RESULT name=warehouse-postgres changes=... sluice_rows_per_s=...
#              baseline_rows_per_s=... ratio=... peak_rss_mib=... cpu_s=...
#              recvlogical_changes_per_s=... recvlogical_ratio=...
#            (and the same for warehouse-clickhouse)
#
# Environment: N=100000  BATCH=1000  PGBIN=<newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release --features sink-postgres,sink-clickhouse>
#   TARGETS="postgres clickhouse"  MAX_BATCH_EVENTS=4096 (pipeline.max_batch_events)  TIMEOUT_S=1800  RUN_AS=postgres (server OS user under root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_sizes 100000
LIVE=$((N - NDEL))
TARGETS=${TARGETS:-postgres clickhouse}
# Events per batch handed to a sink: each batch is one PostgreSQL transaction and at least one
# ClickHouse insert (one part), so warehouse targets like larger batches than the default 4096.
MAX_BATCH_EVENTS=${MAX_BATCH_EVENTS:-4096}
DB=bench PUB=bench_pub BASE_SLOT=recvlogical_bench

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
bench_find_pgbin initdb pg_ctl pg_recvlogical psql
[[ " $TARGETS " == *" clickhouse "* ]] && { command -v clickhouse-server >/dev/null && command -v curl >/dev/null \
    || die "clickhouse-server and curl are needed (apt-get install -y clickhouse-server curl)"; }
bench_find_sluice sink-kafka,sink-postgres,sink-clickhouse

# ---------------------------------------------------------------- throwaway servers
CH_PID=""
bench_cleanup_extra() { [[ -n $CH_PID ]] && kill -KILL "$CH_PID" 2>/dev/null && wait "$CH_PID" 2>/dev/null; }
# The target database `wh` shares the cluster (and its settings) with the source, so does the
# baseline COPY.
bench_cluster_start sluice-warehouse 56432
bench_create_databases "$DB" wh

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
bench_schema
# bench_row(g): row g of the workload, for the baselines' prepared files.
sql "CREATE FUNCTION bench_row(g bigint) RETURNS bench LANGUAGE sql AS \$\$
  SELECT $BENCH_ROW
\$\$;" >/dev/null
for target in $TARGETS; do
    sql "SELECT pg_create_logical_replication_slot('sluice_$target', 'pgoutput')" >/dev/null
done
sql "SELECT pg_create_logical_replication_slot('$BASE_SLOT', 'pgoutput')" >/dev/null
bench_workload
bench_recvlogical_baseline "$BASE_SLOT"

# ---------------------------------------------------------------- sluice, one target at a time
declare -A RESULT_S RESULT_BASE RESULT_MIB RESULT_CPU
bench_poller_start
run_sluice() {  # run_sluice TARGET SINK_TOML -> sets SLUICE_S
    local target=$1 slot=sluice_$1
    cat >"$WORKDIR/$target.toml" <<EOF
[pipeline]
name = "bench"
max_batch_events = $MAX_BATCH_EVENTS

$(bench_source_toml "$slot")

[[sink]]
name = "$target"
$2
EOF
    log "sluice: $target sink to $END"
    local t0=$EPOCHREALTIME
    start_sluice "$target"
    wait_reached "$target" "$slot" "$END" 0.1
    local t1=$EPOCHREALTIME
    stop_sluice "$target"
    SLUICE_S=$(elapsed "$t0" "$t1")
    RESULT_MIB[$target]=$PEAK_MIB RESULT_CPU[$target]=$CPU_S
}

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
    echo "RESULT name=warehouse-$target changes=$CHANGES sluice_rows_per_s=$(rate "$CHANGES" "$s") baseline_rows_per_s=$(rate "$CHANGES" "$b") ratio=$(awk -v s="$s" -v b="$b" 'BEGIN{printf "%.2f", b / s}') max_batch_events=$MAX_BATCH_EVENTS peak_rss_mib=${RESULT_MIB[$target]} cpu_s=${RESULT_CPU[$target]} recvlogical_changes_per_s=$BASE_CPS recvlogical_ratio=$(awk -v s="$s" -v b="$BASE_S" 'BEGIN{printf "%.2f", b / s}')"
done
