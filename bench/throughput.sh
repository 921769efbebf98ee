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
#            baseline_changes_per_s=... ratio=... peak_rss_mib=...
#
# Environment: N=1000000  BATCH=1000  PGBIN=<pg_config --bindir | newest /usr/lib/postgresql/*/bin>
#   SLUICE_BIN=<built here with cargo build --release>  SKIP_SLUICE=0 (1: baseline only)
#   TIMEOUT_S=1800 (per consumer)  RUN_AS=postgres (OS user for the server when run as root)
#   ENVELOPES=0 (1: sluice also encodes every event as a Debezium Avro key and envelope,
#               registered in its embedded schema registry; the result is named pg_throughput_avro)
set -euo pipefail

N=${N:-1000000}
BATCH=${BATCH:-1000}
NDEL=$((N / 10))
CHANGES=$((N + N + NDEL))
SKIP_SLUICE=${SKIP_SLUICE:-0}
ENVELOPES=${ENVELOPES:-0}
RESULT_NAME=pg_throughput
[[ $ENVELOPES == 1 ]] && RESULT_NAME=pg_throughput_avro
TIMEOUT_S=${TIMEOUT_S:-1800}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=bench PUB=bench_pub SLUICE_SLOT=sluice_bench BASE_SLOT=recvlogical_bench

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
if [[ $SKIP_SLUICE != 1 && -z ${SLUICE_BIN:-} ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin sluice) >&2
    SLUICE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
fi
[[ $SKIP_SLUICE == 1 || -x $SLUICE_BIN ]] || die "sluice binary not found at $SLUICE_BIN"

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

# ---------------------------------------------------------------- baseline: pg_recvlogical
log "baseline: pg_recvlogical to $END"
t0=$EPOCHREALTIME
timeout "$TIMEOUT_S" "$PGBIN/pg_recvlogical" -d "$CONN" --slot="$BASE_SLOT" --start --endpos="$END" \
    --no-loop -F 0 -o proto_version=1 -o publication_names="$PUB" -f /dev/null \
    2>"$WORKDIR/recvlogical.err" || { cat "$WORKDIR/recvlogical.err" >&2; die "pg_recvlogical failed"; }
t1=$EPOCHREALTIME
BASE_S=$(elapsed "$t0" "$t1")
BASE_CPS=$(awk -v c="$CHANGES" -v s="$BASE_S" 'BEGIN{printf "%.0f", c / s}')

# ---------------------------------------------------------------- sluice with a null sink
SLUICE_S=NA SLUICE_CPS=NA RATIO=NA PEAK_MIB=NA SLUICE_CPU_S=NA
if [[ $SKIP_SLUICE != 1 ]]; then
    cat >"$WORKDIR/sluice.toml" <<EOF
[pipeline]
name = "bench"

[source]
type = "postgres"
connection = "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
slot = "$SLUICE_SLOT"
publication = "$PUB"
tables = ["public.bench"]
snapshot_mode = "never"

[[sink]]
name = "null"
type = "memory"
retain = false
EOF
    if [[ $ENVELOPES == 1 ]]; then
        printf '\n[registry]\nlisten = "127.0.0.1:0"\n' >>"$WORKDIR/sluice.toml"
    fi
    # One psql session answers the 50 ms polls: a new connection per poll would steal CPU from
    # the daemon being measured.
    coproc POLL { "$PGBIN/psql" -X -q -At -d "$CONN" 2>&1; }
    PSQL_PID=$POLL_PID
    reached() {
        echo "SELECT coalesce(confirmed_flush_lsn >= '$END', false) FROM pg_replication_slots WHERE slot_name = '$SLUICE_SLOT';" >&"${POLL[1]}"
        local answer; read -r answer <&"${POLL[0]}"; [[ $answer == t ]]
    }
    mkfifo "$WORKDIR/sleep.fifo"
    exec {SLEEP_FD}<>"$WORKDIR/sleep.fifo"
    log "sluice: null sink to $END"
    t0=$EPOCHREALTIME
    RUST_LOG=${RUST_LOG:-warn} "$SLUICE_BIN" run --config "$WORKDIR/sluice.toml" \
        >"$WORKDIR/sluice.out" 2>"$WORKDIR/sluice.err" &
    SLUICE_PID=$!
    deadline=$((SECONDS + TIMEOUT_S))
    until reached; do
        kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice exited early"; }
        ((SECONDS < deadline)) || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice did not reach $END in ${TIMEOUT_S}s"; }
        read -r -t 0.05 -u "$SLEEP_FD" || true   # 50 ms: a read on a silent fifo, no fork
    done
    t1=$EPOCHREALTIME
    HWM_KIB=$(awk '/^VmHWM:/{print $2}' "/proc/$SLUICE_PID/status")
    read -r -a STAT <<<"$(sed 's/^.*) //' "/proc/$SLUICE_PID/stat")"
    SLUICE_CPU_S=$(awk -v u="${STAT[11]}" -v s="${STAT[12]}" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (u + s) / h}')
    kill -TERM "$SLUICE_PID"
    rc=0; wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    ((rc == 0)) || { tail -50 "$WORKDIR/sluice.err" >&2; die "sluice exited with $rc after SIGTERM"; }
    SLUICE_S=$(elapsed "$t0" "$t1")
    SLUICE_CPS=$(awk -v c="$CHANGES" -v s="$SLUICE_S" 'BEGIN{printf "%.0f", c / s}')
    RATIO=$(awk -v a="$SLUICE_CPS" -v b="$BASE_CPS" 'BEGIN{printf "%.2f", a / b}')
    PEAK_MIB=$(awk -v k="$HWM_KIB" 'BEGIN{printf "%.1f", k / 1024}')
fi

# ---------------------------------------------------------------- report
echo
echo "=== $RESULT_NAME: $CHANGES changes ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; $WAL_MB MB WAL) ==="
printf '%-28s %10s %14s %10s %14s\n' consumer wall_s changes_per_s cpu_s peak_rss_MiB
printf '%-28s %10s %14s %10s %14s\n' "pg_recvlogical (/dev/null)" "$BASE_S" "$BASE_CPS" - -
printf '%-28s %10s %14s %10s %14s\n' "sluice (null sink)" "$SLUICE_S" "$SLUICE_CPS" "$SLUICE_CPU_S" "$PEAK_MIB"
echo "RESULT name=$RESULT_NAME changes=$CHANGES sluice_changes_per_s=$SLUICE_CPS baseline_changes_per_s=$BASE_CPS ratio=$RATIO peak_rss_mib=$PEAK_MIB"
