#!/usr/bin/env bash
# search.sh -- documents/s the search sink writes into a search server, compared with the
# server's own bulk rate for the same documents loaded directly.
#
# A throwaway cluster gets the workload of throughput.sh (N inserts, N updates, N/10 deletes,
# BATCH rows per transaction) on the benchmark table while a pgoutput slot exists; a throwaway
# osmem-server (pip install osmem-server) is the search server. Then:
#   sluice:   `sluice run` with one search sink (bulk requests of MAX_BULK actions), timed from
#             start until the slot's confirmed_flush_lsn reaches END, i.e. until the server
#             confirmed every action; documents/s = actions (an index per insert and update, a
#             delete per delete) per second. The index must then hold N - N/10 documents.
#   baseline: a Python loader posts prepared `_bulk` bodies of as many actions (the rows as
#             PostgreSQL's row_to_json prints them, indexed twice with rising external
#             versions, then the N/10 deletes; MAX_BULK actions per request) over one
#             keep-alive connection into a fresh index; only the posting is timed.
#   pg_recvlogical: on a second slot, --start --endpos=END -f /dev/null, timed: the source's
#             own rate for the same WAL, for the benchmark report.
# Ends with: RESULT name=search documents=... sluice_docs_per_s=... baseline_docs_per_s=...
#            ratio=... peak_rss_mib=... cpu_s=... recvlogical_changes_per_s=...
#            recvlogical_ratio=...
#
# Environment: N=20000  BATCH=1000  MAX_BULK=1000  PGBIN=<pg_config --bindir | newest
#   /usr/lib/postgresql/*/bin>  SLUICE_BIN=<built here: cargo build --release --features
#   sink-search>  OSMEM_BIN=<from the osmem_server Python package>  TIMEOUT_S=1800
#   RUN_AS=postgres (OS user for the server when run as root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_sizes 20000
MAX_BULK=${MAX_BULK:-1000}
ACTIONS=$CHANGES
DB=bench PUB=bench_pub SLUICE_SLOT=sluice_bench BASE_SLOT=recvlogical_bench

bench_find_pgbin initdb pg_ctl pg_recvlogical psql
bench_find_sluice sink-search
bench_cluster_start sluice-bench 55432
bench_create_databases "$DB"

# ---------------------------------------------------------------- schema and workload
bench_schema
sql "SELECT pg_create_logical_replication_slot('$SLUICE_SLOT', 'pgoutput')" >/dev/null
sql "SELECT pg_create_logical_replication_slot('$BASE_SLOT', 'pgoutput')" >/dev/null
rows_json() {  # the table's rows as `id<TAB>json`, for the baseline's prepared bodies
    "$PGBIN/psql" -X -q -At -d "$CONN" \
        -c "COPY (SELECT id, row_to_json(b) FROM bench b ORDER BY id) TO STDOUT" >"$1"
}
bench_workload_step() {  # after the inserts and after the updates: the rows as they are then
    case $1 in
        insert) rows_json "$WORKDIR/inserted.tsv" ;;
        update) rows_json "$WORKDIR/updated.tsv" ;;
    esac
}
bench_workload
log "workload done in $WORKLOAD_S s up to $END"
bench_recvlogical_baseline "$BASE_SLOT"
RECV_CPS=$BASE_CPS

# ---------------------------------------------------------------- search server
bench_osmem_start

# ---------------------------------------------------------------- sluice with a search sink
cat >"$WORKDIR/sluice.toml" <<TOML
[pipeline]
name = "bench"

$(bench_source_toml "$SLUICE_SLOT")

[[sink]]
name = "search"
type = "search"
url = "$SURL"
max_bulk_actions = $MAX_BULK
TOML
bench_poller_start
log "sluice: search sink to $END"
t0=$EPOCHREALTIME
start_sluice sluice
wait_reached sluice "$SLUICE_SLOT" "$END"
t1=$EPOCHREALTIME
stop_sluice sluice
SLUICE_S=$(elapsed "$t0" "$t1")
SLUICE_DPS=$(rate "$ACTIONS" "$SLUICE_S")
SLUICE_CPU_S=$CPU_S
RECV_RATIO=$(awk -v a="$SLUICE_DPS" -v b="$RECV_CPS" 'BEGIN{printf "%.2f", a / b}')
curl -sf -XPOST "$SURL/bench.public.bench/_refresh" >/dev/null
INDEXED=$(curl -sf "$SURL/bench.public.bench/_count" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
[[ $INDEXED == $((N - NDEL)) ]] || die "the index holds $INDEXED documents, the table $((N - NDEL))"

# ---------------------------------------------------------------- baseline: direct bulk loader
log "baseline: $ACTIONS prepared _bulk actions posted directly"
cat >"$WORKDIR/loader.py" <<'PY'
import http.client, json, sys, time

port, max_bulk, ndel = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
index = "baseline"
actions = []

def index_rows(path, version):
    with open(path) as f:
        for line in f:
            doc_id, doc = line.rstrip("\n").split("\t", 1)
            meta = {"index": {"_index": index, "_id": doc_id, "version": version,
                              "version_type": "external"}}
            actions.append(json.dumps(meta) + "\n" + doc + "\n")

index_rows(sys.argv[4], 1)
index_rows(sys.argv[5], 2)
for i in range(1, ndel + 1):
    meta = {"delete": {"_index": index, "_id": str(i), "version": 3, "version_type": "external"}}
    actions.append(json.dumps(meta) + "\n")
bodies = ["".join(actions[i:i + max_bulk]).encode() for i in range(0, len(actions), max_bulk)]

conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("PUT", "/" + index, body=b"{}", headers={"Content-Type": "application/json"})
conn.getresponse().read()
t0 = time.perf_counter()
for body in bodies:
    conn.request("POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
    response = conn.getresponse()
    result = json.loads(response.read())
    statuses = [next(iter(item.values()))["status"] for item in result["items"]]
    if response.status != 200 or any(s >= 300 and s not in (404, 409) for s in statuses):
        sys.exit("a baseline bulk request failed")
t1 = time.perf_counter()
print(f"{len(actions)} {t1 - t0:.3f}")
PY
read -r BASE_ACTIONS BASE_S < <(python3 "$WORKDIR/loader.py" "$SPORT" "$MAX_BULK" "$NDEL" \
    "$WORKDIR/inserted.tsv" "$WORKDIR/updated.tsv") || die "the baseline loader failed"
[[ $BASE_ACTIONS == "$ACTIONS" ]] || die "the baseline posted $BASE_ACTIONS actions, not $ACTIONS"
BASE_DPS=$(rate "$ACTIONS" "$BASE_S")
RATIO=$(awk -v a="$SLUICE_DPS" -v b="$BASE_DPS" 'BEGIN{printf "%.2f", a / b}')

# ---------------------------------------------------------------- report
echo
echo "=== search: $ACTIONS bulk actions ($N inserts, $N updates, $NDEL deletes; $BATCH rows/txn; $MAX_BULK actions/request) ==="
printf '%-36s %10s %12s %14s\n' loader wall_s docs_per_s peak_rss_MiB
printf '%-36s %10s %12s %14s\n' "pg_recvlogical (/dev/null, changes)" "-" "$RECV_CPS" -
printf '%-36s %10s %12s %14s\n' "direct _bulk (python, prepared)" "$BASE_S" "$BASE_DPS" -
printf '%-36s %10s %12s %14s\n' "sluice (postgres -> search sink)" "$SLUICE_S" "$SLUICE_DPS" "$PEAK_MIB"
echo "RESULT name=search documents=$ACTIONS sluice_docs_per_s=$SLUICE_DPS baseline_docs_per_s=$BASE_DPS ratio=$RATIO peak_rss_mib=$PEAK_MIB cpu_s=$SLUICE_CPU_S recvlogical_changes_per_s=$RECV_CPS recvlogical_ratio=$RECV_RATIO"
