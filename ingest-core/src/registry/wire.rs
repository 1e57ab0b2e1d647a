//! Confluent's wire format: a zero "magic" byte, the schema id (4 bytes, big-endian), then the
//! payload the schema describes.
//!
//! Pure. Invariant: a value is either framed (an id and a payload) or refused with why.

/// A value split into its schema id and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    pub schema_id: u32,
    pub payload: &'a [u8],
}

/// Bytes before the payload.
pub const HEADER: usize = 5;

/// Splits `value`, or says why it is not in the wire format.
pub fn frame(value: &[u8]) -> Result<Framed<'_>, &'static str> {
    match value {
        [0, a, b, c, d, payload @ ..] => Ok(Framed {
            schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
            payload,
        }),
        [0, ..] => Err("the value is shorter than the wire format's 5-byte header"),
        _ => Err("the value does not start with the wire format's zero byte (not written by a schema-registry serializer?)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_values_split_and_others_are_refused() {
        assert_eq!(
            frame(&[0, 0, 0, 1, 2, 9]),
            Ok(Framed {
                schema_id: 258,
                payload: &[9]
            })
        );
        assert_eq!(frame(&[0, 0, 0, 0, 7]).map(|f| f.payload.len()), Ok(0));
        assert!(frame(b"{\"a\":1}").unwrap_err().contains("zero byte"));
        assert!(frame(&[0, 1]).unwrap_err().contains("shorter"));
        assert!(frame(&[]).is_err());
    }
}
