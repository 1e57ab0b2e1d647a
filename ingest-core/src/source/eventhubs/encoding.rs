//! An AMQP value's encoding, written with a stack of its own: no recursion, and time linear in
//! the value's size however deep it nests. Pure.
//!
//! `serde_amqp` encodes a compound by first sizing it, which sizes every compound inside it
//! again: a body nested `n` deep costs `n²` steps (10,000 deep held a partition for seconds,
//! the 300,000 levels that fit in 1 MiB would hold it for hours). This encoder writes each
//! compound's size once its elements are written. Scalars, which hold nothing, are still
//! encoded by `serde_amqp`.
//!
//! Invariant: the bytes decode (by `serde_amqp` or any AMQP 1.0 reader) to the value given,
//! with two liberties: lists and maps always take their 32-bit forms, and an array that holds
//! compound or described values is written as a list of the same elements (each with its own
//! constructor: `serde_amqp` cannot read an array of 32-bit lists back).

use azure_core_amqp::AmqpValue;
use fe2o3_amqp_types::primitives::Value as Encodable;
use serde_amqp::descriptor::Descriptor;

const LIST32: u8 = 0xd0;
const MAP32: u8 = 0xd1;
const DESCRIBED: u8 = 0x00;

/// What is left to write.
enum Step<'a> {
    /// A value.
    Value(&'a AmqpValue),
    /// The end of the compound whose 4-byte size field starts at this index.
    Close(usize),
}

/// `value`'s AMQP encoding.
pub fn encode(value: &AmqpValue) -> Vec<u8> {
    let mut out = Vec::new();
    let mut todo = vec![Step::Value(value)];
    while let Some(step) = todo.pop() {
        match step {
            Step::Close(at) => {
                let size = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
                out[at..at + 4].copy_from_slice(&size.to_be_bytes());
            }
            Step::Value(value) => write(value, &mut out, &mut todo),
        }
    }
    out
}

/// Writes `value`'s constructor and its start, and leaves what it holds to `todo`.
fn write<'a>(value: &'a AmqpValue, out: &mut Vec<u8>, todo: &mut Vec<Step<'a>>) {
    let mut open = |code: u8, count: usize, out: &mut Vec<u8>| {
        out.push(code);
        let at = out.len();
        out.extend([0; 4]);
        out.extend(u32::try_from(count).unwrap_or(u32::MAX).to_be_bytes());
        todo.push(Step::Close(at));
    };
    match value {
        AmqpValue::List(list) => {
            open(LIST32, list.0.len(), out);
            todo.extend(list.0.iter().rev().map(Step::Value));
        }
        AmqpValue::Map(map) => {
            open(MAP32, map.len() * 2, out);
            let entries: Vec<_> = map.iter().collect();
            for (k, v) in entries.into_iter().rev() {
                todo.extend([Step::Value(v), Step::Value(k)]);
            }
        }
        AmqpValue::Array(items) if items.iter().all(|v| children(v).is_none()) => {
            out.extend(scalar(&Encodable::from(value)));
        }
        AmqpValue::Array(items) => {
            open(LIST32, items.len(), out);
            todo.extend(items.iter().rev().map(Step::Value));
        }
        AmqpValue::Described(described) => {
            // The descriptor, a code or a symbol, holds nothing: written at once.
            out.push(DESCRIBED);
            out.extend(scalar(&match Descriptor::from(&described.descriptor) {
                Descriptor::Code(code) => Encodable::Ulong(code),
                Descriptor::Name(name) => Encodable::Symbol(name),
            }));
            todo.push(Step::Value(&described.value));
        }
        other => out.extend(scalar(&Encodable::from(other))),
    }
}

/// The values a list, array, map or described value holds; `None` for any other value (a
/// scalar, which `serde_amqp` encodes in one step).
pub(super) fn children(value: &AmqpValue) -> Option<Box<dyn Iterator<Item = &AmqpValue> + '_>> {
    match value {
        AmqpValue::List(l) => Some(Box::new(l.0.iter())),
        AmqpValue::Array(a) => Some(Box::new(a.iter())),
        AmqpValue::Map(m) => Some(Box::new(m.iter().flat_map(|(k, v)| [k, v]))),
        AmqpValue::Described(d) => Some(Box::new(std::iter::once(&d.value))),
        _ => None,
    }
}

/// A value that holds no other value, encoded by `serde_amqp` (one step, no recursion).
/// Encoding a value just decoded does not fail; were it to, its debug form is kept.
fn scalar(value: &Encodable) -> Vec<u8> {
    serde_amqp::to_vec(value).unwrap_or_else(|_| format!("{value:?}").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core_amqp::{AmqpDescribed, AmqpList, AmqpOrderedMap, AmqpSymbol};

    fn decoded(bytes: &[u8]) -> Encodable {
        serde_amqp::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {bytes:02x?}"))
    }

    fn scalars() -> Vec<AmqpValue> {
        vec![
            AmqpValue::Null,
            AmqpValue::Boolean(true),
            AmqpValue::UByte(7),
            AmqpValue::Int(-3),
            AmqpValue::Long(1 << 40),
            AmqpValue::ULong(u64::MAX),
            AmqpValue::Double(0.5),
            AmqpValue::Decimal64([1; 8]),
            AmqpValue::String("é".repeat(300)),
            AmqpValue::Binary(vec![0, 255]),
            AmqpValue::Symbol(AmqpSymbol("s".into())),
        ]
    }

    fn map(entries: Vec<(AmqpValue, AmqpValue)>) -> AmqpValue {
        let mut map = AmqpOrderedMap::new();
        for (k, v) in entries {
            map.insert(k, v);
        }
        AmqpValue::Map(map)
    }

    fn described(code: u64, value: AmqpValue) -> AmqpValue {
        AmqpValue::Described(Box::new(AmqpDescribed::new(code, value)))
    }

    #[test]
    fn every_kind_of_value_decodes_to_itself() {
        let list = AmqpValue::List(AmqpList(scalars()));
        let values = [
            list.clone(),
            AmqpValue::List(AmqpList(vec![])),
            map(vec![
                (AmqpValue::String("k".into()), list.clone()),
                (AmqpValue::Int(1), AmqpValue::Null),
            ]),
            AmqpValue::Array(vec![AmqpValue::Int(1), AmqpValue::Int(2)]),
            AmqpValue::Array(vec![]),
            described(0x77, list.clone()),
            AmqpValue::Described(Box::new(AmqpDescribed::new("x:y", AmqpValue::Int(5)))),
        ];
        for value in values.iter().chain(scalars().iter()) {
            assert_eq!(decoded(&encode(value)), Encodable::from(value), "{value:?}");
        }
    }

    #[test]
    fn an_array_of_compound_or_described_values_is_kept_as_a_list_of_them() {
        let list = AmqpValue::List(AmqpList(scalars()));
        let inner = AmqpValue::Array(vec![AmqpValue::Short(1)]);
        let mark = described(9, AmqpValue::Int(1));
        let maps = vec![map(vec![]), map(vec![(AmqpValue::Int(1), list.clone())])];
        for items in [
            vec![list.clone(), AmqpValue::List(AmqpList(vec![]))],
            maps,
            vec![inner.clone(), inner],
            vec![mark.clone(), mark],
        ] {
            let value = AmqpValue::Array(items.clone());
            let list = Encodable::from(&AmqpValue::List(AmqpList(items)));
            assert_eq!(decoded(&encode(&value)), list);
        }
    }

    #[test]
    fn a_value_nested_two_hundred_deep_decodes_to_itself() {
        let mut value = AmqpValue::Int(1);
        for depth in 0..200 {
            value = match depth % 3 {
                0 => AmqpValue::List(AmqpList(vec![value, AmqpValue::Int(depth)])),
                1 => map(vec![(AmqpValue::Int(depth), value)]),
                _ => described(1, value),
            };
        }
        assert_eq!(decoded(&encode(&value)), Encodable::from(&value));
    }

    #[test]
    fn a_list_nested_a_million_deep_is_encoded_without_recursion() {
        // Building and dropping such a value recurses (the SDK's types do): the service's
        // threads have the room, this test's thread is given it.
        let test = || {
            let depth = 1_000_000;
            let mut value = AmqpValue::Int(1);
            for _ in 0..depth {
                value = AmqpValue::List(AmqpList(vec![value]));
            }
            let bytes = encode(&value);
            // Each level: constructor, size, count; then the small int (constructor, byte).
            assert_eq!(bytes.len(), 9 * depth + 2);
            let size = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
            assert_eq!(
                size,
                bytes.len() - 5,
                "the outer list's size counts all it holds"
            );
            assert_eq!(
                &bytes[bytes.len() - 11..],
                [LIST32, 0, 0, 0, 6, 0, 0, 0, 1, 0x54, 1]
            );
        };
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(test)
            .unwrap()
            .join()
            .unwrap();
    }
}
