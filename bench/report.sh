#!/usr/bin/env bash
# report.sh -- every benchmark in one command, one report directory: per sink (memory, kafka,
# search, warehouse-postgres) streaming throughput and its ratio to pg_recvlogical in the same
# run, commit-to-sink latency p50/p99 at 1k and 10k changes/s and at "max" (the highest paced
# rate the sink keeps up with, see bench/latency.sh), snapshot rate and its ratio to COPY, peak
# RSS and CPU seconds per 1M changes, with the machine they ran on.
#
# Runs, one after the other (each with its own throwaway servers):
#   bench/throughput.sh (memory), bench/kafka.sh (SKIP_EOS=1 SKIP_ONE=1), bench/search.sh,
#   bench/warehouse.sh (TARGETS=postgres)              throughput, ratio, peak RSS, CPU
#   bench/snapshot.sh SINK=...                          snapshot rate, ratio to COPY
#   bench/latency.sh SINK=... MAX_FROM=<throughput>     latency sweep from the daemon's
#                                                       sluice_sink_commit_latency_seconds
# then bench/results.py (REPORT.md) and bench/plot.py (report.svg).
#
# Writes OUT (default bench/report-out/, gitignored): REPORT.md, report.svg, results.txt (every
# RESULT line), machine.txt, logs/<run>.log. A run that fails is named in REPORT.md and the
# script exits 1 after writing the report.
#
# Environment: QUICK=0 (1: small sizes, a few minutes in all)  OUT=bench/report-out
#   SINKS="memory kafka search postgres"
#   N_MEMORY=1000000|50000  N_KAFKA=200000|20000  N_SEARCH=20000|5000  N_WAREHOUSE=100000|10000
#   N_SNAPSHOT=1000000|50000 (rows)  N_SNAPSHOT_SEARCH=200000|20000 (the search server holds
#   every document in memory)  LAT_SECONDS=10|3  MAX_FRACTIONS="0.8 0.6 0.4"|"0.5"
#   (full|QUICK=1 defaults)  PGBIN, SLUICE_BIN (else built once here with every sink this
#   report needs), TIMEOUT_S, RUN_AS as for the other scripts.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

QUICK=${QUICK:-0}
sized() { if [[ $QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi; }  # sized FULL QUICK
OUT=${OUT:-$ROOT/bench/report-out}
SINKS=${SINKS:-memory kafka search postgres}
N_MEMORY=${N_MEMORY:-$(sized 1000000 50000)}
N_KAFKA=${N_KAFKA:-$(sized 200000 20000)}
N_SEARCH=${N_SEARCH:-$(sized 20000 5000)}
N_WAREHOUSE=${N_WAREHOUSE:-$(sized 100000 10000)}
N_SNAPSHOT=${N_SNAPSHOT:-$(sized 1000000 50000)}
N_SNAPSHOT_SEARCH=${N_SNAPSHOT_SEARCH:-$(sized 200000 20000)}
LAT_SECONDS=${LAT_SECONDS:-$(sized 10 3)}
MAX_FRACTIONS=${MAX_FRACTIONS:-$(sized "0.8 0.6 0.4" "0.5")}

bench_find_pgbin initdb pg_ctl pg_recvlogical psql postgres
bench_find_sluice sink-kafka,sink-search,sink-postgres
rm -rf "$OUT"
mkdir -p "$OUT/logs"
: >"$OUT/results.txt"

# ---------------------------------------------------------------- the machine
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpus: $(nproc)"
    echo "cpu model: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "memory: $(awk '/^MemTotal:/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "postgresql: $("$PGBIN/postgres" --version)"
    echo "kernel: $(uname -sr)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "sluice: $("$SLUICE_BIN" --version) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo "quick: $QUICK"
} >"$OUT/machine.txt"
log "machine: $(tr '\n' ';' <"$OUT/machine.txt")"

# ---------------------------------------------------------------- the runs
FAILED=()
run_bench() {  # run_bench NAME SCRIPT VAR=VALUE...: RESULT lines into results.txt
    local name=$1 script=$2 t0=$SECONDS
    shift 2
    log "$name: bench/$script $*"
    if env "$@" PGBIN="$PGBIN" SLUICE_BIN="$SLUICE_BIN" bash "$ROOT/bench/$script" >"$OUT/logs/$name.log" 2>&1; then
        grep '^RESULT ' "$OUT/logs/$name.log" >>"$OUT/results.txt" || true
        log "$name: done in $((SECONDS - t0)) s"
    else
        FAILED+=("$name")
        echo "FAILED run=$name log=logs/$name.log" >>"$OUT/results.txt"
        tail -5 "$OUT/logs/$name.log" >&2
        log "$name: failed after $((SECONDS - t0)) s (logs/$name.log)"
    fi
}
# sustained SINK: the sink's streaming rate (changes/s) from its throughput run, if it ran.
sustained() {
    local pattern
    case $1 in
        memory) pattern='name=pg_throughput .*sluice_changes_per_s=\([0-9]*\)' ;;
        kafka) pattern='name=kafka .*sluice_changes_per_s=\([0-9]*\)' ;;
        search) pattern='name=search .*sluice_docs_per_s=\([0-9]*\)' ;;
        postgres) pattern='name=warehouse-postgres .*sluice_rows_per_s=\([0-9]*\)' ;;
    esac
    sed -n "s/^RESULT $pattern.*/\1/p" "$OUT/results.txt" | head -1
}

for sink in $SINKS; do
    case $sink in
        memory) run_bench throughput-memory throughput.sh N="$N_MEMORY" ;;
        kafka) run_bench throughput-kafka kafka.sh N="$N_KAFKA" SKIP_EOS=1 SKIP_ONE=1 LAT_SECONDS="$LAT_SECONDS" ;;
        search) run_bench throughput-search search.sh N="$N_SEARCH" ;;
        postgres) run_bench throughput-postgres warehouse.sh N="$N_WAREHOUSE" TARGETS=postgres ;;
        *) die "unknown sink $sink (memory, kafka, search or postgres)" ;;
    esac
done
for sink in $SINKS; do
    rows=$N_SNAPSHOT
    [[ $sink == search ]] && rows=$N_SNAPSHOT_SEARCH
    run_bench "snapshot-$sink" snapshot.sh SINK="$sink" N="$rows"
done
for sink in $SINKS; do
    run_bench "latency-$sink" latency.sh SINK="$sink" LAT_SECONDS="$LAT_SECONDS" \
        MAX_FROM="$(sustained "$sink")" MAX_FRACTIONS="$MAX_FRACTIONS"
done

# ---------------------------------------------------------------- the report
python3 -B "$ROOT/bench/results.py" "$OUT" >"$OUT/REPORT.md"
python3 -B "$ROOT/bench/plot.py" "$OUT" >"$OUT/report.svg"
log "report: $OUT/REPORT.md, $OUT/report.svg"
if ((${#FAILED[@]} > 0)); then
    die "failed runs: ${FAILED[*]}"
fi
