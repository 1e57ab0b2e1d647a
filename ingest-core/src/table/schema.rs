//! A table's schema: the columns of the Parquet files a topic lands plus its Hive partition
//! columns, what a table lacks of it, and the first commit that creates the table.
//!
//! Pure. Invariant: columns are only ever added to a table, nullable, where its files have them
//! (top-level and nested in structs, also inside lists and maps); a column's type never changes
//! (the running Parquet schema's never do), and a field a table already has is left as it is.

use arrow_schema::Schema as ArrowSchema;
use delta_kernel::engine::arrow_conversion::TryFromArrow as _;
use delta_kernel::expressions::ColumnName;
use delta_kernel::schema::{DataType, StructField, StructType};

/// The table's schema for files of `file_schema`, with the layout's `partition_columns` (text,
/// as Hive directories hold them) after the files' columns.
pub fn wanted(
    file_schema: &ArrowSchema,
    partition_columns: &[String],
) -> Result<StructType, String> {
    let files = StructType::try_from_arrow(file_schema).map_err(|e| e.to_string())?;
    let fields = files.fields().cloned().chain(
        partition_columns
            .iter()
            .map(|c| StructField::nullable(c.as_str(), DataType::STRING)),
    );
    StructType::try_new(fields.map(nullable)).map_err(|e| e.to_string())
}

/// `field`, nullable (a column a file may lack: an older file, a record without it).
fn nullable(mut field: StructField) -> StructField {
    field.nullable = true;
    field
}

/// A column to add: where (`None`: top level), and the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Addition {
    pub parent: Option<ColumnName>,
    pub field: StructField,
}

/// What `table` lacks of `wanted`, in `wanted`'s order: missing fields (nullable), at any depth
/// of structs, also inside list elements and map values. Names compare without case, as Delta's
/// do; a field whose type differs is left alone.
pub fn additions(table: &StructType, wanted: &StructType) -> Vec<Addition> {
    let mut out = Vec::new();
    struct_additions(table, wanted, &[], &mut out);
    out
}

fn struct_additions(
    table: &StructType,
    wanted: &StructType,
    path: &[String],
    out: &mut Vec<Addition>,
) {
    for field in wanted.fields() {
        let have = table
            .fields()
            .find(|f| f.name().eq_ignore_ascii_case(field.name()));
        let Some(have) = have else {
            out.push(Addition {
                parent: (!path.is_empty()).then(|| ColumnName::new(path.iter().cloned())),
                field: nullable(field.clone()),
            });
            continue;
        };
        let mut inner = path.to_vec();
        inner.push(have.name().clone());
        nested_additions(have.data_type(), field.data_type(), inner, out);
    }
}

/// The additions inside a field of type `have` (the table's) for `want` (the files').
fn nested_additions(have: &DataType, want: &DataType, path: Vec<String>, out: &mut Vec<Addition>) {
    match (have, want) {
        (DataType::Struct(h), DataType::Struct(w)) => struct_additions(h, w, &path, out),
        (DataType::Array(h), DataType::Array(w)) => {
            let mut path = path;
            path.push("element".into());
            nested_additions(h.element_type(), w.element_type(), path, out);
        }
        (DataType::Map(h), DataType::Map(w)) => {
            let mut path = path;
            path.push("value".into());
            nested_additions(h.value_type(), w.value_type(), path, out);
        }
        _ => {}
    }
}

/// The first commit of a table (`_delta_log/00000000000000000000.json`): its protocol (reader
/// 3, writer 7, with `timestampNtz`, which local timestamps need), its metadata (`schema`,
/// `partition_columns`) and the commit's information, one JSON action a line. `id`: the
/// table's id (a UUID); `now_ms`: the creation time.
pub fn first_commit(
    schema: &StructType,
    partition_columns: &[String],
    id: &str,
    now_ms: i64,
    engine: &str,
) -> Result<String, String> {
    let schema_string = serde_json::to_string(schema).map_err(|e| e.to_string())?;
    let actions = [
        serde_json::json!({"commitInfo": {
            "timestamp": now_ms,
            "operation": "CREATE TABLE",
            "operationParameters": {},
            "engineInfo": engine,
            "isBlindAppend": true,
        }}),
        serde_json::json!({"protocol": {
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"],
            "writerFeatures": ["timestampNtz"],
        }}),
        serde_json::json!({"metaData": {
            "id": id,
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema_string,
            "partitionColumns": partition_columns,
            "configuration": {},
            "createdTime": now_ms,
        }}),
    ];
    let mut text = String::new();
    for a in actions {
        text.push_str(&a.to_string());
        text.push('\n');
    }
    Ok(text)
}

/// A table's id: a version-4-shaped UUID from the hash of what makes it unique here.
pub fn table_id(seed: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(seed.as_bytes());
    let mut b: [u8; 16] = d[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType as A, Field, Fields};

    use super::*;

    fn files(fields: Vec<Field>) -> ArrowSchema {
        ArrowSchema::new(fields)
    }

    #[test]
    fn the_table_has_the_files_columns_then_the_partition_columns_all_nullable() {
        let s = files(vec![
            Field::new("_offset", A::Int64, false),
            Field::new("id", A::Int64, true),
        ]);
        let w = wanted(&s, &["dt".into(), "hour".into()]).unwrap();
        let names: Vec<&String> = w.fields().map(StructField::name).collect();
        assert_eq!(names, ["_offset", "id", "dt", "hour"]);
        assert!(w.fields().all(StructField::is_nullable));
        assert_eq!(
            w.field("dt").unwrap().data_type(),
            &DataType::STRING,
            "Hive partition values are text"
        );
    }

    #[test]
    fn additions_are_the_missing_fields_at_any_depth_and_types_are_never_changed() {
        let item = |fields: Vec<Field>| A::Struct(Fields::from(fields));
        let old = files(vec![
            Field::new("id", A::Int64, true),
            Field::new("s", item(vec![Field::new("a", A::Utf8, true)]), true),
            Field::new(
                "l",
                A::List(Arc::new(Field::new(
                    "item",
                    item(vec![Field::new("x", A::Int64, true)]),
                    true,
                ))),
                true,
            ),
        ]);
        let new = files(vec![
            Field::new("ID", A::Utf8, true),
            Field::new(
                "s",
                item(vec![
                    Field::new("a", A::Utf8, true),
                    Field::new("b", A::Boolean, true),
                ]),
                true,
            ),
            Field::new(
                "l",
                A::List(Arc::new(Field::new(
                    "item",
                    item(vec![
                        Field::new("x", A::Int64, true),
                        Field::new("y", A::Float64, true),
                    ]),
                    true,
                ))),
                true,
            ),
            Field::new("added", A::Date32, true),
        ]);
        let table = wanted(&old, &[]).unwrap();
        let got = additions(&table, &wanted(&new, &["dt".into()]).unwrap());
        let described: Vec<(Option<String>, &str)> = got
            .iter()
            .map(|a| {
                (
                    a.parent.as_ref().map(|p| p.to_string()),
                    a.field.name().as_str(),
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                (Some("s".into()), "b"),
                (Some("l.element".into()), "y"),
                (None, "added"),
                (None, "dt"),
            ],
            "ID is id (names ignore case), and its other type is left alone"
        );
        assert!(additions(&table, &table).is_empty());
    }

    #[test]
    fn the_first_commit_is_a_protocol_and_metadata_delta_readers_take() {
        let w = wanted(
            &files(vec![Field::new("id", A::Int64, true)]),
            &["dt".into()],
        )
        .unwrap();
        let id = table_id("orders");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let text = first_commit(&w, &["dt".into()], &id, 1_700_000_000_000, "ingest/test").unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let meta = &lines[2]["metaData"];
        assert_eq!(meta["partitionColumns"], serde_json::json!(["dt"]));
        let schema: StructType =
            serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
        assert_eq!(schema, w);
        assert_eq!(lines[1]["protocol"]["minReaderVersion"], 3);
    }
}
