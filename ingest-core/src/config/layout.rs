//! Where under `<topic>/` a file goes: `INGEST_PARTITION_BY=hour|day`, or a path template
//! (`INGEST_PATH_TEMPLATE`) with time parts and top-level fields of the record, Hive style.
//!
//! Pure. Invariants: every directory a layout makes is `name=value` under `<topic>/` (so readers
//! find the partition columns, and no directory is hidden from them by a leading `_` or `.`);
//! a value is made safe for object keys (ASCII outside letters, digits, `.`, `_` and `-` is
//! percent-encoded, as Hive and Spark do, and both read it back, and so is non-ASCII that some
//! store refuses or some reader mangles); every key fits every store (a directory at most 255
//! bytes, a key at most 1,024: a value too long is cut and keeps a digest of the whole); a
//! missing value is `__HIVE_DEFAULT_PARTITION__`, which Spark and DuckDB read as null.

use super::parse::{choice, ConfigError};
use super::time::Granularity;

/// What a record's field gives when it is missing, null, empty, an object or an array.
pub const MISSING: &str = "__HIVE_DEFAULT_PARTITION__";

/// The directories under `<topic>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `dt=YYYY-MM-DD/hour=HH` or `dt=YYYY-MM-DD`.
    Time(Granularity),
    Template(PathTemplate),
}

impl Layout {
    /// The partition columns readers get, in order.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Layout::Time(g) => g.columns().iter().map(|c| c.to_string()).collect(),
            Layout::Template(t) => t.segments.iter().map(|s| s.name.clone()).collect(),
        }
    }

    /// Whether a record's own fields pick its directory (not only its time).
    pub fn reads_fields(&self) -> bool {
        match self {
            Layout::Time(_) => false,
            Layout::Template(t) => t
                .segments
                .iter()
                .flat_map(|s| &s.parts)
                .any(|p| matches!(p, Part::Field(_))),
        }
    }

    /// The setting's words, as claims record them: `hour`, `day` or the template.
    pub fn name(&self) -> &str {
        match self {
            Layout::Time(Granularity::Hour) => "hour",
            Layout::Time(Granularity::Day) => "day",
            Layout::Template(t) => &t.text,
        }
    }

    /// The layout a claim's words name (see [`Layout::name`]).
    pub fn named(name: &str) -> Result<Layout, String> {
        match name {
            "hour" => Ok(Layout::Time(Granularity::Hour)),
            "day" => Ok(Layout::Time(Granularity::Day)),
            template => PathTemplate::parse(template).map(Layout::Template),
        }
    }
}

/// A parsed `INGEST_PATH_TEMPLATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// As given (trailing `/` removed).
    pub text: String,
    /// The directories after `{topic}/`.
    pub segments: Vec<Segment>,
    /// The most bytes a field's value takes, escaped ([`PathTemplate::field_bytes`]).
    pub field_bytes: usize,
}

/// One `name=value` directory of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub parts: Vec<Part>,
}

/// A piece of a directory's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    /// `YYYY-MM-DD`.
    Date,
    Year,
    Month,
    Day,
    Hour,
    /// `{record.<name>}`: a top-level field of the record's JSON value.
    Field(String),
}

const PLACEHOLDERS: &str =
    "{topic} (first), {date}, {year}, {month}, {day}, {hour} or {record.<field>}";

impl PathTemplate {
    /// Parses and checks a template; `Err` says what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<PathTemplate, String> {
        let text = text.trim().trim_end_matches('/');
        let Some(rest) = text.strip_prefix("{topic}/") else {
            return Err(
                "a template starting with {topic}/ (readers watch <root>/<topic>/), e.g. {topic}/region={record.region}/dt={date}/hour={hour}".into(),
            );
        };
        let mut segments: Vec<Segment> = Vec::new();
        for dir in rest.split('/') {
            let Some((name, value)) = dir.split_once('=') else {
                return Err(format!(
                    "directories of the form name=value after {{topic}} (Hive style, so readers get the columns), not {dir:?}"
                ));
            };
            let name_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok {
                return Err(format!(
                    "a column name of letters, digits and _ starting with a letter before = (not {name:?})"
                ));
            }
            if segments.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
                return Err(format!("each column once (column {name} appears twice)"));
            }
            let parts = parts(value)?;
            if parts.is_empty() {
                return Err(format!("a value after {name}= (a placeholder or text)"));
            }
            segments.push(Segment {
                name: name.to_string(),
                parts,
            });
        }
        let all: Vec<&Part> = segments.iter().flat_map(|s| &s.parts).collect();
        let has = |p: &Part| all.contains(&p);
        if has(&Part::Hour) && !(has(&Part::Date) || has(&Part::Day)) {
            return Err("{hour} together with {date} (or {day}): an hour alone would put every day's hour in one directory".into());
        }
        let field_bytes = keys::field_bytes(&segments)?;
        Ok(PathTemplate {
            text: text.to_string(),
            segments,
            field_bytes,
        })
    }

    /// Appends the directories (after `<topic>/`) for time `ts_ms` and `field` (a top-level
    /// field's value as text, `None` when missing) to `out`.
    pub fn render<'a>(
        &self,
        ts_ms: i64,
        mut field: impl FnMut(&str) -> Option<std::borrow::Cow<'a, str>>,
        out: &mut String,
    ) {
        use std::fmt::Write;
        let (y, m, d, h) = civil(ts_ms);
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&s.name);
            out.push('=');
            let start = out.len();
            for p in &s.parts {
                let _ = match p {
                    Part::Literal(l) => {
                        out.push_str(l);
                        Ok(())
                    }
                    Part::Date => write!(out, "{y:04}-{m:02}-{d:02}"),
                    Part::Year => write!(out, "{y:04}"),
                    Part::Month => write!(out, "{m:02}"),
                    Part::Day => write!(out, "{d:02}"),
                    Part::Hour => write!(out, "{h:02}"),
                    Part::Field(name) => {
                        match field(name).filter(|v| !v.is_empty()) {
                            Some(v) => escape_into(&v, self.field_bytes, out),
                            None => out.push_str(MISSING),
                        }
                        Ok(())
                    }
                };
            }
            if out.len() == start {
                out.push_str(MISSING);
            }
        }
    }
}

fn parts(value: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let Some(end) = after.find('}') else {
                return Err(format!("a closing }} after {{{after}"));
            };
            let name = &after[..end];
            parts.push(match name {
                "date" => Part::Date,
                "year" => Part::Year,
                "month" => Part::Month,
                "day" => Part::Day,
                "hour" => Part::Hour,
                field if field.starts_with("record.") => {
                    let f = &field["record.".len()..];
                    if f.is_empty() || f.contains(['.', '{', '/']) {
                        return Err(format!(
                            "{{record.<field>}} naming one top-level field (not {{{field}}})"
                        ));
                    }
                    Part::Field(f.to_string())
                }
                other => return Err(format!("placeholders {PLACEHOLDERS}, not {{{other}}}")),
            });
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let literal = &rest[..end];
            if let Some(bad) = literal
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return Err(format!(
                    "text of letters, digits, '.', '_' and '-' between placeholders ({bad:?} is not allowed in object keys everywhere)"
                ));
            }
            parts.push(Part::Literal(literal.to_string()));
            rest = &rest[end..];
        }
    }
    Ok(parts)
}

/// (year, month, day, hour) in UTC of a time in ms since the epoch.
fn civil(ts_ms: i64) -> (i64, u32, u32, i64) {
    let secs = ts_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let t = chrono::DateTime::from_timestamp(days * 86_400, 0).unwrap_or_default();
    use chrono::Datelike;
    (i64::from(t.year()), t.month(), t.day(), hour)
}

/// `INGEST_PARTITION_BY` (default hour) or `INGEST_PATH_TEMPLATE`; not both.
pub(super) fn layout(
    partition_by: Option<String>,
    template: Option<String>,
) -> Result<Layout, ConfigError> {
    let Some(t) = template else {
        let g = choice(
            "PARTITION_BY",
            partition_by,
            &[("hour", Granularity::Hour), ("day", Granularity::Day)],
            Granularity::Hour,
        )?;
        return Ok(Layout::Time(g));
    };
    if let Some(p) = partition_by {
        return Err(ConfigError::invalid(
            "PARTITION_BY",
            &p,
            "to be unset when INGEST_PATH_TEMPLATE is set (the template's {date} and {hour} choose the directories)",
        ));
    }
    PathTemplate::parse(&t)
        .map(Layout::Template)
        .map_err(|why| ConfigError::invalid("PATH_TEMPLATE", &t, why))
}

mod keys;
pub use keys::{
    escape_into, MAX_DEAD_LETTER_PREFIX_BYTES, MAX_KEY_BYTES, MAX_SEGMENT_BYTES,
    MAX_STORAGE_PREFIX_BYTES, MAX_TOPIC_BYTES,
};

#[cfg(test)]
mod tests;
