use super::*;

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    zigzag(s.len() as i64, out);
    out.extend_from_slice(s.as_bytes());
}

fn decode(schema: &str, datum: &[u8]) -> Result<String, DecodeError> {
    let schema = Schema::parse(schema, &[]).expect("schema parses");
    let mut out = Vec::new();
    to_json(&schema, datum, &mut out, 1 << 20)?;
    Ok(String::from_utf8(out).expect("UTF-8"))
}

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},
  {"name":"note","type":["null","string"]},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"day","type":{"type":"int","logicalType":"date"}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"attrs","type":{"type":"map","values":"int"}},
  {"name":"raw","type":"bytes"},
  {"name":"next","type":["null","Order"]}
]}"#;

fn order(id: i64, next: Option<i64>, out: &mut Vec<u8>) {
    zigzag(id, out);
    zigzag(1, out); // union branch 1: string
    string("fragile \"box\"", out);
    zigzag(1, out); // PAID
    zigzag(2, out); // decimal: 2 bytes
    out.extend_from_slice(&(-12345i16).to_be_bytes());
    zigzag(1_765_000_000_123, out);
    zigzag(20_000, out);
    zigzag(-2, out); // a block of 2 items, with its byte size
    zigzag(4, out);
    string("a", out);
    string("b", out);
    zigzag(0, out);
    zigzag(1, out);
    string("k", out);
    zigzag(-7, out);
    zigzag(0, out);
    zigzag(3, out);
    out.extend_from_slice(&[0, 1, 2]);
    match next {
        None => zigzag(0, out),
        Some(n) => {
            zigzag(1, out);
            order(n, None, out);
        }
    }
}

#[test]
fn a_record_decodes_to_the_documented_json() {
    let mut datum = Vec::new();
    order(7, Some(8), &mut datum);
    let json = decode(ORDER, &datum).expect("decodes");
    let inner = r#"{"id":8,"note":"fragile \"box\"","status":"PAID","price":"-123.45","at":"2025-12-06T05:46:40.123Z","day":"2024-10-04","tags":["a","b"],"attrs":{"k":-7},"raw":"AAEC","next":null}"#;
    let expected = inner.replacen(r#""id":8"#, r#""id":7"#, 1).replacen(
        r#""next":null}"#,
        &format!(r#""next":{inner}}}"#),
        1,
    );
    assert_eq!(json, expected);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(parsed["next"]["id"], 8);
}

#[test]
fn a_short_or_long_datum_is_refused_with_its_place() {
    let mut datum = Vec::new();
    order(7, None, &mut datum);
    let e = decode(ORDER, &datum[..datum.len() - 3]).unwrap_err();
    assert_eq!(e.at, "raw", "{e}");
    datum.push(0);
    let e = decode(ORDER, &datum).unwrap_err();
    assert!(e.problem.contains("1 bytes are left"), "{e}");
}

#[test]
fn bad_branches_enums_and_booleans_are_refused() {
    assert!(decode(r#"["null","int"]"#, &[4])
        .unwrap_err()
        .problem
        .contains("union branch 2"));
    let e = decode(r#"{"type":"enum","name":"E","symbols":["A"]}"#, &[2]).unwrap_err();
    assert!(e.problem.contains("enum index 1"), "{e}");
    assert!(decode(r#""boolean""#, &[2]).is_err());
    assert!(decode(r#""string""#, &[4, 0xff, 0xfe])
        .unwrap_err()
        .problem
        .contains("UTF-8"));
    assert!(
        decode(r#""int""#, &[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err(),
        "past i32"
    );
}

#[test]
fn a_block_of_countless_nulls_stops_at_the_limit() {
    let schema = Schema::parse(r#"{"type":"array","items":"null"}"#, &[]).unwrap();
    let mut datum = Vec::new();
    zigzag(1 << 40, &mut datum);
    let mut out = Vec::new();
    let e = to_json(&schema, &datum, &mut out, 1000).unwrap_err();
    assert!(e.problem.contains("INGEST_MAX_RECORD_BYTES"), "{e}");
    assert!(out.is_empty(), "nothing is left behind");
}

#[test]
fn recursion_deeper_than_json_readers_take_is_refused() {
    let schema = r#"{"type":"record","name":"L","fields":[{"name":"n","type":["null","L"]}]}"#;
    let datum: Vec<u8> = std::iter::repeat_n(2u8, 200).chain([0]).collect();
    let e = decode(schema, &datum).unwrap_err();
    assert!(e.problem.contains("deeper than 128"), "{e}");
    let shallow: Vec<u8> = std::iter::repeat_n(2u8, 100).chain([0]).collect();
    assert!(decode(schema, &shallow).is_ok());
}

#[test]
fn logical_values_as_text() {
    assert_eq!(time::decimal(&[0x00, 0x01], 2), "0.01");
    assert_eq!(time::decimal(&[0xff], 0), "-1");
    assert_eq!(time::decimal(&[], 3), "0.000");
    let big = [0x7f; 20]; // beyond i128
    let text = time::decimal(&big, 4);
    assert!(text.len() > 40 && text.contains('.'), "{text}");
    use schema::Unit;
    assert_eq!(
        time::timestamp(-1, Unit::Millis, true).as_deref(),
        Some("1969-12-31T23:59:59.999Z")
    );
    assert_eq!(
        time::timestamp(1, Unit::Micros, false).as_deref(),
        Some("1970-01-01T00:00:00.000001")
    );
    assert_eq!(
        time::timestamp(i64::MAX, Unit::Millis, true),
        None,
        "past year 9999: the number"
    );
    assert_eq!(
        time::time_of_day(3_600_001, Unit::Millis).as_deref(),
        Some("01:00:00.001")
    );
    assert_eq!(time::date(-1).as_deref(), Some("1969-12-31"));
    assert_eq!(
        decode(
            r#"{"type":"long","logicalType":"timestamp-millis"}"#,
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        )
        .unwrap(),
        i64::MAX.to_string()
    );
}

#[test]
fn named_types_resolve_across_references_and_namespaces() {
    let address = r#"{"type":"record","name":"Address","namespace":"geo","fields":[{"name":"city","type":"string"}]}"#;
    let customer = r#"{"type":"record","name":"Customer","namespace":"shop","fields":[
        {"name":"home","type":"geo.Address"},
        {"name":"kind","type":{"type":"fixed","name":"Id","size":2}},
        {"name":"again","type":"Id"}]}"#;
    let schema = Schema::parse(customer, &[address.to_string()]).expect("parses");
    let mut datum = Vec::new();
    string("Oslo", &mut datum);
    datum.extend_from_slice(&[1, 2, 3, 4]);
    let mut out = Vec::new();
    to_json(&schema, &datum, &mut out, 1000).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"home":{"city":"Oslo"},"kind":"AQI=","again":"AwQ="}"#
    );
    let e = Schema::parse(customer, &[]).unwrap_err();
    assert!(e.contains("geo.Address"), "{e}");
}

#[test]
fn non_finite_floats_and_uuids() {
    assert_eq!(
        decode(r#""double""#, &f64::NAN.to_le_bytes()).unwrap(),
        "\"NaN\""
    );
    assert_eq!(decode(r#""float""#, &1.5f32.to_le_bytes()).unwrap(), "1.5");
    let uuid = r#"{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}"#;
    let bytes: Vec<u8> = (0..16).collect();
    assert_eq!(
        decode(uuid, &bytes).unwrap(),
        "\"00010203-0405-0607-0809-0a0b0c0d0e0f\""
    );
}
