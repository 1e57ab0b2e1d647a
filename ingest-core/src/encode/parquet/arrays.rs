//! Arrow arrays built straight from records' bytes: one [`Column`] per file column, appended
//! value by value as pass 2 walks each record, finished into an array per chunk of rows.
//!
//! Pure. Only values that [fit](super::shape::Shape) their column are appended (the caller
//! checked; a value that does not fit was rescued instead), so nothing here drops or coerces:
//! an integer is parsed as one, a double as one (an integer literal in a double column is that
//! number), a string is unescaped, and an object's members without a field are the nulls the
//! fit check allowed. Invariant: after every row, every column (and every struct's children)
//! holds one more entry.

use std::sync::Arc;

use arrow_array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{FieldRef, Fields};

use super::shape::{find, step_end, Shape};
use super::walk::{self, Kind, Step};
use super::{item_field, struct_fields};

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

    /// Appends the value at `i` of `v`, which fits `shape` (this column's); returns the index
    /// after it. `seen` is scratch space.
    pub(super) fn append(
        &mut self,
        shape: &Shape,
        v: &[u8],
        i: usize,
        seen: &mut Vec<bool>,
    ) -> Result<usize, String> {
        let (kind, end) = walk::head(v, i);
        if kind == Kind::Null {
            self.append_null();
            return Ok(end);
        }
        match (self, shape) {
            (Column::Bool(values, nulls), _) => {
                values.append(v.get(i) == Some(&b't'));
                nulls.append_non_null();
                Ok(end)
            }
            (Column::Int(values, nulls), _) => {
                values.push(number(v, i, end)?);
                nulls.append_non_null();
                Ok(end)
            }
            (Column::Float(values, nulls), _) => {
                values.push(number(v, i, end)?);
                nulls.append_non_null();
                Ok(end)
            }
            (
                Column::Str {
                    offsets,
                    data,
                    nulls,
                },
                _,
            ) => {
                let inner = v.get(i + 1..end.saturating_sub(1)).unwrap_or_default();
                if memchr::memchr(b'\\', inner).is_none() {
                    data.extend_from_slice(inner);
                } else {
                    let text: String =
                        serde_json::from_slice(&v[i..end]).map_err(|e| e.to_string())?;
                    data.extend_from_slice(text.as_bytes());
                }
                offsets.push(offset(data.len())?);
                nulls.append_non_null();
                Ok(end)
            }
            (
                Column::List {
                    offsets,
                    items,
                    nulls,
                    ..
                },
                Shape::List(elem),
            ) => {
                let mut count = 0;
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    count += 1;
                    step = walk::next_element(v, items.append(elem, v, at, seen)?);
                }
                offsets.push(offset(*offsets.last().unwrap_or(&0) as usize + count)?);
                nulls.append_non_null();
                Ok(step_end(step))
            }
            (
                Column::Struct {
                    children, nulls, ..
                },
                Shape::Struct(fields),
            ) => {
                let base = seen.len();
                seen.resize(base + fields.len(), false);
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let end = match find(fields, &m, &mut hint) {
                        Some(at) => {
                            seen[base + at] = true;
                            children[at].append(&fields[at].1, v, m.value, seen)?
                        }
                        None => walk::skip(v, m.value), // a null without a field
                    };
                    step = walk::next_member(v, end);
                }
                for (at, child) in children.iter_mut().enumerate() {
                    if !seen[base + at] {
                        child.append_null();
                    }
                }
                seen.truncate(base);
                nulls.append_non_null();
                Ok(step_end(step))
            }
            _ => Err(format!(
                "a value ({kind:?}) reached a column it was not checked against (internal)"
            )),
        }
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

fn number<T: std::str::FromStr>(v: &[u8], i: usize, end: usize) -> Result<T, String> {
    v.get(i..end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| "a number its column could not hold (internal)".to_string())
}

fn offset(len: usize) -> Result<i32, String> {
    i32::try_from(len).map_err(|_| "more than 2 GiB of text in one chunk of rows".to_string())
}
