//! Protobuf in Confluent's wire format: after the schema id, the message indexes (which message
//! of the schema's file, as a path through nested types), then the message. Decoded with the
//! writer's file descriptors into protobuf's canonical JSON mapping, keeping the `.proto` field
//! names: 64-bit integers as strings, enums as their names, bytes as base64, well-known types
//! (Timestamp, Duration, wrappers, Struct) as their JSON forms, every field present (defaults
//! too, so a column never comes and goes with a value's default).
//!
//! Pure. Invariant: the JSON written never exceeds the caller's limit, however many defaults a
//! few bytes of nested messages expand to; nesting stays within prost's 100 levels.

use std::io::Write;

use base64::Engine as _;
use prost_reflect::prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};

use crate::encode::parquet::shape::Shape;

/// A schema's file with the files it imports.
#[derive(Debug)]
pub struct Schema {
    pool: DescriptorPool,
    /// The schema's own file.
    file: String,
}

/// Message indexes past which a value is refused (real schemas nest a few levels).
const MAX_INDEXES: i64 = 64;

impl Schema {
    /// `text` and `references` as the registry serves them with `format=serialized`: base64 of
    /// a `FileDescriptorProto` each, the references first (their own references before them).
    pub fn parse(text: &str, references: &[String]) -> Result<Schema, String> {
        // The well-known types (google/protobuf/*.proto), which serializers do not register.
        let mut pool = DescriptorPool::global();
        let mut file = String::new();
        for encoded in references.iter().map(String::as_str).chain([text]) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| {
                    "the registry served the schema as .proto text, not a serialized descriptor (ask it for format=serialized: Confluent Schema Registry 5.5 or later)".to_string()
                })?;
            let proto = FileDescriptorProto::decode(&bytes[..])
                .map_err(|e| format!("not a file descriptor: {e}"))?;
            file = proto.name().to_string();
            if pool.get_file_by_name(&file).is_some() {
                continue;
            }
            pool.add_file_descriptor_proto(proto)
                .map_err(|e| format!("{file}: {e}"))?;
        }
        Ok(Schema { pool, file })
    }

    /// The message `indexes` name: the first among the file's messages, each next one among the
    /// previous one's nested messages.
    fn message(&self, indexes: &[i64]) -> Result<MessageDescriptor, String> {
        let file = self
            .pool
            .get_file_by_name(&self.file)
            .ok_or("the schema's file is missing")?;
        let at = |i: i64| usize::try_from(i).unwrap_or(usize::MAX);
        let mut message = file
            .messages()
            .nth(at(indexes[0]))
            .ok_or_else(|| format!("message index {} is not in {}", indexes[0], self.file))?;
        for i in &indexes[1..] {
            let nested = message.child_messages().nth(at(*i));
            message = nested.ok_or_else(|| {
                format!("message index {i} is not nested in {}", message.full_name())
            })?;
        }
        Ok(message)
    }
}

/// Messages nested deeper than this (recursive types) are not declared past it.
const MAX_DEPTH: usize = 32;

impl Schema {
    /// The Parquet columns of each top-level message of the schema's file (the messages
    /// producers write), each field typed as its values are decoded: 64-bit integers as
    /// integers when `numbers` (see [`to_json`]), else as the text canonical JSON makes them.
    /// A field without one column type (`google.protobuf.Struct`, `Value`, `Any`, a message
    /// nested past [`MAX_DEPTH`]) is not declared: its values are learned from their JSON.
    pub fn columns(&self, numbers: bool) -> Vec<Vec<(String, Shape)>> {
        let Some(file) = self.pool.get_file_by_name(&self.file) else {
            return Vec::new();
        };
        file.messages()
            .map(|m| message_fields(&m, numbers, 0))
            .collect()
    }
}

fn message_fields(m: &MessageDescriptor, numbers: bool, depth: usize) -> Vec<(String, Shape)> {
    m.fields()
        .filter_map(|f| Some((f.name().to_string(), field_shape(&f, numbers, depth)?)))
        .collect()
}

fn field_shape(f: &FieldDescriptor, numbers: bool, depth: usize) -> Option<Shape> {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            return None;
        };
        let value = entry.map_entry_value_field();
        return Some(Shape::Map(Box::new(kind_shape(
            &value.kind(),
            numbers,
            depth,
        )?)));
    }
    let shape = kind_shape(&f.kind(), numbers, depth)?;
    Some(match f.is_list() {
        true => Shape::List(Box::new(shape)),
        false => shape,
    })
}

fn kind_shape(kind: &Kind, numbers: bool, depth: usize) -> Option<Shape> {
    let long = if numbers { Shape::Int } else { Shape::Str };
    Some(match kind {
        Kind::Double | Kind::Float => Shape::Float,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => Shape::Int,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => long,
        Kind::Bool => Shape::Bool,
        Kind::String | Kind::Enum(_) => Shape::Str,
        Kind::Bytes => Shape::Binary,
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => Shape::Timestamp { utc: true },
            "google.protobuf.Duration" | "google.protobuf.FieldMask" => Shape::Str,
            "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => Shape::Float,
            "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => Shape::Int,
            "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => long,
            "google.protobuf.BoolValue" => Shape::Bool,
            "google.protobuf.StringValue" => Shape::Str,
            "google.protobuf.BytesValue" => Shape::Binary,
            name if name.starts_with("google.protobuf.") => return None,
            _ if depth >= MAX_DEPTH => return None,
            _ => {
                let fields = message_fields(m, numbers, depth + 1);
                if fields.is_empty() {
                    return None;
                }
                Shape::Struct(fields)
            }
        },
    })
}

/// A zigzag varint at the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("the message indexes end early")?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("a message index longer than 64 bits".into())
}

/// Splits the message indexes off `payload` (a single 0 means the file's first message).
pub fn message_indexes(mut payload: &[u8]) -> Result<(Vec<i64>, &[u8]), String> {
    let count = varint(&mut payload)?;
    if count == 0 {
        return Ok((vec![0], payload));
    }
    if !(1..=MAX_INDEXES).contains(&count) {
        return Err(format!("{count} message indexes"));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        indexes.push(varint(&mut payload)?);
    }
    Ok((indexes, payload))
}

/// A writer that refuses to grow `out` past `limit` bytes.
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::other(
                "decodes to JSON larger than INGEST_MAX_RECORD_BYTES",
            ));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes `payload` (message indexes, then the message) under `schema` into `out` (appended),
/// refusing JSON longer than `limit`. 64-bit integers are strings, as canonical JSON has them,
/// unless `numbers` (for Parquet's typed columns, which hold them exactly).
pub fn to_json(
    schema: &Schema,
    payload: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    numbers: bool,
) -> Result<(), String> {
    let (indexes, message) = message_indexes(payload)?;
    let descriptor = schema.message(&indexes)?;
    let name = descriptor.full_name().to_string();
    let decoded = DynamicMessage::decode(descriptor, message)
        .map_err(|e| format!("{name} does not decode: {e}"))?;
    let start = out.len();
    let options = SerializeOptions::new()
        .stringify_64_bit_integers(!numbers)
        .use_proto_field_name(true)
        .skip_default_fields(false);
    let mut writer = serde_json::Serializer::new(Bounded {
        out: &mut *out,
        limit: start.saturating_add(limit),
    });
    let written = decoded.serialize_with_options(&mut writer, &options);
    written.map_err(|e| {
        out.truncate(start);
        format!("{name}: {e}")
    })
}

#[cfg(test)]
mod tests {
    use prost_reflect::prost_types::{
        field_descriptor_proto, DescriptorProto, FieldDescriptorProto,
    };
    use prost_reflect::Value;

    use super::*;

    fn field(name: &str, number: i32, kind: field_descriptor_proto::Type) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(kind as i32),
            label: Some(field_descriptor_proto::Label::Optional as i32),
            ..Default::default()
        }
    }

    /// `t.proto` with `A {int64 n; string s}` and `B {}` holding nested `C {bool ok}`.
    fn schema() -> Schema {
        use field_descriptor_proto::Type;
        let file = FileDescriptorProto {
            name: Some("t.proto".into()),
            package: Some("t".into()),
            syntax: Some("proto3".into()),
            message_type: vec![
                DescriptorProto {
                    name: Some("A".into()),
                    field: vec![field("n", 1, Type::Int64), field("s", 2, Type::String)],
                    ..Default::default()
                },
                DescriptorProto {
                    name: Some("B".into()),
                    nested_type: vec![DescriptorProto {
                        name: Some("C".into()),
                        field: vec![field("ok", 1, Type::Bool)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let text = base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec());
        Schema::parse(&text, &[]).expect("loads")
    }

    fn json(schema: &Schema, payload: &[u8], limit: usize) -> Result<String, String> {
        let mut out = Vec::new();
        to_json(schema, payload, &mut out, limit, false)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn messages_are_picked_by_their_indexes_and_land_as_canonical_json() {
        let s = schema();
        let a = s.message(&[0]).unwrap();
        let mut m = DynamicMessage::new(a);
        m.set_field_by_name("n", Value::I64(1 << 60));
        let payload = [&[0u8][..], &m.encode_to_vec()].concat();
        assert_eq!(
            json(&s, &payload, 1000).unwrap(),
            r#"{"n":"1152921504606846976","s":""}"#
        );
        // B.C: two indexes, [1, 0], zigzag-encoded after their count.
        let c = s.message(&[1, 0]).unwrap();
        let mut m = DynamicMessage::new(c);
        m.set_field_by_name("ok", Value::Bool(true));
        let payload = [&[4u8, 2, 0][..], &m.encode_to_vec()].concat();
        assert_eq!(json(&s, &payload, 1000).unwrap(), r#"{"ok":true}"#);
    }

    #[test]
    fn top_level_messages_declare_their_columns_and_64_bit_integers_follow_the_decoding() {
        let s = schema();
        let a = vec![("n".to_string(), Shape::Int), ("s".to_string(), Shape::Str)];
        assert_eq!(s.columns(true), vec![a, vec![]]);
        assert_eq!(s.columns(false)[0][0], ("n".to_string(), Shape::Str));
        let m = s.message(&[0]).unwrap();
        let mut v = DynamicMessage::new(m);
        v.set_field_by_name("n", Value::I64(1 << 60));
        let payload = [&[0u8][..], &v.encode_to_vec()].concat();
        let mut out = Vec::new();
        to_json(&s, &payload, &mut out, 1000, true).unwrap();
        assert_eq!(out, br#"{"n":1152921504606846976,"s":""}"#);
    }

    #[test]
    fn bad_indexes_payloads_and_sizes_are_refused() {
        let s = schema();
        assert!(json(&s, &[2, 6], 1000)
            .unwrap_err()
            .contains("message index 3"));
        assert!(json(&s, &[4, 0, 4], 1000)
            .unwrap_err()
            .contains("not nested in t.A"));
        assert!(json(&s, &[0, 0x0a, 0x05, b'x'], 1000)
            .unwrap_err()
            .contains("does not decode"));
        assert!(json(&s, &[], 1000).unwrap_err().contains("end early"));
        let e = json(&s, &[0], 5).unwrap_err();
        assert!(e.contains("INGEST_MAX_RECORD_BYTES"), "{e}");
        let e = Schema::parse("syntax = \"proto3\";", &[]).unwrap_err();
        assert!(e.contains("format=serialized"), "{e}");
    }
}
