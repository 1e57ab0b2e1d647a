//! Pass 2: splitting a record's bytes into the JSON row its columns decode and the JSON object
//! of what it rescues, copying bytes instead of building values.
//!
//! Pure. A record whose every field fits its column is its own row, byte for byte (the common
//! case: one walk, one copy). Otherwise its row is rebuilt from the fields that fit, and the
//! others go verbatim (compacted) into `_rescued_data`. A null needs no column: one whose field
//! has none is left out of the row (it reads back as the same null), never rescued.

use super::learn::{find, step_end};
use super::{Columns, Shape};
use crate::encode::compact_into;
use crate::encode::parquet::walk::{self, Kind, Step};

/// How a value meets the column it would go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Fit {
    /// As it is.
    Yes,
    /// Once nulls of fields that have no column are left out of it.
    Pruned,
    /// Not at all: the field is rescued.
    No,
}

impl Shape {
    /// How the value at `i` fits a column of this shape (nulls fit anything, integers fit
    /// doubles; an object's repeated key does not fit, since a column holds one value), and the
    /// index after it. `seen` is scratch space for the repeated-key check.
    pub(super) fn fits(&self, v: &[u8], i: usize, seen: &mut Vec<bool>) -> (Fit, usize) {
        let (kind, end) = walk::head(v, i);
        let fit = match (self, kind) {
            (_, Kind::Null) => Fit::Yes,
            (Shape::Bool, Kind::Bool) | (Shape::Str, Kind::Str) => Fit::Yes,
            (Shape::Int, Kind::Int) | (Shape::Float, Kind::Int | Kind::Float) => Fit::Yes,
            (Shape::List(elem), Kind::Array) => {
                let mut fit = Fit::Yes;
                let mut step = walk::first_element(v, i);
                while let Step::Element(at) = step {
                    let (f, end) = elem.fits(v, at, seen);
                    fit = fit.max(f);
                    step = walk::next_element(v, end);
                }
                return (fit, step_end(step));
            }
            (Shape::Struct(fields), Kind::Object) => {
                let base = seen.len();
                seen.resize(base + fields.len(), false);
                let mut fit = Fit::Yes;
                let mut step = walk::first_member(v, i);
                let mut hint = 0;
                while let Step::Member(m) = step {
                    let (f, end) = match find(fields, &m, &mut hint) {
                        Some(at) if seen[base + at] => (Fit::No, walk::skip(v, m.value)),
                        Some(at) => {
                            seen[base + at] = true;
                            fields[at].1.fits(v, m.value, seen)
                        }
                        None => match walk::head(v, m.value) {
                            (Kind::Null, end) => (Fit::Pruned, end),
                            _ => (Fit::No, walk::skip(v, m.value)),
                        },
                    };
                    fit = fit.max(f);
                    step = walk::next_member(v, end);
                }
                seen.truncate(base);
                return (fit, step_end(step));
            }
            _ => Fit::No,
        };
        let end = match kind {
            Kind::Array | Kind::Object => walk::skip(v, i),
            _ => end,
        };
        (fit, end)
    }

    /// Appends the value at `i`, which [fits](Shape::fits) once pruned, without the nulls of
    /// fields that have no column. Returns the index after the value.
    fn copy_pruned(&self, v: &[u8], i: usize, out: &mut Vec<u8>) -> usize {
        match (self, walk::head(v, i).0) {
            (Shape::List(elem), Kind::Array) => {
                out.push(b'[');
                let mut step = walk::first_element(v, i);
                let mut first = true;
                while let Step::Element(at) = step {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    step = walk::next_element(v, elem.copy_pruned(v, at, out));
                }
                out.push(b']');
                step_end(step)
            }
            (Shape::Struct(fields), Kind::Object) => {
                out.push(b'{');
                let mut step = walk::first_member(v, i);
                let (mut first, mut hint) = (true, 0);
                while let Step::Member(m) = step {
                    let end = match find(fields, &m, &mut hint) {
                        None => walk::skip(v, m.value), // a null (it fits once pruned)
                        Some(at) => {
                            if !std::mem::take(&mut first) {
                                out.push(b',');
                            }
                            out.extend_from_slice(&v[m.start..m.value]);
                            fields[at].1.copy_pruned(v, m.value, out)
                        }
                    };
                    step = walk::next_member(v, end);
                }
                out.push(b'}');
                step_end(step)
            }
            _ => {
                let end = walk::skip(v, i);
                out.extend_from_slice(&v[i..end]);
                end
            }
        }
    }
}

/// What happens to one top-level field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Keep,
    Prune(usize),
    Drop,
    Rescue,
}

/// Scratch space reused from record to record.
#[derive(Debug, Default)]
pub struct Scratch {
    seen: Vec<bool>,
    parts: Vec<(usize, usize, usize, Part)>,
}

impl Columns {
    /// Appends to `row` the JSON object of the fields of `v` (a checked JSON object, as
    /// [`Columns::observe`] saw it) that fit their columns, and replaces `rescued` with the JSON
    /// object of those that do not (or are `reserved` names), empty when none. A record that
    /// repeats a top-level key is rescued whole: a row holds one value per column.
    pub fn write_row(
        &self,
        v: &[u8],
        reserved: &[&str],
        scratch: &mut Scratch,
        row: &mut Vec<u8>,
        rescued: &mut Vec<u8>,
    ) {
        rescued.clear();
        let Scratch { seen, parts } = scratch;
        parts.clear();
        seen.clear();
        seen.resize(self.fields.len(), false);
        let open = walk::ws(v, 0);
        let (mut repeated, mut all_kept) = (false, true);
        let mut step = walk::first_member(v, open);
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
                            (Fit::Yes, end) => (Part::Keep, end),
                            (Fit::Pruned, end) => (Part::Prune(at), end),
                            (Fit::No, end) => (Part::Rescue, end),
                        }
                    }
                    None => match walk::head(v, m.value) {
                        (Kind::Null, end) => (Part::Drop, end),
                        _ => (Part::Rescue, walk::skip(v, m.value)),
                    },
                }
            };
            all_kept &= part == Part::Keep;
            parts.push((m.start, m.value, end, part));
            step = walk::next_member(v, end);
        }
        if repeated {
            row.extend_from_slice(b"{}");
            compact_into(rescued, &v[open..step_end(step)]);
            return;
        }
        if all_kept {
            row.extend_from_slice(&v[open..step_end(step)]);
            return;
        }
        row.push(b'{');
        let mut row_empty = true;
        for &(start, value, end, part) in parts.iter() {
            match part {
                Part::Drop => {}
                Part::Rescue => {
                    rescued.push(if rescued.is_empty() { b'{' } else { b',' });
                    compact_into(rescued, &v[start..end]);
                }
                Part::Keep | Part::Prune(_) => {
                    if !std::mem::take(&mut row_empty) {
                        row.push(b',');
                    }
                    if let Part::Prune(at) = part {
                        row.extend_from_slice(&v[start..value]);
                        self.fields[at].1.copy_pruned(v, value, row);
                    } else {
                        row.extend_from_slice(&v[start..end]);
                    }
                }
            }
        }
        row.push(b'}');
        if !rescued.is_empty() {
            rescued.push(b'}');
        }
    }
}
