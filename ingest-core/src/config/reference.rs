//! The settings the service reads, with their defaults and meanings: the one source the book's
//! configuration tables are generated from (`ingest-cli settings`), and that a test holds
//! against what the service reads.
//!
//! Pure data.

/// One `INGEST_*` setting (or family of settings: `INGEST_KAFKA_<PROPERTY>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    /// As the book shows it (`required`, `unset`, a value in backticks, or words).
    pub default: &'static str,
    /// Its value is a secret: it comes from a Kubernetes Secret (the chart's `secretEnv`) and is
    /// never printed.
    pub secret: bool,
    pub meaning: &'static str,
}

/// The service's settings (`docs/src/configuration.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "INGEST_SOURCE",
        default: "`kafka`",
        secret: false,
        meaning: "`kafka`, or `eventhubs` for the native Event Hubs source (see [Azure Event Hubs, native source](eventhubs.md)).",
    },
    Setting {
        name: "INGEST_TOPIC",
        default: "required",
        secret: false,
        meaning: "The Kafka topic to land (Kafka's naming rules). With `INGEST_SOURCE=eventhubs`: defaults to the event hub name; names the data directory and files.",
    },
    Setting {
        name: "INGEST_KAFKA_BOOTSTRAP_SERVERS",
        default: "required",
        secret: false,
        meaning: "`host:port[,host:port...]`.",
    },
    Setting {
        name: "INGEST_KAFKA_GROUP_ID",
        default: "`ingest-<topic>`",
        secret: false,
        meaning: "Consumer group; replicas of one service share it.",
    },
    Setting {
        name: "INGEST_KAFKA_<PROPERTY>",
        default: "",
        secret: false,
        meaning: "Any librdkafka property, dots as underscores: `INGEST_KAFKA_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol`. `enable.auto.commit` and `enable.auto.offset.store` are refused (the service commits itself). Preset: `partition.assignment.strategy=cooperative-sticky`, `auto.offset.reset=earliest`, `queued.max.messages.kbytes` = a thirty-second of `INGEST_MAX_BUFFER_BYTES` between 1 and 8 MiB (8 MiB at the default cap; three times it is reserved from the cap for librdkafka), `queued.min.messages` = one per 512 bytes of that bound (16,384: librdkafka keeps a 320-byte op per queued message, so small records are bounded by count; a larger value set here is reserved at 320 bytes a message), `fetch.queue.backoff.ms=10`, `enable.partition.eof=true`; all overridable.",
    },
    Setting {
        name: "INGEST_STORAGE_URL",
        default: "required",
        secret: false,
        meaning: "`file:///absolute/path` (or `/absolute/path`), `s3://bucket/prefix`, `az://container/prefix`, `abfss://container@account.dfs.core.windows.net/prefix`. Credentials: see [Storage](storage.md).",
    },
    Setting {
        name: "INGEST_MULTIPART_THRESHOLD_BYTES",
        default: "`16777216` (16 MiB)",
        secret: false,
        meaning: "S3 files larger than this are uploaded in parts (Azure files are one Put Blob).",
    },
    Setting {
        name: "INGEST_MULTIPART_PART_BYTES",
        default: "`8388608` (8 MiB)",
        secret: false,
        meaning: "Part size (at least 5 MiB, S3's minimum); two parts are in flight per upload.",
    },
    Setting {
        name: "INGEST_ACCEPT_AT_LEAST_ONCE",
        default: "`false`",
        secret: false,
        meaning: "`true` runs on a store that overwrites despite `If-None-Match` (refused otherwise), landing at-least-once; see [Storage](storage.md).",
    },
    Setting {
        name: "INGEST_FLUSH_MAX_RECORDS",
        default: "`500000`",
        secret: false,
        meaning: "Flush a partition's batch at this many records.",
    },
    Setting {
        name: "INGEST_FLUSH_MAX_BYTES",
        default: "`67108864` (64 MiB)",
        secret: false,
        meaning: "Flush before a batch's uncompressed record bytes (keys, values, and headers with the metadata envelope) would exceed this.",
    },
    Setting {
        name: "INGEST_FLUSH_MAX_AGE_MS",
        default: "`300000` (5 min)",
        secret: false,
        meaning: "Flush a batch this long after its first record arrived, even if the partition went quiet.",
    },
    Setting {
        name: "INGEST_MAX_BUFFER_BYTES",
        default: "`268435456` (256 MiB)",
        secret: false,
        meaning: "Cap on the memory records take in the whole process: librdkafka's prefetch (three times `queued.max.messages.kbytes` is reserved for it, more if `queued.min.messages` is raised past one per 320 bytes of it) or Event Hubs' link credit (a quarter of the cap, see [Event Hubs](eventhubs.md)), batches across all partitions (open, waiting and uploading: their bytes plus 28 bytes each and at most 64 KiB of slack per batch) and their compressed output. From 3/4 of what batches may hold, the largest idle batches are flushed early (while fetching goes on); at the cap the service stops taking messages from librdkafka's bounded queue until usage is below it, and if that lasts 2 s, pauses fetching until usage is below 90 %. Must be ≥ `INGEST_FLUSH_MAX_BYTES`.",
    },
    Setting {
        name: "INGEST_MAX_RECORD_BYTES",
        default: "`8388608` (8 MiB)",
        secret: false,
        meaning: "Larger values are invalid records.",
    },
    Setting {
        name: "INGEST_ENVELOPE",
        default: "`raw`",
        secret: false,
        meaning: "`raw`: each line is the record value. `metadata`: each line is `{\"topic\",\"partition\",\"offset\",\"timestamp\",\"key\",\"headers\":[{\"key\",\"value\"}],\"value\"}`; non-UTF-8 keys/header values appear as `null` plus `key_base64`/`value_base64`.",
    },
    Setting {
        name: "INGEST_COMPRESSION",
        default: "`gzip`",
        secret: false,
        meaning: "`gzip` or `none` (`.ndjson.gz` / `.ndjson`): NDJSON data files, and dead letters in either format.",
    },
    Setting {
        name: "INGEST_COMPRESSION_LEVEL",
        default: "`6`",
        secret: false,
        meaning: "gzip level 1 (fastest) to 9; [Performance](performance.md) has the CPU and size of levels 1, 3, 6 and 9 on two kinds of records.",
    },
    Setting {
        name: "INGEST_FORMAT",
        default: "`ndjson`",
        secret: false,
        meaning: "`ndjson`, `parquet` (see [Parquet](what-lands-where.md#parquet)) or `delta`: Parquet files added to a Delta table at `<root>/<topic>/` (see [Delta Lake tables](delta.md)).",
    },
    Setting {
        name: "INGEST_DELTA_COMMIT_INTERVAL_MS",
        default: "`10000`",
        secret: false,
        meaning: "With `INGEST_FORMAT=delta`: the files every partition landed meanwhile go into one commit of the table this often (each partition's transaction identifier at its last landed offset). Fewer, larger commits keep the log small; readers see a file this much later than it landed.",
    },
    Setting {
        name: "INGEST_DELTA_CHECKPOINT_INTERVAL",
        default: "`100`",
        secret: false,
        meaning: "With `INGEST_FORMAT=delta`: a checkpoint every this many commits, so readers (and the service's own start) read one checkpoint and the commits after it, not the whole log.",
    },
    Setting {
        name: "INGEST_PARQUET_COMPRESSION",
        default: "`zstd`",
        secret: false,
        meaning: "`zstd`, `snappy`, `gzip` or `none`.",
    },
    Setting {
        name: "INGEST_PARQUET_COMPRESSION_LEVEL",
        default: "`3` (zstd), `6` (gzip)",
        secret: false,
        meaning: "zstd 1 to 22, gzip 1 to 9.",
    },
    Setting {
        name: "INGEST_PARQUET_ROW_GROUP_BYTES",
        default: "`67108864` (64 MiB)",
        secret: false,
        meaning: "A row group is closed once the writer holds about this much.",
    },
    Setting {
        name: "INGEST_PARQUET_MAX_COLUMNS",
        default: "`1000`",
        secret: false,
        meaning: "The most top-level columns a topic's schema takes. A field that would add one more is kept in `_rescued_data` (counted in `ingest_parquet_fields_over_cap_total`), and the schema versions stop growing: records with ever new field names (ids used as keys) cannot grow the schema, or the memory a file takes, without end.",
    },
    Setting {
        name: "INGEST_PARQUET_MAX_FIELDS",
        default: "`10000`",
        secret: false,
        meaning: "The most fields in all (each column and each nested field counts one); past it, as above. At least `INGEST_PARQUET_MAX_COLUMNS`.",
    },
    Setting {
        name: "INGEST_VALUE_FORMAT",
        default: "`json`",
        secret: false,
        meaning: "What a record's value is: `json`, or a schema registry's wire format (a zero byte and a 4-byte schema id first): `avro` or `protobuf` (decoded to JSON through the writer's schema) or `json-schema` (the JSON after the header). See [Schema-registry topics](schema-registry.md).",
    },
    Setting {
        name: "INGEST_KEY_FORMAT",
        default: "`bytes`",
        secret: false,
        meaning: "What a record's key is: `bytes` (landed as it came: text when it is UTF-8, else base64), or a schema registry's wire format, `avro`, `protobuf` or `json-schema`, decoded to JSON as values are: the `metadata` envelope's `key` is then that JSON, and Parquet's `_key` holds its text. Kafka only (an Event Hubs key is its partition key). See [Schema-registry topics](schema-registry.md#keys).",
    },
    Setting {
        name: "INGEST_SCHEMA_REGISTRY_URL",
        default: "unset",
        secret: false,
        meaning: "The schema registry schemas are read from by id: a Confluent-compatible one (`GET /schemas/ids/<id>`), or for Event Hubs events with an `avro/binary+<id>` content type Azure Schema Registry (`https://<namespace>.servicebus.windows.net`, read with the source's Entra credential). Required when `INGEST_VALUE_FORMAT` is not `json` or `INGEST_KEY_FORMAT` is not `bytes`, refused otherwise. Credentials go in the settings below, never in the URL.",
    },
    Setting {
        name: "INGEST_SCHEMA_REGISTRY_USERNAME",
        default: "unset",
        secret: false,
        meaning: "Basic authentication's user name (Confluent Cloud: the API key), with `INGEST_SCHEMA_REGISTRY_PASSWORD`.",
    },
    Setting {
        name: "INGEST_SCHEMA_REGISTRY_PASSWORD",
        default: "unset",
        secret: true,
        meaning: "Basic authentication's password (Confluent Cloud: the API secret).",
    },
    Setting {
        name: "INGEST_SCHEMA_REGISTRY_BEARER_TOKEN",
        default: "unset",
        secret: true,
        meaning: "A bearer token instead of a user name and password.",
    },
    Setting {
        name: "INGEST_INVALID_RECORD_POLICY",
        default: "`dead-letter`",
        secret: false,
        meaning: "For values that are not one valid JSON document that every reader can read (not UTF-8, a `\\u` escape of a lone surrogate, nested deeper than 128 levels: one such line would make Python, DuckDB or Spark reject the whole file), or are tombstones under `raw`, or exceed the size limit, or (under `metadata`) carry a Kafka header key that is not UTF-8 (librdkafka's Rust binding cannot read such headers; a non-Java producer can write them): `dead-letter` writes `{\"topic\",\"partition\",\"offset\",\"timestamp\",\"error\",\"key_base64\",\"value_base64\"}` lines under `INGEST_DEAD_LETTER_PREFIX`; `skip` logs and counts; `fail` stops the service naming the record (nothing past the last landed file is committed).",
    },
    Setting {
        name: "INGEST_DEAD_LETTER_PREFIX",
        default: "`_dead_letters`",
        secret: false,
        meaning: "Relative to the storage root, outside `<topic>/` and `_ingest/` (both refused). A topic named `_ingest` is refused too: that is where the service keeps its claims.",
    },
    Setting {
        name: "INGEST_TIME_SOURCE",
        default: "`record`",
        secret: false,
        meaning: "`record`: the first record's Kafka timestamp picks `dt`/`hour`; `ingestion`: the time it arrived; `field`: each record's own `INGEST_TIME_FIELD` (one file per hour a batch spans; see [What lands where](what-lands-where.md)).",
    },
    Setting {
        name: "INGEST_TIME_FIELD",
        default: "",
        secret: false,
        meaning: "With `INGEST_TIME_SOURCE=field` (and only then): the dotted path of the record's time, e.g. `placed_at` or `order.placed_at`.",
    },
    Setting {
        name: "INGEST_TIME_FORMAT",
        default: "`rfc3339`",
        secret: false,
        meaning: "With `INGEST_TIME_SOURCE=field`: `rfc3339`, `unix-s`, `unix-ms`, `unix-us`, or a strftime pattern that holds at least the date (checked at start).",
    },
    Setting {
        name: "INGEST_PARTITION_BY",
        default: "`hour`",
        secret: false,
        meaning: "`hour` (`dt=/hour=` directories) or `day` (`dt=` only).",
    },
    Setting {
        name: "INGEST_PATH_TEMPLATE",
        default: "",
        secret: false,
        meaning: "Other layouts, instead of `INGEST_PARTITION_BY`: e.g. `{topic}/region={record.region}/dt={date}/hour={hour}` (see [What lands where](what-lands-where.md)). `ingest-cli autoloader` prints the partition columns it makes.",
    },
    Setting {
        name: "INGEST_SHUTDOWN_TIMEOUT_MS",
        default: "`30000`",
        secret: false,
        meaning: "Graceful shutdown budget (the drain, then with `INGEST_FORMAT=delta` the last table commit, whose files the next start adds if it is cut short); keep it below the pod's termination grace period.",
    },
    Setting {
        name: "INGEST_CLAIM_COMPLETION_TIMEOUT_MS",
        default: "`600000` (10 min)",
        secret: false,
        meaning: "How long a partition may wait for the records that complete an earlier claim (a crash between claim and upload). Records the log no longer has are not waited for (the claim is completed with the rest once the consumer reaches the partition's end); if the partition's end is not reached in this time either (a broker that never answers, `isolation.level` hiding an open transaction), the service stops with one line naming the claim, having committed nothing past it.",
    },
    Setting {
        name: "INGEST_LOG_FORMAT",
        default: "`auto`",
        secret: false,
        meaning: "`json`, `text`, or `auto` (JSON unless stderr is a terminal). Level: `RUST_LOG` (default `info,delta_kernel=off`).",
    },
    Setting {
        name: "INGEST_HTTP_ADDR",
        default: "`0.0.0.0:8080`",
        secret: false,
        meaning: "Where `/healthz`, `/readyz` and `/metrics` listen; port `0` picks a free one (logged), `off` disables. A client must send its request headers within 5 s, a connection is served at most 10 s, and at most 32 connections are served at once, 8 from one address (more are closed at once), so slow clients cannot use up the descriptors the broker and storage sockets share, nor starve the probes.",
    },
    Setting {
        name: "INGEST_HEALTH_STALL_MS",
        default: "`60000`",
        secret: false,
        meaning: "`/healthz` fails when the pipeline loop has not turned for this long.",
    },
    Setting {
        name: "INGEST_STORAGE_CHECK_INTERVAL_MS",
        default: "`15000`",
        secret: false,
        meaning: "How often readiness re-checks storage when no flush tells.",
    },
    Setting {
        name: "INGEST_FAULT_HANG_AFTER_UPLOADS",
        default: "unset",
        secret: false,
        meaning: "Test only: after the N-th upload, print `FAULT: hanging before commit` and hang, for crash tests.",
    },
    Setting {
        name: "INGEST_FAULT_FAIL_MULTIPART_AFTER_PARTS",
        default: "unset",
        secret: false,
        meaning: "Test only: every multipart upload fails after N parts (it is then aborted and retried).",
    },
    Setting {
        name: "INGEST_FAULT_CONFLICT_CREATES",
        default: "unset",
        secret: false,
        meaning: "Test only: the listed create-only writes (`1,3`: the first and third) answer a write conflict without writing.",
    },
];

/// The native Event Hubs source's settings (`docs/src/eventhubs.md`).
pub const EVENTHUBS_SETTINGS: &[Setting] = &[
    Setting {
        name: "INGEST_EVENTHUBS_NAMESPACE",
        default: "from the connection string",
        secret: false,
        meaning: "`mynamespace` or `mynamespace.servicebus.windows.net` (lowercased).",
    },
    Setting {
        name: "INGEST_EVENTHUBS_EVENT_HUB",
        default: "the connection string's `EntityPath`",
        secret: false,
        meaning: "The event hub to land.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_CONSUMER_GROUP",
        default: "`$Default`",
        secret: false,
        meaning: "Replicas of one service share it.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_CONNECTION_STRING",
        default: "unset",
        secret: true,
        meaning: "`Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=...]` or with `SharedAccessSignature=`. Unset: Microsoft Entra ID through the standard `AZURE_*` variables.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_START_POSITION",
        default: "`earliest`",
        secret: false,
        meaning: "`earliest` or `latest`, for partitions with neither a claim chain in storage nor a checkpoint (with a chain: after its end; with a checkpoint only: just after it).",
    },
    Setting {
        name: "INGEST_EVENTHUBS_OWNERSHIP_EXPIRY_MS",
        default: "`60000`",
        secret: false,
        meaning: "An ownership not renewed for this long is free.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_LOAD_BALANCING_INTERVAL_MS",
        default: "`10000`",
        secret: false,
        meaning: "Renew/rebalance period; at most half the expiry.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_CHECKPOINT_URL",
        default: "`INGEST_STORAGE_URL`",
        secret: false,
        meaning: "An Azure Blob URL (`az://container[/prefix]`, `abfss://...`) for checkpoint and ownership blobs, with the storage credentials. Required when files land elsewhere than Azure Blob.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_OWNER_ID",
        default: "unique per start",
        secret: false,
        meaning: "This replica's `ownerid`.",
    },
    Setting {
        name: "INGEST_EVENTHUBS_ENDPOINT",
        default: "unset",
        secret: false,
        meaning: "A custom `amqp://`/`amqps://` endpoint (test servers).",
    },
];

/// The book's table of `settings`, as generated into its pages.
pub fn markdown(settings: &[Setting]) -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    for s in settings {
        let secret = if s.secret { "Secret. " } else { "" };
        out.push_str(&format!(
            "| `{}` | {} | {secret}{} |\n",
            s.name, s.default, s.meaning
        ));
    }
    out
}
