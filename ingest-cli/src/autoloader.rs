//! `ingest-cli autoloader`: the Databricks Auto Loader (Spark `readStream`) options that read
//! what a service lands.
//!
//! Pure: derived from the validated service configuration. Invariant: the stream reads only
//! `<root>/<topic>/` (so `_ingest/` claims and `_dead_letters/` are never picked up), files
//! are never overwritten (`cloudFiles.allowOverwrites=false`), and `dt`/`hour` are columns.

use ingest::config::{Compression, Envelope, Format};
use ingest::Config;

/// Where Spark reads the storage root named by `INGEST_STORAGE_URL`.
pub fn spark_root(config: &Config) -> String {
    let url = &config.storage_url;
    let host = url.host_str().unwrap_or_default();
    let path = url.path().trim_matches('/');
    let join = |base: String| {
        if path.is_empty() {
            base
        } else {
            format!("{base}/{path}")
        }
    };
    match url.scheme() {
        "s3" | "s3a" => join(format!("s3://{host}")),
        // az://container/prefix: Spark needs the account, which comes from the environment.
        "az" | "azure" => join(format!(
            "abfss://{host}@<AZURE_STORAGE_ACCOUNT_NAME>.dfs.core.windows.net"
        )),
        "abfs" | "abfss" => {
            let user = url.username();
            join(format!("abfss://{user}@{host}"))
        }
        _ => join("file://".to_string()),
    }
}

/// The PySpark snippet for `config`'s topic.
pub fn snippet(config: &Config) -> String {
    if let Format::Parquet(_) = config.format {
        return parquet_snippet(config);
    }
    let root = spark_root(config);
    let topic = &config.topic;
    let glob = match config.compression {
        Compression::Gzip { .. } => "*.ndjson.gz",
        Compression::None => "*.ndjson",
    };
    let mut hints = vec!["dt DATE", "hour INT"];
    if config.envelope == Envelope::Metadata {
        hints.extend([
            "topic STRING",
            "partition INT",
            "offset BIGINT",
            "timestamp BIGINT",
            "key STRING",
            "headers ARRAY<STRUCT<key: STRING, value: STRING>>",
        ]);
    }
    let dead = &config.dead_letter_prefix;
    format!(
        r#"# Databricks Auto Loader for topic `{topic}`: one row per landed NDJSON line.
# Reads only {root}/{topic}/ : `_ingest/` (claims) and `{dead}/` (invalid records) sit beside it,
# outside the path. Files are immutable and appear atomically; names sort by offset.
df = (
    spark.readStream.format("cloudFiles")
    .option("cloudFiles.format", "json")
    .option("cloudFiles.schemaLocation", "<checkpoint-dir>/{topic}/schema")
    .option("cloudFiles.inferColumnTypes", "true")
    .option("cloudFiles.partitionColumns", "dt,hour")
    .option("cloudFiles.schemaHints", "{hints}")
    .option("cloudFiles.allowOverwrites", "false")
    .option("pathGlobFilter", "{glob}")
    .load("{root}/{topic}/")
)
# Invalid records, if any: the same options with .load("{root}/{dead}/{topic}/").
"#,
        hints = hints.join(", "),
    )
}

/// The Parquet stream: columns come from the files (the running schema keeps each column's
/// type); new fields become columns, and `_rescued_data` is the service's own rescue column.
fn parquet_snippet(config: &Config) -> String {
    let root = spark_root(config);
    let topic = &config.topic;
    let dead = &config.dead_letter_prefix;
    format!(
        r#"# Databricks Auto Loader for topic `{topic}`: one row per landed record, from Parquet.
# Reads only {root}/{topic}/ : `_ingest/` (claims, schema versions) and `{dead}/` (invalid
# records, NDJSON) sit beside it, outside the path. Files are immutable and appear atomically.
# Fields that did not fit their column are JSON in `_rescued_data`.
df = (
    spark.readStream.format("cloudFiles")
    .option("cloudFiles.format", "parquet")
    .option("cloudFiles.schemaLocation", "<checkpoint-dir>/{topic}/schema")
    .option("cloudFiles.schemaEvolutionMode", "addNewColumns")
    .option("rescuedDataColumn", "_rescued_data")
    .option("cloudFiles.partitionColumns", "dt,hour")
    .option("cloudFiles.allowOverwrites", "false")
    .option("pathGlobFilter", "*.parquet")
    .load("{root}/{topic}/")
)
# Invalid records, if any: cloudFiles.format "json" with .load("{root}/{dead}/{topic}/").
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut pairs = vec![
            ("INGEST_TOPIC", "orders"),
            ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
        ];
        pairs.extend_from_slice(extra);
        Config::from_pairs(pairs).unwrap()
    }

    #[test]
    fn storage_urls_become_spark_paths() {
        let cases = [
            ("s3://bucket/landing", "s3://bucket/landing"),
            ("s3://bucket", "s3://bucket"),
            ("/data/landed", "file:///data/landed"),
            (
                "abfss://lake@acct.dfs.core.windows.net/raw",
                "abfss://lake@acct.dfs.core.windows.net/raw",
            ),
            (
                "az://lake/raw",
                "abfss://lake@<AZURE_STORAGE_ACCOUNT_NAME>.dfs.core.windows.net/raw",
            ),
        ];
        for (url, spark) in cases {
            assert_eq!(spark_root(&config(&[("INGEST_STORAGE_URL", url)])), spark);
        }
    }

    #[test]
    fn compression_and_envelope_pick_the_glob_and_hints() {
        let plain = snippet(&config(&[
            ("INGEST_STORAGE_URL", "s3://b/p"),
            ("INGEST_COMPRESSION", "none"),
        ]));
        assert!(
            plain.contains(r#""pathGlobFilter", "*.ndjson")"#),
            "{plain}"
        );
        assert!(!plain.contains("offset BIGINT"));
        let meta = snippet(&config(&[
            ("INGEST_STORAGE_URL", "s3://b/p"),
            ("INGEST_ENVELOPE", "metadata"),
        ]));
        assert!(meta.contains("*.ndjson.gz") && meta.contains("offset BIGINT"));
        assert!(meta.contains(r#".load("s3://b/p/orders/")"#));
    }

    #[test]
    fn parquet_reads_parquet_with_new_columns_and_the_rescue_column() {
        let s = snippet(&config(&[
            ("INGEST_STORAGE_URL", "s3://b/p"),
            ("INGEST_FORMAT", "parquet"),
        ]));
        for want in [
            r#""cloudFiles.format", "parquet""#,
            r#""cloudFiles.schemaEvolutionMode", "addNewColumns""#,
            r#""rescuedDataColumn", "_rescued_data""#,
            r#""pathGlobFilter", "*.parquet""#,
            r#".load("s3://b/p/orders/")"#,
        ] {
            assert!(s.contains(want), "{want} in {s}");
        }
    }
}
