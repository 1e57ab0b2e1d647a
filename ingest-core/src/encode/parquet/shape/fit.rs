//! Pass 2: which of a record's top-level fields go in their columns and which are rescued.
//!
//! Pure, and reads bytes only. A field fits when its value does, at every depth (nulls fit
//! anything, integers fit doubles; an object's member without a field fits when it is null,
//! since it reads back as the same null); a field that does not fit goes verbatim (compacted)
//! into `_rescued_data`. A null needs no column: one whose field has none is dropped, never
//! rescued.

use super::learn::{find, step_end};
use super::{Columns, Shape};
use crate::encode::compact_into;
use crate::encode::parquet::walk::{self, Kind, Step};

impl Shape {
    /// Whether the value at `i` fits a column of this shape (an object's repeated key does not:
    /// a column holds one value), and the index after it. `seen` is scratch space for the
    /// repeated-key check.
    pub(crate) fn fits(&self, v: &[u8], i: usize, seen: &mut Vec<bool>) -> (bool, usize) {
        let (kind, end) = walk::head(v, i);
        let fit = match (self, kind) {
            (_, Kind::Null) => true,
            (Shape::Bool, Kind::Bool) | (Shape::Str, Kind::Str) => true,
            (Shape::Int, Kind::Int) | (Shape::Float, Kind::Int | Kind::Float) => true,
            (Shape::List(elem), Kind::Array) => {
                let mut fit = true;
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    let end = if fit {
                        let (f, end) = elem.fits(v, at, seen);
                        fit = f;
                        end
                    } else {
                        walk::skip(v, at)
                    };
                    step = walk::next_element(v, end);
                }
                return (fit, step_end(step));
            }
            (Shape::Struct(fields), Kind::Object) => {
                let base = seen.len();
                seen.resize(base + fields.len(), false);
                let mut fit = true;
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let end = match find(fields, &m, &mut hint) {
                        Some(at) if fit && !seen[base + at] => {
                            seen[base + at] = true;
                            let (f, end) = fields[at].1.fits(v, m.value, seen);
                            fit = f;
                            end
                        }
                        None if fit && walk::head(v, m.value).0 == Kind::Null => {
                            walk::skip(v, m.value)
                        }
                        _ => {
                            fit = false;
                            walk::skip(v, m.value)
                        }
                    };
                    step = walk::next_member(v, end);
                }
                seen.truncate(base);
                return (fit, step_end(step));
            }
            _ => false,
        };
        let end = match kind {
            Kind::Array | Kind::Object => walk::skip(v, i),
            _ => end,
        };
        (fit, end)
    }
}

/// What happens to one top-level field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Into the column at this index.
    Keep(usize),
    /// A null without a column: nothing to write.
    Drop,
    /// Into `_rescued_data`.
    Rescue,
}

/// One top-level field of a record: where its member and value start and end, what happens
/// to it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub start: usize,
    pub value: usize,
    pub end: usize,
    pub part: Part,
}

/// Scratch space reused from record to record: the last split's fields.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) seen: Vec<bool>,
    pub fields: Vec<Field>,
}

impl Columns {
    /// Splits `v` (a checked JSON object, as [`Columns::observe`] saw it) into its top-level
    /// fields (in `scratch.fields`) and what happens to each: `reserved` names are rescued.
    /// Returns `false` for a record that repeats a top-level key: a row holds one value per
    /// column, so all of it is rescued.
    pub fn split(&self, v: &[u8], reserved: &[&str], scratch: &mut Scratch) -> bool {
        let Scratch { seen, fields } = scratch;
        fields.clear();
        seen.clear();
        seen.resize(self.fields.len(), false);
        let mut repeated = false;
        let mut step = walk::first_member(v, walk::ws(v, 0));
        let mut hint = 0;
        while let Step::Member(m) = step {
            let (part, end) = if reserved.iter().any(|r| m.is(r)) {
                (Part::Rescue, walk::skip(v, m.value))
            } else {
                match find(&self.fields, &m, &mut hint) {
                    Some(at) if seen[at] => {
                        repeated = true;
                        (Part::Rescue, walk::skip(v, m.value))
                    }
                    Some(at) => {
                        seen[at] = true;
                        match self.fields[at].1.fits(v, m.value, seen) {
                            (true, end) => (Part::Keep(at), end),
                            (false, end) => (Part::Rescue, end),
                        }
                    }
                    None => match walk::head(v, m.value) {
                        (Kind::Null, end) => (Part::Drop, end),
                        _ => (Part::Rescue, walk::skip(v, m.value)),
                    },
                }
            };
            fields.push(Field {
                start: m.start,
                value: m.value,
                end,
                part,
            });
            step = walk::next_member(v, end);
        }
        !repeated
    }
}

/// Appends to `out` the JSON object of the rescued fields of the last [`Columns::split`] of
/// `v` (all of `v` when it repeated a key), compacted; nothing when none are.
pub fn rescued(v: &[u8], scratch: &Scratch, whole: bool, out: &mut Vec<u8>) {
    if whole {
        compact_into(out, v);
        return;
    }
    for f in scratch.fields.iter().filter(|f| f.part == Part::Rescue) {
        out.push(if out.is_empty() { b'{' } else { b',' });
        compact_into(out, &v[f.start..f.end]);
    }
    if !out.is_empty() {
        out.push(b'}');
    }
}
