"""Reads a topic's landed Parquet files with Spark, as a data engineer would, and prints one JSON
line: the batch read with mergeSchema (rows, distinct coordinates, columns, the Hive columns), then
the file-stream source run twice over one checkpoint (rows written after each run: the second
must add none).

Usage: spark_read.py <landing root> <topic> <work dir>
"""
import json
import sys

from pyspark.sql import SparkSession


def main(root, topic, work):
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("ingest-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    path = f"{root}/{topic}"
    df = spark.read.option("mergeSchema", "true").parquet(path)
    rows = df.count()
    distinct = df.select("_partition", "_offset").distinct().count()
    nulls_before = df.where("added IS NULL").count() if "added" in df.columns else None

    def stream():
        query = (
            spark.readStream.schema(df.schema)
            .option("mergeSchema", "true")
            .parquet(path)
            .writeStream.format("parquet")
            .option("path", f"{work}/out")
            .option("checkpointLocation", f"{work}/checkpoint")
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
        return spark.read.parquet(f"{work}/out").count()

    first = stream()
    second = stream()
    print(json.dumps({
        "rows": rows,
        "distinct": distinct,
        "columns": df.columns,
        "added_nulls": nulls_before,
        "stream_first": first,
        "stream_second": second,
    }))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
