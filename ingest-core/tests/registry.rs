//! Schema-registry topics through the real pipeline: Avro values written by Confluent's own
//! Python serializer (confluent-kafka's AvroSerializer), registered in a registry over a real
//! socket (`common::registry`), produced to the in-process broker and landed on local disk as
//! NDJSON and Parquet; read back record by record against the JSON the book's table promises,
//! computed by the Python script independently of ingest's decoder.

mod common;

use std::collections::BTreeMap;

use common::registry::{micros, unhex, Mode, Registry};
use common::*;
use serde_json::Value;

/// Serialized values (partition = n % 2) and what each must land as, from
/// `scripts/confluent_serialize.py` (`kind`: avro or json).
fn confluent(url: &str, topic: &str, per_version: usize, kind: &str) -> Vec<(Vec<u8>, Value)> {
    serialized(url, topic, per_version, kind)
        .into_iter()
        .map(|v| (unhex(v["hex"].as_str().unwrap()), v["expected"].clone()))
        .collect()
}

/// The script's lines (with the keys Avro records carry too).
fn serialized(url: &str, topic: &str, per_version: usize, kind: &str) -> Vec<Value> {
    servers::python_module(
        &format!(
            "confluent_kafka.schema_registry.{}",
            match kind {
                "json" => "json_schema",
                other => other,
            }
        ),
        "pip install 'confluent-kafka[avro,schemaregistry,protobuf]'",
    );
    servers::python_script(
        "confluent_serialize.py",
        &[url, topic, &per_version.to_string(), kind],
    )
}

/// The values without their nulls, recursively (Parquet readers leave a null field out).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Produces the made records (partition n % 2), with three that cannot decode appended to
/// partition 0: plain JSON, an id the registry does not know, a payload cut short. Returns what
/// each (partition, offset) must land as.
fn produce(fx: &Fixture, made: &[(Vec<u8>, Value)]) -> BTreeMap<(i32, i64), Value> {
    let mut expected = BTreeMap::new();
    let mut values: [Vec<Vec<u8>>; 2] = Default::default();
    for (i, (bytes, json)) in made.iter().enumerate() {
        let p = i % 2;
        expected.insert((p as i32, values[p].len() as i64), json.clone());
        values[p].push(bytes.clone());
    }
    let cut = made[0].0[..made[0].0.len() - 1].to_vec();
    values[0].extend([
        br#"{"plain":"json"}"#.to_vec(),
        vec![0, 0, 0, 0x27, 0x0f, 2, 4],
        cut,
    ]);
    for (p, v) in values.iter().enumerate() {
        produce_to(&fx.broker.brokers, &fx.topic, p as i32, v);
    }
    expected
}

fn avro_config(fx: &Fixture, registry: &Registry, extra: &[(&str, &str)]) -> ingest::Config {
    let mut all = vec![
        ("INGEST_VALUE_FORMAT", "avro"),
        ("INGEST_SCHEMA_REGISTRY_URL", registry.url.as_str()),
    ];
    all.extend_from_slice(extra);
    config(&fx.vars, &all)
}

/// Every record landed once as its expected JSON; the three bad ones are dead letters with
/// their reasons. Parquet files are read by DuckDB: every field of every record equal to what
/// was produced, in the column type the registry's schema declares.
fn assert_landed(fx: &Fixture, expected: &BTreeMap<(i32, i64), Value>, parquet: bool) {
    let mut seen = BTreeMap::new();
    if parquet {
        let root = fx.dir.path().to_str().unwrap();
        let rows = servers::duckdb_script("read_typed_parquet.py", &[root, &fx.topic]);
        let mut second_version = 0;
        for row in rows {
            let key = (
                row["partition"].as_i64().unwrap() as i32,
                row["offset"].as_i64().unwrap(),
            );
            assert_eq!(
                row["record"],
                micros(&without_nulls(&expected[&key])),
                "{key:?}"
            );
            assert!(seen.insert(key, ()).is_none(), "{key:?} landed twice");
            let types = &row["types"];
            let mut declared = vec![
                ("amount", "DECIMAL(12,2)"),
                ("placed_at", "TIMESTAMP WITH TIME ZONE"),
                ("day", "DATE"),
                ("blob", "BLOB"),
                ("attrs", "MAP(VARCHAR, BIGINT)"),
                ("qty", "BIGINT"),
                ("tags", "VARCHAR[]"),
                ("status", "VARCHAR"),
                ("ratio", "DOUBLE"),
            ];
            if row["record"].get("packed_at").is_some() {
                second_version += 1;
                declared.extend([
                    ("packed_at", "TIMESTAMP WITH TIME ZONE"),
                    ("ship_to", "STRUCT(city VARCHAR, zip VARCHAR)"),
                    ("coupon", "VARCHAR"),
                ]);
            }
            for (column, kind) in declared {
                assert_eq!(types[column], kind, "{column} of {key:?}: {types}");
            }
        }
        assert!(
            second_version > 0,
            "the second version's columns were checked"
        );
    } else {
        for (path, rows) in landed_files(fx.dir.path(), &fx.topic) {
            for row in rows {
                let key = (
                    row["partition"].as_i64().unwrap() as i32,
                    row["offset"].as_i64().unwrap(),
                );
                assert_eq!(&row["value"], &expected[&key], "{key:?} in {path:?}");
                assert!(seen.insert(key, ()).is_none(), "{key:?} landed twice");
            }
        }
    }
    assert_eq!(seen.len(), expected.len(), "every decoded record landed");
    let dead: Vec<Value> = landed_files(&fx.dir.path().join("_dead_letters"), &fx.topic)
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .collect();
    let errors: Vec<&str> = dead.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("zero byte"), "{errors:?}");
    assert!(
        errors[1].contains("schema id 9999") && errors[1].contains("unknown"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("does not decode") && errors[2].contains("ends early"),
        "{errors:?}"
    );
}

/// Lands the made records with `settings`; what they must land as, and the registry reads the
/// service made.
async fn land(
    fx: &Fixture,
    registry: &Registry,
    settings: &[(&str, &str)],
) -> (BTreeMap<(i32, i64), Value>, usize) {
    let made = confluent(&registry.url, &fx.topic, 60, "avro");
    let expected = produce(fx, &made);
    let serializer_reads = registry.reads();
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    run_to_the_end(avro_config(fx, registry, settings), &high).await;
    (expected, registry.reads() - serializer_reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_land_as_the_documented_json_through_schema_versions() {
    let registry = Registry::start().await;
    let fx = Fixture::new("avro-ndjson", 2);
    let (expected, reads) = land(&fx, &registry, &[]).await;
    assert_landed(&fx, &expected, false);
    // Two versions, the address the second references (by subject and version) and the
    // unknown id: each read once, however many records and partitions needed them.
    assert_eq!(reads, 4, "registry reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_land_in_parquet_with_every_field_of_both_versions() {
    servers::python_module("pyspark", "pip install 'pyspark==3.5.*'");
    let registry = Registry::start().await;
    let fx = Fixture::new("avro-parquet", 2);
    // Files of 25 records: the first version's partition and the second's land files of
    // different columns, which Spark must merge.
    let settings = [
        ("INGEST_FORMAT", "parquet"),
        ("INGEST_FLUSH_MAX_RECORDS", "25"),
    ];
    let (expected, _) = land(&fx, &registry, &settings).await;
    assert_landed(&fx, &expected, true);

    // Spark, with mergeSchema over every file: the same records, in the registry's types.
    let root = fx.dir.path().to_str().unwrap();
    let rows = servers::python_script("spark_typed.py", &[root, &fx.topic]);
    assert_eq!(rows.len(), expected.len(), "every record read once");
    for row in &rows {
        let key = (
            row["partition"].as_i64().unwrap() as i32,
            row["offset"].as_i64().unwrap(),
        );
        let want = micros(&without_nulls(&expected[&key]));
        assert_eq!(row["record"], want, "{key:?}");
    }
    let types = &rows[0]["types"];
    for (column, kind) in [
        ("amount", "decimal(12,2)"),
        ("placed_at", "timestamp"),
        ("packed_at", "timestamp"),
        ("day", "date"),
        ("blob", "binary"),
        ("attrs", "map<string,bigint>"),
        ("qty", "bigint"),
        ("ship_to", "struct<city:string,zip:string>"),
    ] {
        assert_eq!(types[column], kind, "{column}: {types}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_holds_the_records_back_and_lands_them_all_once_it_is_back() {
    let registry = Registry::start().await;
    let fx = Fixture::new("avro-outage", 2);
    let made = confluent(&registry.url, &fx.topic, 30, "avro");
    let expected = produce(&fx, &made);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 2);
    registry.set_mode(Mode::Fail(503));
    let (token, mut progress, handle) = start(avro_config(&fx, &registry, &[]));
    // The service asked, was answered 503, backed off and asked again: an outage, waited out.
    tokio::time::timeout(WAIT, registry.until_failed(3))
        .await
        .expect("the service retried the registry");
    assert!(
        progress.borrow().committed.is_empty(),
        "nothing committed while no schema could be read"
    );
    assert!(
        landed_files(fx.dir.path(), &fx.topic).is_empty(),
        "nothing landed yet"
    );
    registry.set_mode(Mode::Serve);
    until_committed(&mut progress, &high).await;
    token.cancel();
    handle.await.unwrap().expect("clean stop");
    assert_landed(&fx, &expected, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_the_credentials_stops_the_service_with_one_line() {
    let registry = Registry::start().await;
    let fx = Fixture::new("avro-refused", 1);
    let made = confluent(&registry.url, &fx.topic, 5, "avro");
    produce(&fx, &made);
    registry.set_mode(Mode::RequireAuth("Basic a2V5OnJpZ2h0".into())); // key:right
    let (_token, progress, handle) = start(avro_config(
        &fx,
        &registry,
        &[
            ("INGEST_SCHEMA_REGISTRY_USERNAME", "key"),
            ("INGEST_SCHEMA_REGISTRY_PASSWORD", "wrong"),
        ],
    ));
    let stopped = tokio::time::timeout(WAIT, handle)
        .await
        .expect("the service stops")
        .unwrap();
    let line = stopped.expect_err("a refusal is an error").to_string();
    assert!(
        line.contains("refused") && line.contains("INGEST_SCHEMA_REGISTRY_USERNAME"),
        "{line}"
    );
    assert!(
        !line.contains("wrong") && !line.contains('\n'),
        "one line, no secret: {line}"
    );
    assert!(progress.borrow().committed.is_empty());
    assert!(landed_files(fx.dir.path(), &fx.topic).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_values_land_as_their_json_and_an_avro_id_among_them_is_invalid() {
    let registry = Registry::start().await;
    let fx = Fixture::new("json-schema", 1);
    let made = confluent(&registry.url, &fx.topic, 10, "json");
    let subject = format!("{}-value", fx.topic);
    assert_eq!(registry.versions(&subject), 2, "two versions of the schema");
    let mut values: Vec<Vec<u8>> = made.iter().map(|(b, _)| b.clone()).collect();
    let avro = registry.register("other-value", "AVRO", r#""string""#, serde_json::json!([]));
    values.push([&[0u8][..], &(avro as u32).to_be_bytes(), &[2, b'x']].concat());
    produce_to(&fx.broker.brokers, &fx.topic, 0, &values);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 1);
    let vars = [
        ("INGEST_VALUE_FORMAT", "json-schema"),
        ("INGEST_SCHEMA_REGISTRY_URL", registry.url.as_str()),
    ];
    run_to_the_end(config(&fx.vars, &vars), &high).await;
    let lines: Vec<Value> = landed_files(fx.dir.path(), &fx.topic)
        .into_iter()
        .flat_map(|(_, l)| l)
        .collect();
    let landed: Vec<&Value> = lines.iter().map(|l| &l["value"]).collect();
    let expected: Vec<&Value> = made.iter().map(|(_, j)| j).collect();
    assert_eq!(landed, expected);
    let dead = landed_files(&fx.dir.path().join("_dead_letters"), &fx.topic);
    let error = dead[0].1[0]["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("AVRO schema") && error.contains("expects JSON"),
        "{error}"
    );
}

/// Runs the service until everything up to `high` is committed, then stops it.
async fn run_to_the_end(config: ingest::Config, high: &BTreeMap<i32, i64>) {
    let (token, mut progress, handle) = start(config);
    until_committed(&mut progress, high).await;
    token.cancel();
    handle.await.unwrap().expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_values_land_in_parquet_with_every_field() {
    let registry = Registry::start().await;
    let fx = Fixture::new("json-schema-parquet", 1);
    let made = confluent(&registry.url, &fx.topic, 10, "json");
    let subject = format!("{}-value", fx.topic);
    assert_eq!(registry.versions(&subject), 2, "two versions of the schema");
    let values: Vec<Vec<u8>> = made.iter().map(|(b, _)| b.clone()).collect();
    produce_to(&fx.broker.brokers, &fx.topic, 0, &values);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 1);
    let vars = [
        ("INGEST_VALUE_FORMAT", "json-schema"),
        ("INGEST_SCHEMA_REGISTRY_URL", registry.url.as_str()),
        ("INGEST_FORMAT", "parquet"),
    ];
    run_to_the_end(config(&fx.vars, &vars), &high).await;
    let root = fx.dir.path().to_str().unwrap();
    let rows = servers::duckdb_script("read_typed_parquet.py", &[root, &fx.topic]);
    assert_eq!(rows.len(), made.len(), "every record landed once");
    for row in &rows {
        let offset = row["offset"].as_u64().unwrap() as usize;
        assert_eq!(
            row["record"],
            without_nulls(&made[offset].1),
            "offset {offset}"
        );
    }
}

/// Orders (the file's first message) and refunds (its second: message index 1) of two versions
/// of the file (the second removes a field, widens a map's values, adds a string and a nested
/// message), written by Confluent's ProtobufSerializer and landed in `format`; what each must
/// land as (protobuf's own json_format).
async fn land_protobuf(registry: &Registry, fx: &Fixture, format: &str) -> Vec<Value> {
    let made = confluent(&registry.url, &fx.topic, 20, "protobuf");
    let subject = format!("{}-value", fx.topic);
    assert_eq!(registry.versions(&subject), 2, "two versions of the file");
    let values: Vec<Vec<u8>> = made.iter().map(|(b, _)| b.clone()).collect();
    produce_to(&fx.broker.brokers, &fx.topic, 0, &values);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 1);
    let vars = [
        ("INGEST_VALUE_FORMAT", "protobuf"),
        ("INGEST_SCHEMA_REGISTRY_URL", registry.url.as_str()),
        ("INGEST_FORMAT", format),
    ];
    run_to_the_end(config(&fx.vars, &vars), &high).await;
    assert!(
        landed_files(&fx.dir.path().join("_dead_letters"), &fx.topic).is_empty(),
        "no dead letters"
    );
    made.into_iter().map(|(_, j)| without_nulls(&j)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_values_land_as_protobufs_own_json_mapping_of_each_message() {
    let registry = Registry::start().await;
    let fx = Fixture::new("protobuf", 1);
    let expected = land_protobuf(&registry, &fx, "ndjson").await;
    let landed: Vec<Value> = landed_files(fx.dir.path(), &fx.topic)
        .into_iter()
        .flat_map(|(_, l)| l)
        .map(|l| without_nulls(&l["value"]))
        .collect();
    assert_eq!(landed, expected);
}

/// Canonical JSON's 64-bit integer strings (the fields named) as the numbers they are.
fn numbers(v: &Value, fields: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (v, fields.contains(&k.as_str())) {
                    (Value::String(s), true) => (k.clone(), serde_json::from_str(s).unwrap()),
                    _ => (k.clone(), numbers(v, fields)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| numbers(v, fields)).collect()),
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_values_land_in_parquet_columns_typed_as_their_messages_declare() {
    let registry = Registry::start().await;
    let fx = Fixture::new("protobuf-parquet", 1);
    let expected = land_protobuf(&registry, &fx, "parquet").await;
    let root = fx.dir.path().to_str().unwrap();
    let rows = servers::duckdb_script("read_typed_parquet.py", &[root, &fx.topic]);
    assert_eq!(rows.len(), expected.len(), "every record landed once");
    for row in &rows {
        let offset = row["offset"].as_u64().unwrap() as usize;
        let want = micros(&numbers(
            &expected[offset],
            // "a": the attrs map's values, int64 in the second version.
            &["id", "qty", "order_id", "big", "a"],
        ));
        assert_eq!(row["record"], want, "offset {offset}");
        let types = &row["types"];
        for (column, kind) in [
            ("id", "BIGINT"),
            ("customer", "VARCHAR"),
            ("lines", "STRUCT(sku VARCHAR, qty BIGINT)[]"),
            ("status", "VARCHAR"),
            ("attrs", "MAP(VARCHAR, BIGINT)"),
            ("blob", "BLOB"),
            ("ratio", "DOUBLE"),
            ("placed_at", "TIMESTAMP WITH TIME ZONE"),
            ("order_id", "BIGINT"),
            ("reason", "VARCHAR"),
            // The second version's fields.
            ("coupon", "VARCHAR"),
            ("ship_to", "STRUCT(city VARCHAR, zip VARCHAR)"),
            // uint64 past an i64: the column is declared, such values are rescued.
            ("big", "BIGINT"),
        ] {
            assert_eq!(types[column], kind, "{column}: {types}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_keys_land_as_their_json_in_the_envelope_and_a_key_that_does_not_decode_is_invalid() {
    let registry = Registry::start().await;
    let fx = Fixture::new("avro-keys", 1);
    let lines = serialized(&registry.url, &fx.topic, 10, "avro");
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = lines
        .iter()
        .map(|l| {
            let hex = |f: &str| unhex(l[f].as_str().unwrap());
            (hex("key_hex"), hex("hex"))
        })
        .collect();
    // A key written as plain text among them: its record is invalid, its neighbours land.
    records.insert(5, (b"plain".to_vec(), records[0].1.clone()));
    produce_keyed(&fx.broker.brokers, &fx.topic, 0, &records);
    let high = high_watermarks(&fx.broker.brokers, &fx.topic, 1);
    let keys = avro_config(&fx, &registry, &[("INGEST_KEY_FORMAT", "avro")]);
    run_to_the_end(keys, &high).await;
    let landed: Vec<Value> = landed_files(fx.dir.path(), &fx.topic)
        .into_iter()
        .flat_map(|(_, l)| l)
        .collect();
    assert_eq!(landed.len(), lines.len());
    for (row, line) in landed.iter().zip(&lines) {
        assert_eq!(row["key"], line["key_expected"], "{row}");
        assert_eq!(row["value"], line["expected"], "{row}");
    }
    let dead = landed_files(&fx.dir.path().join("_dead_letters"), &fx.topic);
    let dead: Vec<&Value> = dead.iter().flat_map(|(_, l)| l).collect();
    assert_eq!(dead.len(), 1);
    let error = dead[0]["error"].as_str().unwrap();
    assert!(
        error.contains("the key") && error.contains("zero byte"),
        "{error}"
    );
    assert_eq!(
        (dead[0]["offset"].as_i64(), dead[0]["key_base64"].as_str()),
        (Some(5), Some("cGxhaW4="))
    );
}
