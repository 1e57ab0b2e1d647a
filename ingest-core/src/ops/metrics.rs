//! The metrics the service exports: the Prometheus recorder, installed once per process, and
//! every metric's name, unit and meaning.
//!
//! Invariant: metric names and units are declared once, in [`describe`]; counters start at zero
//! so `rate()` and alerts work before the first event.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the process-wide Prometheus recorder once; later pipelines in the same process
/// (tests, embedders) share it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("ingest_upload_duration_seconds".into()),
                    &[
                        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (an embedder's): render ours without installing.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

/// Every metric the service exports, with its unit and meaning. Counters (and each flush
/// reason) start at zero so `rate()` and alerts work before the first event.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    const COUNTERS: &[(&str, Option<Unit>, &str)] = &[
        (
            "ingest_records_consumed_total",
            None,
            "Records received from Kafka.",
        ),
        (
            "ingest_bytes_consumed_total",
            Some(Unit::Bytes),
            "Record bytes (key, value, and headers with the metadata envelope) received from Kafka.",
        ),
        (
            "ingest_encoded_ahead_bytes_total",
            Some(Unit::Bytes),
            "Record bytes encoded and compressed while their batch was still filling.",
        ),
        (
            "ingest_records_landed_total",
            None,
            "Records written to data files.",
        ),
        (
            "ingest_bytes_landed_total",
            Some(Unit::Bytes),
            "Bytes of data files as stored (compressed).",
        ),
        ("ingest_files_landed_total", None, "Data files written."),
        (
            "ingest_dead_letters_total",
            None,
            "Invalid records written to the dead-letter path.",
        ),
        (
            "ingest_records_skipped_total",
            None,
            "Invalid records dropped under INGEST_INVALID_RECORD_POLICY=skip.",
        ),
        (
            "ingest_records_filtered_total",
            None,
            "Records dropped by the service's transform.",
        ),
        (
            "ingest_storage_errors_total",
            None,
            "Flush attempts that failed on storage and were retried.",
        ),
        (
            "ingest_refused_names_total",
            None,
            "Files whose record-made name the store refused, kept at their refuge under the dead-letter prefix.",
        ),
        (
            "ingest_storage_conflicts_total",
            None,
            "Create-only writes refused with a conflict although nothing was there (retried).",
        ),
        (
            "ingest_commit_failures_total",
            None,
            "Offset commits that failed after a file landed.",
        ),
        (
            "ingest_time_fallbacks_total",
            None,
            "Records placed by their Kafka timestamp (or the claim time) because their time field was missing or not a time in INGEST_TIME_FORMAT.",
        ),
        (
            "ingest_delta_commits_total",
            None,
            "INGEST_FORMAT=delta: rounds of the Delta table's commits done.",
        ),
        (
            "ingest_delta_files_added_total",
            None,
            "INGEST_FORMAT=delta: landed files added to the Delta table.",
        ),
        (
            "ingest_delta_commit_errors_total",
            None,
            "INGEST_FORMAT=delta: table commits that failed (their files are added at the next).",
        ),
        (
            "ingest_delta_log_files_expired_total",
            None,
            "INGEST_FORMAT=delta: log entries past delta.logRetentionDuration deleted after a checkpoint.",
        ),
        (
            "ingest_delta_rewalks_total",
            None,
            "INGEST_FORMAT=delta: partitions whose claim chain was read again because the table held less of them than this replica believed (its log begun again, or a commit the store lost).",
        ),
        (
            "ingest_delta_names_rescued_total",
            None,
            "INGEST_FORMAT=delta: fields kept in _rescued_data because a Delta table cannot name them as columns.",
        ),
        (
            "ingest_recoveries_total",
            None,
            "Batches that started at an existing claim (restart, rebalance, retry).",
        ),
        (
            "ingest_offsets_gone_total",
            None,
            "Offsets that left the log (retention, compaction) before they landed: never landed, and cannot.",
        ),
        (
            "ingest_chain_listings_total",
            None,
            "Claim listings made to find where a partition starts (a new group, expired offsets; none on a normal restart).",
        ),
        (
            "ingest_multipart_uploads_total",
            None,
            "Files uploaded in parts.",
        ),
        (
            "ingest_start_retries_total",
            None,
            "Start-up attempts that found the store or the broker unreachable and waited to try again.",
        ),
        (
            "ingest_schema_registry_reads_total",
            None,
            "Schemas read from the schema registry by id (each once while it is kept).",
        ),
        (
            "ingest_schema_registry_errors_total",
            None,
            "Schema registry requests that failed (unavailable: retried; refused: the service stops).",
        ),
        (
            "ingest_schema_waits_total",
            None,
            "Times a partition met a record whose schema was not read yet and started again from the store once it was.",
        ),
        (
            "ingest_parquet_fields_over_cap_total",
            None,
            "Record fields kept in _rescued_data because the topic's Parquet schema reached INGEST_PARQUET_MAX_COLUMNS or INGEST_PARQUET_MAX_FIELDS.",
        ),
    ];
    for (name, unit, help) in COUNTERS {
        match unit {
            Some(u) => describe_counter!(*name, *u, *help),
            None => describe_counter!(*name, *help),
        }
        metrics::counter!(*name).increment(0);
    }
    describe_counter!(
        "ingest_flushes_total",
        "Batches sealed for upload, by reason."
    );
    for reason in crate::batch::FlushReason::ALL {
        metrics::counter!("ingest_flushes_total", "reason" => reason.as_str()).increment(0);
    }
    describe_histogram!(
        "ingest_upload_duration_seconds",
        Unit::Seconds,
        "Time to upload one data file."
    );
    describe_gauge!(
        "ingest_buffered_bytes",
        Unit::Bytes,
        "Memory batches and their compressed output hold across partitions."
    );
    describe_gauge!(
        "ingest_buffer_cap_bytes",
        Unit::Bytes,
        "INGEST_MAX_BUFFER_BYTES less librdkafka's reserve: what ingest_buffered_bytes is held under."
    );
    describe_gauge!(
        "ingest_paused_partitions",
        "Partitions whose fetching is paused by the buffer cap."
    );
    describe_gauge!(
        "ingest_assigned_partitions",
        "Partitions this replica owns."
    );
    describe_gauge!(
        "ingest_committed_offset",
        "Next offset committed, per partition."
    );
    describe_gauge!(
        "ingest_consumer_lag",
        "High watermark minus committed offset, per partition (librdkafka statistics)."
    );
    describe_gauge!(
        "ingest_last_landed_timestamp_seconds",
        Unit::Seconds,
        "When the partition last landed a file (Unix time)."
    );
    describe_gauge!(
        "ingest_seconds_since_last_landed",
        Unit::Seconds,
        "Freshness: seconds since the partition last landed a file."
    );
    describe_gauge!(
        "ingest_exactly_once",
        "1 when the store honours create-only writes (exactly-once); 0 when it overwrites and INGEST_ACCEPT_AT_LEAST_ONCE=true lands at-least-once."
    );
    for gauge in [
        "ingest_buffered_bytes",
        "ingest_paused_partitions",
        "ingest_assigned_partitions",
    ] {
        metrics::gauge!(gauge).set(0.0);
    }
}
