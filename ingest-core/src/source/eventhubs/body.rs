//! An event's AMQP body as the bytes a record carries. Pure.
//!
//! The SDKs' producers send one data section; other AMQP 1.0 producers (Qpid JMS, uAMQP, IoT
//! gateways) also send several data sections, an `amqp-value` or `amqp-sequence` sections.
//! Invariant: no body with content becomes a record without a value.
//! - Data sections: their bytes, concatenated when there are several (as the .NET SDK reads them).
//! - An `amqp-value` string: its text (a JMS text message's JSON document); binary: its bytes.
//! - Any other `amqp-value`, and `amqp-sequence` sections (their elements in one array): the
//!   value's JSON form, where it has one (maps with text keys as objects, lists and arrays as
//!   arrays, timestamps as RFC 3339 text, UUIDs, symbols and chars as text).
//! - A value with no JSON form (decimals, described values, non-finite floats, binary inside a
//!   structure, maps with other keys): its AMQP encoding, with [`Flaw::AmqpValueWithoutJson`], so
//!   it follows `INGEST_INVALID_RECORD_POLICY` and its dead letter keeps every byte.
//! - A value nested deeper than [`MAX_DEPTH`] (JSON readers refuse such documents, and
//!   converting it would recurse as deep): its AMQP encoding, with [`Flaw::AmqpTooDeep`]. The
//!   depth is measured, and the encoding written, without recursion and in time linear in the
//!   body ([`super::encoding`]): a body nested 300,000 deep holds its partition no longer than
//!   a flat one of its size.
//! - No body at all: no value (a tombstone).

use azure_core_amqp::message::AmqpMessageBody;
use azure_core_amqp::{AmqpList, AmqpValue};
use fe2o3_amqp_types::primitives::Value as Encodable;
use serde_json::{Map, Number, Value as Json};

use super::encoding::{children, encode};
use crate::batch::Flaw;

/// The record value of an event with `body`, and the flaw that makes it invalid, if any.
pub fn value_of(body: &AmqpMessageBody) -> (Option<Vec<u8>>, Option<Flaw>) {
    match body {
        AmqpMessageBody::Empty => (None, None),
        AmqpMessageBody::Binary(sections) if sections.is_empty() => (None, None),
        AmqpMessageBody::Binary(sections) => (Some(sections.concat()), None),
        AmqpMessageBody::Value(AmqpValue::String(text)) => (Some(text.as_bytes().to_vec()), None),
        AmqpMessageBody::Value(AmqpValue::Binary(bytes)) => (Some(bytes.clone()), None),
        AmqpMessageBody::Value(value) if too_deep([value], 1) => {
            (Some(encode(value)), Some(Flaw::AmqpTooDeep))
        }
        AmqpMessageBody::Value(value) => as_json_or_encoded(json(value), || Encodable::from(value)),
        AmqpMessageBody::Sequence(sections)
            if too_deep(sections.iter().flat_map(|s| s.0.iter()), 2) =>
        {
            let lists = sections.iter().map(|s| AmqpValue::List(s.clone()));
            let value = AmqpValue::List(AmqpList(lists.collect()));
            (Some(encode(&value)), Some(Flaw::AmqpTooDeep))
        }
        AmqpMessageBody::Sequence(sections) => {
            let elements: Option<Vec<Json>> =
                sections.iter().flat_map(|s| s.0.iter()).map(json).collect();
            as_json_or_encoded(elements.map(Json::Array), || {
                Encodable::List(sections.iter().map(list).collect())
            })
        }
    }
}

fn list(section: &AmqpList) -> Encodable {
    Encodable::List(section.0.iter().map(Encodable::from).collect())
}

/// How deep JSON readers nest (the JSON check's limit): deeper bodies are invalid records.
pub const MAX_DEPTH: usize = 128;

/// Whether any of `values`, containers at depth `at` (1: the body itself), nests containers
/// past [`MAX_DEPTH`]: walked with a stack of its own, not by recursion. A described value is a
/// level too: it has no JSON form, but one described 100,000 times over is encoded for its dead
/// letter without recursion, as a list nested as deep is.
fn too_deep<'a>(values: impl IntoIterator<Item = &'a AmqpValue>, at: usize) -> bool {
    let mut stack: Vec<(&AmqpValue, usize)> = values.into_iter().map(|v| (v, at)).collect();
    while let Some((value, depth)) = stack.pop() {
        let Some(inner) = children(value) else {
            continue;
        };
        if depth > MAX_DEPTH {
            return true;
        }
        stack.extend(inner.map(|child| (child, depth + 1)));
    }
    false
}

fn as_json_or_encoded(
    json: Option<Json>,
    encodable: impl FnOnce() -> Encodable,
) -> (Option<Vec<u8>>, Option<Flaw>) {
    match json {
        Some(j) => (Some(j.to_string().into_bytes()), None),
        None => encoded(encodable(), Flaw::AmqpValueWithoutJson),
    }
}

/// `value`'s AMQP encoding, invalid for `flaw`. (Encoding a value just decoded does not fail;
/// were it to, its debug form is kept.)
fn encoded(value: Encodable, flaw: Flaw) -> (Option<Vec<u8>>, Option<Flaw>) {
    let bytes = serde_amqp::to_vec(&value).unwrap_or_else(|_| format!("{value:?}").into());
    (Some(bytes), Some(flaw))
}

/// The JSON form of `value`; `None` when it has none.
fn json(value: &AmqpValue) -> Option<Json> {
    Some(match value {
        AmqpValue::Null => Json::Null,
        AmqpValue::Boolean(b) => Json::Bool(*b),
        AmqpValue::UByte(n) => Json::from(*n),
        AmqpValue::UShort(n) => Json::from(*n),
        AmqpValue::UInt(n) => Json::from(*n),
        AmqpValue::ULong(n) => Json::from(*n),
        AmqpValue::Byte(n) => Json::from(*n),
        AmqpValue::Short(n) => Json::from(*n),
        AmqpValue::Int(n) => Json::from(*n),
        AmqpValue::Long(n) => Json::from(*n),
        // Through its shortest text, so 0.1f32 stays 0.1 rather than 0.10000000149011612.
        AmqpValue::Float(f) => Json::Number(Number::from_f64(f.to_string().parse().ok()?)?),
        AmqpValue::Double(f) => Json::Number(Number::from_f64(*f)?),
        AmqpValue::Char(c) => Json::String(c.to_string()),
        AmqpValue::TimeStamp(t) => match t.0 {
            Some(at) => Json::String(crate::land::naming::rfc3339_ms(millis(at))),
            None => Json::Null,
        },
        AmqpValue::Uuid(u) => Json::String(u.to_string()),
        AmqpValue::String(s) => Json::String(s.clone()),
        AmqpValue::Symbol(s) => Json::String(s.0.clone()),
        AmqpValue::List(l) => Json::Array(l.0.iter().map(json).collect::<Option<_>>()?),
        AmqpValue::Array(a) => Json::Array(a.iter().map(json).collect::<Option<_>>()?),
        AmqpValue::Map(m) => {
            let mut object = Map::with_capacity(m.len());
            for (k, v) in m.iter() {
                let key = match k {
                    AmqpValue::String(s) => s.clone(),
                    AmqpValue::Symbol(s) => s.0.clone(),
                    _ => return None,
                };
                object.insert(key, json(v)?);
            }
            Json::Object(object)
        }
        // Binary inside a structure, decimals, described (and, with the SDK's `ffi` feature,
        // composite) values.
        _ => return None,
    })
}

/// Milliseconds since the epoch (negative before it).
fn millis(at: std::time::SystemTime) -> i64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use azure_core_amqp::{AmqpDescribed, AmqpOrderedMap, AmqpSymbol, AmqpTimestamp};

    use super::*;

    fn value(v: AmqpValue) -> (Option<Vec<u8>>, Option<Flaw>) {
        value_of(&AmqpMessageBody::Value(v))
    }

    fn text(r: (Option<Vec<u8>>, Option<Flaw>)) -> (String, Option<Flaw>) {
        (String::from_utf8(r.0.expect("a value")).unwrap(), r.1)
    }

    #[test]
    fn data_sections_are_the_bytes_concatenated() {
        let one = AmqpMessageBody::Binary(vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(value_of(&one), (Some(b"{\"a\":1}".to_vec()), None));
        let two = AmqpMessageBody::Binary(vec![b"{\"a\":".to_vec(), b"1}".to_vec()]);
        assert_eq!(value_of(&two), (Some(b"{\"a\":1}".to_vec()), None));
        assert_eq!(value_of(&AmqpMessageBody::Binary(vec![])), (None, None));
        assert_eq!(value_of(&AmqpMessageBody::Empty), (None, None));
    }

    #[test]
    fn a_text_or_binary_value_is_its_content() {
        let doc = r#"{"order":1,"note":"café"}"#;
        assert_eq!(
            value(AmqpValue::String(doc.into())),
            (Some(doc.as_bytes().to_vec()), None)
        );
        assert_eq!(
            value(AmqpValue::Binary(vec![0xff, 0])),
            (Some(vec![0xff, 0]), None)
        );
    }

    #[test]
    fn a_structured_value_is_its_json_form() {
        let map: AmqpOrderedMap<AmqpValue, AmqpValue> = vec![
            (AmqpValue::String("id".into()), AmqpValue::Long(-7)),
            (
                AmqpValue::Symbol(AmqpSymbol("ok".into())),
                AmqpValue::Boolean(true),
            ),
            (AmqpValue::String("price".into()), AmqpValue::Float(0.1)),
            (
                AmqpValue::String("at".into()),
                AmqpValue::TimeStamp(AmqpTimestamp(Some(
                    UNIX_EPOCH + Duration::from_millis(1_709_210_096_007),
                ))),
            ),
            (
                AmqpValue::String("tags".into()),
                AmqpValue::List(AmqpList(vec![
                    AmqpValue::String("a".into()),
                    AmqpValue::Null,
                    AmqpValue::ULong(u64::MAX),
                ])),
            ),
            (AmqpValue::String("c".into()), AmqpValue::Char('é')),
        ]
        .into();
        assert_eq!(
            text(value(AmqpValue::Map(map))),
            (
                r#"{"id":-7,"ok":true,"price":0.1,"at":"2024-02-29T12:34:56.007Z","tags":["a",null,18446744073709551615],"c":"é"}"#.to_string(),
                None
            )
        );
        assert_eq!(text(value(AmqpValue::Int(42))), ("42".into(), None));
        assert_eq!(text(value(AmqpValue::Null)), ("null".into(), None));
    }

    #[test]
    fn sequence_sections_are_one_array_of_their_elements() {
        let body = AmqpMessageBody::Sequence(vec![
            AmqpList(vec![AmqpValue::Int(1), AmqpValue::String("two".into())]),
            AmqpList(vec![AmqpValue::Boolean(false)]),
        ]);
        assert_eq!(text(value_of(&body)), (r#"[1,"two",false]"#.into(), None));
    }

    #[test]
    fn a_value_without_json_form_is_flawed_and_keeps_its_amqp_encoding() {
        let without = [
            AmqpValue::Decimal64([1; 8]),
            AmqpValue::Double(f64::NAN),
            AmqpValue::Described(Box::new(AmqpDescribed::new(0x77u64, AmqpValue::Int(1)))),
            AmqpValue::List(AmqpList(vec![AmqpValue::Binary(vec![1, 2])])),
            AmqpValue::Map(vec![(AmqpValue::Int(1), AmqpValue::Int(2))].into()),
        ];
        for v in without {
            let (bytes, flaw) = value(v.clone());
            assert_eq!(flaw, Some(Flaw::AmqpValueWithoutJson), "{v:?}");
            let decoded: Encodable = serde_amqp::from_slice(&bytes.unwrap()).unwrap();
            assert_eq!(
                decoded,
                Encodable::from(&v),
                "the bytes decode back to {v:?}"
            );
        }
        let body = AmqpMessageBody::Sequence(vec![AmqpList(vec![AmqpValue::Decimal32([0; 4])])]);
        assert_eq!(value_of(&body).1, Some(Flaw::AmqpValueWithoutJson));
    }

    #[test]
    fn a_body_nested_past_128_levels_is_invalid_with_its_bytes_and_no_recursion() {
        let nested = |levels: usize| {
            let mut v = AmqpValue::Int(1);
            for _ in 0..levels {
                v = AmqpValue::List(AmqpList(vec![v]));
            }
            v
        };
        let (bytes, flaw) = value(nested(MAX_DEPTH));
        assert_eq!(flaw, None, "128 levels are JSON");
        let text = String::from_utf8(bytes.unwrap()).unwrap();
        assert_eq!(
            text,
            format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))
        );
        let (bytes, flaw) = value(nested(MAX_DEPTH + 1));
        assert_eq!(flaw, Some(Flaw::AmqpTooDeep));
        let kept: Encodable = serde_amqp::from_slice(&bytes.unwrap()).unwrap();
        assert_eq!(kept, Encodable::from(&nested(MAX_DEPTH + 1)));
        // A sequence's elements are one level in.
        let section = |v| AmqpMessageBody::Sequence(vec![AmqpList(vec![v])]);
        assert_eq!(value_of(&section(nested(MAX_DEPTH - 1))).1, None);
        assert_eq!(
            value_of(&section(nested(MAX_DEPTH))).1,
            Some(Flaw::AmqpTooDeep)
        );
        // A described value is a level too.
        let mut described = AmqpValue::Int(1);
        for _ in 0..=MAX_DEPTH {
            described = AmqpValue::Described(Box::new(AmqpDescribed::new(1u64, described)));
        }
        let (bytes, flaw) = value(described.clone());
        assert_eq!(flaw, Some(Flaw::AmqpTooDeep));
        let kept: Encodable = serde_amqp::from_slice(&bytes.unwrap()).unwrap();
        assert_eq!(kept, Encodable::from(&described));
    }
}
