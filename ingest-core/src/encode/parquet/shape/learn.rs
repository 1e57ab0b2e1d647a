//! Pass 1: learning a batch's columns from its records' bytes, nothing built per record.
//!
//! Pure. Each value is walked once in the common case (it only confirms its column); a value
//! that grows its column (a new nested field, an integer column meeting a double) is walked
//! again to grow it.

use super::{find, Columns, Shape};
use crate::encode::parquet::walk::{self, Kind, Step};

/// What a value does to the shape it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Verdict {
    /// It fits as the shape is.
    Same,
    /// It fits once the shape grows ([`Shape::absorb`]).
    Grows,
    /// It does not fit: it is rescued when its record is written.
    Conflict,
}

impl Shape {
    /// The shape of the value at `i` of `v` (`None` when it has no single shape: a list mixing
    /// kinds, a number beyond a double's range) and the index after it.
    pub fn of(v: &[u8], i: usize) -> (Option<Shape>, usize) {
        match walk::head(v, i) {
            (Kind::Null, end) => (Some(Shape::Unknown), end),
            (Kind::Bool, end) => (Some(Shape::Bool), end),
            (Kind::Int, end) => (Some(Shape::Int), end),
            (Kind::Float, end) => (Some(Shape::Float), end),
            (Kind::Huge, end) => (None, end),
            (Kind::Str, end) => (Some(Shape::Str), end),
            (Kind::Array, _) => {
                let mut elem = Some(Shape::Unknown);
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    let (shape, end) = Shape::of(v, at);
                    elem = elem.zip(shape).and_then(|(e, s)| e.merge(&s));
                    step = walk::next_element(v, end);
                }
                (elem.map(|e| Shape::List(Box::new(e))), step.end())
            }
            (Kind::Object, _) => {
                let mut fields = Some(Vec::<(String, Shape)>::new());
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let (shape, end) = Shape::of(v, m.value);
                    fields = fields.zip(shape).and_then(|(mut fields, shape)| {
                        match find(&fields, &m, &mut hint) {
                            // A repeated key: what both of its values fit.
                            Some(at) => fields[at].1 = fields[at].1.merge(&shape)?,
                            None => fields.push((m.key().into_owned(), shape)),
                        }
                        Some(fields)
                    });
                    step = walk::next_member(v, end);
                }
                (fields.map(Shape::Struct), step.end())
            }
        }
    }

    /// Whether the value at `i` fits this shape as it is, fits once it grows, or conflicts (a
    /// `fixed` shape, from the running schema, only grows nested fields: an integer column
    /// stays one); and the index after the value.
    pub(super) fn check(&self, v: &[u8], i: usize, fixed: bool) -> (Verdict, usize) {
        let (kind, end) = walk::head(v, i);
        if kind == Kind::Null {
            return (Verdict::Same, end);
        }
        let untyped = match self {
            Shape::Unknown => true,
            Shape::List(elem) => kind == Kind::Array && **elem == Shape::Unknown,
            _ => false,
        };
        if untyped {
            // No type yet: this value's shape decides (allocates, until the field has a type).
            let (shape, end) = Shape::of(v, i);
            let verdict = match shape.and_then(|s| self.merge(&s)) {
                Some(merged) if merged == *self => Verdict::Same,
                Some(_) => Verdict::Grows,
                None => Verdict::Conflict,
            };
            return (verdict, end);
        }
        let verdict = match (self, kind) {
            (Shape::Bool, Kind::Bool) | (Shape::Str, Kind::Str) => Verdict::Same,
            (Shape::Int, Kind::Int) | (Shape::Float, Kind::Int | Kind::Float) => Verdict::Same,
            (Shape::Int, Kind::Float) if !fixed => Verdict::Grows,
            (Shape::List(elem), Kind::Array) => {
                let mut verdict = Verdict::Same;
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    let end = if verdict == Verdict::Conflict {
                        walk::skip(v, at)
                    } else {
                        let (vd, end) = elem.check(v, at, fixed);
                        verdict = verdict.max(vd);
                        end
                    };
                    step = walk::next_element(v, end);
                }
                return (verdict, step.end());
            }
            (Shape::Struct(fields), Kind::Object) => {
                let mut verdict = Verdict::Same;
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let end = if verdict == Verdict::Conflict {
                        walk::skip(v, m.value)
                    } else {
                        let (vd, end) = match find(fields, &m, &mut hint) {
                            Some(at) => fields[at].1.check(v, m.value, fixed),
                            None => match Shape::of(v, m.value) {
                                (Some(_), end) => (Verdict::Grows, end),
                                (None, end) => (Verdict::Conflict, end),
                            },
                        };
                        verdict = verdict.max(vd);
                        end
                    };
                    step = walk::next_member(v, end);
                }
                return (verdict, step.end());
            }
            _ => Verdict::Conflict,
        };
        let end = match kind {
            Kind::Array | Kind::Object => walk::skip(v, i),
            _ => end,
        };
        (verdict, end)
    }

    /// Whether a fixed (running-schema) column of this shape would grow to hold the value at
    /// `i` of `v` (a nested field it does not have yet). Errs on the side of yes: a new nested
    /// field seen only as null adds no column, but counts.
    pub(in crate::encode::parquet) fn grows_with(&self, v: &[u8], i: usize) -> bool {
        self.check(v, i, true).0 == Verdict::Grows
    }

    /// Whether the value at `i` of `v`, for a field without a column, would give it one: it
    /// has a single shape, and a type.
    pub(in crate::encode::parquet) fn makes_column(v: &[u8], i: usize) -> bool {
        Shape::of(v, i).0.and_then(|s| s.typed()).is_some()
    }

    /// Grows this shape to hold the value at `i`, which [checked](Shape::check) as one that
    /// grows it; allocates only for what is new. Returns the index after the value.
    pub(super) fn absorb(&mut self, v: &[u8], i: usize) -> usize {
        match (&mut *self, walk::head(v, i)) {
            (Shape::Unknown, _) => {
                let (shape, end) = Shape::of(v, i);
                *self = shape.unwrap_or(Shape::Unknown);
                end
            }
            (Shape::Int, (Kind::Float, end)) => {
                *self = Shape::Float;
                end
            }
            (Shape::List(elem), (Kind::Array, _)) if **elem == Shape::Unknown => {
                let (shape, end) = Shape::of(v, i);
                *self = shape.unwrap_or(Shape::List(Box::new(Shape::Unknown)));
                end
            }
            (Shape::List(elem), (Kind::Array, _)) => {
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    step = walk::next_element(v, elem.absorb(v, at));
                }
                step.end()
            }
            (Shape::Struct(fields), (Kind::Object, _)) => {
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let end = match find(fields, &m, &mut hint) {
                        Some(at) => fields[at].1.absorb(v, m.value),
                        None => {
                            let (shape, end) = Shape::of(v, m.value);
                            fields.push((m.key().into_owned(), shape.unwrap_or(Shape::Unknown)));
                            end
                        }
                    };
                    step = walk::next_member(v, end);
                }
                step.end()
            }
            _ => walk::skip(v, i),
        }
    }
}

impl Columns {
    /// Learns from one record, the bytes of a checked JSON value: a field seen for the first
    /// time takes this value's shape; a known one grows if it can (only nested fields for a
    /// fixed one), and is left as it is if the value conflicts (that value is rescued when the
    /// record is written). Names in `reserved` are never columns (the coordinates). A value
    /// that is not an object has no fields to be columns: the error says so.
    pub fn observe(&mut self, v: &[u8], reserved: &[&str]) -> Result<(), String> {
        let i = object(v)?;
        let mut step = walk::first_member(v, i);
        let mut hint = 0;
        while let Step::Member(m) = step {
            let end = if m.is_any(reserved) {
                walk::skip(v, m.value)
            } else {
                match find(&self.fields, &m, &mut hint) {
                    Some(at) => {
                        let fixed = at < self.fixed;
                        match self.fields[at].1.check(v, m.value, fixed) {
                            (Verdict::Grows, _) => self.fields[at].1.absorb(v, m.value),
                            (_, end) => end,
                        }
                    }
                    None => {
                        let (shape, end) = Shape::of(v, m.value);
                        if let Some(shape) = shape {
                            self.fields.push((m.key().into_owned(), shape));
                        }
                        end
                    }
                }
            };
            step = walk::next_member(v, end);
        }
        Ok(())
    }

    /// Whether [`observe`](Columns::observe) would grow these columns, as a running schema's
    /// (fixed), for the record `v` (a checked JSON object): a field or nested field with a type
    /// that they do not have. Errs on the side of yes, as [`Shape::grows_with`] does.
    pub(in crate::encode::parquet) fn grow_with(&self, v: &[u8], reserved: &[&str]) -> bool {
        let i = walk::ws(v, 0);
        let mut step = walk::first_member(v, i);
        let mut hint = 0;
        while let Step::Member(m) = step {
            if !m.is_any(reserved) {
                let grows = match find(&self.fields, &m, &mut hint) {
                    Some(at) => self.fields[at].1.grows_with(v, m.value),
                    None => Shape::makes_column(v, m.value),
                };
                if grows {
                    return true;
                }
            }
            step = walk::next_member(v, walk::skip(v, m.value));
        }
        false
    }
}

/// The index where the JSON object `v` (checked JSON) opens; an error naming what it is
/// instead (Parquet columns are an object's fields).
pub fn object(v: &[u8]) -> Result<usize, String> {
    let i = walk::ws(v, 0);
    match walk::head(v, i).0 {
        Kind::Object => Ok(i),
        other => Err(not_an_object(other)),
    }
}

fn not_an_object(kind: Kind) -> String {
    let what = match kind {
        Kind::Array => "array",
        Kind::Str => "string",
        Kind::Int | Kind::Float | Kind::Huge => "number",
        Kind::Bool => "boolean",
        _ => "null",
    };
    format!("the value is a JSON {what}, not an object: Parquet columns are an object's fields")
}
