"""Reads every Parquet file a schema-registry topic landed, with DuckDB, and prints one JSON line
per row: its partition and offset, the DuckDB type of each of the file's value columns, and the
record rebuilt from its columns plus its _rescued_data, each typed value written as the book's
table writes it in NDJSON (decimals as exact text, timestamps as RFC 3339 to the microsecond,
dates as ISO 8601, bytes as base64, maps as objects; nulls left out), independently of ingest.

Usage: read_typed_parquet.py <landing root> <topic>
"""
import base64
import datetime
import decimal
import glob
import json
import sys

import duckdb

COORDINATES = {"_topic", "_partition", "_offset", "_timestamp", "_key", "_headers", "_rescued_data", "dt", "hour"}
EPOCH = datetime.datetime(1970, 1, 1)


def doc(value):
    if isinstance(value, dict):
        return {k: doc(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [doc(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def main(root, topic):
    con = duckdb.connect()
    for path in sorted(glob.glob(f"{root}/{topic}/**/*.parquet", recursive=True)):
        described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        types = {name: kind for name, kind, *_ in described if name not in COORDINATES}
        # A UTC timestamp read as microseconds since the epoch (no time zone module needed).
        cells = [
            f'epoch_us("{name}") AS "{name}"' if kind == "TIMESTAMP WITH TIME ZONE" else f'"{name}"'
            for name, kind in types.items()
        ]
        rel = con.execute(
            f"SELECT _partition, _offset, _rescued_data, {', '.join(cells)} FROM read_parquet(?)", [path]
        )
        names = [d[0] for d in rel.description]
        for row in rel.fetchall():
            cells = dict(zip(names, row))
            record = {}
            for name, kind in types.items():
                value = cells[name]
                if value is None:
                    continue
                if kind == "TIMESTAMP WITH TIME ZONE":
                    value = (EPOCH + datetime.timedelta(microseconds=value)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                record[name] = doc(value)
            if cells["_rescued_data"] is not None:
                record.update(json.loads(cells["_rescued_data"]))
            print(json.dumps({"partition": cells["_partition"], "offset": cells["_offset"],
                              "types": types, "record": record}, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
