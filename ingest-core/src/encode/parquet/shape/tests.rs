use serde_json::{json, Map, Value};

use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::Array;

use super::learn::Verdict;
use super::*;
use crate::batch::{Batch, RecordRef};
use crate::config::Envelope;
use crate::encode::parquet::arrays::Column;
use crate::encode::parquet::file::schema;
use crate::encode::parquet::rows::Chunk;

fn of(v: &Value) -> Option<Shape> {
    Shape::of(&serde_json::to_vec(v).unwrap(), 0).0
}

fn observe(c: &mut Columns, v: &Value, reserved: &[&str]) {
    c.observe(&serde_json::to_vec(v).unwrap(), reserved)
        .unwrap();
}

/// The names of the fields of `record` that went in their columns (with a value), and the
/// rescued object (`None`: nothing rescued), as a file's row holds them.
fn write(c: &Columns, record: &str) -> (Vec<String>, Option<String>) {
    let mut b: Batch = Batch::new(Instant::now(), 0);
    b.push(&RecordRef {
        offset: 0,
        timestamp_ms: None,
        key: None,
        value: Some(record.as_bytes()),
        headers: &[],
        flaw: None,
        cursor: None,
    });
    let mut chunk = Chunk::new(c);
    let r = b.records().next().unwrap();
    assert!(chunk.push("t", 0, &r, c, r.value(), false).unwrap());
    let row = chunk
        .take(Envelope::Raw, &schema(Envelope::Raw, c))
        .unwrap();
    let kept = c
        .fields
        .iter()
        .enumerate()
        .filter(|(at, _)| row.column(*at).is_valid(0))
        .map(|(_, (name, _))| name.clone())
        .collect();
    let rescued = row.column(c.fields.len()).as_string::<i32>();
    (
        kept,
        rescued.is_valid(0).then(|| rescued.value(0).to_string()),
    )
}

/// Whether `text` fits a column of `shape` (appends to one).
fn fits(shape: &Shape, text: &str) -> bool {
    Column::new(shape)
        .append(shape, text.as_bytes(), 0)
        .unwrap()
        .0
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
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
    let (kept, rescued) = write(&c, records[1]);
    assert!(kept.is_empty(), "{kept:?}");
    assert_eq!(rescued.as_deref(), Some(records[1]), "verbatim, in order");
    assert_eq!(write(&c, records[0]), (names(&["id", "tags", "v"]), None));
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
    let mut next = Columns::from_running(&running, Caps::default());
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
    assert_eq!(
        write(&next, r#"{"n":2.5,"new":"y","never":null}"#),
        (names(&["new"]), Some(r#"{"n":2.5}"#.to_string()))
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
                let (verdict, end) = have.check(&bytes, 0, fixed, usize::MAX);
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
                        let mut room = super::learn::Room {
                            left: usize::MAX,
                            width: usize::MAX,
                            names: super::Names::default(),
                        };
                        assert_eq!(got.absorb(&bytes, 0, &mut room), bytes.len());
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
    assert!(fits(&c.fields[1].1, "[]"));
    assert!(fits(&Shape::Float, "3"));
    assert!(!fits(&Shape::Int, "3.5"));
    assert!(
        !fits(&Shape::Int, &u64::MAX.to_string()),
        "beyond i64 is not an integer column value"
    );
    assert!(!fits(&Shape::Float, "1e400"), "beyond a double");
}

#[test]
fn rows_leave_out_nulls_without_columns_and_rescue_repeated_keys() {
    let mut c = Columns::default();
    let seen = r#"{"id":1,"c":{"a":1,"gone":null},"l":[{"k":1,"n":null}],"top":null}"#;
    observe(&mut c, &parse(seen), &[]);
    let c = c.typed();
    let cases = [
        // Nulls of fields that have no column: fit (nested) or are dropped (top level).
        (seen, &["id", "c", "l"][..], None),
        // A repeated nested key: that field is rescued, as written.
        (
            r#"{"id":2,"c":{"a":1,"a":2}}"#,
            &["id"],
            Some(r#"{"c":{"a":1,"a":2}}"#),
        ),
        // A repeated top-level key: the whole record.
        (r#"{"id":3,"id":4}"#, &[], Some(r#"{"id":3,"id":4}"#)),
        // Whitespace and escaped keys; the rescued object is compacted.
        (
            "{ \"i\\u0064\" : 5 ,\n \"x\" : [ 1 ] }",
            &["id"],
            Some(r#"{"x":[1]}"#),
        ),
        // A number beyond a double, verbatim.
        (r#"{"id":1e999}"#, &[], Some(r#"{"id":1e999}"#)),
    ];
    for (record, kept, rescued) in cases {
        assert_eq!(
            write(&c, record),
            (names(kept), rescued.map(String::from)),
            "{record}"
        );
    }
}

/// A small deterministic generator of varied JSON values.
pub(crate) struct Gen(pub(crate) u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    pub(crate) fn value(&mut self, depth: u32) -> Value {
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

    pub(crate) fn object(&mut self, depth: u32) -> Map<String, Value> {
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
        let mut c = Columns::from_running(&running, Caps::default());
        for r in &records {
            observe(&mut c, r, &["_offset"]);
        }
        let c = c.typed();
        for r in &records {
            let text = serde_json::to_string(r).unwrap();
            let (kept, rescued) = write(&c, &text);
            let mut whole = Map::new();
            for k in kept {
                let v = r[&k].clone();
                let shape = &c.fields.iter().find(|(n, _)| *n == k).unwrap().1;
                assert!(fits(shape, &v.to_string()), "{k} in {text}");
                whole.insert(k, v);
            }
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
