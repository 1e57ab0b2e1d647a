//! Arrow arrays built straight from records' bytes: one [`Column`] per file column, appended
//! value by value as pass 2 walks each record ([`append`]), finished into an array per chunk of
//! rows ([`finish`]).
//!
//! Pure. Appending is also the check that a value fits its column: one that does not is
//! refused (and truncated away by the caller, to be rescued), never coerced or cut down. An
//! integer is parsed as one, a double as one (an integer literal in a double column is that
//! number), a string is unescaped, a declared type's text is read exactly ([`super::typed`]),
//! and an object's only members without a field are nulls.
//! Invariant: after every row, every column (and every struct's children) holds one more entry.

mod append;
mod finish;

use arrow_array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow_schema::{FieldRef, Fields};

use super::file::{entries_field, item_field, struct_fields};
use super::shape::Shape;

/// One column's values on their way into an Arrow array.
pub(super) enum Column {
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    Int(Vec<i64>, NullBufferBuilder),
    Float(Vec<f64>, NullBufferBuilder),
    /// Text, or (`base64`) the bytes base64 text stands for.
    Str {
        offsets: Vec<i32>,
        data: Vec<u8>,
        nulls: NullBufferBuilder,
        base64: bool,
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
    Decimal {
        values: Vec<i128>,
        nulls: NullBufferBuilder,
        precision: u8,
        scale: i8,
    },
    /// Microseconds since the epoch, UTC or local.
    Micros(Vec<i64>, NullBufferBuilder, bool),
    /// Days since 1970-01-01.
    Date(Vec<i32>, NullBufferBuilder),
    Map {
        entries: FieldRef,
        offsets: Vec<i32>,
        keys: Box<Column>,
        values: Box<Column>,
        nulls: NullBufferBuilder,
    },
}

impl Column {
    /// An empty column of `shape` (a typed shape: no `Unknown` in it).
    pub(super) fn new(shape: &Shape) -> Column {
        let nulls = NullBufferBuilder::new(0);
        let text = |base64| Column::Str {
            offsets: vec![0],
            data: Vec::new(),
            nulls: NullBufferBuilder::new(0),
            base64,
        };
        match shape {
            Shape::Bool => Column::Bool(BooleanBufferBuilder::new(0), nulls),
            Shape::Int => Column::Int(Vec::new(), nulls),
            Shape::Float => Column::Float(Vec::new(), nulls),
            Shape::Str | Shape::Unknown => text(false),
            Shape::Binary => text(true),
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
            Shape::Decimal { precision, scale } => Column::Decimal {
                values: Vec::new(),
                nulls,
                precision: *precision,
                scale: *scale,
            },
            Shape::Timestamp { utc } => Column::Micros(Vec::new(), nulls, *utc),
            Shape::Date => Column::Date(Vec::new(), nulls),
            Shape::Map(value) => Column::Map {
                entries: entries_field(value),
                offsets: vec![0],
                keys: Box::new(text(false)),
                values: Box::new(Column::new(value)),
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
            Column::Int(values, nulls) | Column::Micros(values, nulls, _) => {
                values.push(0);
                nulls.append_null();
            }
            Column::Float(values, nulls) => {
                values.push(0.0);
                nulls.append_null();
            }
            Column::Decimal { values, nulls, .. } => {
                values.push(0);
                nulls.append_null();
            }
            Column::Date(values, nulls) => {
                values.push(0);
                nulls.append_null();
            }
            Column::Str { offsets, nulls, .. }
            | Column::List { offsets, nulls, .. }
            | Column::Map { offsets, nulls, .. } => {
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
            Column::Int(values, nulls) | Column::Micros(values, nulls, _) => {
                values.resize(values.len() + missing, 0);
                nulls.append_n_nulls(missing);
            }
            Column::Float(values, nulls) => {
                values.resize(values.len() + missing, 0.0);
                nulls.append_n_nulls(missing);
            }
            Column::Decimal { values, nulls, .. } => {
                values.resize(values.len() + missing, 0);
                nulls.append_n_nulls(missing);
            }
            Column::Date(values, nulls) => {
                values.resize(values.len() + missing, 0);
                nulls.append_n_nulls(missing);
            }
            Column::Str { offsets, nulls, .. }
            | Column::List { offsets, nulls, .. }
            | Column::Map { offsets, nulls, .. } => {
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
            Column::Int(values, _) | Column::Micros(values, _, _) => values.len(),
            Column::Float(values, _) => values.len(),
            Column::Decimal { values, .. } => values.len(),
            Column::Date(values, _) => values.len(),
            Column::Str { offsets, .. }
            | Column::List { offsets, .. }
            | Column::Map { offsets, .. } => offsets.len() - 1,
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
            Column::Int(values, nulls) | Column::Micros(values, nulls, _) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Float(values, nulls) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Decimal { values, nulls, .. } => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Date(values, nulls) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Str {
                offsets,
                data,
                nulls,
                ..
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
            Column::Map {
                offsets,
                keys,
                values,
                nulls,
                ..
            } => {
                offsets.truncate(len + 1);
                let entries = offsets.last().map_or(0, |&o| o as usize);
                keys.truncate(entries);
                values.truncate(entries);
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
}
