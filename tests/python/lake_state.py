"""Read the lake sink's changelog tables back with third-party readers and print, as JSON, the
current state each reader computes and what the changelog holds.

usage: lake_state.py KEY URI [URI ...]
  KEY   the primary-key column
  URI   every version of one source table's changelog, oldest first (a directory or s3://...)
Environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION for s3://.

Python `deltalake` reads every row and the current state is computed here (the newest change
per key, by commit position then change position, after the last truncate; deletes hide the
key). DuckDB (local tables only: its delta extension is loaded from the pip package) runs the
README's current-state query. Output:
  {"deltalake": [rows], "duckdb": [rows] or null, "changelog_rows": n,
   "duplicate_positions": n, "versions": [delta version of each table],
   "files": active data files over all versions}
Rows are objects of the source columns, sorted by KEY; decimals as text, timestamps as epoch
seconds, dates as ISO text.
"""
import datetime
import decimal
import json
import os
import sys

CHANGELOG = ["_op", "_lsn", "_commit_lsn", "_commit_ts", "_txid", "_snapshot"]


def plain(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def storage_options():
    options = {"AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    for name in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]:
        if os.environ.get(name):
            options[name] = os.environ[name]
    return options


def read_deltalake(uris):
    import deltalake

    rows, versions, files = [], [], 0
    for uri in uris:
        table = deltalake.DeltaTable(uri, storage_options=storage_options())
        versions.append(table.version())
        files += len(table.file_uris())
        data = deltalake.QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all()
        columns = {name: data.column(name).to_pylist() for name in data.column_names}
        for i in range(data.num_rows):
            rows.append({name: values[i] for name, values in columns.items()})
    return rows, versions, files


def current_state(rows, key):
    truncated = max(
        ((r["_commit_lsn"], r["_lsn"]) for r in rows if r["_op"] == "t"), default=(-1, -1)
    )
    newest = {}
    for row in sorted(rows, key=lambda r: (r["_commit_lsn"], r["_lsn"])):
        if row["_op"] == "t" or (row["_commit_lsn"], row["_lsn"]) <= truncated:
            continue
        newest[row[key]] = row
    return [strip(r) for r in newest.values() if r["_op"] != "d"]


def strip(row):
    return {k: plain(v) for k, v in row.items() if k not in CHANGELOG}


# The README's current-state query, over the union of a table's versions.
CURRENT_STATE_SQL = """
WITH changes AS ({union}),
last_truncate AS (
  SELECT _commit_lsn AS c, _lsn AS l FROM changes WHERE _op = 't'
  ORDER BY _commit_lsn DESC, _lsn DESC LIMIT 1)
SELECT * EXCLUDE (_op, _lsn, _commit_lsn, _commit_ts, _txid, _snapshot, _rank) FROM (
  SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY _commit_lsn DESC, _lsn DESC) AS _rank
  FROM changes
  WHERE _op <> 't' AND NOT EXISTS (SELECT 1 FROM last_truncate
    WHERE _commit_lsn < c OR (_commit_lsn = c AND _lsn <= l))
) WHERE _rank = 1 AND _op <> 'd'
"""


def read_duckdb(uris, key):
    import duckdb
    import duckdb_ext

    extension = os.path.join(
        list(duckdb_ext.__path__)[0],
        f"extensions/v{duckdb.__version__}/linux_amd64/delta.duckdb_extension",
    )
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM delta_scan('{u}')" for u in uris)
    relation = con.sql(CURRENT_STATE_SQL.format(union=union, key=key))
    # Timestamps with a time zone need pytz in Python: read them as epoch seconds instead.
    columns = [
        f'epoch("{n}")::BIGINT AS "{n}"' if str(t) == "TIMESTAMP WITH TIME ZONE" else f'"{n}"'
        for n, t in zip(relation.columns, relation.types)
    ]
    relation = relation.project(", ".join(columns))
    names = relation.columns
    return [{n: plain(v) for n, v in zip(names, row)} for row in relation.fetchall()]


def main():
    key, uris = sys.argv[1], sys.argv[2:]
    rows, versions, files = read_deltalake(uris)
    streamed = [(r["_commit_lsn"], r["_lsn"]) for r in rows if r["_snapshot"] == "false"]
    local = all(not u.startswith("s3://") for u in uris)
    by_key = lambda r: (r[key] is None, r[key])
    out = {
        "deltalake": sorted(current_state(rows, key), key=by_key),
        "duckdb": sorted(read_duckdb(uris, key), key=by_key) if local else None,
        "changelog_rows": len(rows),
        "duplicate_positions": len(streamed) - len(set(streamed)),
        "versions": versions,
        "files": files,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
