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

pub(super) use learn::object;

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

    /// This shape with only what has a type: fields seen only as null dropped, and `None` for
    /// a shape that has no column type yet (unknown, an empty list's, an empty object's).
    pub fn typed(&self) -> Option<Shape> {
        match self {
            Shape::Unknown => None,
            Shape::List(elem) => Some(Shape::List(Box::new(elem.typed()?))),
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

/// The top-level fields of a topic's or a file's records, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub fields: Vec<(String, Shape)>,
    /// How many of `fields` (the first ones) come from the running schema: their types are
    /// fixed.
    #[serde(skip)]
    pub fixed: usize,
}

impl Columns {
    /// A file's columns starting from the topic's running schema, whose types are fixed.
    pub fn from_running(running: &Columns) -> Columns {
        Columns {
            fields: running.fields.clone(),
            fixed: running.fields.len(),
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
        }
    }

    /// Whether these columns add anything to `running` (a field, or a nested field).
    pub fn adds_to(&self, running: &Columns) -> bool {
        self.fields != running.fields
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
