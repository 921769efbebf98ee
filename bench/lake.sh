#!/usr/bin/env bash
# lake.sh -- how fast sluice writes a change stream into a Delta Lake changelog on a local
# directory, compared with Python deltalake writing the same rows, in the same run.
#
# A throwaway PostgreSQL cluster gets the workload of throughput.sh (N inserts, N updates, N/10
# deletes, BATCH rows per transaction on the 10-column `bench` table) while a slot exists. Then:
#   sluice:   `sluice run` with only a lake sink, timed from start until the slot's
#             confirmed_flush_lsn reaches the workload's end; the changelog must then hold
#             exactly CHANGES rows and its current state N - N/10 rows (counted by DuckDB with
#             its delta extension).
#   baseline: Python deltalake (`write_deltalake`, mode append) writing the changelog's own rows,
#             read back from it beforehand, with the same columns and types, in commits of
#             MAX_BATCH_EVENTS rows (sluice commits once per batch), into a fresh table.
# Ends with: RESULT name=lake changes=... sluice_rows_per_s=... baseline_rows_per_s=... ratio=...
#
# Environment: N=100000  BATCH=1000  PGBIN=<newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release --features sink-lake>
#   MAX_BATCH_EVENTS=16384 (pipeline.max_batch_events)  TIMEOUT_S=1800  RUN_AS=postgres
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_sizes 100000
LIVE=$((N - NDEL))
# Events per batch: each batch is one Delta commit and at least one Parquet file per table, so
# the lake wants larger batches than the default 4096.
MAX_BATCH_EVENTS=${MAX_BATCH_EVENTS:-16384}
DB=bench PUB=bench_pub

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
bench_find_pgbin initdb pg_ctl psql
python3 -c "import deltalake, duckdb, duckdb_ext" 2>/dev/null \
    || die "python deltalake and duckdb are needed (python3 -m pip install deltalake duckdb==1.4.4 duckdb-ext-delta)"
bench_find_sluice sink-lake

bench_cluster_start sluice-lake 56532
bench_create_databases "$DB"
bench_schema
sql "SELECT pg_create_logical_replication_slot('sluice_lake', 'pgoutput')" >/dev/null
bench_workload
bench_wal_report

# ---------------------------------------------------------------- sluice
LAKE=$WORKDIR/lake
cat >"$WORKDIR/lake.toml" <<TOML
[pipeline]
name = "bench"
max_batch_events = $MAX_BATCH_EVENTS

$(bench_source_toml sluice_lake)

[[sink]]
name = "lake"
type = "lake"
location = "$LAKE"
TOML
bench_poller_start
log "sluice: lake sink to $END"
t0=$EPOCHREALTIME
start_sluice lake
wait_reached lake sluice_lake "$END" 0.1
t1=$EPOCHREALTIME
stop_sluice lake
SLUICE_S=$(elapsed "$t0" "$t1")

duck() {  # duck SQL: one DuckDB query with the delta extension, the result as CSV
    python3 - "$1" <<'PY'
import os, sys, duckdb, duckdb_ext
ext = os.path.join(list(duckdb_ext.__path__)[0], f"extensions/v{duckdb.__version__}/linux_amd64/delta.duckdb_extension")
con = duckdb.connect(); con.execute(f"LOAD '{ext}'")
for row in con.execute(sys.argv[1]).fetchall():
    print(",".join("" if v is None else str(v) for v in row))
PY
}
TABLE=$LAKE/public.bench
got=$(duck "SELECT count(*) FROM delta_scan('$TABLE')")
[[ $got == "$CHANGES" ]] || die "the changelog holds $got rows, expected $CHANGES"
got=$(duck "SELECT count(*) FROM (SELECT _op, row_number() OVER (PARTITION BY id ORDER BY _commit_lsn DESC, _lsn DESC) AS r FROM delta_scan('$TABLE')) WHERE r = 1 AND _op <> 'd'")
[[ $got == "$LIVE" ]] || die "the current state holds $got rows, expected $LIVE"
FILES=$(ls "$TABLE" | grep -c '\.parquet$' || true)

# ---------------------------------------------------------------- baseline: Python deltalake
log "baseline: python deltalake writes the same $CHANGES rows"
duck "COPY (SELECT * EXCLUDE (ts, _commit_ts), epoch_us(ts) AS ts, epoch_us(_commit_ts) AS _commit_ts FROM delta_scan('$TABLE') ORDER BY _commit_lsn, _lsn) TO '$WORKDIR/rows.csv' (HEADER)" >/dev/null
BASE_S=$(python3 "$ROOT/bench/lake_baseline.py" "$WORKDIR/rows.csv" "$WORKDIR/baseline" "$MAX_BATCH_EVENTS")
got=$(duck "SELECT count(*) FROM delta_scan('$WORKDIR/baseline')")
[[ $got == "$CHANGES" ]] || die "the baseline table holds $got rows, expected $CHANGES"
rm -f "$WORKDIR/rows.csv"

# ---------------------------------------------------------------- report
RATIO=$(awk -v s="$SLUICE_S" -v b="$BASE_S" 'BEGIN{printf "%.2f", b / s}')
echo
echo "=== lake: $CHANGES changes ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; max_batch_events=$MAX_BATCH_EVENTS) ==="
printf '%-8s %10s %14s %12s %16s %7s %7s %9s\n' target sluice_s sluice_rows/s baseline_s baseline_rows/s ratio files peak_mib
printf '%-8s %10s %14s %12s %16s %7s %7s %9s\n' lake "$SLUICE_S" "$(rate "$CHANGES" "$SLUICE_S")" "$BASE_S" \
    "$(rate "$CHANGES" "$BASE_S")" "$RATIO" "$FILES" "$PEAK_MIB"
echo "RESULT name=lake changes=$CHANGES sluice_rows_per_s=$(rate "$CHANGES" "$SLUICE_S") baseline_rows_per_s=$(rate "$CHANGES" "$BASE_S") ratio=$RATIO files=$FILES peak_rss_mib=$PEAK_MIB max_batch_events=$MAX_BATCH_EVENTS"
