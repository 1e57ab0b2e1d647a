//! `ingest-cli autoloader`: the Databricks Auto Loader (Spark `readStream`) options that read
//! what a service lands.
//!
//! Pure: derived from the validated service configuration. Invariant: the stream reads only
//! `<root>/<topic>/` (so `_ingest/` claims and `_dead_letters/` are never picked up), files
//! are never overwritten (`cloudFiles.allowOverwrites=false`), and the time directories
//! (`dt`/`hour`, or `dt` by day) are columns.

use ingest::config::layout::Part;
use ingest::config::{Compression, Envelope, Format, Layout, TimeSource};
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

/// Types for the partition columns: a date, an hour, else text (a field such as a zip code
/// must not be read as a number).
fn partition_hints(layout: &Layout) -> Vec<String> {
    match layout {
        Layout::Time(g) => g
            .columns()
            .iter()
            .map(|c| format!("{c} {}", if *c == "dt" { "DATE" } else { "INT" }))
            .collect(),
        Layout::Template(t) => t
            .segments
            .iter()
            .map(|s| {
                let kind = match s.parts.as_slice() {
                    [Part::Date] => "DATE",
                    [Part::Hour | Part::Year | Part::Month | Part::Day] => "INT",
                    _ => "STRING",
                };
                format!("{} {kind}", s.name)
            })
            .collect(),
    }
}

/// The PySpark snippet for `config`'s topic: one stream over `<root>/<topic>/`, its options
/// depending on the format.
pub fn snippet(config: &Config) -> String {
    let root = spark_root(config);
    let topic = &config.topic;
    let dead = &config.dead_letter_prefix;
    if config.delta.is_some() {
        return format!(
            r#"# Topic `{topic}` is a Delta table at {root}/{topic}/ (INGEST_FORMAT=delta): no Auto Loader
# needed. Its partition columns are `{columns}`; fields that did not fit their column are JSON in
# `_rescued_data`.
spark.sql("CREATE TABLE IF NOT EXISTS {topic} USING DELTA LOCATION '{root}/{topic}/'")
# Or as a stream, each commit's new files once:
df = spark.readStream.format("delta").load("{root}/{topic}/")
# Invalid records, if any (NDJSON, not in the table): {root}/{dead}/{topic}/
"#,
            columns = config.layout.columns().join("`, `"),
        );
    }
    let schema = format!("<checkpoint-dir>/{topic}/schema");
    let (what, beside, format_options, glob, dead_note) = match config.format {
        Format::Parquet(_) => (
            "one row per landed record, from Parquet",
            format!("`_ingest/` (claims, schema versions) and `{dead}/` (invalid records, NDJSON)"),
            vec![
                ("cloudFiles.format", "parquet".to_string()),
                ("cloudFiles.schemaLocation", schema),
                ("cloudFiles.schemaEvolutionMode", "addNewColumns".into()),
                ("rescuedDataColumn", "_rescued_data".into()),
            ],
            "*.parquet",
            "cloudFiles.format \"json\" with",
        ),
        Format::Ndjson => {
            let mut hints = partition_hints(&config.layout);
            if config.envelope == Envelope::Metadata {
                hints.extend(
                    [
                        "topic STRING",
                        "partition INT",
                        "offset BIGINT",
                        "timestamp BIGINT",
                        "key STRING",
                        "headers ARRAY<STRUCT<key: STRING, value: STRING>>",
                    ]
                    .map(String::from),
                );
            }
            let glob = match config.compression {
                Compression::Gzip { .. } => "*.ndjson.gz",
                Compression::None => "*.ndjson",
            };
            (
                "one row per landed NDJSON line",
                format!("`_ingest/` (claims) and `{dead}/` (invalid records)"),
                vec![
                    ("cloudFiles.format", "json".to_string()),
                    ("cloudFiles.schemaLocation", schema),
                    ("cloudFiles.inferColumnTypes", "true".into()),
                    ("cloudFiles.schemaHints", hints.join(", ")),
                ],
                glob,
                "the same options with",
            )
        }
    };
    let mut options = format_options;
    options.push((
        "cloudFiles.partitionColumns",
        config.layout.columns().join(","),
    ));
    options.push(("cloudFiles.allowOverwrites", "false".into()));
    options.push(("pathGlobFilter", glob.into()));
    let options: String = options
        .iter()
        .map(|(k, v)| format!("    .option(\"{k}\", \"{v}\")\n"))
        .collect();
    let mut rescued = if matches!(config.format, Format::Parquet(_)) {
        "\n# Fields that did not fit their column are JSON in `_rescued_data`.".to_string()
    } else {
        String::new()
    };
    let columns = config.layout.columns().join("`/`");
    let time = match &config.time_source {
        TimeSource::Record => "the first record's Kafka timestamp of each file".to_string(),
        TimeSource::Ingestion => "when each file's first record arrived".to_string(),
        TimeSource::Field(f) => format!(
            "each record's own `{}` (records without it: their Kafka timestamp)",
            f.path.join(".")
        ),
    };
    rescued.push_str(&format!("\n# `{columns}` are UTC, from {time}."));
    format!(
        r#"# Databricks Auto Loader for topic `{topic}`: {what}.
# Reads only {root}/{topic}/ : {beside} sit beside it, outside the path.
# Files are immutable and appear atomically; names sort by offset.{rescued}
df = (
    spark.readStream.format("cloudFiles")
{options}    .load("{root}/{topic}/")
)
# Invalid records, if any: {dead_note} .load("{root}/{dead}/{topic}/").
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
    fn a_delta_topic_is_a_table_to_create_or_stream() {
        let s = snippet(&config(&[
            ("INGEST_FORMAT", "delta"),
            ("INGEST_STORAGE_URL", "s3://lake/raw"),
        ]));
        assert!(
            s.contains(
                "CREATE TABLE IF NOT EXISTS orders USING DELTA LOCATION 's3://lake/raw/orders/'"
            ),
            "{s}"
        );
        assert!(
            s.contains(r#"readStream.format("delta").load("s3://lake/raw/orders/")"#),
            "{s}"
        );
        assert!(!s.contains("cloudFiles"), "{s}");
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
    fn the_layout_chosen_gives_the_partition_columns() {
        let hourly = snippet(&config(&[("INGEST_STORAGE_URL", "s3://b/p")]));
        assert!(hourly.contains(r#""cloudFiles.partitionColumns", "dt,hour""#));
        assert!(hourly.contains("dt DATE, hour INT"), "{hourly}");
        let daily = snippet(&config(&[
            ("INGEST_STORAGE_URL", "s3://b/p"),
            ("INGEST_PARTITION_BY", "day"),
            ("INGEST_TIME_SOURCE", "field"),
            ("INGEST_TIME_FIELD", "order.placed_at"),
        ]));
        assert!(
            daily.contains(r#""cloudFiles.partitionColumns", "dt")"#),
            "{daily}"
        );
        assert!(!daily.contains("hour INT"), "{daily}");
        assert!(
            daily.contains("each record's own `order.placed_at`"),
            "{daily}"
        );
    }

    #[test]
    fn a_path_template_gives_its_columns_and_their_types() {
        let s = snippet(&config(&[
            ("INGEST_STORAGE_URL", "s3://b/p"),
            (
                "INGEST_PATH_TEMPLATE",
                "{topic}/region={record.region}/dt={date}/hour={hour}",
            ),
        ]));
        assert!(
            s.contains(r#""cloudFiles.partitionColumns", "region,dt,hour""#),
            "{s}"
        );
        assert!(s.contains("region STRING, dt DATE, hour INT"), "{s}");
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
