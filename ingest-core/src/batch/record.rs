//! One record as a batch stores it: the borrowed [`RecordRef`] a source hands over, the byte
//! layout it is copied into, and the [`StoredRecord`] read back from a chunk.
//!
//! Pure. Invariant: [`store`] and [`StoredRecord::parse`] agree on the layout, so every field
//! (offset, timestamp, key, value, headers, absent or empty) reads back exactly as it came.

/// One record as it arrives from the source, borrowed only for the duration of [`Batch::push`].
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub offset: i64,
    /// Record timestamp in milliseconds since the Unix epoch, when the source has one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    /// Why the source could not hand the record over as it came, if it could not: the encoder
    /// then treats the record as invalid whatever its value.
    pub flaw: Option<Flaw>,
    /// The source's own position of the record besides its offset (an Event Hubs offset). Not
    /// stored per record: a batch keeps its last record's, which its checkpoint names.
    pub cursor: Option<&'a str>,
}

/// What made a record unusable before any encoder saw it. It follows
/// `INGEST_INVALID_RECORD_POLICY` with this reason, its bytes kept in the dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// A Kafka header key that is not UTF-8: `headers` is empty.
    UnreadableHeaders,
    /// An Event Hubs body that is an AMQP value with no JSON form (a decimal, a described or
    /// non-finite value, a map with keys that are not text): the value is its AMQP encoding.
    AmqpValueWithoutJson,
    /// An Event Hubs body that is an AMQP value nested deeper than JSON readers take: the value
    /// is its AMQP encoding.
    AmqpTooDeep,
    /// A value in a schema registry's wire format that does not decode (no header, an id the
    /// registry does not know, bytes its schema does not read): the value is as it came, and
    /// `ingest::registry::Registry::explain` says why.
    Undecodable,
}

impl Flaw {
    /// The reason the record is invalid, in one line.
    pub fn reason(self) -> &'static str {
        match self {
            Flaw::UnreadableHeaders => {
                "a header key is not valid UTF-8, so its headers cannot be read for the metadata envelope"
            }
            Flaw::AmqpValueWithoutJson => {
                "the event's body is an AMQP value with no JSON form (a decimal, described or non-finite value, or a map with non-text keys); its AMQP encoding is kept"
            }
            Flaw::AmqpTooDeep => {
                "the event's body is an AMQP value nested deeper than 128 levels, which JSON readers refuse; its AMQP encoding is kept"
            }
            Flaw::Undecodable => "the value does not decode through the schema registry",
        }
    }

    fn code(flaw: Option<Flaw>) -> u32 {
        match flaw {
            None => 0,
            Some(Flaw::UnreadableHeaders) => 1,
            Some(Flaw::AmqpValueWithoutJson) => 2,
            Some(Flaw::AmqpTooDeep) => 3,
            Some(Flaw::Undecodable) => 4,
        }
    }

    fn of_code(code: u32) -> Option<Flaw> {
        match code {
            1 => Some(Flaw::UnreadableHeaders),
            2 => Some(Flaw::AmqpValueWithoutJson),
            3 => Some(Flaw::AmqpTooDeep),
            4 => Some(Flaw::Undecodable),
            _ => None,
        }
    }
}

impl RecordRef<'_> {
    /// Uncompressed size counted against the byte limits: key, value and header bytes.
    pub fn size(&self) -> usize {
        self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>()
    }

    /// Bytes the record takes in a chunk.
    pub(super) fn stored_len(&self) -> usize {
        RECORD_HEADER
            + self.key.map_or(0, <[u8]>::len)
            + self.value.map_or(0, <[u8]>::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| HEADER_HEADER + k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>()
    }
}

/// A stored record starts with offset (i64), timestamp (i64), key length, value length (u32,
/// [`ABSENT`] for none) and header count (u32, its top bits the [`Flaw`]'s code, from
/// [`FLAW_SHIFT`]), little-endian.
pub(super) const RECORD_HEADER: usize = 8 + 8 + 4 + 4 + 4;
/// Each stored header starts with its key and value lengths (u32).
const HEADER_HEADER: usize = 4 + 4;
/// Length of an absent key or value.
const ABSENT: u32 = u32::MAX;
/// Where the flaw's code starts in the stored header count (three bits: far more headers than
/// a record can carry fit below).
const FLAW_SHIFT: u32 = 29;
const COUNT_MASK: u32 = (1 << FLAW_SHIFT) - 1;
/// Timestamp of a record that has none (Kafka timestamps are never negative but -1).
const NO_TIMESTAMP: i64 = i64::MIN;

fn put_len(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    let len = bytes.map_or(ABSENT, |b| b.len() as u32);
    out.extend_from_slice(&len.to_le_bytes());
}

/// Appends `record` to `out` in the stored layout (the caller made room: [`RecordRef::stored_len`]).
pub(super) fn store(out: &mut Vec<u8>, record: &RecordRef<'_>) {
    out.extend_from_slice(&record.offset.to_le_bytes());
    out.extend_from_slice(&record.timestamp_ms.unwrap_or(NO_TIMESTAMP).to_le_bytes());
    put_len(out, record.key);
    put_len(out, record.value);
    let flag = Flaw::code(record.flaw) << FLAW_SHIFT;
    out.extend_from_slice(&(record.headers.len() as u32 | flag).to_le_bytes());
    out.extend_from_slice(record.key.unwrap_or_default());
    out.extend_from_slice(record.value.unwrap_or_default());
    for (k, v) in record.headers {
        put_len(out, Some(k.as_bytes()));
        put_len(out, *v);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.unwrap_or_default());
    }
}

/// The records stored in one chunk, in order.
pub fn records_in(chunk: &[u8]) -> impl Iterator<Item = StoredRecord<'_>> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (record, after) = StoredRecord::parse(rest);
        rest = after;
        Some(record)
    })
}

/// A record inside a [`Batch`].
#[derive(Clone, Copy)]
pub struct StoredRecord<'a> {
    offset: i64,
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: u32,
    headers: &'a [u8],
    flaw: Option<Flaw>,
}

/// Reads a little-endian number at the front of `bytes` (written by [`Batch::push`]).
fn take<const N: usize>(bytes: &mut &[u8]) -> [u8; N] {
    let (head, rest) = bytes.split_at(N);
    *bytes = rest;
    head.try_into().expect("split_at gave N bytes")
}

fn take_bytes<'a>(bytes: &mut &'a [u8], len: u32) -> Option<&'a [u8]> {
    (len != ABSENT).then(|| {
        let (head, rest) = bytes.split_at(len as usize);
        *bytes = rest;
        head
    })
}

impl<'a> StoredRecord<'a> {
    /// Parses the record at the front of `chunk`; returns it and what follows.
    fn parse(mut chunk: &'a [u8]) -> (StoredRecord<'a>, &'a [u8]) {
        let offset = i64::from_le_bytes(take(&mut chunk));
        let timestamp_ms = i64::from_le_bytes(take(&mut chunk));
        let key_len = u32::from_le_bytes(take(&mut chunk));
        let value_len = u32::from_le_bytes(take(&mut chunk));
        let counted = u32::from_le_bytes(take(&mut chunk));
        let (header_count, flaw) = (counted & COUNT_MASK, Flaw::of_code(counted >> FLAW_SHIFT));
        let key = take_bytes(&mut chunk, key_len);
        let value = take_bytes(&mut chunk, value_len);
        let mut headers_len = 0;
        let mut h = chunk;
        for _ in 0..header_count {
            let k = u32::from_le_bytes(take(&mut h));
            let v = u32::from_le_bytes(take(&mut h));
            let len = k as usize + if v == ABSENT { 0 } else { v as usize };
            h = &h[len..];
            headers_len += HEADER_HEADER + len;
        }
        let (headers, rest) = chunk.split_at(headers_len);
        let record = StoredRecord {
            offset,
            timestamp_ms,
            key,
            value,
            header_count,
            headers,
            flaw,
        };
        (record, rest)
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }
    pub fn timestamp_ms(&self) -> Option<i64> {
        (self.timestamp_ms != NO_TIMESTAMP).then_some(self.timestamp_ms)
    }
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// Why the source could not hand this record over as it came ([`RecordRef::flaw`]).
    pub fn flaw(&self) -> Option<Flaw> {
        self.flaw
    }
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let mut rest = self.headers;
        (0..self.header_count).map(move |_| {
            let k = u32::from_le_bytes(take(&mut rest));
            let v = u32::from_le_bytes(take(&mut rest));
            let key = take_bytes(&mut rest, k).unwrap_or_default();
            let value = take_bytes(&mut rest, v);
            // Header keys were copied in from `&str`, so they are valid UTF-8.
            (std::str::from_utf8(key).unwrap_or_default(), value)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::RecordRef;

    /// A record with a value only, stamped from its offset: what the batch tests push.
    pub(crate) fn rec(offset: i64, value: &[u8]) -> RecordRef<'_> {
        RecordRef {
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            key: None,
            value: Some(value),
            headers: &[],
            flaw: None,
            cursor: None,
        }
    }
}
