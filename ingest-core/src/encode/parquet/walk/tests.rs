use super::*;

fn members(text: &str) -> Vec<(String, &str)> {
    let v = text.as_bytes();
    let mut out = Vec::new();
    let mut step = first_member(v, ws(v, 0));
    while let Step::Member(m) = step {
        let end = skip(v, m.value);
        out.push((m.key().into_owned(), &text[m.value..end]));
        step = next_member(v, end);
    }
    let Step::End(end) = step else { panic!() };
    assert_eq!(ws(v, end), v.len(), "{text}");
    out
}

#[test]
fn bytes_compare_as_equal_only_when_they_are() {
    let text = b"abcdefghijklmnopqrstuvwxyz";
    for len in 0..text.len() {
        let a = &text[..len];
        let copy = a.to_vec();
        assert!(same(a, &copy), "{len}");
        for at in 0..len {
            let mut b = a.to_vec();
            b[at] ^= 1;
            assert!(!same(a, &b), "{len} {at}");
        }
        assert!(!same(a, &text[..len + 1]));
    }
}

#[test]
fn members_and_their_values() {
    assert_eq!(
        members(r#" { "a" : 1 , "b\"\\" :"x\"}" ,"c":[1,{"d":[]}], "e":{} } "#),
        [
            ("a".into(), "1"),
            ("b\"\\".into(), r#""x\"}""#),
            ("c".into(), r#"[1,{"d":[]}]"#),
            ("e".into(), "{}")
        ]
    );
    assert!(members("{}").is_empty());
    assert!(members("{ \n }").is_empty());
    assert_eq!(members(r#"{"caf\u00e9":true}"#), [("café".into(), "true")]);
}

#[test]
fn numbers_are_read_as_serde_json_reads_them() {
    let cases = [
        ("0", Kind::Int),
        ("-0", Kind::Float),
        ("9223372036854775807", Kind::Int),
        ("-9223372036854775808", Kind::Int),
        ("9223372036854775808", Kind::Float),
        ("18446744073709551616", Kind::Float),
        ("1.0", Kind::Float),
        ("1e2", Kind::Float),
        ("-2.5E-3", Kind::Float),
        ("1e308", Kind::Float),
        ("1e400", Kind::Huge),
        ("-1e400", Kind::Huge),
        ("1e-400", Kind::Float),
    ];
    for (text, want) in cases {
        assert_eq!(head(text.as_bytes(), 0), (want, text.len()), "{text}");
        let serde = serde_json::from_str::<serde_json::Value>(text);
        match want {
            Kind::Huge => assert!(serde.is_err(), "{text}"),
            Kind::Int => assert!(serde.unwrap().as_i64().is_some(), "{text}"),
            _ => assert!(serde.unwrap().as_i64().is_none(), "{text}"),
        }
    }
    let long = "9".repeat(400);
    assert_eq!(head(long.as_bytes(), 0).0, Kind::Huge);
}

#[test]
fn arrays_step_through_elements() {
    let text = r#"[ 1, "a,]", [2], null ]"#;
    let v = text.as_bytes();
    let mut got = Vec::new();
    let mut step = first_element(v, 0);
    while let Step::Element(i) = step {
        let end = skip(v, i);
        got.push(&text[i..end]);
        step = next_element(v, end);
    }
    assert_eq!(got, ["1", r#""a,]""#, "[2]", "null"]);
    assert!(matches!(first_element(b"[ ]", 0), Step::End(3)));
}

#[test]
fn never_panics_or_loops_on_broken_bytes() {
    for text in [
        "{",
        "{\"a",
        "{\"a\":",
        "[1,",
        "\"abc\\",
        "-",
        "{\"a\" 1}",
        "[}",
        "}",
    ] {
        let v = text.as_bytes();
        let _ = skip(v, 0);
        let mut step = first_member(v, 0);
        let mut guard = 0;
        while let Step::Member(m) = step {
            let end = skip(v, m.value);
            step = next_member(v, end.max(m.value + 1));
            guard += 1;
            assert!(guard < 10, "{text}");
        }
    }
}
