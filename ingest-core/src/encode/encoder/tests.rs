use std::io::Read;
use std::time::Instant;

use super::*;
use crate::batch::{Flaw, RecordRef};
use crate::encode::ndjson::compact_into;

fn opts(
    envelope: Envelope,
    compression: Compression,
    invalid: InvalidRecordPolicy,
) -> EncodeOptions {
    EncodeOptions {
        topic: "t".into(),
        envelope,
        compression,
        invalid,
        max_record_bytes: 1000,
        transform: None,
        format: crate::config::Format::Ndjson,
        registry: None,
        table_columns: None,
    }
}

fn batch(values: &[Option<&[u8]>]) -> Batch {
    let mut b = Batch::new(Instant::now(), 0);
    for (i, v) in values.iter().enumerate() {
        b.push(&RecordRef {
            offset: 100 + i as i64,
            timestamp_ms: Some(1000 + i as i64),
            key: Some(b"k\xff"),
            value: *v,
            headers: &[
                ("trace", Some(b"abc")),
                ("bin", Some(b"\xfe")),
                ("none", None),
            ],
            flaw: None,
            cursor: None,
        });
    }
    b
}

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn raw_envelope_keeps_compact_input_verbatim_and_compacts_pretty_input() {
    let pretty = b"{\n  \"a\": [1, 2.50],\n  \"s\": \"x  y\\n\\\" }\"\n}\n";
    let spaced = br#"{"a": 1e3}"#;
    let b = batch(&[Some(spaced), Some(pretty)]);
    let out = encode(
        &b,
        0,
        &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Fail),
    )
    .unwrap();
    let text = String::from_utf8(out.data).unwrap();
    assert_eq!(
        text, "{\"a\": 1e3}\n{\"a\":[1,2.50],\"s\":\"x  y\\n\\\" }\"}\n",
        "number text and string contents must be preserved byte for byte"
    );
    assert_eq!(out.records, 2);
    assert_eq!(out.uncompressed_bytes, text.len());
}

#[test]
fn metadata_envelope_carries_coordinates_key_and_headers() {
    let b = batch(&[Some(b" [1, {\"b\" : null}] "), None]);
    let out = encode(
        &b,
        7,
        &opts(
            Envelope::Metadata,
            Compression::None,
            InvalidRecordPolicy::Fail,
        ),
    )
    .unwrap();
    let got = lines(&out.data);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        serde_json::json!({
            "topic": "t", "partition": 7, "offset": 100, "timestamp": 1000,
            "key": null, "key_base64": "a/8=",
            "headers": [
                {"key": "trace", "value": "abc"},
                {"key": "bin", "value": null, "value_base64": "/g=="},
                {"key": "none", "value": null}
            ],
            "value": [1, {"b": null}]
        })
    );
    assert_eq!(
        got[1]["value"],
        serde_json::Value::Null,
        "a tombstone is a null value"
    );
    assert!(
        !String::from_utf8(out.data).unwrap().contains(" "),
        "compacted onto one line"
    );
}

#[test]
fn invalid_records_follow_the_policy() {
    let values: [Option<&[u8]>; 4] = [Some(b"{}"), Some(b"{not json"), None, Some(b"[1] [2]")];
    let b = batch(&values);

    let err = encode(
        &b,
        1,
        &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Fail),
    )
    .unwrap_err();
    assert_eq!((err.partition, err.offset), (1, 101));
    assert!(
        err.to_string().contains("INGEST_INVALID_RECORD_POLICY"),
        "{err}"
    );

    let skip = encode(
        &b,
        1,
        &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Skip),
    )
    .unwrap();
    assert_eq!((skip.records, skip.skipped, skip.dead_lettered), (1, 3, 0));
    assert_eq!(skip.data, b"{}\n");
    assert!(skip.dead_letters.is_none());

    let dl = encode(
        &b,
        1,
        &opts(
            Envelope::Raw,
            Compression::None,
            InvalidRecordPolicy::DeadLetter,
        ),
    )
    .unwrap();
    assert_eq!((dl.records, dl.skipped, dl.dead_lettered), (1, 0, 3));
    let dead = lines(&dl.dead_letters.unwrap());
    assert_eq!(
        dead.iter()
            .map(|d| d["offset"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![101, 102, 103]
    );
    assert_eq!(dead[0]["value_base64"], "e25vdCBqc29u");
    assert_eq!(dead[0]["key_base64"], "a/8=");
    assert_eq!(dead[0]["partition"], 1);
    assert_eq!(dead[1]["value_base64"], serde_json::Value::Null);
    assert!(dead[1]["error"].as_str().unwrap().contains("tombstone"));
    assert!(
        dead[2]["error"].as_str().unwrap().contains("trailing"),
        "{}",
        dead[2]["error"]
    );
}

#[test]
fn oversized_records_are_invalid() {
    let big = vec![b'1'; 1001];
    let b = batch(&[Some(&big)]);
    let out = encode(
        &b,
        0,
        &opts(
            Envelope::Raw,
            Compression::None,
            InvalidRecordPolicy::DeadLetter,
        ),
    )
    .unwrap();
    assert_eq!(out.dead_lettered, 1);
    let dead = lines(&out.dead_letters.unwrap());
    assert!(dead[0]["error"]
        .as_str()
        .unwrap()
        .contains("INGEST_MAX_RECORD_BYTES"));
}

#[test]
fn values_readers_cannot_read_are_invalid_records_and_every_line_is_utf8() {
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let ok_deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let values: [Option<&[u8]>; 7] = [
        Some(b"{\"a\":\"\xff\xfe\"}"),
        Some(b"[\"\\ud800\"]"),
        Some(deep.as_bytes()),
        Some("{\"city\":\"Z\u{fc}rich\"}".as_bytes()),
        Some(b"\"\\ud83d\\ude00\""),
        Some(ok_deep.as_bytes()),
        Some(b"{\"k\":\"\xe9t\xe9\"}"),
    ];
    let b = batch(&values);
    for envelope in [Envelope::Raw, Envelope::Metadata] {
        let mut o = opts(envelope, Compression::None, InvalidRecordPolicy::DeadLetter);
        o.max_record_bytes = 1 << 20;
        let out = encode(&b, 0, &o).unwrap();
        assert_eq!((out.records, out.dead_lettered), (3, 4), "{envelope:?}");
        let text = String::from_utf8(out.data).expect("every landed line is UTF-8");
        assert!(text.contains("Z\u{fc}rich"), "{text}");
        let dead = lines(&out.dead_letters.unwrap());
        let offsets: Vec<i64> = dead.iter().map(|d| d["offset"].as_i64().unwrap()).collect();
        assert_eq!(offsets, vec![100, 101, 102, 106]);
        let errors: Vec<&str> = dead.iter().map(|d| d["error"].as_str().unwrap()).collect();
        assert!(errors[0].contains("UTF-8"), "{}", errors[0]);
        assert!(errors[1].contains("lone surrogate"), "{}", errors[1]);
        assert!(
            errors[2].contains("nested deeper than 128"),
            "{}",
            errors[2]
        );
        assert!(errors[3].contains("UTF-8"), "{}", errors[3]);
    }
}

#[test]
fn gzip_output_decompresses_to_the_same_lines_with_a_plain_header() {
    let b = batch(&[Some(b"{\"a\":1}"), Some(b"2")]);
    let plain = encode(
        &b,
        0,
        &opts(Envelope::Raw, Compression::None, InvalidRecordPolicy::Fail),
    )
    .unwrap();
    let gz = encode(
        &b,
        0,
        &opts(
            Envelope::Raw,
            Compression::Gzip { level: 6 },
            InvalidRecordPolicy::Fail,
        ),
    )
    .unwrap();
    let mut decoder = flate2::read::GzDecoder::new(&gz.data[..]);
    let mut text = Vec::new();
    decoder.read_to_end(&mut text).unwrap();
    assert_eq!(text, plain.data);
    let header = decoder.header().unwrap();
    assert!(header.comment().is_none() && header.filename().is_none());
    assert_eq!(
        gz.data[3], 0,
        "no optional header fields (FLG = 0), as strict readers expect"
    );
}

#[test]
fn compaction_is_whitespace_only() {
    let mut out = Vec::new();
    compact_into(
        &mut out,
        b" { \"a b\" :\t\"\\\\\" , \"c\" : [ true , -0.0e+1 ] } ",
    );
    assert_eq!(out, br#"{"a b":"\\","c":[true,-0.0e+1]}"#);
}

#[test]
fn a_flawed_record_is_invalid_with_its_reason_and_named_by_offset() {
    let mut b: Batch = Batch::new(Instant::now(), 0);
    let amqp_encoded: &[u8] = &[0x00, 0x53, 0x77, 0x94, 0xff];
    let records: [(i64, &[u8], Option<Flaw>); 3] = [
        (7, b"{\"a\":1}", None),
        (8, b"{\"a\":1}", Some(Flaw::UnreadableHeaders)),
        (9, amqp_encoded, Some(Flaw::AmqpValueWithoutJson)),
    ];
    for (offset, value, flaw) in records {
        b.push(&RecordRef {
            offset,
            timestamp_ms: Some(1),
            key: None,
            value: Some(value),
            headers: &[],
            flaw,
            cursor: None,
        });
    }
    let o = |invalid| opts(Envelope::Metadata, Compression::None, invalid);
    let err = encode(&b, 3, &o(InvalidRecordPolicy::Fail)).unwrap_err();
    assert_eq!(err.offset, 8);
    assert!(
        err.reason.contains("header key is not valid UTF-8"),
        "{err}"
    );
    let dead = encode(&b, 3, &o(InvalidRecordPolicy::DeadLetter)).unwrap();
    assert_eq!((dead.records, dead.dead_lettered), (1, 2));
    let dead = lines(dead.dead_letters.as_deref().unwrap());
    assert_eq!(dead[0]["offset"], 8, "{}", dead[0]);
    assert_eq!(dead[1]["offset"], 9, "{}", dead[1]);
    assert!(
        dead[1]["error"]
            .as_str()
            .unwrap()
            .contains("AMQP value with no JSON form"),
        "{}",
        dead[1]
    );
    use base64::Engine as _;
    let kept = base64::engine::general_purpose::STANDARD
        .decode(
            dead[1]["value_base64"]
                .as_str()
                .expect("bytes kept as base64"),
        )
        .unwrap();
    assert_eq!(kept, amqp_encoded, "the bytes are kept");
}
