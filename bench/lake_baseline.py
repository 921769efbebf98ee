"""The lake benchmark's baseline: Python deltalake writing the rows sluice wrote, with the same
columns and types, in commits of the same size, timed.

usage: lake_baseline.py ROWS_CSV TABLE_DIR ROWS_PER_COMMIT
ROWS_CSV holds the changelog rows as psql's \\copy ... CSV HEADER wrote them (the `bench`
columns then _op, _lsn, _commit_lsn, _commit_ts (epoch microseconds), _txid, _snapshot).
Reading and converting the file is not timed; prints the seconds the writes took.
"""
import csv
import sys
import time

import arro3.core as ac
import deltalake

TYPES = {
    "id": ac.DataType.int64(),
    "i": ac.DataType.int32(),
    "t": ac.DataType.string(),
    "amount": ac.DataType.decimal128(12, 2),
    "ts": ac.DataType.timestamp("us", tz="UTC"),
    "flag": ac.DataType.bool(),
    "u": ac.DataType.string(),
    "j": ac.DataType.string(),
    "d": ac.DataType.float64(),
    "note": ac.DataType.string(),
    "_op": ac.DataType.string(),
    "_lsn": ac.DataType.int64(),
    "_commit_lsn": ac.DataType.int64(),
    "_commit_ts": ac.DataType.timestamp("us", tz="UTC"),
    "_txid": ac.DataType.int64(),
    "_snapshot": ac.DataType.string(),
}


def column(name, texts):
    target = TYPES[name]
    if name in ("id", "_lsn", "_commit_lsn", "_txid", "ts", "_commit_ts"):
        values = [None if t == "" else int(t) for t in texts]
        return ac.Array(values, ac.DataType.int64()).cast(target)
    if name == "i":
        return ac.Array([None if t == "" else int(t) for t in texts], target)
    if name == "d":
        return ac.Array([None if t == "" else float(t) for t in texts], target)
    if name == "flag":
        return ac.Array([None if t == "" else t in ("t", "true") for t in texts], target)
    strings = ac.Array([None if t == "" else t for t in texts], ac.DataType.string())
    return strings if target == ac.DataType.string() else strings.cast(target)


def main():
    path, table_dir, per_commit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, newline="") as f:
        reader = csv.reader(f)
        names = next(reader)
        rows = list(reader)
    chunks = []
    for start in range(0, len(rows), per_commit):
        part = rows[start : start + per_commit]
        chunks.append(
            ac.Table.from_pydict({n: column(n, [r[i] for r in part]) for i, n in enumerate(names)})
        )
    t0 = time.perf_counter()
    for chunk in chunks:
        deltalake.write_deltalake(table_dir, chunk, mode="append")
    elapsed = time.perf_counter() - t0
    print(f"{elapsed:.3f}")


if __name__ == "__main__":
    main()
