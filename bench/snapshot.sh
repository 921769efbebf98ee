#!/usr/bin/env bash
# snapshot.sh -- how fast sluice reads an existing table (an initial snapshot), compared with
# `COPY (SELECT ...) TO STDOUT` of the same table in the same run (PostgreSQL's fastest way out).
#
# A throwaway cluster gets a table of N rows (the columns of throughput.sh's workload). Then:
#   baseline: psql -c "COPY (SELECT * FROM bench) TO STDOUT" >/dev/null, timed (after one
#             untimed run that warms the cache for both readers);
#   sluice:   `sluice run` with snapshot_mode = "initial_only" and the sink SINK (default a
#             null sink: type="memory", retain=false), timed from start until it exits by
#             itself once every chunk is acknowledged; its peak RSS (VmHWM) is sampled while it
#             runs.
# Ends with: RESULT name=snapshot rows=... sluice_rows_per_s=... baseline_rows_per_s=...
#            ratio=... peak_rss_mib=... sink=...
#
# Environment: N=5000000  CHUNK_ROWS=50000  THREADS=2  SINK=memory (or kafka: a tansu broker
#   and the embedded registry; search: an osmem server; postgres: database wh of this cluster)
#   PGBIN=<pg_config --bindir | newest /usr/lib/postgresql/*/bin>  SLUICE_BIN=<built here with
#   cargo build --release and the SINK's feature>  TIMEOUT_S=1800  RUN_AS=postgres (OS user for
#   the server when run as root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${N:-5000000}
CHUNK_ROWS=${CHUNK_ROWS:-50000}
THREADS=${THREADS:-2}
SINK=${SINK:-memory}
DB=bench SLUICE_SLOT=sluice_snapshot_bench

bench_find_pgbin initdb pg_ctl psql
case $SINK in memory) FEATURE="" ;; *) FEATURE=sink-$SINK ;; esac
bench_find_sluice "$FEATURE"
bench_cluster_start sluice-bench 55432
bench_create_databases "$DB"
bench_sink_start "$SINK"

# ---------------------------------------------------------------- the table
sql "CREATE TABLE bench ($BENCH_COLUMNS
);" >/dev/null
log "loading $N rows"
t0=$EPOCHREALTIME
sql "
INSERT INTO bench
SELECT $BENCH_ROW
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
BASE_RPS=$(rate "$N" "$BASE_S")

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

$SINK_TOML
EOF
log "sluice: snapshot of $N rows into the $SINK sink, chunks of $CHUNK_ROWS, $THREADS threads"
HWM_KIB=0
t0=$EPOCHREALTIME
start_sluice sluice
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
SLUICE_RPS=$(rate "$N" "$SLUICE_S")
RATIO=$(awk -v a="$SLUICE_RPS" -v b="$BASE_RPS" 'BEGIN{printf "%.2f", a / b}')
PEAK_MIB=$(awk -v k="$HWM_KIB" 'BEGIN{printf "%.1f", k / 1024}')

# ---------------------------------------------------------------- report
echo
echo "=== snapshot: $N rows ($TABLE_MB MB) into the $SINK sink, chunks of $CHUNK_ROWS rows, $THREADS threads ==="
printf '%-34s %10s %12s %14s\n' reader wall_s rows_per_s peak_rss_MiB
printf '%-34s %10s %12s %14s\n' "COPY ... TO STDOUT (psql)" "$BASE_S" "$BASE_RPS" -
printf '%-34s %10s %12s %14s\n' "sluice snapshot ($SINK sink)" "$SLUICE_S" "$SLUICE_RPS" "$PEAK_MIB"
echo "RESULT name=snapshot rows=$N sluice_rows_per_s=$SLUICE_RPS baseline_rows_per_s=$BASE_RPS ratio=$RATIO peak_rss_mib=$PEAK_MIB sink=$SINK"
