#!/usr/bin/env python3
"""Reads landed NDJSON files back with DuckDB, Hive partitions included (any depth).

Usage: read_hive.py ROOT TOPIC COLUMN...
Prints one JSON object per landed row: its offset, each partition COLUMN DuckDB derived from
the file's directories (as text, null for __HIVE_DEFAULT_PARTITION__), and its value. Expects
the metadata envelope.
"""
import json
import sys

import duckdb

root, topic, columns = sys.argv[1], sys.argv[2], sys.argv[3:]
con = duckdb.connect()
picked = ", ".join(f'"{c}"::varchar' for c in columns)
rows = con.execute(
    f"""
    select "offset", {picked}, to_json(value)::varchar
    from read_json_auto(?, hive_partitioning = true, format = 'newline_delimited')
    order by "offset"
    """,
    [f"{root}/{topic}/**/*.ndjson.gz"],
).fetchall()
for row in rows:
    out = {"offset": row[0], "value": json.loads(row[-1])}
    out.update(zip(columns, row[1:-1]))
    print(json.dumps(out))
