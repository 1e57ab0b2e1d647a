"""Reads every Parquet file a schema-registry topic landed with Spark (mergeSchema over all of
them, as a Databricks user would), and prints one JSON line per row: its partition and offset,
the Spark type of each value column, and the record rebuilt from its columns plus its
_rescued_data, each typed value written as the book's table writes it in NDJSON (decimals as
exact text, UTC timestamps as RFC 3339 to the microsecond, dates as ISO 8601, bytes as base64,
maps as objects; nulls left out; the rendering is read_typed_parquet.py's), independently of ingest.

Usage: spark_typed.py <landing root> <topic>
"""
import json
import os
import sys
import time

# Spark hands UTC timestamps to Python as naive local datetimes: make local UTC.
os.environ["TZ"] = "UTC"
time.tzset()

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.types import TimestampType  # noqa: E402

# The same NDJSON rendering as the DuckDB reader's (this script's directory is on the path).
from read_typed_parquet import COORDINATES, doc  # noqa: E402


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
            value = cells[f.name]
            if value is None:
                continue
            if isinstance(f.dataType, TimestampType):
                record[f.name] = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            else:
                record[f.name] = doc(value)
        if cells["_rescued_data"] is not None:
            record.update(json.loads(cells["_rescued_data"]))
        print(json.dumps({"partition": cells["_partition"], "offset": cells["_offset"],
                          "types": types, "record": record}, ensure_ascii=False))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
