//! An Avro binary datum, decoded with its writer's schema straight into JSON text (no value
//! tree in between), as the book's table says ("Schema-registry topics"): unions as their
//! value, enums as symbols, bytes and fixed as base64, decimals as exact decimal strings, dates,
//! times and timestamps as ISO 8601 / RFC 3339 text, maps as objects.
//!
//! Pure. Invariant: the datum is read to its last byte or refused with the place it failed; the
//! JSON written never exceeds the caller's limit, however many zero-byte items a block claims,
//! and nests at most [`MAX_DEPTH`] levels, as every landed line does.

use base64::Engine as _;

use super::schema::{Node, Schema, Unit};

/// Levels of nested records, arrays, maps past which a datum is refused (as JSON lines are).
pub const MAX_DEPTH: usize = 128;

/// Why a datum does not decode under its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where: the field path, e.g. `order.lines[3].price`.
    pub at: String,
    pub problem: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "at {}: {}", self.at, self.problem)
        }
    }
}

struct Reader<'d, 'o> {
    bytes: &'d [u8],
    pos: usize,
    out: &'o mut Vec<u8>,
    limit: usize,
    /// Where decoding failed, innermost first: filled only on the way out of an error.
    path: Vec<String>,
}

type Step = Result<(), String>;

/// Decodes `datum` under `schema` into `out` (appended), refusing JSON longer than `limit`.
pub fn to_json(
    schema: &Schema,
    datum: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), DecodeError> {
    let start = out.len();
    let mut r = Reader {
        bytes: datum,
        pos: 0,
        out,
        limit: start.saturating_add(limit),
        path: Vec::new(),
    };
    let result = r.value(schema, schema.root, 0).and_then(|()| {
        let left = r.bytes.len() - r.pos;
        if left == 0 {
            Ok(())
        } else {
            r.path.clear();
            Err(format!(
                "{left} bytes are left after the value: written with another schema?"
            ))
        }
    });
    result.map_err(|problem| {
        r.path.reverse();
        let at = r.path.concat();
        r.out.truncate(start);
        DecodeError {
            at: at.trim_start_matches('.').to_string(),
            problem,
        }
    })
}

impl<'d> Reader<'d, '_> {
    fn take(&mut self, n: usize) -> Result<&'d [u8], String> {
        let bytes = self.bytes;
        let end = self.pos.checked_add(n).filter(|e| *e <= bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "the datum ends early: {n} bytes wanted, {} left",
                self.bytes.len() - self.pos
            ));
        };
        let s = &bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A zigzag varint of at most 64 bits.
    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err("the datum ends early, inside a number".into());
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err("a varint longer than 64 bits".into());
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err("a varint longer than 64 bits".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("{v} does not fit an int"))
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("a negative length ({n})"))
    }

    fn emit(&mut self, s: &[u8]) -> Step {
        self.out.extend_from_slice(s);
        if self.out.len() > self.limit {
            return Err("decodes to JSON larger than INGEST_MAX_RECORD_BYTES".into());
        }
        Ok(())
    }

    fn emit_int(&mut self, v: i64) -> Step {
        // serde_json writes integers with itoa, without the formatting machinery.
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| e.to_string())?;
        self.emit(b"")
    }

    fn string(&mut self, s: &str) -> Step {
        // Most strings need no escape: copied between quotes, not escaped character by
        // character.
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.out.reserve(s.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            return self.emit(b"\"");
        }
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, s);
        self.emit(b"")
    }

    fn base64(&mut self, n: usize) -> Step {
        let bytes = self.take(n)?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.out.push(b'"');
        self.out.extend_from_slice(text.as_bytes());
        self.emit(b"\"")
    }

    /// A float as the shortest text that reads back as it (Rust's `{:?}`: `1.5`, `1e300`, both
    /// JSON numbers); JSON has no NaN or infinities, so those are the strings Spark and Jackson
    /// read as them.
    fn float(&mut self, v: f64, shortest: String) -> Step {
        if v.is_finite() {
            self.emit(shortest.as_bytes())
        } else if v.is_nan() {
            self.emit(b"\"NaN\"")
        } else if v > 0.0 {
            self.emit(b"\"Infinity\"")
        } else {
            self.emit(b"\"-Infinity\"")
        }
    }

    fn value(&mut self, schema: &Schema, at: usize, depth: usize) -> Step {
        match &schema.nodes[at] {
            Node::Null => self.emit(b"null"),
            Node::Boolean => match self.take(1)?[0] {
                0 => self.emit(b"false"),
                1 => self.emit(b"true"),
                b => Err(format!("a boolean byte of {b}")),
            },
            Node::Int => {
                let v = self.int()?;
                self.emit_int(i64::from(v))
            }
            Node::Long => {
                let v = self.long()?;
                self.emit_int(v)
            }
            Node::Float => {
                let b = self.take(4)?;
                let v = f32::from_le_bytes(b.try_into().map_err(|_| "float")?);
                self.float(f64::from(v), format!("{v:?}"))
            }
            Node::Double => {
                let b = self.take(8)?;
                let v = f64::from_le_bytes(b.try_into().map_err(|_| "double")?);
                self.float(v, format!("{v:?}"))
            }
            Node::Bytes => {
                let n = self.len()?;
                self.base64(n)
            }
            Node::Fixed(n) => self.base64(*n),
            Node::String => {
                let n = self.len()?;
                let s = std::str::from_utf8(self.take(n)?)
                    .map_err(|_| "a string that is not UTF-8".to_string())?;
                self.string(s)
            }
            Node::Date => {
                let days = self.int()?;
                let text = super::time::date(days);
                self.quoted_or_number(text, i64::from(days))
            }
            Node::Time(unit) => {
                let v = if *unit == Unit::Millis {
                    i64::from(self.int()?)
                } else {
                    self.long()?
                };
                let text = super::time::time_of_day(v, *unit);
                self.quoted_or_number(text, v)
            }
            Node::Timestamp { unit, utc } => {
                let v = self.long()?;
                let text = super::time::timestamp(v, *unit, *utc);
                self.quoted_or_number(text, v)
            }
            Node::Decimal { scale, size, .. } => {
                let n = match size {
                    Some(n) => *n,
                    None => self.len()?,
                };
                let text = super::time::decimal(self.take(n)?, *scale);
                self.out.push(b'"');
                self.out.extend_from_slice(text.as_bytes());
                self.emit(b"\"")
            }
            Node::Uuid => {
                let b = self.take(16)?;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                let text = format!(
                    "\"{}-{}-{}-{}-{}\"",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                );
                self.emit(text.as_bytes())
            }
            Node::Duration => {
                let b = self.take(12)?;
                let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                let text = format!(
                    "{{\"months\":{},\"days\":{},\"millis\":{}}}",
                    part(0),
                    part(4),
                    part(8)
                );
                self.emit(text.as_bytes())
            }
            Node::Enum(symbols) => {
                let i = self.int()?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| format!("enum index {i} of {} symbols", symbols.len()))?
                    .clone();
                self.string(&symbol)
            }
            Node::Union(branches) => {
                let i = self.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("union branch {i} of {}", branches.len()))?;
                self.value(schema, *branch, depth)
            }
            Node::Record(fields) => {
                if depth >= MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                }
                self.emit(b"{")?;
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.string(&f.name)?;
                    self.out.push(b':');
                    if let Err(e) = self.value(schema, f.node, depth + 1) {
                        self.path.push(format!(".{}", f.name));
                        return Err(e);
                    }
                }
                self.emit(b"}")
            }
            Node::Array(items) => self.blocks(schema, *items, depth, None),
            Node::Map(values) => self.blocks(schema, *values, depth, Some(())),
        }
    }

    /// Array items or map entries, in blocks (a negative count is followed by the block's size).
    fn blocks(&mut self, schema: &Schema, item: usize, depth: usize, map: Option<()>) -> Step {
        if depth >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let (open, close) = if map.is_some() {
            (b"{", b"}")
        } else {
            (b"[", b"]")
        };
        self.emit(open)?;
        let mut index = 0usize;
        loop {
            let count = self.long()?;
            if count == 0 {
                break;
            }
            if count < 0 {
                self.long()?; // the block's byte size, for skipping; not needed here
            }
            for _ in 0..count.unsigned_abs() {
                if index > 0 {
                    self.out.push(b',');
                }
                let mut key = None;
                if map.is_some() {
                    let n = self.len()?;
                    let k = std::str::from_utf8(self.take(n)?)
                        .map_err(|_| "a map key that is not UTF-8".to_string())?;
                    self.string(k)?;
                    self.out.push(b':');
                    key = Some(k);
                }
                // Checks the limit, so a block of a billion nulls stops at it.
                if let Err(e) = self
                    .value(schema, item, depth + 1)
                    .and_then(|()| self.emit(b""))
                {
                    self.path.push(match key {
                        Some(k) => format!("[{k:?}]"),
                        None => format!("[{index}]"),
                    });
                    return Err(e);
                }
                index += 1;
            }
        }
        self.emit(close)
    }

    /// A logical value as text, or its number when no text names it (a year past 9999).
    fn quoted_or_number(&mut self, text: Option<String>, raw: i64) -> Step {
        match text {
            Some(t) => {
                self.out.push(b'"');
                self.out.extend_from_slice(t.as_bytes());
                self.emit(b"\"")
            }
            None => self.emit_int(raw),
        }
    }
}
