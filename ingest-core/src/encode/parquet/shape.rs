//! The shape of a topic's records, learned from their JSON: the column types of Parquet files.
//!
//! Pure. A field's shape is the first kind of value seen for it; within the file that first
//! sees a field it widens from integer to double and gains nested fields. Once a field is in the
//! topic's running schema (fields of earlier files, `fixed` here), its types never change: it
//! only gains nested fields, so a column has one type in every file (what Spark's `mergeSchema`
//! and Auto Loader need). A value that does not fit (a number where a string was, an object
//! where a list was, a list mixing kinds) is not a column value: the record keeps it in
//! `_rescued_data` instead, as JSON, so nothing is ever dropped. A field gets a column only once
//! its type is known: one seen only as null needs none (null is what a missing column reads as),
//! and an empty list or object seen before any element or field is rescued.
//!
//! Records are read as bytes, never built: [`learn`] (pass 1) grows the columns; pass 2
//! appends each field to its column's array, which is also where a value that does not fit is
//! found ([`super::arrays`]).

mod learn;

pub(super) use learn::{object, over_cap};

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::walk::Member;

/// What values of one field look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Only nulls so far (or an empty list's elements).
    Unknown,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Shape>),
    /// Fields in the order first seen.
    Struct(Vec<(String, Shape)>),
    /// The shapes below are never learned from JSON: a schema registry declares them
    /// ([`Columns::declare`]), and the registry decoders write their values as text
    /// ([`super::typed`]). An exact decimal (written as its decimal text).
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Microseconds since the epoch, UTC (RFC 3339 text) or local (ISO 8601 without a zone).
    Timestamp {
        utc: bool,
    },
    /// Days since 1970-01-01 (`YYYY-MM-DD`).
    Date,
    /// Bytes (base64 text).
    Binary,
    /// String keys to values of one shape (a JSON object of any keys).
    Map(Box<Shape>),
}

impl Shape {
    /// The shape both fit, `None` when they conflict. Integers widen to doubles; structs gain
    /// the other's new fields (after their own).
    pub fn merge(&self, other: &Shape) -> Option<Shape> {
        self.join(other, false)
    }

    /// The shape a fixed (running-schema) shape takes to hold `other` too: only nested fields
    /// are added, types never change (an integer still fits a double column, but an integer
    /// column does not widen). `None` when `other` does not fit.
    pub fn extend(&self, other: &Shape) -> Option<Shape> {
        self.join(other, true)
    }

    fn join(&self, other: &Shape, fixed: bool) -> Option<Shape> {
        Some(match (self, other) {
            (Shape::Unknown, s) | (s, Shape::Unknown) => s.clone(),
            (Shape::Float, Shape::Int) => Shape::Float,
            (Shape::Int, Shape::Float) if !fixed => Shape::Float,
            (Shape::List(a), Shape::List(b)) => Shape::List(Box::new(a.join(b, fixed)?)),
            (Shape::Map(a), Shape::Map(b)) => Shape::Map(Box::new(a.join(b, fixed)?)),
            (Shape::Struct(a), Shape::Struct(b)) => {
                let mut fields = a.clone();
                for (name, shape) in b {
                    match fields.iter_mut().find(|(n, _)| n == name) {
                        Some((_, have)) => *have = have.join(shape, fixed)?,
                        None => fields.push((name.clone(), shape.clone())),
                    }
                }
                Shape::Struct(fields)
            }
            (a, b) if a == b => a.clone(),
            _ => return None,
        })
    }

    /// Fields with a type in this shape: one for a value, one for a struct plus its fields, a
    /// list's element's; none for a shape without a type yet.
    pub fn size(&self) -> usize {
        match self {
            Shape::Unknown => 0,
            Shape::List(elem) => elem.size(),
            Shape::Map(value) => 1 + value.size(),
            Shape::Struct(fields) => {
                let inner: usize = fields.iter().map(|(_, s)| s.size()).sum();
                usize::from(inner > 0) + inner
            }
            _ => 1,
        }
    }

    /// The most fields any struct in this shape has.
    pub fn widest(&self) -> usize {
        match self {
            Shape::List(elem) | Shape::Map(elem) => elem.widest(),
            Shape::Struct(fields) => fields
                .iter()
                .map(|(_, s)| s.widest())
                .max()
                .unwrap_or(0)
                .max(fields.len()),
            _ => 0,
        }
    }

    /// This shape with only what has a type: fields seen only as null dropped, and `None` for
    /// a shape that has no column type yet (unknown, an empty list's, an empty object's).
    pub fn typed(&self) -> Option<Shape> {
        match self {
            Shape::Unknown => None,
            Shape::List(elem) => Some(Shape::List(Box::new(elem.typed()?))),
            Shape::Map(value) => Some(Shape::Map(Box::new(value.typed()?))),
            Shape::Struct(fields) => {
                let fields: Vec<(String, Shape)> = fields
                    .iter()
                    .filter_map(|(n, s)| Some((n.clone(), s.typed()?)))
                    .collect();
                (!fields.is_empty()).then_some(Shape::Struct(fields))
            }
            other => Some(other.clone()),
        }
    }
}

/// Bounds on a topic's schema, so that records with ever new field names (ids used as keys)
/// cannot grow it, and the memory a file takes, without end: at most `columns` top-level
/// columns (`INGEST_PARQUET_MAX_COLUMNS`) and `fields` in all, every column and nested field
/// counting one (`INGEST_PARQUET_MAX_FIELDS`). A value that would pass them is rescued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub columns: usize,
    pub fields: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            columns: 1_000,
            fields: 10_000,
        }
    }
}

/// The top-level fields of a topic's or a file's records, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub fields: Vec<(String, Shape)>,
    /// How many of `fields` (the first ones) come from the running schema: their types are
    /// fixed.
    #[serde(skip)]
    pub fixed: usize,
    /// What the columns may grow to.
    #[serde(skip)]
    pub caps: Caps,
    /// Which names may be columns.
    #[serde(skip)]
    pub names: Names,
    #[serde(skip)]
    derived: Derived,
}

/// Which names may be columns: any (Parquet files), or those a Delta table takes without column
/// mapping (`INGEST_FORMAT=delta`; the table's partition columns): no name with a character
/// Delta refuses (` ,;{}()=`, tab, newline), none differing from a sibling only in case, and at
/// the top level none of the partition columns. A field refused a column is rescued.
#[derive(Debug, Clone, Default)]
pub struct Names(Option<Arc<[String]>>);

impl PartialEq for Names {
    fn eq(&self, _: &Names) -> bool {
        true
    }
}

impl Eq for Names {}

impl Names {
    /// The names a Delta table with `partition_columns` takes.
    pub fn table(partition_columns: Arc<[String]>) -> Names {
        Names(Some(partition_columns))
    }

    /// Whether `name` may be a new field beside `siblings` (`top`: a column, beside the
    /// partition columns too). A refusal is counted.
    pub(super) fn allows(&self, name: &str, siblings: &[(String, Shape)], top: bool) -> bool {
        let Some(partition) = &self.0 else {
            return true;
        };
        let refused = name.bytes().any(|b| b" ,;{}()\n\t=".contains(&b))
            || siblings.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            || (top && partition.iter().any(|p| p.eq_ignore_ascii_case(name)));
        if refused {
            metrics::counter!("ingest_delta_names_rescued_total").increment(1);
        }
        !refused
    }

    /// Whether every field name nested in `shape` may be one.
    pub(super) fn allows_shape(&self, shape: &Shape) -> bool {
        if self.0.is_none() {
            return true;
        }
        match shape {
            Shape::List(s) | Shape::Map(s) => self.allows_shape(s),
            Shape::Struct(fields) => fields
                .iter()
                .enumerate()
                .all(|(i, (n, s))| self.allows(n, &fields[..i], false) && self.allows_shape(s)),
            _ => true,
        }
    }
}

/// Schemas with at least this many columns find a field by a hash of its name, not a scan.
const INDEXED_FROM: usize = 64;

/// What is derived from [`Columns::fields`] and kept to save recomputing it, built on first
/// use and kept up to date as fields are added: the fields' positions by name (wide schemas
/// only) and the number of fields in all. Not part of the columns' equality.
#[derive(Debug, Clone, Default)]
struct Derived {
    index: OnceLock<HashMap<String, usize>>,
    size: OnceLock<usize>,
}

impl PartialEq for Derived {
    fn eq(&self, _: &Derived) -> bool {
        true
    }
}

impl Eq for Derived {}

impl Columns {
    /// A file's columns starting from the topic's running schema, whose types are fixed.
    pub fn from_running(running: &Columns, caps: Caps) -> Columns {
        Columns {
            fields: running.fields.clone(),
            fixed: running.fields.len(),
            caps,
            names: Names::default(),
            derived: Derived::default(),
        }
    }

    /// Columns of `fields`, none fixed, growing within `caps`.
    pub fn new(fields: Vec<(String, Shape)>, caps: Caps) -> Columns {
        Columns {
            fields,
            fixed: 0,
            caps,
            names: Names::default(),
            derived: Derived::default(),
        }
    }

    /// Fields in all: every column and nested field with a type counts one.
    pub fn size(&self) -> usize {
        *self
            .derived
            .size
            .get_or_init(|| self.fields.iter().map(|(_, s)| s.size()).sum())
    }

    /// Whether a new top-level column of `added` fields stays within the caps. (A field seen
    /// only as null while a batch is learned holds its place until the batch is written.)
    pub(super) fn room_for(&self, added: usize) -> bool {
        self.fields.len() < self.caps.columns && self.size() + added <= self.caps.fields
    }

    /// The index of the field named as `m`'s key ([`find`]); by its name's hash in a wide
    /// schema.
    pub(super) fn find(&self, m: &Member<'_>, hint: &mut usize) -> Option<usize> {
        if self.fields.len() < INDEXED_FROM {
            return find(&self.fields, m, hint);
        }
        if let Some((name, _)) = self.fields.get(*hint) {
            if m.is(name) {
                *hint += 1;
                return Some(*hint - 1);
            }
        }
        let at = *self.index().get(m.key().as_ref())?;
        *hint = at + 1;
        Some(at)
    }

    /// The index of the field named `name`; by its name's hash in a wide schema.
    fn position(&self, name: &str) -> Option<usize> {
        if self.fields.len() < INDEXED_FROM {
            return self.fields.iter().position(|(n, _)| n == name);
        }
        self.index().get(name).copied()
    }

    /// The fields' positions by name, built on first use.
    fn index(&self) -> &HashMap<String, usize> {
        self.derived.index.get_or_init(|| {
            let named = self.fields.iter().enumerate();
            named.map(|(i, (n, _))| (n.clone(), i)).collect()
        })
    }

    /// Adds a field of `added` fields in all at the end.
    pub(super) fn push(&mut self, name: String, shape: Shape) {
        if let Some(index) = self.derived.index.get_mut() {
            index.insert(name.clone(), self.fields.len());
        }
        self.grew(shape.size());
        self.fields.push((name, shape));
    }

    /// Counts `added` more fields in all (a field grew).
    pub(super) fn grew(&mut self, added: usize) {
        if let Some(size) = self.derived.size.get_mut() {
            *size += added;
        }
    }

    /// The columns with a type (see [`Shape::typed`]): what a file is written with and what
    /// the running schema records.
    pub fn typed(&self) -> Columns {
        Columns {
            fields: self
                .fields
                .iter()
                .filter_map(|(n, s)| Some((n.clone(), s.typed()?)))
                .collect(),
            fixed: 0,
            caps: self.caps,
            names: self.names.clone(),
            derived: Derived::default(),
        }
    }

    /// Whether these columns add anything to `running` (a field, or a nested field).
    pub fn adds_to(&self, running: &Columns) -> bool {
        self.fields != running.fields
    }

    /// Adds the columns a schema registry declares (`declared`: the fields of the writers'
    /// schemas read so far), as far as the caps let. A field these columns lack comes with its
    /// declared shape; one they have gains the declared nested fields its type can take and
    /// keeps its type when the declared one differs (a value that does not fit it is rescued).
    /// Names in `reserved` are never columns. Declared types are fixed as the running schema's
    /// are (an integer column does not become a double for a value past an `i64`: that value
    /// is rescued exactly) when these columns are all fixed so far, as they are when declared
    /// right after [`Columns::from_running`]. Whether anything was added.
    pub fn declare(&mut self, declared: &Columns, reserved: &[&str]) -> bool {
        let fixed = self.fixed == self.fields.len();
        let mut added_any = false;
        for (name, shape) in &declared.fields {
            if reserved.contains(&name.as_str()) {
                continue;
            }
            let Some(i) = self.position(name) else {
                let named =
                    self.names.allows(name, &self.fields, true) && self.names.allows_shape(shape);
                if named && self.room_for(shape.size()) && shape.widest() <= self.caps.columns {
                    self.push(name.clone(), shape.clone());
                    if fixed {
                        self.fixed += 1;
                    }
                    added_any = true;
                }
                continue;
            };
            let Some(grown) = self.fields[i].1.extend(shape) else {
                continue;
            };
            if grown == self.fields[i].1 {
                continue;
            }
            let added = grown.size().saturating_sub(self.fields[i].1.size());
            if self.size() + added <= self.caps.fields && grown.widest() <= self.caps.columns {
                self.grew(added);
                self.fields[i].1 = grown;
                added_any = true;
            }
        }
        added_any
    }
}

/// The index of the field named as `m`'s key, trying `hint` (where the last one matched, plus
/// one: records mostly list their fields in one order) before the others.
pub(super) fn find(fields: &[(String, Shape)], m: &Member<'_>, hint: &mut usize) -> Option<usize> {
    let at = match fields.get(*hint) {
        Some((name, _)) if m.is(name) => *hint,
        _ => fields.iter().position(|(name, _)| m.is(name))?,
    };
    *hint = at + 1;
    Some(at)
}

#[cfg(test)]
pub(super) mod tests;
