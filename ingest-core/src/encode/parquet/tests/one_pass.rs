//! One pass against the running schema against learning the batch first.

use super::*;

/// A batch encoded in one pass against the running schema makes exactly the file (and dead
/// letters, counts and columns) that learning it first makes, and a batch whose values would
/// grow the schema is left to the two passes, for varied records: some the running schema was
/// learned from, some new, some invalid.
#[test]
fn one_pass_against_the_running_schema_writes_what_two_passes_write() {
    let mut g = shape::tests::Gen(29);
    let (mut one, mut two) = (0, 0);
    for round in 0..300usize {
        let text = |v: serde_json::Value| match round % 4 {
            3 => serde_json::to_string_pretty(&v).unwrap(),
            _ => serde_json::to_string(&v).unwrap(),
        };
        let first: Vec<String> = (0..30)
            .map(|_| text(serde_json::Value::Object(g.object(0))))
            .collect();
        let envelope = [Envelope::Metadata, Envelope::Raw][round % 2];
        let o = opts(envelope, InvalidRecordPolicy::DeadLetter);
        let learned = batch(&first.iter().map(String::as_str).collect::<Vec<_>>());
        let running = encode(&learned, 0, &o, &SETTINGS, &Columns::default())
            .unwrap()
            .columns
            .unwrap();
        let mut next: Vec<String> = (0..40)
            .map(|i| first[(i * 7 + round) % 30].clone())
            .collect();
        if round % 3 != 0 {
            next[round % 40] = text(serde_json::Value::Object(g.object(0)));
        }
        if round % 5 == 0 {
            next[3] = "[1]".into();
            next[11] = "{\"a\":".into();
        }
        let b = batch(&next.iter().map(String::as_str).collect::<Vec<_>>());
        let base = Columns::from_running(&running, caps(&SETTINGS));
        let want = two_passes(|| b.records(), 0, &o, &SETTINGS, base).unwrap();
        let same = |got: &Encoded, how: &str| {
            assert_eq!(got.data, want.data, "round {round}, {how}: {next:?}");
            assert_eq!(got.dead_letters, want.dead_letters, "round {round}, {how}");
            assert_eq!(
                (got.records, got.dead_lettered, got.skipped, got.filtered),
                (
                    want.records,
                    want.dead_lettered,
                    want.skipped,
                    want.filtered
                ),
                "round {round}, {how}"
            );
            assert_eq!(got.uncompressed_bytes, want.uncompressed_bytes);
            assert_eq!(got.columns, want.columns, "round {round}, {how}");
        };
        match one_pass(b.records(), 0, &o, &SETTINGS, &running).unwrap() {
            Some(got) => {
                one += 1;
                same(&got, "one pass");
            }
            None => two += 1,
        }
        same(&encode(&b, 0, &o, &SETTINGS, &running).unwrap(), "encode");
    }
    assert!(one >= 60 && two >= 60, "one pass {one}, two passes {two}");
}

/// A record that adds a field (or a nested one) to the running schema sends the batch to the
/// two passes, and its file has the new column; one that only conflicts stays in one pass and
/// is rescued.
#[test]
fn one_pass_stops_at_a_value_that_grows_the_schema() {
    let running = first_file(
        &batch(&[r#"{"id":1,"nested":{"x":1},"list":[{"k":"v"}]}"#]),
        0,
        Envelope::Raw,
        InvalidRecordPolicy::Fail,
    )
    .unwrap()
    .columns
    .unwrap();
    let o = opts(Envelope::Raw, InvalidRecordPolicy::Fail);
    for grows in [
        r#"{"id":2,"new":"field"}"#,
        r#"{"id":2,"nested":{"x":2,"y":true}}"#,
        r#"{"id":2,"list":[{"k":"w","more":1}]}"#,
        r#"{"id":2,"id":3,"new":1}"#,
    ] {
        let b = batch(&[r#"{"id":1}"#, grows]);
        assert!(
            one_pass(b.records(), 0, &o, &SETTINGS, &running)
                .unwrap()
                .is_none(),
            "{grows}"
        );
        let encoded = encode(&b, 0, &o, &SETTINGS, &running).unwrap();
        assert!(encoded.columns.unwrap().adds_to(&running), "{grows}");
    }
    for fits in [
        r#"{"id":"two","nested":{"x":null,"gone":null}}"#,
        r#"{"id":2,"new":null,"nested":{"x":"one"}}"#,
        r#"{"id":2,"id":3}"#,
        r#"{"_offset":1,"list":[]}"#,
    ] {
        let b = batch(&[r#"{"id":1}"#, fits]);
        let encoded = one_pass(b.records(), 0, &o, &SETTINGS, &running)
            .unwrap()
            .unwrap_or_else(|| panic!("{fits} grew the schema"));
        assert_eq!(encoded.records, 2);
        assert_eq!(encoded.columns.as_ref(), Some(&running), "{fits}");
    }
}
