"""Reads every Parquet file a topic landed, with DuckDB, one file at a time (each file has its own
schema), and prints one JSON line per row: its coordinates, its Hive directory columns and the
record rebuilt from its columns plus its _rescued_data (nulls left out: a column of a field a
record did not have is null).

Usage: read_parquet.py <landing root> <topic>
"""
import glob
import json
import sys

import duckdb

COORDINATES = {"_topic", "_partition", "_offset", "_timestamp", "_key", "_headers", "_rescued_data", "dt", "hour"}


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def main(root, topic):
    con = duckdb.connect()
    files = sorted(glob.glob(f"{root}/{topic}/**/*.parquet", recursive=True))
    for path in files:
        rel = con.execute(
            "SELECT * EXCLUDE (_timestamp, _key, _headers), epoch_us(_timestamp) AS _ts_us, "
            "hex(_key) AS _key_hex, len(_headers) AS _header_count "
            "FROM read_parquet(?, hive_partitioning = true)",
            [path],
        )
        names = [d[0] for d in rel.description]
        for row in rel.fetchall():
            cells = dict(zip(names, row))
            record = {k: v for k, v in cells.items() if k not in COORDINATES and not k.startswith("_ts_us") and k not in ("_key_hex", "_header_count")}
            record = without_nulls(record)
            rescued = json.loads(cells["_rescued_data"]) if cells["_rescued_data"] is not None else {}
            record.update(rescued)
            print(json.dumps({
                "file": path,
                "topic": cells["_topic"],
                "partition": cells["_partition"],
                "offset": cells["_offset"],
                "timestamp_us": cells["_ts_us"],
                "key_hex": cells["_key_hex"],
                "header_count": cells["_header_count"],
                "dt": str(cells["dt"]),
                "hour": cells["hour"],
                "record": record,
                "rescued": sorted(rescued),
            }, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
