use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::rows::Chunk;
use super::*;
use crate::batch::RecordRef;
use crate::config::{Compression, InvalidRecordPolicy, ParquetCompression};

fn opts(envelope: Envelope, invalid: InvalidRecordPolicy) -> EncodeOptions {
    EncodeOptions {
        topic: "t".into(),
        envelope,
        compression: Compression::None,
        invalid,
        max_record_bytes: 10_000,
        transform: None,
        format: crate::config::Format::Parquet(SETTINGS),
        registry: None,
        table_columns: None,
    }
}

const SETTINGS: ParquetSettings = ParquetSettings {
    compression: ParquetCompression::Zstd { level: 3 },
    row_group_bytes: 1 << 20,
    max_columns: crate::config::format::MAX_COLUMNS,
    max_fields: crate::config::format::MAX_FIELDS,
};

fn batch(values: &[&str]) -> Batch {
    let mut b = Batch::new(Instant::now(), 0);
    for (i, v) in values.iter().enumerate() {
        b.push(&RecordRef {
            offset: 10 + i as i64,
            timestamp_ms: Some(1_700_000_000_123 + i as i64),
            key: Some(b"k\xff"),
            value: Some(v.as_bytes()),
            headers: &[("h", Some(b"\x00\x01"))],
            flaw: None,
            cursor: None,
        });
    }
    b
}

/// `b` encoded as a topic's first file (no running schema yet).
fn first_file(
    b: &Batch,
    partition: i32,
    envelope: Envelope,
    invalid: InvalidRecordPolicy,
) -> Result<Encoded, InvalidRecord> {
    encode(
        b,
        partition,
        &opts(envelope, invalid),
        &SETTINGS,
        &Columns::default(),
    )
}

fn read(data: Vec<u8>) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data))
        .unwrap()
        .build()
        .unwrap();
    let mut batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1, "one read batch for these small files");
    batches.remove(0)
}

#[test]
fn fields_become_columns_and_conflicts_are_rescued() {
    let b = batch(&[
        r#"{"id":1,"price":2,"tags":["a"],"nested":{"x":1}}"#,
        r#"{"id":2,"price":2.5,"late":"new","nested":{"y":"z"}}"#,
        r#"{"id":"three","price":null,"tags":["b",3],"_offset":"mine"}"#,
    ]);
    let encoded = first_file(&b, 4, Envelope::Metadata, InvalidRecordPolicy::Fail).unwrap();
    assert_eq!(encoded.records, 3);
    let rows = read(encoded.data);
    let schema = rows.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "_topic",
            "_partition",
            "_offset",
            "_timestamp",
            "_key",
            "_headers",
            "id",
            "price",
            "tags",
            "nested",
            "late",
            RESCUED
        ]
    );
    let ids = rows
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!((ids.value(0), ids.value(1), ids.is_null(2)), (1, 2, true));
    let prices = rows
        .column_by_name("price")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(
        (prices.value(0), prices.value(1)),
        (2.0, 2.5),
        "integers widened"
    );
    let offsets = rows
        .column_by_name("_offset")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(offsets.values().to_vec(), vec![10, 11, 12]);
    let rescued = rows.column_by_name(RESCUED).unwrap().as_string::<i32>();
    assert!(rescued.is_null(0) && rescued.is_null(1));
    let third: serde_json::Value = serde_json::from_str(rescued.value(2)).unwrap();
    assert_eq!(
        third,
        serde_json::json!({"id": "three", "tags": ["b", 3], "_offset": "mine"})
    );
    let keys = rows.column_by_name("_key").unwrap().as_binary::<i32>();
    assert_eq!(keys.value(0), b"k\xff");
    match rows
        .schema()
        .field_with_name("_timestamp")
        .unwrap()
        .data_type()
    {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => assert_eq!(&**tz, "UTC"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_value_that_is_not_an_object_follows_the_policy() {
    let b = batch(&[r#"{"a":1}"#, "[1,2]", "{bad", r#"{"a":2}"#]);
    let err = first_file(&b, 0, Envelope::Raw, InvalidRecordPolicy::Fail).unwrap_err();
    assert_eq!(err.offset, 11);
    assert!(err.reason.contains("not an object"), "{}", err.reason);
    let e = first_file(&b, 0, Envelope::Raw, InvalidRecordPolicy::DeadLetter).unwrap();
    assert_eq!((e.records, e.dead_lettered), (2, 2));
    let rows = read(e.data);
    assert_eq!(
        rows.num_columns(),
        2,
        "a and _rescued_data, no coordinates under raw"
    );
    let dead = String::from_utf8(e.dead_letters.unwrap()).unwrap();
    assert_eq!(dead.lines().count(), 2);
}

#[test]
fn many_rows_span_chunks_and_every_one_is_written() {
    let values: Vec<String> = (0..CHUNK_ROWS * 2 + 7)
        .map(|i| format!(r#"{{"i":{i},"s":"v{i}"}}"#))
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let e = first_file(&batch(&refs), 0, Envelope::Raw, InvalidRecordPolicy::Fail).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(e.data))
        .unwrap()
        .build()
        .unwrap();
    let mut seen = 0i64;
    for rows in reader {
        let rows = rows.unwrap();
        let i = rows
            .column_by_name("i")
            .unwrap()
            .as_primitive::<Int64Type>();
        for v in i.values() {
            assert_eq!(*v, seen);
            seen += 1;
        }
    }
    assert_eq!(seen as usize, values.len());
}

#[test]
fn a_transform_runs_before_the_columns_are_learned() {
    use crate::encode::transform::{remove_field, Keep, Transform};
    let b = batch(&[
        r#"{"keep":true,"secret":1,"a":1}"#,
        r#"{"keep":false,"a":2}"#,
        r#"{"keep":true,"secret":3,"a":3}"#,
    ]);
    let mut o = opts(Envelope::Raw, InvalidRecordPolicy::Fail);
    o.transform = Some(Transform::new(|v| {
        remove_field(v, "secret");
        Keep::from(v["keep"] == true)
    }));
    let e = encode(&b, 0, &o, &SETTINGS, &Columns::default()).unwrap();
    assert_eq!((e.records, e.filtered), (2, 1));
    let rows = read(e.data);
    let schema = rows.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["keep", "a", RESCUED],
        "the removed field has no column"
    );
    let a = rows
        .column_by_name("a")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(a.values().to_vec(), vec![1, 3]);
}

#[test]
fn nested_fields_seen_only_as_null_need_no_column() {
    let b = batch(&[
        r#"{"id":1,"c":{"a":1,"gone":null},"l":[{"k":1,"n":null}]}"#,
        r#"{"id":2,"c":{"a":2,"gone":null},"l":[null]}"#,
    ]);
    let encoded = first_file(&b, 0, Envelope::Raw, InvalidRecordPolicy::Fail).unwrap();
    let rows = read(encoded.data);
    assert_eq!(rows.num_rows(), 2);
    let rescued = rows.column_by_name(RESCUED).unwrap();
    assert_eq!(
        rescued.null_count(),
        2,
        "nothing to rescue: a null is a null"
    );
}

/// The columns built from the records' bytes hold exactly what arrow-json (the reference JSON
/// decoder) reads from the fields that were not rescued, for varied records, compact or
/// pretty-printed.
#[test]
fn columns_built_from_bytes_equal_what_arrow_json_decodes() {
    let mut g = shape::tests::Gen(11);
    for round in 0..150 {
        let records: Vec<serde_json::Value> = (0..30)
            .map(|_| serde_json::Value::Object(g.object(0)))
            .collect();
        let texts: Vec<String> = records
            .iter()
            .map(|r| match round % 2 {
                0 => serde_json::to_string(r).unwrap(),
                _ => serde_json::to_string_pretty(r).unwrap(),
            })
            .collect();
        let mut c = Columns::default();
        for t in &texts {
            c.observe(t.as_bytes(), &RESERVED).unwrap();
        }
        let c = c.typed();
        let values = Arc::new(Schema::new(struct_fields(&c.fields)));
        let mut reference = arrow_json::ReaderBuilder::new(values.clone())
            .with_batch_size(64)
            .build_decoder()
            .unwrap();
        let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
        let mut chunk = Chunk::new(&c);
        for (r, text) in b.records().zip(&texts) {
            assert!(chunk
                .push("t", 0, &r, &c, Some(text.as_bytes()), false)
                .unwrap());
        }
        let got = chunk
            .take(Envelope::Raw, &schema(Envelope::Raw, &c))
            .unwrap();
        let rescued = got.column(c.fields.len()).as_string::<i32>();
        for (row, value) in records.iter().enumerate() {
            // What the reference decodes: the record's fields that were not rescued.
            let rescued: serde_json::Map<String, serde_json::Value> = match rescued.is_valid(row) {
                true => serde_json::from_str(rescued.value(row)).unwrap(),
                false => serde_json::Map::new(),
            };
            let mut kept = value.as_object().unwrap().clone();
            kept.retain(|k, _| !rescued.contains_key(k));
            reference
                .decode(serde_json::to_string(&kept).unwrap().as_bytes())
                .unwrap();
        }
        let want = reference.flush().unwrap().unwrap();
        assert_eq!(got.num_rows(), 30);
        assert_eq!(
            &got.columns()[..c.fields.len()],
            want.columns(),
            "round {round}: {texts:?}"
        );
    }
}

/// Integers are read from their digits exactly, to the ends of an i64 (one beyond, in an
/// integer column, is rescued), and text has its escapes decoded and its other bytes as written.
#[test]
fn integers_and_strings_are_read_exactly() {
    let ints = [
        i64::MIN,
        i64::MIN + 1,
        -1,
        0,
        7,
        1_234_567_890_123,
        i64::MAX,
    ];
    let records: Vec<String> = ints
        .iter()
        .map(|i| format!(r#"{{"i":{i},"s":"a\"\\\u00e9é😀"}}"#))
        .collect();
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let e = first_file(&batch(&refs), 0, Envelope::Raw, InvalidRecordPolicy::Fail).unwrap();
    let running = e.columns.clone().unwrap();
    let rows = read(e.data);
    let i = rows
        .column_by_name("i")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(i.values().as_ref(), &ints);
    let s = rows.column_by_name("s").unwrap().as_string::<i32>();
    assert!(s.iter().all(|s| s == Some("a\"\\éé😀")), "{s:?}");
    let o = opts(Envelope::Raw, InvalidRecordPolicy::Fail);
    let beyond = batch(&[r#"{"i":9223372036854775808,"s":""}"#]);
    let rows = read(encode(&beyond, 0, &o, &SETTINGS, &running).unwrap().data);
    let rescued = rows.column_by_name(RESCUED).unwrap().as_string::<i32>();
    assert_eq!(rescued.value(0), r#"{"i":9223372036854775808}"#);
    assert_eq!(
        rows.column_by_name("s")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        ""
    );
}

mod caps;
mod declared;
mod one_pass;
