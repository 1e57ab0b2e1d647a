//! Which schema a value names, and where its payload starts: Confluent's wire format (a zero
//! byte and a 4-byte id before the payload), or Azure Schema Registry's (the whole body is the
//! Avro datum; the event's content type, `avro/binary+<schema id>`, names the schema).
//!
//! Pure. Invariant: an Azure schema id is used in a URL path only when it is made of letters,
//! digits and `-` (what Azure's ids are: 32 hex digits).

use std::fmt;

use super::wire;

/// A schema as values name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaKey {
    Confluent(u32),
    Azure(String),
}

impl fmt::Display for SchemaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaKey::Confluent(id) => write!(f, "schema id {id}"),
            SchemaKey::Azure(id) => write!(f, "Azure schema id {id}"),
        }
    }
}

const AZURE_AVRO: &str = "avro/binary+";

/// The schema `value` names and its payload; `content_type` is the Event Hubs message's.
pub fn framed<'v>(
    value: &'v [u8],
    content_type: Option<&str>,
) -> Result<(SchemaKey, &'v [u8]), String> {
    if let Some(ct) = content_type {
        let lower = ct.get(..AZURE_AVRO.len()).map(str::to_ascii_lowercase);
        if lower.as_deref() == Some(AZURE_AVRO) {
            let id = ct[AZURE_AVRO.len()..].trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!(
                    "the content type {ct:?} names no Azure Schema Registry schema id"
                ));
            }
            return Ok((SchemaKey::Azure(id.to_string()), value));
        }
    }
    let f = wire::frame(value).map_err(str::to_string)?;
    Ok((SchemaKey::Confluent(f.schema_id), f.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_names_an_azure_schema_and_otherwise_the_wire_format_does() {
        let body = [1u8, 2, 3];
        assert_eq!(
            framed(&body, Some("avro/binary+0b9b34c2b5aa4e8f9b0f2cb1c3c4d5e6")),
            Ok((
                SchemaKey::Azure("0b9b34c2b5aa4e8f9b0f2cb1c3c4d5e6".into()),
                &body[..]
            ))
        );
        assert_eq!(
            framed(&[0, 0, 0, 0, 7, 9], Some("application/json")),
            Ok((SchemaKey::Confluent(7), &[9u8][..]))
        );
        assert!(framed(&body, Some("Avro/Binary+../x"))
            .unwrap_err()
            .contains("names no"));
        assert!(framed(&body, None).unwrap_err().contains("zero byte"));
    }
}
