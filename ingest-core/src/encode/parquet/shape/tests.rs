use serde_json::{json, Map, Value};

use super::fit::Fit;
use super::learn::Verdict;
use super::*;

fn of(v: &Value) -> Option<Shape> {
    Shape::of(&serde_json::to_vec(v).unwrap(), 0).0
}

fn observe(c: &mut Columns, v: &Value, reserved: &[&str]) {
    c.observe(&serde_json::to_vec(v).unwrap(), reserved)
        .unwrap();
}

/// The row and the rescued object (`None`: nothing rescued) of `record`, as text.
fn write(c: &Columns, record: &str, reserved: &[&str]) -> (String, Option<String>) {
    let (mut row, mut rescued) = (Vec::new(), Vec::new());
    c.write_row(
        record.as_bytes(),
        reserved,
        &mut Scratch::default(),
        &mut row,
        &mut rescued,
    );
    let rescued = (!rescued.is_empty()).then(|| String::from_utf8(rescued).unwrap());
    (String::from_utf8(row).unwrap(), rescued)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn integers_widen_to_doubles_and_structs_gain_fields() {
    let mut c = Columns::default();
    observe(&mut c, &json!({"n": 1, "s": {"a": 1}}), &[]);
    observe(
        &mut c,
        &json!({"n": 2.5, "s": {"b": "x"}, "late": [1]}),
        &[],
    );
    assert_eq!(
        c.fields,
        vec![
            ("n".into(), Shape::Float),
            (
                "s".into(),
                Shape::Struct(vec![("a".into(), Shape::Int), ("b".into(), Shape::Str)])
            ),
            ("late".into(), Shape::List(Box::new(Shape::Int))),
        ]
    );
}

#[test]
fn a_value_of_another_kind_is_rescued_not_dropped() {
    let mut c = Columns::default();
    let records = [
        r#"{"id":1,"tags":["a"],"v":{"x":1}}"#,
        r#"{"id":"two","tags":["b",3],"v":{"x":"one"},"_offset":9}"#,
    ];
    for r in records {
        observe(&mut c, &parse(r), &["_offset"]);
    }
    assert_eq!(
        c.fields[0],
        ("id".into(), Shape::Int),
        "the first kind wins"
    );
    let (row, rescued) = write(&c, records[1], &["_offset"]);
    assert_eq!(row, "{}");
    assert_eq!(rescued.as_deref(), Some(records[1]), "verbatim, in order");
    assert_eq!(
        write(&c, records[0], &["_offset"]),
        (records[0].to_string(), None),
        "a record that fits is its own row"
    );
}

#[test]
fn a_running_schema_keeps_its_types_and_only_gains_fields() {
    let mut first = Columns::default();
    observe(
        &mut first,
        &json!({"n": 1, "s": {"a": 1}, "never": null, "empty": []}),
        &[],
    );
    let running = first.typed();
    assert_eq!(
        running
            .fields
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["n", "s"],
        "fields without a type yet get no column"
    );
    let mut next = Columns::from_running(&running);
    observe(
        &mut next,
        &json!({"n": 2.5, "s": {"b": true}, "new": "x"}),
        &[],
    );
    let next = next.typed();
    assert_eq!(
        next.fields[0],
        ("n".into(), Shape::Int),
        "no widening once running"
    );
    assert_eq!(
        next.fields[1].1,
        Shape::Struct(vec![("a".into(), Shape::Int), ("b".into(), Shape::Bool)])
    );
    assert_eq!(next.fields[2], ("new".into(), Shape::Str));
    assert!(next.adds_to(&running) && !running.adds_to(&running));
    let (row, rescued) = write(&next, r#"{"n":2.5,"new":"y","never":null}"#, &[]);
    assert_eq!(
        (row.as_str(), rescued.as_deref()),
        (r#"{"new":"y"}"#, Some(r#"{"n":2.5}"#))
    );
    let json = serde_json::to_string(&next).unwrap();
    assert_eq!(serde_json::from_str::<Columns>(&json).unwrap(), next);
}

#[test]
fn growing_in_place_agrees_with_merging_shapes() {
    let values = [
        json!(1),
        json!(2.5),
        json!("s"),
        json!(null),
        json!([]),
        json!([1, 2.5]),
        json!([1, "a"]),
        json!({"a": 1}),
        json!({"a": "x", "b": [true]}),
        json!({"b": [null], "c": {}}),
        json!([{"k": 1}, {"k": 2.0, "j": null}]),
    ];
    for start in &values {
        for next in &values {
            let Some(have) = of(start) else {
                continue;
            };
            let bytes = serde_json::to_vec(next).unwrap();
            for fixed in [false, true] {
                let want = of(next).and_then(|n| {
                    if fixed {
                        have.extend(&n)
                    } else {
                        have.merge(&n)
                    }
                });
                let (verdict, end) = have.check(&bytes, 0, fixed);
                assert_eq!(end, bytes.len());
                let expected = match &want {
                    None => Verdict::Conflict,
                    Some(w) if *w == have => Verdict::Same,
                    Some(_) => Verdict::Grows,
                };
                assert_eq!(verdict, expected, "{start} then {next} ({fixed})");
                if let Some(want) = want {
                    let mut got = have.clone();
                    if verdict == Verdict::Grows {
                        assert_eq!(got.absorb(&bytes, 0), bytes.len());
                    }
                    assert_eq!(got, want, "{start} then {next} ({fixed})");
                }
            }
        }
    }
}

#[test]
fn nulls_and_empty_lists_fit_and_learn_later() {
    let mut c = Columns::default();
    observe(&mut c, &json!({"a": null, "l": []}), &[]);
    assert_eq!(c.fields[0].1, Shape::Unknown);
    observe(&mut c, &json!({"a": true, "l": [{"k": 1}]}), &[]);
    assert_eq!(c.fields[0].1, Shape::Bool);
    assert_eq!(
        c.fields[1].1,
        Shape::List(Box::new(Shape::Struct(vec![("k".into(), Shape::Int)])))
    );
    let fits = |s: &Shape, text: &str| s.fits(text.as_bytes(), 0, &mut Vec::new()).0;
    assert_eq!(fits(&c.fields[1].1, "[]"), Fit::Yes);
    assert_eq!(fits(&Shape::Float, "3"), Fit::Yes);
    assert_eq!(fits(&Shape::Int, "3.5"), Fit::No);
    assert_eq!(
        fits(&Shape::Int, &u64::MAX.to_string()),
        Fit::No,
        "beyond i64 is not an integer column value"
    );
    assert_eq!(fits(&Shape::Float, "1e400"), Fit::No, "beyond a double");
}

#[test]
fn rows_leave_out_nulls_without_columns_and_rescue_repeated_keys() {
    let mut c = Columns::default();
    let seen = r#"{"id":1,"c":{"a":1,"gone":null},"l":[{"k":1,"n":null}],"top":null}"#;
    observe(&mut c, &parse(seen), &[]);
    let c = c.typed();
    let cases = [
        // Nulls of fields that have no column: left out, nested or not.
        (seen, r#"{"id":1,"c":{"a":1},"l":[{"k":1}]}"#, None),
        // A repeated nested key: that field is rescued, as written.
        (
            r#"{"id":2,"c":{"a":1,"a":2}}"#,
            r#"{"id":2}"#,
            Some(r#"{"c":{"a":1,"a":2}}"#),
        ),
        // A repeated top-level key: the whole record.
        (r#"{"id":3,"id":4}"#, "{}", Some(r#"{"id":3,"id":4}"#)),
        // Whitespace and escaped keys: the row keeps them, the rescued object is compacted.
        (
            "{ \"i\\u0064\" : 5 ,\n \"x\" : [ 1 ] }",
            "{\"i\\u0064\" : 5}",
            Some(r#"{"x":[1]}"#),
        ),
        // A number beyond a double, verbatim.
        (r#"{"id":1e999}"#, "{}", Some(r#"{"id":1e999}"#)),
    ];
    for (record, row, rescued) in cases {
        assert_eq!(
            write(&c, record, &[]),
            (row.to_string(), rescued.map(String::from)),
            "{record}"
        );
    }
}

/// A small deterministic generator of varied JSON values.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.next(if depth > 2 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.next(2) == 0),
            2 => json!(self.next(1000) as i64 - 500),
            3 => json!(self.next(1000) as f64 / 8.0),
            4 => json!(["x", "é", "a\"b", "\u{1F600}"][self.next(4) as usize]),
            5 => json!(u64::MAX - self.next(3)),
            6 | 7 => Value::Array((0..self.next(3)).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Object(self.object(depth + 1)),
        }
    }

    fn object(&mut self, depth: u32) -> Map<String, Value> {
        (0..self.next(5))
            .map(|_| {
                (
                    ["a", "b", "c", "_offset"][self.next(4) as usize].to_string(),
                    self.value(depth),
                )
            })
            .collect()
    }
}

/// Drops object members whose value is null, at every depth (a null member reads back as a
/// missing one).
fn without_null_members(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_null_members(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_null_members).collect()),
        other => other,
    }
}

/// Every record splits into a row whose fields all fit their columns and a rescued object, and
/// the two together are the record (up to null members).
#[test]
fn row_and_rescued_together_are_the_record() {
    let mut g = Gen(7);
    for round in 0..200 {
        let records: Vec<Value> = (0..20).map(|_| Value::Object(g.object(0))).collect();
        let mut running = Columns::default();
        if round % 2 == 1 {
            observe(&mut running, &records[0], &["_offset"]);
            running = running.typed();
        }
        let mut c = Columns::from_running(&running);
        for r in &records {
            observe(&mut c, r, &["_offset"]);
        }
        let c = c.typed();
        for r in &records {
            let text = serde_json::to_string(r).unwrap();
            let (row, rescued) = write(&c, &text, &["_offset"]);
            let row = parse(&row);
            for (k, v) in row.as_object().unwrap() {
                let shape = &c.fields.iter().find(|(n, _)| n == k).unwrap().1;
                let bytes = serde_json::to_vec(v).unwrap();
                assert_eq!(
                    shape.fits(&bytes, 0, &mut Vec::new()).0,
                    Fit::Yes,
                    "{k} in {text}"
                );
            }
            let mut whole = row.as_object().unwrap().clone();
            if let Some(rescued) = rescued {
                for (k, v) in parse(&rescued).as_object().unwrap() {
                    assert!(
                        whole.insert(k.clone(), v.clone()).is_none(),
                        "{k} twice: {text}"
                    );
                }
            }
            let mut want = without_null_members(r.clone());
            let mut got = without_null_members(Value::Object(whole));
            for v in [&mut want, &mut got] {
                v.as_object_mut().unwrap().sort_keys();
            }
            assert_eq!(got, want, "{text}");
        }
    }
}
