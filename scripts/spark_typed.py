"""Reads every Parquet file a schema-registry topic landed with Spark (mergeSchema over all of
them, as a Databricks user would), and prints one JSON line per row: its partition and offset,
the Spark type of each value column, and the record rebuilt from its columns plus its
_rescued_data, each typed value written as the book's table writes it in NDJSON (decimals as
exact text, UTC timestamps as RFC 3339 to the microsecond, dates as ISO 8601, bytes as base64,
maps as objects; nulls left out), independently of ingest and of read_typed_parquet.py's DuckDB.

Usage: spark_typed.py <landing root> <topic>
"""
import base64
import datetime
import decimal
import json
import os
import sys
import time

# Spark hands UTC timestamps to Python as naive local datetimes: make local UTC.
os.environ["TZ"] = "UTC"
time.tzset()

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.types import TimestampType  # noqa: E402

COORDINATES = {"_topic", "_partition", "_offset", "_timestamp", "_key", "_headers", "_rescued_data", "dt", "hour"}


def doc(value, utc):
    if isinstance(value, dict):
        return {k: doc(v, utc) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [doc(v, utc) for v in value]
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if utc else "")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def main(root, topic):
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("ingest-typed")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.option("mergeSchema", "true").parquet(f"{root}/{topic}")
    fields = [f for f in df.schema.fields if f.name not in COORDINATES]
    types = {f.name: f.dataType.simpleString() for f in fields}
    for row in df.collect():
        cells = row.asDict(recursive=True)
        record = {}
        for f in fields:
            if cells[f.name] is not None:
                record[f.name] = doc(cells[f.name], isinstance(f.dataType, TimestampType))
        if cells["_rescued_data"] is not None:
            record.update(json.loads(cells["_rescued_data"]))
        print(json.dumps({"partition": cells["_partition"], "offset": cells["_offset"],
                          "types": types, "record": record}, ensure_ascii=False))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
