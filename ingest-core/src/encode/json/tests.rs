use super::*;

fn serde_accepts(v: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok()
}

/// What a record must be: serde_json's grammar and what readers of a whole file need.
fn reference(v: &[u8]) -> bool {
    serde_accepts(v) && strict(v).is_ok()
}

/// serde_json's parse into values, which decodes every string (UTF-8, surrogate pairs).
fn decodes(v: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(v).is_ok()
}

fn valid(v: &[u8]) -> bool {
    matches!(scan(v), Scan::Valid { .. })
}

const CASES: &[&str] = &[
    "0",
    "-0",
    "1",
    "-",
    "01",
    "-01",
    "1.",
    "1.5",
    ".5",
    "1e",
    "1e+",
    "1e5",
    "1E-5",
    "1.5e3",
    "0.0e0",
    "00",
    "1x",
    "2 3",
    "true",
    "tru",
    "truex",
    "false",
    "null",
    "nul",
    "\"\"",
    "\"",
    "\"a\\\"b\"",
    "\"\\u00e9\"",
    "\"\\u00g9\"",
    "\"\\uD800\"",
    "\"\\uDC00\"",
    "\"\\uD800x\"",
    "\"\\uD800\\u0041\"",
    "\"\\uD800\\uDC00\"",
    "\"\\uDBFF\\uDFFF\"",
    "\"\\ud83d\\ude00 \\uDFFF\"",
    "{\"\\uDE00\":1}",
    "\"\\x\"",
    "\"tab\there\"",
    "\"\u{7f}\"",
    "\"\u{e9}\u{1f600}\"",
    "[]",
    "[",
    "]",
    "[1,]",
    "[,1]",
    "[1 2]",
    "[1,2]",
    "{}",
    "{",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\":1,}",
    "{\"a\":1}",
    "{a:1}",
    "{\"a\" : [ 1 , { } ] }",
    "[{\"a\":[{\"b\":null}]},[]]",
    "[}",
    "{]",
    "{\"a\":1]",
    " \n {\"a\":1}\r\n",
    "\t1\t",
    "",
    " ",
    "{\"a\":1}{}",
    "[\"\\\\\"]",
    "{\"\\\\\":\"\\/\"}",
    "[1,[2,[3,[4]]]]",
    "-1.0E+2",
];

#[test]
fn agrees_with_serde_json_on_every_case() {
    for case in CASES {
        let v = case.as_bytes();
        assert_eq!(valid(v), reference(v), "{case:?}");
        assert_eq!(
            reference(v),
            decodes(v),
            "{case:?}: strings as serde_json decodes them"
        );
    }
    // Raw control characters, and bytes that are not UTF-8 inside strings and keys.
    for v in [
        &b"\"a\nb\""[..],
        b"\"a\x01\"",
        b"\"\xff\xfe\"",
        b"{\"a\":\"\xff\xfe\"}",
        b"{\"\xe9\":1}",
        b"[\"\xc3\"]",
        b"\"\xed\xa0\x80\"",
        "\"\u{e9}\"".as_bytes(),
        // Each string is checked on its own: past a word boundary, across one, and a string
        // whose word reads into the next one's bytes.
        b"\"0123456789\xc3\"",
        b"\"01234\xc3\xa9789\"",
        "\"0123456\u{e9}89\u{1f600}\"".as_bytes(),
        b"[\"ab\",\"\xff\"]",
        b"[\"ab\",\"\xc3\xa9\"]",
        b"[\"\xc3\",\"\xa9\"]",
        b"{\"k\xc3\":\"\xa9\"}",
    ] {
        assert_eq!(valid(v), reference(v), "{v:?}");
        assert_eq!(reference(v), decodes(v), "{v:?}");
    }
    assert!(!reference(b"{\"a\":\"\xff\xfe\"}"), "not UTF-8");
    assert!(strict(b"[\"\\uD800\"]")
        .unwrap_err()
        .contains("lone surrogate"));
    assert!(strict(b"\"ok\xff\"")
        .unwrap_err()
        .contains("UTF-8 at byte 3"));
}

#[test]
fn a_character_beyond_ascii_is_accepted_exactly_when_std_takes_it_as_utf8() {
    // Every lead and second byte; the later bytes at the edges of every range they may take.
    let edges = [0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF];
    let (mut accepted, mut checked) = (0, 0);
    for lead in 0x80..=0xFFu8 {
        for second in 0..=0xFFu8 {
            for third in edges {
                for fourth in edges {
                    let v = [lead, second, third, fourth];
                    let std_len = (1..=4).find(|&n| std::str::from_utf8(&v[..n]).is_ok());
                    assert_eq!(utf8_char_end(&v, 0), std_len, "{v:x?}");
                    accepted += usize::from(std_len.is_some());
                    checked += 1;
                }
            }
        }
    }
    assert!(
        accepted > 1000 && checked - accepted > 1000,
        "{accepted} of {checked}"
    );
    // A character cut short by the end of the value.
    assert_eq!(utf8_char_end(&[0xE2, 0x82], 0), None);
    assert_eq!(utf8_char_end(&[0xC3], 0), None);
}

#[test]
fn deep_nesting_is_left_to_serde_json_and_bounded() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    assert_eq!(scan(&nested(65)), Scan::Unsure);
    assert!(reference(&nested(65)));
    assert!(reference(&nested(MAX_NESTING)));
    assert!(!reference(&nested(MAX_NESTING + 1)));
    assert!(
        serde_accepts(&nested(20_000)),
        "serde_json's grammar check has no depth limit"
    );
    let deep = strict(&nested(20_000)).unwrap_err();
    assert!(deep.contains("nested deeper than 128 levels"), "{deep}");
    // Brackets inside strings are not nesting.
    let quoted = format!("[\"{}\"]", "[".repeat(500));
    assert!(reference(quoted.as_bytes()));
    let ok = format!("{}1{}", "[{\"k\":".repeat(32), "}]".repeat(32));
    assert!(valid(ok.as_bytes()));
}

#[test]
fn compaction_is_needed_for_line_breaks_and_surrounding_whitespace() {
    assert_eq!(scan(b"{\"a\": 1}"), Scan::Valid { compact: false });
    assert_eq!(scan(b"{\"a\":\n1}"), Scan::Valid { compact: true });
    assert_eq!(scan(b"{\"a\":\r1}"), Scan::Valid { compact: true });
    assert_eq!(scan(b" 1"), Scan::Valid { compact: true });
    assert_eq!(scan(b"[1]\t"), Scan::Valid { compact: true });
}

/// A tiny deterministic generator (no `rand` dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn value(rng: &mut Rng, depth: u32, out: &mut Vec<u8>) {
    let ws = [&b""[..], b" ", b"\n", b"\t", b"\r\n "];
    out.extend_from_slice(rng.pick(&ws));
    match rng.next() % if depth > 6 { 5 } else { 7 } {
        0 => out.extend_from_slice(rng.pick(&[&b"true"[..], b"false", b"null"])),
        1 => out.extend_from_slice(rng.pick(&[&b"0"[..], b"-12", b"3.25", b"1e9", b"-0.5E-3"])),
        2..=4 => {
            let s = rng.pick(&[
                &b"\"\""[..],
                b"\"plain text here\"",
                b"\"esc \\\" \\\\ \\/ \\n \\u00e9\"",
                b"\"pair \\ud83d\\ude00\"",
                "\"Zürich 東京 🥐\"".as_bytes(),
                b"\"0123456789abcdefghij\"",
            ]);
            out.extend_from_slice(s);
        }
        5 => {
            out.push(b'[');
            for i in 0..rng.next() % 4 {
                if i > 0 {
                    out.push(b',');
                }
                value(rng, depth + 1, out);
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            for i in 0..rng.next() % 4 {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(rng.pick(&ws));
                out.extend_from_slice(rng.pick(&[&b"\"k\""[..], b"\"key \\t\"", b"\"\""]));
                out.extend_from_slice(rng.pick(&ws));
                out.push(b':');
                value(rng, depth + 1, out);
            }
            out.push(b'}');
        }
    }
    out.extend_from_slice(rng.pick(&ws));
}

#[test]
fn never_accepts_what_serde_json_rejects_on_generated_and_mutated_values() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let noise = b"{}[]\",:\\ \n0-.eEtfnu1\x01\xff";
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..30_000 {
        let mut v = Vec::new();
        value(&mut rng, 0, &mut v);
        assert!(
            reference(&v) && valid(&v) && decodes(&v),
            "{}",
            String::from_utf8_lossy(&v)
        );
        // Mutate: replace, insert or delete a few bytes.
        for _ in 0..1 + rng.next() % 3 {
            let at = (rng.next() % (v.len() as u64 + 1)) as usize;
            match rng.next() % 3 {
                0 if at < v.len() => v[at] = rng.pick(noise),
                1 => v.insert(at, rng.pick(noise)),
                _ if at < v.len() => {
                    v.remove(at);
                }
                _ => {}
            }
        }
        let serde = reference(&v);
        assert_eq!(valid(&v), serde, "{:?}", String::from_utf8_lossy(&v));
        assert!(
            !decodes(&v) || serde,
            "{:?}: serde_json decodes it, so it must be accepted",
            String::from_utf8_lossy(&v)
        );
        if serde {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(
        accepted > 1000 && rejected > 1000,
        "{accepted} / {rejected}"
    );
}
