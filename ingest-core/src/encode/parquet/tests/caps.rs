//! The schema's caps: records with ever new field names (ids used as keys) stop adding columns
//! at `max_columns`, nested fields stop at `max_fields`, and what is past them is rescued, in
//! the batch that meets them (two passes) and in later batches against the running schema (one
//! pass).

use super::*;

fn capped(columns: usize, fields: usize) -> ParquetSettings {
    ParquetSettings {
        max_columns: columns,
        max_fields: fields,
        ..SETTINGS
    }
}

/// Each row's value rebuilt from its columns and `_rescued_data` (flat and nested objects of
/// integers only, which is what these tests write).
fn rebuilt(file: &RecordBatch) -> Vec<serde_json::Value> {
    (0..file.num_rows())
        .map(|row| {
            let mut value = serde_json::Map::new();
            for (i, field) in file.schema().fields().iter().enumerate() {
                let column = file.column(i);
                if column.is_null(row) || field.name().starts_with('_') {
                    continue;
                }
                let v = match column.data_type() {
                    DataType::Int64 => {
                        serde_json::json!(column.as_primitive::<Int64Type>().value(row))
                    }
                    DataType::Struct(_) => {
                        let s = column.as_struct();
                        let mut inner = serde_json::Map::new();
                        for (j, f) in s.fields().iter().enumerate() {
                            let c = s.column(j);
                            if !c.is_null(row) {
                                inner.insert(
                                    f.name().clone(),
                                    c.as_primitive::<Int64Type>().value(row).into(),
                                );
                            }
                        }
                        serde_json::Value::Object(inner)
                    }
                    other => panic!("{other}"),
                };
                value.insert(field.name().clone(), v);
            }
            let rescued = file.column_by_name(RESCUED).unwrap().as_string::<i32>();
            if !rescued.is_null(row) {
                let more: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(rescued.value(row)).unwrap();
                value.extend(more);
            }
            serde_json::Value::Object(value)
        })
        .collect()
}

fn values(texts: &[String]) -> Vec<serde_json::Value> {
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

#[test]
fn new_names_past_the_column_cap_are_rescued_and_the_schema_stops_growing() {
    let settings = capped(5, 50);
    let o = opts(Envelope::Raw, InvalidRecordPolicy::DeadLetter);
    let texts: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"id":{i},"k{i}":{i}}}"#))
        .collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let first = encode(&b, 0, &o, &settings, &Columns::default()).unwrap();
    let running = first.columns.clone().unwrap();
    let names: Vec<&str> = running.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "k0", "k1", "k2", "k3"]);
    let file = read(first.data);
    assert_eq!(
        rebuilt(&file),
        values(&texts),
        "every field in its column or rescued"
    );
    assert!(file.column_by_name(RESCUED).unwrap().is_null(3));
    assert!(!file.column_by_name(RESCUED).unwrap().is_null(4));

    // The next batch, against the running schema: one pass, nothing added.
    let texts: Vec<String> = (40..80)
        .map(|i| format!(r#"{{"id":{i},"k{i}":{i},"k1":{i}}}"#))
        .collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let next = encode(&b, 0, &o, &settings, &running).unwrap();
    assert!(
        !next.columns.clone().unwrap().adds_to(&running),
        "no new schema version"
    );
    assert_eq!(rebuilt(&read(next.data)), values(&texts));
}

#[test]
fn nested_fields_past_the_field_cap_rescue_their_value() {
    let settings = capped(10, 6);
    let o = opts(Envelope::Raw, InvalidRecordPolicy::DeadLetter);
    let texts: Vec<String> = [
        r#"{"id":1,"s":{"a":1,"b":2,"c":3}}"#,
        r#"{"id":2,"s":{"a":4,"d":5,"e":6,"f":7}}"#,
        r#"{"id":3,"s":{"b":8}}"#,
        r#"{"id":4,"t":9}"#,
    ]
    .map(String::from)
    .to_vec();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let encoded = encode(&b, 0, &o, &settings, &Columns::default()).unwrap();
    let columns = encoded.columns.clone().unwrap();
    assert!(columns.size() <= 6, "{columns:?}");
    let file = read(encoded.data);
    let rescued = file.column_by_name(RESCUED).unwrap().as_string::<i32>();
    assert_eq!(rescued.value(1), r#"{"s":{"a":4,"d":5,"e":6,"f":7}}"#);
    assert_eq!(rebuilt(&file), values(&texts));
}

#[test]
fn a_record_costs_its_own_fields_and_sparse_columns_read_back_null() {
    // 300 columns, each record has two of them: the rows read back as written.
    let settings = capped(400, 1_000);
    let o = opts(Envelope::Metadata, InvalidRecordPolicy::DeadLetter);
    let texts: Vec<String> = (0..900)
        .map(|i| format!(r#"{{"id":{i},"k{}":{i}}}"#, i % 300))
        .collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let encoded = encode(&b, 0, &o, &settings, &Columns::default()).unwrap();
    assert_eq!(encoded.columns.clone().unwrap().fields.len(), 301);
    assert_eq!(rebuilt(&read(encoded.data)), values(&texts));
}

#[test]
fn a_struct_keyed_by_ids_stops_at_the_column_cap_and_later_keys_are_rescued() {
    let settings = capped(4, 100);
    let o = opts(Envelope::Raw, InvalidRecordPolicy::DeadLetter);
    let texts: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"id":{i},"by_item":{{"i{i}":{i}}},"gone":null}}"#))
        .collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let first = encode(&b, 0, &o, &settings, &Columns::default()).unwrap();
    let running = first.columns.clone().unwrap();
    assert_eq!(running.fields[1].1.widest(), 4, "{running:?}");
    let expect = |texts: &[String]| -> Vec<serde_json::Value> {
        values(texts)
            .into_iter()
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("gone"); // a null reads back absent
                v
            })
            .collect()
    };
    assert_eq!(rebuilt(&read(first.data)), expect(&texts));
    // Against the running schema (one pass): the struct takes no more keys, and no version.
    let texts: Vec<String> = (30..60)
        .map(|i| format!(r#"{{"id":{i},"by_item":{{"i{i}":{i}}}}}"#))
        .collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let next = encode(&b, 0, &o, &settings, &running).unwrap();
    assert!(!next.columns.clone().unwrap().adds_to(&running));
    assert_eq!(rebuilt(&read(next.data)), expect(&texts));
}

#[test]
fn a_wide_running_schema_finds_its_fields_by_name_in_one_pass() {
    let settings = capped(400, 1_000);
    let o = opts(Envelope::Raw, InvalidRecordPolicy::DeadLetter);
    let texts: Vec<String> = (0..300).map(|i| format!(r#"{{"k{i}":{i}}}"#)).collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let running = encode(&b, 0, &o, &settings, &Columns::default())
        .unwrap()
        .columns
        .unwrap();
    // Fields in another order, two a record, each found where it is.
    let texts: Vec<String> = (0..300)
        .map(|i| {
            format!(
                r#"{{"k{}":{i},"k{}":{i}}}"#,
                (i * 7) % 300,
                (i * 13 + 5) % 300
            )
        })
        .collect();
    let b = batch(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let next = encode(&b, 0, &o, &settings, &running).unwrap();
    assert_eq!(next.columns.clone().unwrap().fields, running.fields);
    assert_eq!(rebuilt(&read(next.data)), values(&texts));
}
