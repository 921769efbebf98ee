#!/usr/bin/env bash
# throughput.sh -- how fast sluice drains a replication slot, compared with pg_recvlogical
# (PostgreSQL's own minimal consumer) on the same WAL.
#
# A throwaway cluster gets the workload of shared/bench/pg-cdc-baseline.sh (N inserts, N updates,
# N/10 deletes, BATCH rows per transaction) while two pgoutput slots exist. Then:
#   baseline: pg_recvlogical --start --endpos=END -f /dev/null on one slot, timed;
#   sluice:   `sluice run` with a null sink (type="memory", retain=false) on the other slot,
#             timed from start until the slot's confirmed_flush_lsn reaches END; its peak RSS
#             (VmHWM) is read just before SIGTERM.
# Ends with: RESULT name=pg_throughput changes=... sluice_changes_per_s=...
#            baseline_changes_per_s=... ratio=... peak_rss_mib=... cpu_s=... (sluice's user +
#            system CPU seconds, read just before SIGTERM)
#
# Environment: N=1000000  BATCH=1000  PGBIN=<pg_config --bindir | newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release>  SKIP_SLUICE=0 (1: baseline only)
#   TIMEOUT_S=1800 (per consumer)  RUN_AS=postgres (OS user for the server when run as root)
#   ENVELOPES=0 (1: sluice also encodes every event as a Debezium Avro key and envelope,
#               registered in its embedded schema registry; the result is named pg_throughput_avro)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_sizes 1000000
SKIP_SLUICE=${SKIP_SLUICE:-0}
ENVELOPES=${ENVELOPES:-0}
RESULT_NAME=pg_throughput
[[ $ENVELOPES == 1 ]] && RESULT_NAME=pg_throughput_avro
DB=bench PUB=bench_pub SLUICE_SLOT=sluice_bench BASE_SLOT=recvlogical_bench

bench_find_pgbin initdb pg_ctl pg_recvlogical psql
bench_find_sluice "" "$SKIP_SLUICE"
bench_cluster_start sluice-bench 55432
bench_create_databases "$DB"

# ---------------------------------------------------------------- schema and workload
bench_schema
sql "SELECT pg_create_logical_replication_slot('$SLUICE_SLOT', 'pgoutput')" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$BASE_SLOT', 'pgoutput')" >/dev/null
bench_workload
bench_wal_report
bench_recvlogical_baseline "$BASE_SLOT"

# ---------------------------------------------------------------- sluice with a null sink
SLUICE_S=NA SLUICE_CPS=NA RATIO=NA PEAK_MIB=NA SLUICE_CPU_S=NA
if [[ $SKIP_SLUICE != 1 ]]; then
    {
        printf '[pipeline]\nname = "bench"\n\n'
        bench_source_toml "$SLUICE_SLOT"
        printf '\n[[sink]]\nname = "null"\ntype = "memory"\nretain = false\n'
        if [[ $ENVELOPES == 1 ]]; then printf '\n[registry]\nlisten = "127.0.0.1:0"\n'; fi
    } >"$WORKDIR/sluice.toml"
    bench_poller_start
    log "sluice: null sink to $END"
    t0=$EPOCHREALTIME
    start_sluice sluice
    wait_reached sluice "$SLUICE_SLOT" "$END"
    t1=$EPOCHREALTIME
    stop_sluice sluice
    SLUICE_CPU_S=$CPU_S
    SLUICE_S=$(elapsed "$t0" "$t1")
    SLUICE_CPS=$(rate "$CHANGES" "$SLUICE_S")
    RATIO=$(awk -v a="$SLUICE_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
fi

# ---------------------------------------------------------------- report
echo
echo "=== $RESULT_NAME: $CHANGES changes ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; $WAL_MB MB WAL) ==="
printf '%-28s %10s %14s %10s %14s\n' consumer wall_s changes_per_s cpu_s peak_rss_MiB
printf '%-28s %10s %14s %10s %14s\n' "pg_recvlogical (/dev/null)" "$BASE_S" "$BASE_CPS" - -
printf '%-28s %10s %14s %10s %14s\n' "sluice (null sink)" "$SLUICE_S" "$SLUICE_CPS" "$SLUICE_CPU_S" "$PEAK_MIB"
echo "RESULT name=$RESULT_NAME changes=$CHANGES sluice_changes_per_s=$SLUICE_CPS baseline_changes_per_s=$BASE_CPS ratio=$RATIO peak_rss_mib=$PEAK_MIB cpu_s=$SLUICE_CPU_S"
