use std::borrow::Cow;

use super::keys::KEY_BYTES_BESIDES_DIRS;
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
    let t = PathTemplate::parse("{topic}/region={record.region}/dt={date}/hour={hour}").unwrap();
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
