//! Columns a schema registry declares: typed as declared, values read exactly or rescued.

use arrow_array::types::{Date32Type, Decimal128Type, TimestampMicrosecondType};

use super::shape::Shape;
use super::*;

fn declared() -> Columns {
    let item = Shape::Struct(vec![("n".into(), Shape::Int)]);
    Columns::new(
        vec![
            (
                "price".into(),
                Shape::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("at".into(), Shape::Timestamp { utc: true }),
            ("local".into(), Shape::Timestamp { utc: false }),
            ("day".into(), Shape::Date),
            ("raw".into(), Shape::Binary),
            ("tags".into(), Shape::Map(Box::new(Shape::Int))),
            ("items".into(), Shape::List(Box::new(item))),
            ("_offset".into(), Shape::Str),
            ("later".into(), Shape::Str),
        ],
        shape::Caps::default(),
    )
}

fn encode_with(b: &Batch, running: &Columns, declared: &Columns) -> Encoded {
    let o = opts(Envelope::Metadata, InvalidRecordPolicy::DeadLetter);
    encode_declared(|| b.records(), 0, &o, &SETTINGS, running, Some(declared)).unwrap()
}

#[test]
fn declared_columns_are_typed_and_values_that_do_not_read_exactly_are_rescued() {
    let b = batch(&[
        r#"{"price":"12.34","at":"2024-02-29T23:59:58.123Z","local":"2024-02-29T23:59:58.123456","day":"2024-02-29","raw":"AAH/","tags":{"a":1,"b":2},"items":[{"n":1}],"extra":"x"}"#,
        r#"{"price":"-0.05","at":null,"tags":{},"items":[]}"#,
        r#"{"price":"1.235","at":"1970-01-01T00:00:00.000000001Z","day":"2023-02-29","raw":"!","tags":{"a":"one"}}"#,
    ]);
    let encoded = encode_with(&b, &Columns::default(), &declared());
    let rows = read(encoded.data);
    let schema = rows.schema();
    let ty = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(ty("price"), DataType::Decimal128(10, 2));
    assert_eq!(
        ty("at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        ty("local"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(ty("day"), DataType::Date32);
    assert_eq!(ty("raw"), DataType::Binary);
    assert!(matches!(ty("tags"), DataType::Map(..)), "{:?}", ty("tags"));
    // Declared, seen in no record: a column of nulls. A reserved name is not a column of the
    // value; an undeclared field is learned from its JSON.
    assert_eq!(ty("later"), DataType::Utf8);
    assert_eq!(ty("extra"), DataType::Utf8);
    assert_eq!(ty("_offset"), DataType::Int64);

    let price = rows.column_by_name("price").unwrap();
    let price = price.as_primitive::<Decimal128Type>();
    assert_eq!((price.value(0), price.value(1)), (1234, -5));
    assert!(price.is_null(2));
    let at = rows.column_by_name("at").unwrap();
    let at = at.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(at.value(0), 1_709_251_198_123_000);
    assert!(at.is_null(1) && at.is_null(2));
    let local = rows.column_by_name("local").unwrap();
    let local = local.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(local.value(0), 1_709_251_198_123_456);
    let day = rows.column_by_name("day").unwrap();
    assert_eq!(day.as_primitive::<Date32Type>().value(0), 19_782);
    let raw = rows.column_by_name("raw").unwrap();
    assert_eq!(raw.as_binary::<i32>().value(0), [0, 1, 255]);
    let tags = rows.column_by_name("tags").unwrap();
    let tags = tags.as_map();
    assert_eq!(tags.value_length(0), 2);
    assert_eq!(tags.keys().as_string::<i32>().value(1), "b");
    assert_eq!(tags.values().as_primitive::<Int64Type>().value(1), 2);
    assert_eq!(tags.value_length(1), 0);
    // What did not read exactly is in _rescued_data as it was: nothing dropped.
    let rescued = rows.column_by_name(RESCUED).unwrap().as_string::<i32>();
    assert!(rescued.is_null(0) && rescued.is_null(1));
    let kept: serde_json::Value = serde_json::from_str(rescued.value(2)).unwrap();
    assert_eq!(
        kept,
        serde_json::json!({"price":"1.235","at":"1970-01-01T00:00:00.000000001Z",
            "day":"2023-02-29","raw":"!","tags":{"a":"one"}})
    );
}

#[test]
fn a_running_type_is_kept_and_declared_columns_join_the_running_schema() {
    // A topic whose `price` was learned as text before its schema was declared keeps text.
    let b = batch(&[r#"{"price":"12.34","day":"2024-02-29"}"#]);
    let running = encode_with(&b, &Columns::default(), &Columns::default())
        .columns
        .unwrap();
    let encoded = encode_with(&b, &running, &declared());
    let columns = encoded.columns.clone().unwrap();
    assert!(columns.adds_to(&running));
    let rows = read(encoded.data);
    let schema = rows.schema();
    let ty = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(ty("price"), DataType::Utf8);
    assert_eq!(ty("day"), DataType::Utf8);
    assert_eq!(
        ty("at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    // Once the running schema holds them, a batch is encoded in one pass, to the same file.
    let again = encode_with(&b, &columns, &declared());
    assert_eq!(again.columns.as_ref(), Some(&columns));
    let o = opts(Envelope::Metadata, InvalidRecordPolicy::DeadLetter);
    let one = one_pass(b.records(), 0, &o, &SETTINGS, &columns)
        .unwrap()
        .unwrap();
    assert_eq!(one.data, again.data);
}

#[test]
fn a_declared_integer_column_stays_one_and_a_value_past_it_is_rescued_exactly() {
    let declared = Columns::new(vec![("n".into(), Shape::Int)], shape::Caps::default());
    let b = batch(&[r#"{"n":1}"#, r#"{"n":9223372036854775808}"#, r#"{"n":1.5}"#]);
    let rows = read(encode_with(&b, &Columns::default(), &declared).data);
    assert_eq!(
        rows.schema().field_with_name("n").unwrap().data_type(),
        &DataType::Int64
    );
    let rescued = rows.column_by_name(RESCUED).unwrap().as_string::<i32>();
    assert_eq!(rescued.value(1), r#"{"n":9223372036854775808}"#);
    assert_eq!(rescued.value(2), r#"{"n":1.5}"#);
}

#[test]
fn under_delta_names_a_table_refuses_are_rescued_not_columns() {
    let mut o = opts(Envelope::Metadata, InvalidRecordPolicy::DeadLetter);
    o.table_columns = Some(vec!["dt".to_string(), "hour".to_string()].into());
    let b = batch(&[
        r#"{"ok":1,"dt":"x","a b":1,"nested":{"c,d":1,"e":2},"OK":2,"fine":{"e":1,"E":2},"list":[{"x=y":1}]}"#,
        r#"{"ok":2,"HOUR":3,"later":{"f":1}}"#,
    ]);
    let encoded =
        encode_declared(|| b.records(), 0, &o, &SETTINGS, &Columns::default(), None).unwrap();
    let rows = read(encoded.data);
    let schema = rows.schema();
    let value_columns: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !n.starts_with('_'))
        .collect();
    assert_eq!(value_columns, ["ok", "later"]);
    let rescued = rows.column_by_name(RESCUED).unwrap().as_string::<i32>();
    let first: serde_json::Value = serde_json::from_str(rescued.value(0)).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"dt":"x","a b":1,"nested":{"c,d":1,"e":2},"OK":2,
            "fine":{"e":1,"E":2},"list":[{"x=y":1}]})
    );
    assert_eq!(rescued.value(1), r#"{"HOUR":3}"#);
    // The same records as plain Parquet keep every field a column (but the case twin).
    let plain = opts(Envelope::Metadata, InvalidRecordPolicy::DeadLetter);
    let encoded = encode_declared(
        || b.records(),
        0,
        &plain,
        &SETTINGS,
        &Columns::default(),
        None,
    )
    .unwrap();
    assert!(read(encoded.data).schema().field_with_name("dt").is_ok());
}
