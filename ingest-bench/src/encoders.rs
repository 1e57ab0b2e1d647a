//! The encoders alone: the bench records encoded in batches on one thread, no broker, no
//! storage, so each encoder's CPU per GB can be compared with the compressor's on the same
//! bytes (`ingest-bench encode`).

use std::io::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use flate2::write::GzEncoder;
use ingest::batch::{Batch, RecordRef};
use ingest::config::encoding::{Compression, Envelope, InvalidRecordPolicy};
use ingest::config::format::{Format, ParquetCompression, ParquetSettings, ROW_GROUP_BYTES};
use ingest::encode::parquet::shape::Columns;
use ingest::encode::EncodeOptions;

use crate::procs;
use crate::records::Records;

/// One encoder's figures over all batches.
struct Measured {
    name: String,
    seconds: f64,
    output: usize,
}

fn batches(kind: Records, records: u64, batch_bytes: usize) -> (Vec<Batch>, usize) {
    let now = Instant::now();
    let (mut out, mut bytes) = (Vec::new(), 0);
    let mut batch = Batch::new(now, 0);
    for n in 0..records {
        let value = kind.event(n);
        bytes += value.len() + 1;
        batch.push(&RecordRef {
            offset: n as i64,
            timestamp_ms: Some(1_780_000_000_000 + n as i64),
            key: None,
            value: Some(&value),
            headers: &[],
            flaw: None,
            cursor: None,
        });
        if batch.bytes() >= batch_bytes {
            out.push(std::mem::replace(&mut batch, Batch::new(now, 0)));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    (out, bytes)
}

fn options(envelope: Envelope, compression: Compression, format: Format) -> EncodeOptions {
    EncodeOptions {
        topic: "orders".into(),
        envelope,
        compression,
        invalid: InvalidRecordPolicy::Fail,
        max_record_bytes: 8 << 20,
        transform: None,
        format,
        registry: None,
        table_columns: None,
    }
}

fn time(name: &str, f: impl FnOnce() -> anyhow::Result<usize>) -> anyhow::Result<Measured> {
    let started = procs::thread_cpu_seconds()?;
    let output = f()?;
    Ok(Measured {
        name: name.to_string(),
        seconds: procs::thread_cpu_seconds()? - started,
        output,
    })
}

/// Encodes `records` bench records in batches of `batch_bytes` with NDJSON + gzip at `level`,
/// gzip alone over the same lines, NDJSON without compression (the JSON check and the lines),
/// and Parquet (zstd at `zstd_level`) under both envelopes (`only`: the
/// encoders whose name contains it); prints a table.
pub fn run(
    kind: Records,
    records: u64,
    batch_bytes: usize,
    level: u32,
    zstd_level: i32,
    only: Option<&str>,
) -> anyhow::Result<()> {
    // The Avro rows encode the clicks: the same records, as JSON and as Avro.
    let kind = match kind {
        Records::Avro => Records::Clicks,
        other => other,
    };
    let (batches, ndjson_bytes) = batches(kind, records, batch_bytes);
    let lines: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| {
            let mut v = Vec::with_capacity(b.bytes() + b.len());
            for r in b.records() {
                v.extend_from_slice(r.value().unwrap_or_default());
                v.push(b'\n');
            }
            v
        })
        .collect();
    let gzip = Compression::Gzip { level };
    let parquet = Format::Parquet(ParquetSettings {
        compression: ParquetCompression::Zstd { level: zstd_level },
        row_group_bytes: ROW_GROUP_BYTES,
        max_columns: ingest::config::format::MAX_COLUMNS,
        max_fields: ingest::config::format::MAX_FIELDS,
    });
    let mut rows = vec![time(&format!("gzip {level} alone"), || {
        let mut total = 0;
        for l in &lines {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            for chunk in l.chunks(256 * 1024) {
                gz.write_all(chunk)?;
            }
            total += gz.finish()?.len();
        }
        Ok(total)
    })?];
    // The JSON check on its own (what every record costs before any line is written).
    if only.is_none_or(|o| "JSON check alone".contains(o)) {
        rows.push(time("JSON check alone", || {
            let mut valid = 0;
            for b in &batches {
                for r in b.records() {
                    let v = r.value().unwrap_or_default();
                    if matches!(
                        ingest::encode::json::scan(v),
                        ingest::encode::json::Scan::Valid { .. }
                    ) {
                        valid += v.len() + 1;
                    }
                }
            }
            anyhow::ensure!(valid == ndjson_bytes, "the check refused a bench record");
            Ok(0)
        })?);
    }
    for (name, envelope, compression, format) in [
        ("NDJSON + gzip, raw", Envelope::Raw, gzip, Format::Ndjson),
        // The JSON check and the lines without the compressor: what NDJSON adds to it.
        (
            "NDJSON uncompressed, raw",
            Envelope::Raw,
            Compression::None,
            Format::Ndjson,
        ),
        ("Parquet, raw", Envelope::Raw, gzip, parquet),
        ("Parquet, metadata", Envelope::Metadata, gzip, parquet),
    ] {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let opts = options(envelope, compression, format);
        rows.push(time(name, || {
            let mut total = 0;
            // As in the service: each file is encoded against the topic's running schema,
            // which holds the columns of the files before it.
            let mut running = Columns::default();
            for b in &batches {
                let encoded = match format {
                    Format::Ndjson => ingest::encode::encode(b, 0, &opts),
                    Format::Parquet(settings) => {
                        ingest::encode::parquet::encode(b, 0, &opts, &settings, &running)
                    }
                }
                .map_err(|e| anyhow::anyhow!("{}", e.reason))
                .context(name.to_string())?;
                total += encoded.data.len();
                if let Some(columns) = encoded.columns {
                    running = columns;
                }
            }
            Ok(total)
        })?);
    }
    if kind == Records::Clicks {
        rows.extend(avro_rows(&batches, gzip, parquet, only)?);
    }
    let gb = ndjson_bytes as f64 / 1e9;
    println!(
        "{records} {} records, {:.0} MB of NDJSON in {} batches of about {} MiB, one thread; \
         Parquet with zstd {zstd_level}\n",
        kind.name(),
        ndjson_bytes as f64 / 1e6,
        batches.len(),
        batch_bytes >> 20
    );
    println!("| encoder | CPU s/GB | × gzip alone | output / NDJSON |");
    println!("|---|---:|---:|---:|");
    let base = rows[0].seconds;
    for m in &rows {
        println!(
            "| {} | {:.1} | {:.2} | {:.3} |",
            m.name,
            m.seconds / gb,
            m.seconds / base,
            m.output as f64 / ndjson_bytes as f64
        );
    }
    Ok(())
}

/// The same clicks as Avro in the wire format (schema id 1): decoded to JSON alone, and decoded,
/// buffered and encoded as NDJSON + gzip or Parquet, which is what a schema-registry topic costs
/// the service per record (the JSON rows start from buffered records: their intake copy is not
/// counted).
fn avro_rows(
    batches: &[Batch],
    gzip: Compression,
    parquet: Format,
    only: Option<&str>,
) -> anyhow::Result<Vec<Measured>> {
    use ingest::registry::avro;
    let schema = avro::Schema::parse(crate::avro::CLICK_SCHEMA, &[]).map_err(anyhow::Error::msg)?;
    let framed: Vec<Vec<Vec<u8>>> = batches
        .iter()
        .map(|b| {
            b.records()
                .map(|r| crate::avro::click(r.offset() as u64))
                .collect()
        })
        .collect();
    let avro_bytes: usize = framed.iter().flatten().map(Vec::len).sum();
    println!(
        "Avro rows: the same clicks in {:.0} MB of Avro (wire format, 5-byte header each)\n",
        avro_bytes as f64 / 1e6
    );
    let mut rows = Vec::new();
    let decode = |value: &[u8], json: &mut Vec<u8>| -> anyhow::Result<()> {
        json.clear();
        avro::to_json(&schema, &value[5..], json, 8 << 20).map_err(|e| anyhow::anyhow!("{e}"))
    };
    if only.is_none_or(|o| "Avro to JSON alone".contains(o)) {
        rows.push(time("Avro to JSON alone", || {
            let mut json = Vec::new();
            let mut total = 0;
            for value in framed.iter().flatten() {
                decode(value, &mut json)?;
                total += json.len();
            }
            Ok(total)
        })?);
    }
    // As the service encodes decoded values: no second JSON check.
    let config = ingest::Config::from_pairs([
        ("INGEST_TOPIC", "clicks"),
        ("INGEST_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9"),
        ("INGEST_STORAGE_URL", "/nonexistent"),
        ("INGEST_VALUE_FORMAT", "avro"),
        ("INGEST_SCHEMA_REGISTRY_URL", "http://127.0.0.1:9"),
    ])?;
    let settings = config.registry.as_ref().context("a registry config")?;
    let registry = std::sync::Arc::new(
        ingest::registry::Registry::new(settings, 8 << 20, None, true)
            .map_err(anyhow::Error::msg)?,
    );
    // The Parquet row's columns typed as the schema declares them, as the service's are.
    registry.declare(&avro::columns::fields(&schema));
    for (name, format) in [
        (
            "Avro to NDJSON + gzip, raw (decode, buffer, encode)",
            Format::Ndjson,
        ),
        ("Avro to Parquet, raw (decode, buffer, encode)", parquet),
    ] {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mut opts = options(Envelope::Raw, gzip, format);
        opts.registry = Some(std::sync::Arc::clone(&registry));
        rows.push(time(name, || {
            let (mut json, mut total) = (Vec::new(), 0);
            let mut running = Columns::default();
            for (b, values) in batches.iter().zip(&framed) {
                let mut batch: Batch = Batch::new(Instant::now(), 0);
                for (r, value) in b.records().zip(values) {
                    decode(value, &mut json)?;
                    batch.push(&RecordRef {
                        offset: r.offset(),
                        timestamp_ms: r.timestamp_ms(),
                        key: None,
                        value: Some(&json),
                        headers: &[],
                        flaw: None,
                        cursor: None,
                    });
                }
                let encoded = match format {
                    Format::Ndjson => ingest::encode::encode(&batch, 0, &opts),
                    Format::Parquet(settings) => {
                        ingest::encode::parquet::encode(&batch, 0, &opts, &settings, &running)
                    }
                }
                .map_err(|e| anyhow::anyhow!("{}", e.reason))?;
                total += encoded.data.len();
                if let Some(columns) = encoded.columns {
                    running = columns;
                }
            }
            Ok(total)
        })?);
    }
    Ok(rows)
}
