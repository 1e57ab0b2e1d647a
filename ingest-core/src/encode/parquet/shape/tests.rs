use super::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn integers_widen_to_doubles_and_structs_gain_fields() {
    let mut c = Columns::default();
    c.observe(&obj(json!({"n": 1, "s": {"a": 1}})), &[]);
    c.observe(&obj(json!({"n": 2.5, "s": {"b": "x"}, "late": [1]})), &[]);
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
        json!({"id": 1, "tags": ["a"], "v": {"x": 1}}),
        json!({"id": "two", "tags": ["b", 3], "v": {"x": "one"}, "_offset": 9}),
    ];
    for r in &records {
        c.observe(&obj(r.clone()), &["_offset"]);
    }
    assert_eq!(
        c.fields[0],
        ("id".into(), Shape::Int),
        "the first kind wins"
    );
    let (kept, rescued) = c.split(obj(records[1].clone()), &["_offset"]);
    assert!(kept.is_empty(), "{kept:?}");
    assert_eq!(
        Value::Object(rescued),
        json!({"id": "two", "tags": ["b", 3], "v": {"x": "one"}, "_offset": 9})
    );
    let (kept, rescued) = c.split(obj(records[0].clone()), &["_offset"]);
    assert_eq!(Value::Object(kept), records[0]);
    assert!(rescued.is_empty());
}

#[test]
fn a_running_schema_keeps_its_types_and_only_gains_fields() {
    let mut first = Columns::default();
    first.observe(
        &obj(json!({"n": 1, "s": {"a": 1}, "never": null, "empty": []})),
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
    next.observe(&obj(json!({"n": 2.5, "s": {"b": true}, "new": "x"})), &[]);
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
    let (kept, rescued) = next.split(obj(json!({"n": 2.5, "new": "y", "never": null})), &[]);
    assert_eq!(Value::Object(kept), json!({"new": "y"}));
    assert_eq!(Value::Object(rescued), json!({"n": 2.5}));
    let json = serde_json::to_string(&next).unwrap();
    assert_eq!(serde_json::from_str::<Columns>(&json).unwrap(), next);
}

#[test]
fn absorbing_in_place_agrees_with_merging_shapes() {
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
            let Some(have) = Shape::of(start) else {
                continue;
            };
            for fixed in [false, true] {
                let want = Shape::of(next).and_then(|n| {
                    if fixed {
                        have.extend(&n)
                    } else {
                        have.merge(&n)
                    }
                });
                assert_eq!(
                    have.accepts(next, fixed),
                    want.is_some(),
                    "{start} then {next} ({fixed})"
                );
                if let Some(want) = want {
                    let mut got = have.clone();
                    got.absorb(next);
                    assert_eq!(got, want, "{start} then {next} ({fixed})");
                }
            }
        }
    }
}

#[test]
fn nulls_and_empty_lists_fit_and_learn_later() {
    let mut c = Columns::default();
    c.observe(&obj(json!({"a": null, "l": []})), &[]);
    assert_eq!(c.fields[0].1, Shape::Unknown);
    c.observe(&obj(json!({"a": true, "l": [{"k": 1}]})), &[]);
    assert_eq!(c.fields[0].1, Shape::Bool);
    assert_eq!(
        c.fields[1].1,
        Shape::List(Box::new(Shape::Struct(vec![("k".into(), Shape::Int)])))
    );
    assert!(c.fields[1].1.fits(&json!([])));
    assert!(Shape::Float.fits(&json!(3)));
    assert!(!Shape::Int.fits(&json!(3.5)));
    assert!(
        !Shape::Int.fits(&json!(u64::MAX)),
        "beyond i64 is not an integer column value"
    );
}
