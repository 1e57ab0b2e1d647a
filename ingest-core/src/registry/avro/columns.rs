//! The Parquet columns an Avro schema declares: each field's type as the decoder writes its
//! values ([`super::decode`]), so a Parquet file holds decimals as decimals, timestamps as
//! timestamps and maps as maps, not as the text they are written as in NDJSON.
//!
//! Pure. A type without one column type (a union of several non-null branches, `null` alone,
//! a record nested past [`MAX_DEPTH`]) is not declared: its values are learned from their JSON
//! as for plain JSON topics. Nanosecond timestamps and decimals wider than 38 digits are text.

use super::schema::{Node, Schema, Unit};
use crate::encode::parquet::shape::Shape;
use crate::encode::parquet::typed::MAX_DECIMAL_PRECISION;

/// Records nested deeper than this (recursive types) are not declared past it.
const MAX_DEPTH: usize = 32;

/// The fields of the schema's root record with their shapes; none when the root is not a
/// record.
pub fn fields(schema: &Schema) -> Vec<(String, Shape)> {
    match shape(schema, schema.root, 0) {
        Some(Shape::Struct(fields)) => fields,
        _ => Vec::new(),
    }
}

fn shape(schema: &Schema, node: usize, depth: usize) -> Option<Shape> {
    if depth > MAX_DEPTH {
        return None;
    }
    let inner = |n: usize| shape(schema, n, depth + 1);
    Some(match &schema.nodes[node] {
        Node::Null => return None,
        Node::Boolean => Shape::Bool,
        Node::Int | Node::Long => Shape::Int,
        Node::Float | Node::Double => Shape::Float,
        Node::Bytes | Node::Fixed(_) => Shape::Binary,
        Node::String | Node::Enum(_) | Node::Uuid | Node::Time(_) => Shape::Str,
        Node::Date => Shape::Date,
        Node::Timestamp {
            unit: Unit::Nanos, ..
        } => Shape::Str,
        Node::Timestamp { utc, .. } => Shape::Timestamp { utc: *utc },
        Node::Decimal {
            precision, scale, ..
        } => match (u8::try_from(*precision), i8::try_from(*scale)) {
            (Ok(p), Ok(s)) if p <= MAX_DECIMAL_PRECISION => Shape::Decimal {
                precision: p,
                scale: s,
            },
            _ => Shape::Str,
        },
        Node::Duration => Shape::Struct(
            ["months", "days", "millis"]
                .map(|n| (n.to_string(), Shape::Int))
                .into(),
        ),
        Node::Array(items) => Shape::List(Box::new(inner(*items)?)),
        Node::Map(values) => Shape::Map(Box::new(inner(*values)?)),
        Node::Union(branches) => {
            let mut typed = branches.iter().filter(|b| schema.nodes[**b] != Node::Null);
            match (typed.next(), typed.next()) {
                (Some(only), None) => return shape(schema, *only, depth),
                _ => return None,
            }
        }
        Node::Record(fields) => {
            let fields: Vec<(String, Shape)> = fields
                .iter()
                .filter_map(|f| Some((f.name.clone(), inner(f.node)?)))
                .collect();
            if fields.is_empty() {
                return None;
            }
            Shape::Struct(fields)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(text: &str) -> Vec<(String, Shape)> {
        fields(&Schema::parse(text, &[]).expect("parses"))
    }

    #[test]
    fn logical_types_declare_their_columns() {
        let f = declared(
            r#"{"type":"record","name":"R","fields":[
                {"name":"id","type":"long"},
                {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
                {"name":"huge","type":{"type":"bytes","logicalType":"decimal","precision":40,"scale":2}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"local","type":{"type":"long","logicalType":"local-timestamp-micros"}},
                {"name":"nanos","type":{"type":"long","logicalType":"timestamp-nanos"}},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}},
                {"name":"raw","type":"bytes"},
                {"name":"note","type":["null","string"]},
                {"name":"either","type":["null","string","long"]},
                {"name":"nothing","type":"null"},
                {"name":"tags","type":{"type":"map","values":"long"}},
                {"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"n","type":"int"}]}}}
            ]}"#,
        );
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "id", "price", "huge", "at", "local", "nanos", "day", "kind", "raw", "note",
                "tags", "items"
            ]
        );
        let of = |name: &str| f.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(of("id"), Shape::Int);
        assert_eq!(
            of("price"),
            Shape::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(of("huge"), Shape::Str);
        assert_eq!(of("at"), Shape::Timestamp { utc: true });
        assert_eq!(of("local"), Shape::Timestamp { utc: false });
        assert_eq!(of("nanos"), Shape::Str);
        assert_eq!(of("day"), Shape::Date);
        assert_eq!(of("kind"), Shape::Str);
        assert_eq!(of("raw"), Shape::Binary);
        assert_eq!(of("note"), Shape::Str);
        assert_eq!(of("tags"), Shape::Map(Box::new(Shape::Int)));
        assert_eq!(
            of("items"),
            Shape::List(Box::new(Shape::Struct(vec![("n".into(), Shape::Int)])))
        );
    }

    #[test]
    fn recursive_records_stop_at_the_depth_limit_and_other_roots_declare_nothing() {
        let f = declared(
            r#"{"type":"record","name":"Node","fields":[
                {"name":"v","type":"int"},
                {"name":"next","type":["null","Node"]}]}"#,
        );
        let mut depth = 0;
        let mut at = &f;
        while let Some((_, Shape::Struct(next))) = at.iter().find(|(n, _)| n == "next") {
            depth += 1;
            at = next;
        }
        assert!((MAX_DEPTH - 1..=MAX_DEPTH + 1).contains(&depth), "{depth}");
        assert!(declared(r#""string""#).is_empty());
        assert!(declared(r#"{"type":"map","values":"int"}"#).is_empty());
    }
}
