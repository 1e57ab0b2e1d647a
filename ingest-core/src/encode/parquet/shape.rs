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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// The shape of one value, `None` when it has no single shape (a list mixing kinds).
    pub fn of(value: &Value) -> Option<Shape> {
        Some(match value {
            Value::Null => Shape::Unknown,
            Value::Bool(_) => Shape::Bool,
            Value::Number(n) if n.is_i64() || n.is_u64() && n.as_i64().is_some() => Shape::Int,
            Value::Number(_) => Shape::Float,
            Value::String(_) => Shape::Str,
            Value::Array(items) => {
                let mut elem = Shape::Unknown;
                for item in items {
                    elem = elem.merge(&Shape::of(item)?)?;
                }
                Shape::List(Box::new(elem))
            }
            Value::Object(fields) => Shape::Struct(
                fields
                    .iter()
                    .map(|(k, v)| Some((k.clone(), Shape::of(v)?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
        })
    }

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

    /// Whether [`Shape::absorb`] can take `value`: what [`Shape::merge`] (or, `fixed`,
    /// [`Shape::extend`]) with its shape would allow, checked without building that shape.
    pub fn accepts(&self, value: &Value, fixed: bool) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Shape::Unknown, v) => Shape::of(v).is_some(),
            (Shape::Bool, Value::Bool(_)) | (Shape::Str, Value::String(_)) => true,
            (Shape::Int, Value::Number(_)) => !fixed || Shape::of(value) == Some(Shape::Int),
            (Shape::Float, Value::Number(_)) => true,
            (Shape::List(elem), Value::Array(_)) if **elem == Shape::Unknown => {
                Shape::of(value).is_some()
            }
            (Shape::List(elem), Value::Array(items)) => {
                items.iter().all(|i| elem.accepts(i, fixed))
            }
            (Shape::Struct(fields), Value::Object(obj)) => {
                obj.iter()
                    .all(|(k, v)| match fields.iter().find(|(n, _)| n == k) {
                        Some((_, s)) => s.accepts(v, fixed),
                        None => Shape::of(v).is_some(),
                    })
            }
            _ => false,
        }
    }

    /// Grows this shape to hold `value`, which it [accepts](Shape::accepts) (so a fixed shape
    /// never widens here: `accepts` refused that); allocates only for what is new.
    pub fn absorb(&mut self, value: &Value) {
        match (&mut *self, value) {
            (_, Value::Null) => {}
            (Shape::Unknown, v) => *self = Shape::of(v).unwrap_or(Shape::Unknown),
            (Shape::Int, Value::Number(_)) if Shape::of(value) == Some(Shape::Float) => {
                *self = Shape::Float
            }
            (Shape::List(elem), Value::Array(_)) if **elem == Shape::Unknown => {
                *self = Shape::of(value).unwrap_or(Shape::List(Box::new(Shape::Unknown)))
            }
            (Shape::List(elem), Value::Array(items)) => {
                for i in items {
                    elem.absorb(i);
                }
            }
            (Shape::Struct(fields), Value::Object(obj)) => {
                for (k, v) in obj {
                    match fields.iter_mut().find(|(n, _)| n == k) {
                        Some((_, s)) => s.absorb(v),
                        None => fields.push((k.clone(), Shape::of(v).unwrap_or(Shape::Unknown))),
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `value` can be written in a column of this shape as it is (nulls fit anything,
    /// integers fit doubles, an object's null fields need no column).
    pub fn fits(&self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Shape::Bool, Value::Bool(_)) | (Shape::Str, Value::String(_)) => true,
            (Shape::Int, Value::Number(_)) => Shape::of(value) == Some(Shape::Int),
            (Shape::Float, Value::Number(_)) => true,
            (Shape::List(elem), Value::Array(items)) => items.iter().all(|i| elem.fits(i)),
            (Shape::Struct(fields), Value::Object(obj)) => obj.iter().all(|(k, v)| {
                v.is_null()
                    || fields
                        .iter()
                        .find(|(n, _)| n == k)
                        .is_some_and(|(_, s)| s.fits(v))
            }),
            _ => false,
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

    /// Learns from one record's top-level fields: a field seen for the first time takes this
    /// value's shape; a known one widens if it can (only nested fields for a fixed one), and is
    /// left as it is if the value conflicts (that value is rescued when the record is written).
    /// Names in `reserved` are never columns (the coordinates).
    pub fn observe(&mut self, record: &Map<String, Value>, reserved: &[&str]) {
        for (name, value) in record {
            if reserved.contains(&name.as_str()) {
                continue;
            }
            // Most records only confirm the columns: checked in place, nothing allocated.
            match self.fields.iter().position(|(n, _)| n == name) {
                Some(i) => {
                    let fixed = i < self.fixed;
                    if self.fields[i].1.accepts(value, fixed) {
                        self.fields[i].1.absorb(value);
                    }
                }
                None => {
                    if let Some(shape) = Shape::of(value) {
                        self.fields.push((name.clone(), shape));
                    }
                }
            }
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

    /// Splits a record into what its columns hold and what is rescued (fields that do not fit,
    /// or are reserved names), both as JSON objects.
    pub fn split(
        &self,
        record: Map<String, Value>,
        reserved: &[&str],
    ) -> (Map<String, Value>, Map<String, Value>) {
        let mut kept = Map::new();
        let mut rescued = Map::new();
        for (name, value) in record {
            if value.is_null() && !reserved.contains(&name.as_str()) {
                continue; // a null reads back as the column's null, or a missing column's
            }
            let fits = !reserved.contains(&name.as_str())
                && self
                    .fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .is_some_and(|(_, s)| s.fits(&value));
            if fits {
                kept.insert(name, value);
            } else {
                rescued.insert(name, value);
            }
        }
        (kept, rescued)
    }
}

#[cfg(test)]
mod tests;
