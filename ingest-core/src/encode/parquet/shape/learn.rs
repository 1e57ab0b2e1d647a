//! Pass 1: learning a batch's columns from its records' bytes, nothing built per record.
//!
//! Pure. Each value is walked once in the common case (it only confirms its column); a value
//! that grows its column (a new nested field, an integer column meeting a double) is walked
//! again to grow it.

use super::{find, Columns, Names, Shape};
use crate::encode::parquet::walk::{self, Kind, Step};

/// What a batch's learning may still add to a schema: `left` fields in all, and each struct
/// (the top level too) up to `width` fields.
pub(in crate::encode::parquet) struct Room {
    pub left: usize,
    pub width: usize,
    /// Which names may be fields.
    pub names: Names,
}

impl Room {
    /// Takes room for `shape` as a new field named `name` beside `siblings` (a struct's; the
    /// top level's with `top`), or says no: a name that may not be a field, or a field over
    /// the caps (counted); its value is then rescued.
    fn take_named(
        &mut self,
        name: &str,
        shape: &Shape,
        siblings: &[(String, Shape)],
        top: bool,
    ) -> bool {
        self.names.allows(name, siblings, top)
            && self.names.allows_shape(shape)
            && self.take(shape, siblings.len())
    }

    /// Takes room for `shape` as a new field beside `siblings` others, or counts it over the
    /// caps (its value is then rescued) and says no.
    fn take(&mut self, shape: &Shape, siblings: usize) -> bool {
        let size = shape.size();
        if siblings < self.width && size <= self.left && shape.widest() <= self.width {
            self.left -= size;
            true
        } else {
            // A field seen only as null loses nothing by having no column.
            if size > 0 {
                over_cap();
            }
            false
        }
    }
}

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
    /// stays one; a struct of `width` fields takes no more); and the index after the value.
    pub(super) fn check(&self, v: &[u8], i: usize, fixed: bool, width: usize) -> (Verdict, usize) {
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
            // Declared types written as text: whether the text reads is found as it is
            // appended (one that does not is rescued then).
            (
                Shape::Decimal { .. } | Shape::Timestamp { .. } | Shape::Date | Shape::Binary,
                Kind::Str,
            ) => Verdict::Same,
            (Shape::Map(value), Kind::Object) => {
                let mut verdict = Verdict::Same;
                let mut step = walk::first_member(v, i);
                while let Step::Member(m) = step {
                    let end = if verdict == Verdict::Conflict {
                        walk::skip(v, m.value)
                    } else {
                        let (vd, end) = value.check(v, m.value, fixed, width);
                        verdict = verdict.max(vd);
                        end
                    };
                    step = walk::next_member(v, end);
                }
                return (verdict, step.end());
            }
            (Shape::Int, Kind::Int) | (Shape::Float, Kind::Int | Kind::Float) => Verdict::Same,
            (Shape::Int, Kind::Float) if !fixed => Verdict::Grows,
            (Shape::List(elem), Kind::Array) => {
                let mut verdict = Verdict::Same;
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    let end = if verdict == Verdict::Conflict {
                        walk::skip(v, at)
                    } else {
                        let (vd, end) = elem.check(v, at, fixed, width);
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
                            Some(at) => fields[at].1.check(v, m.value, fixed, width),
                            None => match Shape::of(v, m.value) {
                                // At its width a struct takes no new field; a null needs none.
                                (Some(Shape::Unknown), end) if fields.len() >= width => {
                                    (Verdict::Same, end)
                                }
                                (Some(_), end) if fields.len() >= width => {
                                    over_cap();
                                    (Verdict::Conflict, end)
                                }
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
    pub(in crate::encode::parquet) fn grows_with(&self, v: &[u8], i: usize, width: usize) -> bool {
        self.check(v, i, true, width).0 == Verdict::Grows
    }

    /// Whether the value at `i` of `v`, for a field without a column, would give it one: it
    /// has a single shape, and a type.
    pub(in crate::encode::parquet) fn makes_column(v: &[u8], i: usize) -> bool {
        Shape::of(v, i).0.and_then(|s| s.typed()).is_some()
    }

    /// Grows this shape to hold the value at `i`, which [checked](Shape::check) as one that
    /// grows it, as far as `room` lets it (what it cannot take, the value's record rescues);
    /// allocates only for what is new. Returns the index after the value.
    pub(super) fn absorb(&mut self, v: &[u8], i: usize, room: &mut Room) -> usize {
        match (&mut *self, walk::head(v, i)) {
            (Shape::Unknown, _) => {
                let (shape, end) = Shape::of(v, i);
                let shape = shape.unwrap_or(Shape::Unknown);
                if room.names.allows_shape(&shape) && room.take(&shape, 0) {
                    *self = shape;
                }
                end
            }
            (Shape::Int, (Kind::Float, end)) => {
                *self = Shape::Float;
                end
            }
            (Shape::List(elem), (Kind::Array, _)) if **elem == Shape::Unknown => {
                let (shape, end) = Shape::of(v, i);
                let shape = shape.unwrap_or(Shape::List(Box::new(Shape::Unknown)));
                if room.names.allows_shape(&shape) && room.take(&shape, 0) {
                    *self = shape;
                }
                end
            }
            (Shape::List(elem), (Kind::Array, _)) => {
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    step = walk::next_element(v, elem.absorb(v, at, room));
                }
                step.end()
            }
            (Shape::Map(value), (Kind::Object, _)) => {
                let mut step = walk::first_member(v, i);
                while let Step::Member(m) = step {
                    step = walk::next_member(v, value.absorb(v, m.value, room));
                }
                step.end()
            }
            (Shape::Struct(fields), (Kind::Object, _)) => {
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let end = match find(fields, &m, &mut hint) {
                        Some(at) => fields[at].1.absorb(v, m.value, room),
                        None => {
                            let (shape, end) = Shape::of(v, m.value);
                            let shape = shape.unwrap_or(Shape::Unknown);
                            let name = m.key();
                            if room.take_named(&name, &shape, fields, false) {
                                fields.push((name.into_owned(), shape));
                            }
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
        let caps = self.caps;
        while let Step::Member(m) = step {
            let end = if m.is_any(reserved) {
                walk::skip(v, m.value)
            } else {
                match self.find(&m, &mut hint) {
                    Some(at) => {
                        let fixed = at < self.fixed;
                        match self.fields[at].1.check(v, m.value, fixed, caps.columns) {
                            (Verdict::Grows, _) => {
                                let left = caps.fields.saturating_sub(self.size());
                                let mut room = Room {
                                    left,
                                    width: caps.columns,
                                    names: self.names.clone(),
                                };
                                let end = self.fields[at].1.absorb(v, m.value, &mut room);
                                self.grew(left - room.left);
                                end
                            }
                            (_, end) => end,
                        }
                    }
                    None => {
                        let (shape, end) = Shape::of(v, m.value);
                        if let Some(shape) = shape {
                            let mut room = Room {
                                left: caps.fields.saturating_sub(self.size()),
                                width: caps.columns,
                                names: self.names.clone(),
                            };
                            let name = m.key();
                            if room.take_named(&name, &shape, &self.fields, true) {
                                self.push(name.into_owned(), shape);
                            }
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
                let grows = match self.find(&m, &mut hint) {
                    Some(at) => {
                        self.fields[at].1.grows_with(v, m.value, self.caps.columns)
                            && self.size() < self.caps.fields
                    }
                    None => {
                        Shape::makes_column(v, m.value)
                            && self.room_for(1)
                            && self.names.allows(&m.key(), &self.fields, true)
                    }
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

/// Counts a field kept in `_rescued_data` because the schema reached its caps.
pub(in crate::encode::parquet) fn over_cap() {
    metrics::counter!("ingest_parquet_fields_over_cap_total").increment(1);
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
