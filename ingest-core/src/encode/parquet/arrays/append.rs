//! Appending one value to its column, which is also the check that it fits.

use arrow_array::builder::NullBufferBuilder;

use super::Column;
use crate::encode::parquet::shape::{find, Shape};
use crate::encode::parquet::typed;
use crate::encode::parquet::walk::{self, Kind, Step};

impl Column {
    /// Appends the value at `i` of `v` if it fits `shape` (this column's: nulls fit anything,
    /// integers fit doubles; an object's member without a field fits when it is null, and a
    /// repeated key does not fit, since a column holds one value). Returns whether it fitted
    /// and the index after the value. A value that did not fit may have left part of itself at
    /// any depth: the caller truncates the column to its length before.
    pub(in crate::encode::parquet) fn append(
        &mut self,
        shape: &Shape,
        v: &[u8],
        i: usize,
    ) -> Result<(bool, usize), String> {
        let (kind, end) = walk::head(v, i);
        let appended = match (&mut *self, shape, kind) {
            (_, _, Kind::Null) => {
                self.append_null();
                end
            }
            (Column::Bool(values, nulls), _, Kind::Bool) => {
                values.append(v.get(i) == Some(&b't'));
                nulls.append_non_null();
                end
            }
            (Column::Int(values, nulls), _, Kind::Int) => {
                values.push(integer(v, i, end)?);
                nulls.append_non_null();
                end
            }
            (Column::Float(values, nulls), _, Kind::Int | Kind::Float) => {
                values.push(number(v, i, end)?);
                nulls.append_non_null();
                end
            }
            (
                Column::Str {
                    offsets,
                    data,
                    nulls,
                    base64,
                },
                _,
                Kind::Str,
            ) => {
                let text = walk::text_bytes(&v[i..end])?;
                if *base64 {
                    let Some(bytes) = typed::base64(&text) else {
                        return Ok((false, end));
                    };
                    data.extend_from_slice(&bytes);
                } else {
                    data.extend_from_slice(&text);
                }
                offsets.push(offset(data.len())?);
                nulls.append_non_null();
                end
            }
            (
                Column::Decimal {
                    values,
                    nulls,
                    precision,
                    scale,
                },
                _,
                Kind::Str,
            ) => {
                let text = walk::text_bytes(&v[i..end])?;
                let read = typed::decimal(&text, *precision, *scale);
                return Ok(push_read(values, nulls, read, end));
            }
            (Column::Micros(values, nulls, utc), _, Kind::Str) => {
                let read = typed::timestamp_micros(&walk::text_bytes(&v[i..end])?, *utc);
                return Ok(push_read(values, nulls, read, end));
            }
            (Column::Date(values, nulls), _, Kind::Str) => {
                let read = typed::date_days(&walk::text_bytes(&v[i..end])?);
                return Ok(push_read(values, nulls, read, end));
            }
            (
                Column::Map {
                    offsets,
                    keys,
                    values,
                    nulls,
                    ..
                },
                Shape::Map(value),
                Kind::Object,
            ) => {
                let mut count = 0;
                let mut step = walk::first_member(v, i);
                while let Step::Member(m) = step {
                    keys.push_text(m.key().as_bytes())?;
                    match values.append(value, v, m.value)? {
                        (true, end) => step = walk::next_member(v, end),
                        (false, _) => return Ok((false, walk::skip(v, i))),
                    }
                    count += 1;
                }
                offsets.push(offset(*offsets.last().unwrap_or(&0) as usize + count)?);
                nulls.append_non_null();
                step.end()
            }
            (
                Column::List {
                    offsets,
                    items,
                    nulls,
                    ..
                },
                Shape::List(elem),
                Kind::Array,
            ) => {
                let mut count = 0;
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    match items.append(elem, v, at)? {
                        (true, end) => step = walk::next_element(v, end),
                        (false, _) => return Ok((false, walk::skip(v, i))),
                    }
                    count += 1;
                }
                offsets.push(offset(*offsets.last().unwrap_or(&0) as usize + count)?);
                nulls.append_non_null();
                step.end()
            }
            (
                Column::Struct {
                    children, nulls, ..
                },
                Shape::Struct(fields),
                Kind::Object,
            ) => {
                let row = nulls.len();
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let end = match find(fields, &m, &mut hint) {
                        // The field has its value already: a repeated key.
                        Some(at) if children[at].len() > row => {
                            return Ok((false, walk::skip(v, i)))
                        }
                        Some(at) => match children[at].append(&fields[at].1, v, m.value)? {
                            (true, end) => end,
                            (false, _) => return Ok((false, walk::skip(v, i))),
                        },
                        None => match walk::head(v, m.value) {
                            (Kind::Null, end) => end, // reads back as the same null
                            _ => return Ok((false, walk::skip(v, i))),
                        },
                    };
                    step = walk::next_member(v, end);
                }
                for child in children.iter_mut().filter(|c| c.len() == row) {
                    child.append_null();
                }
                nulls.append_non_null();
                step.end()
            }
            _ => return Ok((false, walk::skip(v, i))),
        };
        Ok((true, appended))
    }

    /// Appends `text` to a text column (a map's keys).
    fn push_text(&mut self, text: &[u8]) -> Result<(), String> {
        let Column::Str {
            offsets,
            data,
            nulls,
            ..
        } = self
        else {
            return Err("a map's keys are not a text column (internal)".into());
        };
        data.extend_from_slice(text);
        offsets.push(offset(data.len())?);
        nulls.append_non_null();
        Ok(())
    }
}

/// Appends `read`, a declared type's value read from its text, or says it does not fit (the
/// value ends at `end`).
fn push_read<T>(
    values: &mut Vec<T>,
    nulls: &mut NullBufferBuilder,
    read: Option<T>,
    end: usize,
) -> (bool, usize) {
    let Some(read) = read else {
        return (false, end);
    };
    values.push(read);
    nulls.append_non_null();
    (true, end)
}

/// The integer at `i..end` (one [`walk::head`] read as [`Kind::Int`]: it fits an i64), read
/// from its digits.
fn integer(v: &[u8], i: usize, end: usize) -> Result<i64, String> {
    let digits = v.get(i..end).unwrap_or_default();
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    let unreadable = || "a number its column could not hold (internal)".to_string();
    if digits.is_empty() {
        return Err(unreadable());
    }
    let mut n: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        n = match (d < 10).then(|| n.checked_mul(10)).flatten() {
            // Negative numbers accumulate downwards: i64::MIN has no positive twin.
            Some(n) if negative => n.checked_sub(i64::from(d)),
            Some(n) => n.checked_add(i64::from(d)),
            None => None,
        }
        .ok_or_else(unreadable)?;
    }
    Ok(n)
}

fn number<T: std::str::FromStr>(v: &[u8], i: usize, end: usize) -> Result<T, String> {
    v.get(i..end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| "a number its column could not hold (internal)".to_string())
}

fn offset(len: usize) -> Result<i32, String> {
    i32::try_from(len).map_err(|_| "more than 2 GiB of text in one chunk of rows".to_string())
}
