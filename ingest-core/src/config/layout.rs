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

/// The longest object key every store takes (S3 and Azure Blob: 1,024 bytes).
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest path segment every store takes (file systems: 255 bytes a name).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The longest topic: its files are named `<topic>+<partition>+<20 digits>.ndjson.gz`, one
/// segment of at most [`MAX_SEGMENT_BYTES`].
pub const MAX_TOPIC_BYTES: usize =
    MAX_SEGMENT_BYTES - "+2147483647+".len() - 20 - ".ndjson.gz".len();
/// The longest `INGEST_DEAD_LETTER_PREFIX`.
pub const MAX_DEAD_LETTER_PREFIX_BYTES: usize = 64;
/// What a key holds besides the template's directories, at most: the dead-letter prefix, the
/// topic directory and the file name, with their slashes. The field budget is computed from it
/// (not from this deployment's topic), so a claim's names follow from its template alone.
const KEY_BYTES_BESIDES_DIRS: usize =
    MAX_DEAD_LETTER_PREFIX_BYTES + 1 + MAX_TOPIC_BYTES + 1 + 1 + MAX_SEGMENT_BYTES;
/// A cut value ends with `~` and 16 hex digits of its whole value's SHA-256, so two values cut
/// to the same text keep apart (`~` itself is always percent-encoded in a value).
const CUT_MARK_BYTES: usize = 17;
/// The least room a template may leave a field's value.
const MIN_FIELD_BYTES: usize = 2 * CUT_MARK_BYTES;

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
        let field_bytes = field_bytes(&segments)?;
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

/// The most bytes each `{record.<field>}` of a template may take, escaped: its share of what a
/// key leaves the directories, and of what its directory leaves after the directory's name and
/// other parts. `Err` when a template leaves a field too little, or a directory is too long.
fn field_bytes(segments: &[Segment]) -> Result<usize, String> {
    let fixed = |s: &Segment| {
        s.name.len()
            + 1
            + s.parts
                .iter()
                .map(|p| match p {
                    Part::Literal(l) => l.len(),
                    Part::Date => "YYYY-MM-DD".len(),
                    Part::Year => 4,
                    Part::Month | Part::Day | Part::Hour => 2,
                    Part::Field(_) => 0,
                })
                .sum::<usize>()
    };
    let fields = |s: &Segment| {
        s.parts
            .iter()
            .filter(|p| matches!(p, Part::Field(_)))
            .count()
    };
    let dirs_fixed: usize = segments.iter().map(|s| fixed(s) + 1).sum();
    let all_fields: usize = segments.iter().map(fields).sum();
    let too_long = || {
        format!(
            "directories of at most {MAX_SEGMENT_BYTES} bytes each and {} in all (keys are at most {MAX_KEY_BYTES} bytes), each {{record.<field>}} left at least {MIN_FIELD_BYTES}",
            MAX_KEY_BYTES - KEY_BYTES_BESIDES_DIRS
        )
    };
    let mut budget = (MAX_KEY_BYTES - KEY_BYTES_BESIDES_DIRS)
        .checked_sub(dirs_fixed)
        .ok_or_else(too_long)?;
    if let Some(share) = budget.checked_div(all_fields) {
        budget = share;
    }
    for s in segments {
        let room = MAX_SEGMENT_BYTES
            .checked_sub(fixed(s))
            .ok_or_else(too_long)?;
        if let Some(share) = room.checked_div(fields(s)) {
            budget = budget.min(share);
        }
    }
    if all_fields > 0 && budget < MIN_FIELD_BYTES {
        return Err(too_long());
    }
    Ok(budget)
}

/// Whether `c` goes into a key as it is: ASCII letters, digits, `.`, `_` and `-`, and
/// non-ASCII that stores take and readers keep (not C1 controls, private use, non-characters,
/// invisible formatting and bidirectional controls, or line and paragraph separators).
fn kept(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    }
    let cp = u32::from(c);
    !matches!(cp,
        0x80..=0x9F
        | 0xAD
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x206F
        | 0xE000..=0xF8FF
        | 0xFDD0..=0xFDEF
        | 0xFEFF
        | 0xFFF0..=0xFFFF
        | 0xF0000..)
        && cp & 0xFFFE != 0xFFFE
}

/// Appends `c` escaped: as it is when [`kept`]; else `%XX` for each of its UTF-8 bytes. (For
/// non-ASCII that is what DuckDB decodes, and refuses anything else, failing the whole query;
/// Spark decodes each `%XX` as one character, so it reads such a value garbled but reads it.)
fn escape_char(c: char, out: &mut String) {
    use std::fmt::Write;
    if kept(c) {
        out.push(c);
    } else {
        let mut utf8 = [0; 4];
        for b in c.encode_utf8(&mut utf8).bytes() {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Appends `value` escaped ([`kept`] characters as they are, others percent-encoded; a
/// trailing `.` too, which Azure's hierarchical namespace drops) in at most `max` bytes. A value
/// longer than that escaped is cut at a character and ends with `~` and 16 hex digits of its
/// SHA-256, so different values never share a directory; a value that fits reads back as itself.
pub fn escape_into(value: &str, max: usize, out: &mut String) {
    use sha2::Digest;
    use std::fmt::Write;
    let start = out.len();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '.' && chars.peek().is_none() {
            out.push_str("%2E");
        } else {
            escape_char(c, out);
        }
    }
    if out.len() - start <= max {
        return;
    }
    let keep = max.saturating_sub(CUT_MARK_BYTES);
    out.truncate(start);
    for c in value.chars() {
        let before = out.len();
        escape_char(c, out);
        if out.len() - start > keep {
            out.truncate(before);
            break;
        }
    }
    let digest = sha2::Sha256::digest(value.as_bytes());
    out.push('~');
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const T: i64 = 1_709_214_356_789; // 2024-02-29T13:45:56.789Z

    fn render(template: &str, fields: &[(&str, &str)]) -> String {
        let t = PathTemplate::parse(template).unwrap();
        let mut out = String::new();
        t.render(
            T,
            |name| {
                fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| Cow::Owned(v.to_string()))
            },
            &mut out,
        );
        out
    }

    #[test]
    fn a_template_renders_time_parts_and_fields_hive_style() {
        assert_eq!(
            render(
                "{topic}/region={record.region}/dt={date}/hour={hour}",
                &[("region", "eu")]
            ),
            "region=eu/dt=2024-02-29/hour=13"
        );
        assert_eq!(
            render("{topic}/ym={year}{month}/d=day-{day}/", &[]),
            "ym=202402/d=day-29"
        );
    }

    #[test]
    fn field_values_are_made_safe_for_object_keys_and_missing_ones_are_hives_null() {
        assert_eq!(
            render("{topic}/r={record.r}", &[("r", "eu/west 1?=%")]),
            "r=eu%2Fwest%201%3F%3D%25"
        );
        assert_eq!(
            render("{topic}/r={record.r}", &[("r", "ünï.c_o-de")]),
            "r=ünï.c_o-de"
        );
        assert_eq!(render("{topic}/r={record.r}", &[]), format!("r={MISSING}"));
        assert_eq!(
            render("{topic}/r={record.r}", &[("r", "")]),
            format!("r={MISSING}")
        );
        assert_eq!(
            render("{topic}/r={record.r}", &[("r", "..")]),
            "r=.%2E",
            "never a whole segment, and no trailing dot (Azure's hierarchical namespace drops it)"
        );
    }

    #[test]
    fn code_points_a_store_refuses_or_a_reader_mangles_are_percent_encoded() {
        for (value, rendered) in [
            ("\u{81}", "%C2%81"),          // C1 control
            ("\u{7f}", "%7F"),             // DEL
            ("\u{e000}", "%EE%80%80"),     // private use
            ("\u{fffe}", "%EF%BF%BE"),     // non-character
            ("\u{1fffe}", "%F0%9F%BF%BE"), // non-character, plane 1
            ("\u{fdd0}", "%EF%B7%90"),     // non-character
            ("a\u{202e}b", "a%E2%80%AEb"), // bidi override
            ("\u{200b}", "%E2%80%8B"),     // zero width space
            ("\u{2028}", "%E2%80%A8"),     // line separator
            ("\u{feff}", "%EF%BB%BF"),     // byte order mark
            ("\u{f0000}", "%F3%B0%80%80"), // supplementary private use
            ("a.", "a%2E"),
            ("日本語 ü", "日本語%20ü"), // kept: reads back as itself
            ("\u{1f600}", "\u{1f600}"), // emoji: kept
        ] {
            assert_eq!(
                render("{topic}/r={record.r}", &[("r", value)]),
                format!("r={rendered}"),
                "{value:?}"
            );
        }
    }

    /// The directories of one template checked against the stores' limits.
    fn within_limits(template: &str, dirs: &str) {
        for segment in dirs.split('/') {
            assert!(
                segment.len() <= MAX_SEGMENT_BYTES,
                "{template}: {segment:?}"
            );
        }
        assert!(
            dirs.len() + KEY_BYTES_BESIDES_DIRS <= MAX_KEY_BYTES,
            "{template}: {} bytes",
            dirs.len()
        );
    }

    #[test]
    fn every_value_fits_every_store_and_a_cut_one_keeps_a_digest_of_the_whole() {
        let hostile = [
            "/".repeat(300),
            "x".repeat(5_000),
            "é".repeat(1_000),
            "\u{e000}".repeat(400),
            "%".repeat(255),
            format!("{}\u{81}", "a".repeat(250)),
        ];
        for template in [
            "{topic}/region={record.region}/dt={date}/hour={hour}",
            "{topic}/a={record.a}/b={record.a}-{record.a}/c={record.a}/dt={date}",
            "{topic}/a={record.a}{record.region}/dt={date}",
        ] {
            for v in &hostile {
                let dirs = render(template, &[("region", v), ("a", v)]);
                within_limits(template, &dirs);
            }
        }
        let t =
            PathTemplate::parse("{topic}/region={record.region}/dt={date}/hour={hour}").unwrap();
        assert_eq!(t.field_bytes, MAX_SEGMENT_BYTES - "region=".len());
        let value = "x".repeat(t.field_bytes);
        assert_eq!(
            render(&t.text, &[("region", &value)]),
            format!("region={value}/dt=2024-02-29/hour=13"),
            "a value that fits is itself"
        );
        let (a, b) = (format!("{value}a"), format!("{value}b"));
        let (cut_a, cut_b) = (
            render(&t.text, &[("region", &a)]),
            render(&t.text, &[("region", &b)]),
        );
        assert_ne!(cut_a, cut_b, "cut values keep apart");
        let segment = cut_a.split('/').next().unwrap();
        assert_eq!(segment.len(), "region=".len() + t.field_bytes);
        let (kept, mark) = segment.rsplit_once('~').unwrap();
        assert!(value.starts_with(&kept["region=".len()..]));
        assert!(
            mark.len() == 16 && mark.bytes().all(|b| b.is_ascii_hexdigit()),
            "{mark}"
        );
        // A cut never splits an escape.
        let slashes = render(&t.text, &[("region", &"/".repeat(300))]);
        let kept = slashes
            .split('/')
            .next()
            .unwrap()
            .split_once('~')
            .unwrap()
            .0;
        assert!(kept["region=".len()..].len().is_multiple_of(3), "{kept}");
    }

    #[test]
    fn a_template_leaving_a_field_too_little_room_is_refused() {
        let many: String = (0..20).map(|i| format!("/f{i}={{record.f{i}}}")).collect();
        let e = PathTemplate::parse(&format!("{{topic}}{many}")).unwrap_err();
        assert!(e.contains("at most 255 bytes each"), "{e}");
        let long = format!("{{topic}}/x={}{{record.x}}", "a".repeat(240));
        assert!(PathTemplate::parse(&long).is_err());
        let no_field = format!("{{topic}}/x={}", "a".repeat(300));
        assert!(PathTemplate::parse(&no_field).is_err());
    }

    #[test]
    fn bad_templates_say_what_to_write() {
        for (bad, says) in [
            ("region={record.region}/dt={date}", "starting with {topic}/"),
            ("{topic}/{date}", "name=value"),
            ("{topic}/dt={date}/hour={hour}/x={bogus}", "not {bogus}"),
            ("{topic}/r={record.a.b}", "one top-level field"),
            ("{topic}/r={record.}", "one top-level field"),
            ("{topic}/r={record.r", "a closing }"),
            ("{topic}/r=a b", "not allowed in object keys"),
            ("{topic}/_r={date}", "starting with a letter"),
            ("{topic}/dt={date}/DT={day}", "each column once"),
            ("{topic}/hour={hour}", "{hour} together with {date}"),
            ("{topic}/x=", "a value after x="),
            ("{topic}//x={date}", "name=value"),
        ] {
            let e = PathTemplate::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_template_and_partition_by_are_one_choice() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(layout(None, None), Ok(Layout::Time(Granularity::Hour)));
        assert_eq!(
            layout(some("day"), None),
            Ok(Layout::Time(Granularity::Day))
        );
        let e = layout(some("day"), some("{topic}/dt={date}")).unwrap_err();
        assert!(
            e.to_string().contains("unset when INGEST_PATH_TEMPLATE"),
            "{e}"
        );
        let t = layout(None, some("{topic}/region={record.region}/dt={date}")).unwrap();
        assert_eq!(t.columns(), ["region", "dt"]);
        assert!(t.reads_fields());
        assert_eq!(Layout::named(t.name()), Ok(t));
        assert!(!Layout::Time(Granularity::Day).reads_fields());
        let e = layout(None, some("{topic}/x={y}")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("INGEST_PATH_TEMPLATE=\"{topic}/x={y}\" is invalid"),
            "{e}"
        );
    }
}
