#!/usr/bin/env bash
# latency.sh -- commit-to-sink latency of one sink at fixed change rates, read from the daemon's
# own histogram (sluice_sink_commit_latency_seconds), so every sink is measured the same way.
#
# A throwaway cluster and the server SINK writes to (bench/lib.sh's bench_sink_start) run with
# one `sluice run` (max_batch_wait_ms = LAT_BATCH_WAIT_MS, its HTTP endpoint on a free port).
# A few rows first make the destination's topic, index or table, outside the figures. Then, per
# step, a paced procedure inserts at RATE changes/s for LAT_SECONDS in transactions of
# RATE/LAT_COMMITS_PER_S rows (at least 1), committed synchronously; the step ends when the
# sink acknowledged every change (sluice_sink_events_total), and p50/p99 are read from the
# difference of two /metrics scrapes, before and after (one observation per acknowledged
# batch: from the commit of its oldest change to the acknowledgement).
#
# Steps: each rate of RATES; then, when MAX_FROM (a sustained rate in changes/s, e.g. the
# throughput benchmark's) is set, the "max" step: paced at MAX_FRACTIONS of MAX_FROM in turn
# until the sink keeps up, i.e. everything committed is acknowledged within KEEP_UP_S of the
# last commit. A backlog drained after the load would measure queueing, not the sink, so "max"
# is the highest rate tried that the sink kept up with; achieved_per_s is the rate the
# inserter really committed (on a small machine it can fall short of the target).
#
# Ends with one line per step:
#   RESULT name=latency sink=SINK step=1000|10000|max target_per_s=... achieved_per_s=...
#          p50_ms=... p99_ms=... batches=... drain_s=... kept_up=1|0 peak_rss_mib=... cpu_s=...
#
# Environment: SINK=memory (or kafka, search, postgres)  RATES="1000 10000" ("": none)
#   LAT_SECONDS=10  LAT_COMMITS_PER_S=100  LAT_BATCH_WAIT_MS=5  MAX_FROM=""
#   MAX_FRACTIONS="0.8 0.6 0.4"  KEEP_UP_S=1  PGBIN=<pg_config --bindir | newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release and the SINK's feature>  TIMEOUT_S=1800
#   RUN_AS=postgres (OS user for the server when run as root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SINK=${SINK:-memory}
RATES=${RATES-1000 10000}
LAT_SECONDS=${LAT_SECONDS:-10}
LAT_COMMITS_PER_S=${LAT_COMMITS_PER_S:-100}
MAX_FROM=${MAX_FROM:-}
MAX_FRACTIONS=${MAX_FRACTIONS:-0.8 0.6 0.4}
KEEP_UP_S=${KEEP_UP_S:-1}
DB=bench PUB=bench_pub SLOT=sluice_latency

bench_find_pgbin initdb pg_ctl psql
case $SINK in memory) FEATURE="" ;; *) FEATURE=sink-$SINK ;; esac
bench_find_sluice "$FEATURE"
bench_cluster_start sluice-latency 57432
bench_create_databases "$DB"
bench_sink_start "$SINK"
bench_schema
sql "$(bench_paced_procedure)" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$SLOT', 'pgoutput')" >/dev/null

HPORT=$(free_port $((PORT + 2000)))
METRICS=http://127.0.0.1:$HPORT/metrics
# A batch waits at most max_batch_wait_ms to fill (default 50 ms, for throughput); at a steady
# rate batches rarely fill, so the wait is the latency floor.
cat >"$WORKDIR/latency.toml" <<EOF
[pipeline]
name = "bench"
max_batch_wait_ms = ${LAT_BATCH_WAIT_MS:-5}

$(bench_source_toml "$SLOT")

$SINK_TOML

[http]
listen = "127.0.0.1:$HPORT"
EOF
bench_poller_start
start_sluice latency
until active "$SLOT" && curl -sf "$METRICS" >"$WORKDIR/after.prom"; do
    kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/latency.err" >&2; die "sluice exited early"; }
    nap 0.05
done

NEXT_ID=1
# acknowledged FILE: the sink's acknowledged changes in a /metrics scrape.
acknowledged() {
    awk -v series="sluice_sink_events_total{sink=\"$SINK\"}" '$1 == series {n = $2} END {print n + 0}' "$1"
}
# wait_acknowledged COUNT: scrapes into after.prom until the sink acknowledged COUNT changes.
wait_acknowledged() {
    local deadline=$((SECONDS + TIMEOUT_S))
    until curl -sf "$METRICS" >"$WORKDIR/after.prom" && (($(acknowledged "$WORKDIR/after.prom") >= $1)); do
        kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/latency.err" >&2; die "sluice exited early"; }
        ((SECONDS < deadline)) || die "the $SINK sink did not acknowledge $1 changes in ${TIMEOUT_S}s"
        nap 0.02
    done
}
# paced RATE: inserts LAT_SECONDS of RATE changes/s; sets ACHIEVED, DRAIN_S, P50, P99,
# BATCHES and KEPT_UP.
paced() {
    local rate=$1 count txn t0 t1 before
    count=$((rate * LAT_SECONDS))
    txn=$((rate / LAT_COMMITS_PER_S)); ((txn >= 1)) || txn=1
    curl -sf "$METRICS" >"$WORKDIR/before.prom"
    before=$(acknowledged "$WORKDIR/before.prom")
    log "$SINK: $rate changes/s for ${LAT_SECONDS}s in transactions of $txn rows"
    t0=$EPOCHREALTIME
    # synchronous_commit on for this session: with it off (as for the throughput workload) the
    # WAL writer flushes only every wal_writer_delay (200 ms), and the walsender sends nothing
    # before the flush, which would be measured as sluice's latency. fsync stays off.
    PGOPTIONS="-c synchronous_commit=on" sql "CALL bench_paced($NEXT_ID, $count, $txn, $rate)"
    t1=$EPOCHREALTIME
    wait_acknowledged $((before + count))
    DRAIN_S=$(elapsed "$t1" "$EPOCHREALTIME")
    NEXT_ID=$((NEXT_ID + count))
    ACHIEVED=$(rate "$count" "$(elapsed "$t0" "$t1")")
    read -r P50 P99 BATCHES < <(latency_quantiles "$WORKDIR/before.prom" "$WORKDIR/after.prom" "$SINK")
    KEPT_UP=$(awk -v d="$DRAIN_S" -v k="$KEEP_UP_S" 'BEGIN{print (d <= k) ? 1 : 0}')
    log "$SINK: committed $ACHIEVED changes/s; p50 $P50 ms, p99 $P99 ms over $BATCHES batches; drained ${DRAIN_S}s after the last commit"
}
LINES=()
result() {  # result STEP TARGET
    LINES+=("RESULT name=latency sink=$SINK step=$1 target_per_s=$2 achieved_per_s=$ACHIEVED p50_ms=$P50 p99_ms=$P99 batches=$BATCHES drain_s=$DRAIN_S kept_up=$KEPT_UP")
}

# The destination's topic, index or table is made by the first change, outside the figures.
PGOPTIONS="-c synchronous_commit=on" sql "CALL bench_paced($NEXT_ID, 10, 10, 1000)"
NEXT_ID=$((NEXT_ID + 10))
wait_acknowledged 10

for rate in $RATES; do
    paced "$rate"
    result "$rate" "$rate"
done
if [[ -n $MAX_FROM ]]; then
    for fraction in $MAX_FRACTIONS; do
        target=$(awk -v m="$MAX_FROM" -v f="$fraction" 'BEGIN{printf "%.0f", m * f}')
        paced "$target"
        [[ $KEPT_UP == 1 ]] && break
    done
    result max "$target"
fi
stop_sluice latency

echo
echo "=== latency: commit -> $SINK sink acknowledged, per batch (sluice_sink_commit_latency_seconds) ==="
printf '%-8s %12s %14s %9s %9s %8s %9s %8s\n' step target_per_s achieved_per_s p50_ms p99_ms batches drain_s kept_up
for line in "${LINES[@]}"; do
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    printf '%-8s %12s %14s %9s %9s %8s %9s %8s\n' "$(field step)" "$(field target_per_s)" \
        "$(field achieved_per_s)" "$(field p50_ms)" "$(field p99_ms)" "$(field batches)" \
        "$(field drain_s)" "$(field kept_up)"
done
for line in "${LINES[@]}"; do echo "$line peak_rss_mib=$PEAK_MIB cpu_s=$CPU_S"; done
