"""Reads a Delta table with delta-rs (the `deltalake` package), not with ingest, and prints one
JSON line: its version, the operations of its history, its schema's top-level fields and
partition columns, its row count and distinct (_partition, _offset) count through delta-rs' own
query engine, the non-null count of each column named after the table, the version of each
transaction identifier named, how many files it has, and, read from the log's commit files
themselves, how many add actions they hold and the paths added more than once; and DuckDB's
count of rows and distinct (_partition, _offset) over the files delta-rs says the snapshot holds
(DuckDB reading the table through delta-rs: its own Delta extension downloads from a site these
machines do not reach).

Usage: read_delta.py <table dir> [--nonnull col ...] [--txn app_id ...]
"""
import collections
import glob
import json
import os
import sys

import duckdb

from deltalake import DeltaTable, QueryBuilder


def main(argv):
    path, rest = argv[0], argv[1:]
    nonnull, txns, mode = [], [], None
    for a in rest:
        if a in ("--nonnull", "--txn"):
            mode = a
        elif mode == "--nonnull":
            nonnull.append(a)
        else:
            txns.append(a)
    dt = DeltaTable(path)
    qb = QueryBuilder().register("t", dt)

    def one(sql):
        for batch in qb.execute(sql):
            for col in batch.columns:
                return col.to_pylist()[0] if hasattr(col, "to_pylist") else list(col)[0].as_py()
        return None

    out = {
        "version": dt.version(),
        "history": [h.get("operation") for h in reversed(dt.history())],
        "fields": [f.name for f in dt.schema().fields],
        "partition_columns": dt.metadata().partition_columns,
        "rows": one("SELECT count(*) FROM t"),
        "distinct": one('SELECT count(*) FROM (SELECT DISTINCT "_partition", "_offset" FROM t)'),
        "nonnull": {c: one(f'SELECT count("{c}") FROM t') for c in nonnull},
        "txn": {a: dt.transaction_version(a) for a in txns},
        "files": len(dt.file_uris()),
    }
    adds = collections.Counter()
    for commit in glob.glob(os.path.join(path, "_delta_log", "*.json")):
        with open(commit) as f:
            for line in f:
                action = json.loads(line)
                if "add" in action:
                    adds[action["add"]["path"]] += 1
    uris = [u.removeprefix("file://") for u in dt.file_uris()]
    if uris:
        rows, distinct = duckdb.connect().execute(
            "SELECT count(*), count(DISTINCT (_partition, _offset)) FROM read_parquet(?, union_by_name => true)",
            [uris],
        ).fetchall()[0]
        out["duckdb"] = {"rows": rows, "distinct": distinct}
    out["adds"] = sum(adds.values())
    out["added_twice"] = sorted(p for p, n in adds.items() if n > 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
