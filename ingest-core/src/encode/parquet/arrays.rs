//! Arrow arrays built straight from records' bytes: one [`Column`] per file column, appended
//! value by value as pass 2 walks each record, finished into an array per chunk of rows.
//!
//! Pure. Appending is also the check that a value fits its column: one that does not is
//! refused (and truncated away by the caller, to be rescued), never coerced or cut down. An
//! integer is parsed as one, a double as one (an integer literal in a double column is that
//! number), a string is unescaped, and an object's only members without a field are nulls.
//! Invariant: after every row, every column (and every struct's children) holds one more entry.

use std::sync::Arc;

use arrow_array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{FieldRef, Fields};

use super::file::{item_field, struct_fields};
use super::shape::{find, Shape};
use super::walk::{self, Kind, Step};

/// One column's values on their way into an Arrow array.
pub(super) enum Column {
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    Int(Vec<i64>, NullBufferBuilder),
    Float(Vec<f64>, NullBufferBuilder),
    Str {
        offsets: Vec<i32>,
        data: Vec<u8>,
        nulls: NullBufferBuilder,
    },
    List {
        item: FieldRef,
        offsets: Vec<i32>,
        items: Box<Column>,
        nulls: NullBufferBuilder,
    },
    Struct {
        fields: Fields,
        children: Vec<Column>,
        nulls: NullBufferBuilder,
    },
}

impl Column {
    /// An empty column of `shape` (a typed shape: no `Unknown` in it).
    pub(super) fn new(shape: &Shape) -> Column {
        let nulls = NullBufferBuilder::new(0);
        match shape {
            Shape::Bool => Column::Bool(BooleanBufferBuilder::new(0), nulls),
            Shape::Int => Column::Int(Vec::new(), nulls),
            Shape::Float => Column::Float(Vec::new(), nulls),
            Shape::Str | Shape::Unknown => Column::Str {
                offsets: vec![0],
                data: Vec::new(),
                nulls,
            },
            Shape::List(elem) => Column::List {
                item: item_field(elem),
                offsets: vec![0],
                items: Box::new(Column::new(elem)),
                nulls,
            },
            Shape::Struct(fields) => Column::Struct {
                fields: struct_fields(fields),
                children: fields.iter().map(|(_, s)| Column::new(s)).collect(),
                nulls,
            },
        }
    }

    /// Appends a null.
    pub(super) fn append_null(&mut self) {
        match self {
            Column::Bool(values, nulls) => {
                values.append(false);
                nulls.append_null();
            }
            Column::Int(values, nulls) => {
                values.push(0);
                nulls.append_null();
            }
            Column::Float(values, nulls) => {
                values.push(0.0);
                nulls.append_null();
            }
            Column::Str {
                offsets,
                data: _,
                nulls,
            } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                nulls.append_null();
            }
            Column::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                nulls.append_null();
            }
            Column::Struct {
                children, nulls, ..
            } => {
                for child in children {
                    child.append_null();
                }
                nulls.append_null();
            }
        }
    }

    /// Appends nulls until the column holds `rows` entries (the rows whose records had no
    /// value for it).
    pub(super) fn pad_to(&mut self, rows: usize) {
        let missing = rows.saturating_sub(self.len());
        if missing == 0 {
            return;
        }
        match self {
            Column::Bool(values, nulls) => {
                values.append_n(missing, false);
                nulls.append_n_nulls(missing);
            }
            Column::Int(values, nulls) => {
                values.resize(values.len() + missing, 0);
                nulls.append_n_nulls(missing);
            }
            Column::Float(values, nulls) => {
                values.resize(values.len() + missing, 0.0);
                nulls.append_n_nulls(missing);
            }
            Column::Str { offsets, nulls, .. } | Column::List { offsets, nulls, .. } => {
                let last = *offsets.last().unwrap_or(&0);
                offsets.resize(offsets.len() + missing, last);
                nulls.append_n_nulls(missing);
            }
            Column::Struct {
                children, nulls, ..
            } => {
                let rows = nulls.len() + missing;
                for child in children {
                    child.pad_to(rows);
                }
                nulls.append_n_nulls(missing);
            }
        }
    }

    /// Entries so far.
    #[inline]
    pub(super) fn len(&self) -> usize {
        // From the values where they have one entry per row (a `Vec`'s length is inlined; the
        // null builder's, from another crate, is a call).
        match self {
            Column::Int(values, _) => values.len(),
            Column::Float(values, _) => values.len(),
            Column::Str { offsets, .. } | Column::List { offsets, .. } => offsets.len() - 1,
            Column::Bool(_, nulls) | Column::Struct { nulls, .. } => nulls.len(),
        }
    }

    /// Drops every entry from `len` on, at every depth: what an [`append`](Column::append) of a
    /// value that did not fit left behind.
    pub(super) fn truncate(&mut self, len: usize) {
        match self {
            Column::Bool(values, nulls) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Int(values, nulls) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Float(values, nulls) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Str {
                offsets,
                data,
                nulls,
            } => {
                offsets.truncate(len + 1);
                data.truncate(offsets.last().map_or(0, |&o| o as usize));
                nulls.truncate(len);
            }
            Column::List {
                offsets,
                items,
                nulls,
                ..
            } => {
                offsets.truncate(len + 1);
                items.truncate(offsets.last().map_or(0, |&o| o as usize));
                nulls.truncate(len);
            }
            Column::Struct {
                children, nulls, ..
            } => {
                for child in children {
                    child.truncate(len);
                }
                nulls.truncate(len);
            }
        }
    }

    /// Appends the value at `i` of `v` if it fits `shape` (this column's: nulls fit anything,
    /// integers fit doubles; an object's member without a field fits when it is null, and a
    /// repeated key does not fit, since a column holds one value). Returns whether it fitted
    /// and the index after the value. A value that did not fit may have left part of itself at
    /// any depth: the caller truncates the column to its length before.
    pub(super) fn append(
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
                },
                _,
                Kind::Str,
            ) => {
                data.extend_from_slice(&walk::text_bytes(&v[i..end])?);
                offsets.push(offset(data.len())?);
                nulls.append_non_null();
                end
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

    /// The values appended so far as an array; the column is empty after.
    pub(super) fn finish(&mut self) -> Result<ArrayRef, String> {
        let e = |e: arrow_schema::ArrowError| e.to_string();
        Ok(match self {
            Column::Bool(values, nulls) => {
                Arc::new(BooleanArray::new(values.finish(), nulls.finish()))
            }
            Column::Int(values, nulls) => Arc::new(Int64Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Float(values, nulls) => Arc::new(Float64Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Str {
                offsets,
                data,
                nulls,
            } => Arc::new(
                StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0]))),
                    Buffer::from_vec(std::mem::take(data)),
                    nulls.finish(),
                )
                .map_err(e)?,
            ),
            Column::List {
                item,
                offsets,
                items,
                nulls,
            } => Arc::new(
                ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0]))),
                    items.finish()?,
                    nulls.finish(),
                )
                .map_err(e)?,
            ),
            Column::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(Column::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(fields.clone(), arrays, nulls.finish()).map_err(e)?)
            }
        })
    }
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
