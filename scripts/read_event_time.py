#!/usr/bin/env python3
"""Reads landed NDJSON files back with DuckDB, Hive partitions included, for event-time checks.

Usage: read_event_time.py ROOT TOPIC FIELD
Prints one JSON object per landed row: its offset, the dt and hour columns DuckDB derived from
the file's directories, and FIELD of its value as ms since the epoch (DuckDB's own reading of
the timestamp). Expects the metadata envelope.
"""
import json
import sys

import duckdb

root, topic, field = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
rows = con.execute(
    f"""
    select "offset", dt::varchar, hour::bigint, epoch_ms(value.{field}::timestamp)
    from read_json_auto(?, hive_partitioning = true, format = 'newline_delimited')
    order by "offset"
    """,
    [f"{root}/{topic}/*/*/*.ndjson.gz"],
).fetchall()
for offset, dt, hour, value in rows:
    print(json.dumps({"offset": offset, "dt": dt, "hour": hour, "field_ms": value}))
