#!/usr/bin/env python3
"""Reads landed NDJSON files back with DuckDB, the way a lakehouse engine would.

Usage: read_landed.py ROOT TOPIC
Prints one JSON object per partition: row count, distinct offsets, offset range, the Hive
partition columns DuckDB derived from the dt=/hour= directories, and a sample value field.
Expects the metadata envelope (topic, partition, offset, timestamp, key, headers, value).
"""
import json
import sys

import duckdb

root, topic = sys.argv[1], sys.argv[2]
glob = f"{root}/{topic}/*/*/*.ndjson.gz"
con = duckdb.connect()
rows = con.execute(
    """
    select partition, count(*) as records, count(distinct "offset") as distinct_offsets,
           min("offset") as min_offset, max("offset") as max_offset,
           min(dt)::varchar as dt, min(hour) as hour, min(value.text) as sample_text,
           count(*) filter (where topic = ?) as topic_rows
    from read_json_auto(?, hive_partitioning = true, format = 'newline_delimited')
    group by partition order by partition
    """,
    [topic, glob],
).fetchall()
cols = ["partition", "records", "distinct_offsets", "min_offset", "max_offset", "dt", "hour", "sample_text", "topic_rows"]
print(json.dumps([dict(zip(cols, r)) for r in rows]))
