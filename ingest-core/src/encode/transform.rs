//! Per-topic record transforms: code a service's `main` passes to [`crate::Service`] to filter
//! records or drop and mask fields before they are written.
//!
//! Pure: a transform is a plain function over a parsed JSON value, run by the encoder on its
//! blocking thread (never on the async runtime). Invariant: a record a transform drops is still
//! covered by its batch's offsets, so it is committed with the batch and never re-read; only
//! the record values of valid JSON pass through a transform (tombstones and invalid records
//! keep their usual path).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// What a transform decides for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Write the (possibly modified) record.
    Yes,
    /// Leave it out of the file; it is committed with its batch all the same.
    No,
}

impl From<bool> for Keep {
    fn from(keep: bool) -> Keep {
        if keep {
            Keep::Yes
        } else {
            Keep::No
        }
    }
}

/// A record transform, cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Transform(Arc<dyn Fn(&mut Value) -> Keep + Send + Sync>);

impl Transform {
    pub fn new(f: impl Fn(&mut Value) -> Keep + Send + Sync + 'static) -> Transform {
        Transform(Arc::new(f))
    }

    /// Runs the transform on one record value. Returns the compact one-line JSON to write,
    /// `None` when the record is dropped, or why the value is not one valid JSON document (the
    /// parse here is the encoder's validity check when a transform is set). A transformed
    /// record is re-serialised: object keys keep their order, numbers and strings are written
    /// as serde_json reads them.
    ///
    /// A transform that panics on a record makes that record invalid (its error names the
    /// panic), so one poison record cannot crash-loop the service.
    pub fn apply(&self, value: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut v: Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        // The value is dropped on a panic, and the closure holds no state of ours.
        let kept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.0)(&mut v)))
            .map_err(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic".into());
                format!("the transform panicked on this record: {message}")
            })?;
        match kept {
            Keep::No => Ok(None),
            Keep::Yes => serde_json::to_vec(&v).map(Some).map_err(|e| e.to_string()),
        }
    }
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transform(..)")
    }
}

/// Removes the field at a dotted path (`"customer.email"`), if present. Returns whether it was.
pub fn remove_field(value: &mut Value, path: &str) -> bool {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (field_mut(value, parent), last),
        None => (Some(value), path),
    };
    parent
        .and_then(Value::as_object_mut)
        .is_some_and(|o| o.remove(last).is_some())
}

/// Replaces the field at a dotted path with `"***"`, if present. Returns whether it was.
pub fn mask_field(value: &mut Value, path: &str) -> bool {
    match field_mut(value, path) {
        Some(v) => {
            *v = Value::String("***".into());
            true
        }
        None => false,
    }
}

/// The field at a dotted path through nested objects.
pub fn field_mut<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    path.split('.')
        .try_fold(value, |v, name| v.as_object_mut()?.get_mut(name))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::batch::RecordRef;
    use crate::config::{Compression, Envelope, InvalidRecordPolicy};
    use crate::encode::{encode, EncodeOptions, Encoded};

    type Batch = crate::batch::Batch;

    fn text(bytes: Option<Vec<u8>>) -> Option<String> {
        bytes.map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn keeps_modifies_or_drops_a_record() {
        let t = Transform::new(|v| {
            mask_field(v, "card.number");
            remove_field(v, "debug");
            Keep::from(v["status"] != "test")
        });
        let kept = t
            .apply(br#"{"status":"paid","card":{"number":"4111","exp":"12/30"},"debug":[1]}"#)
            .unwrap();
        assert_eq!(
            text(kept).unwrap(),
            r#"{"status":"paid","card":{"number":"***","exp":"12/30"}}"#
        );
        assert_eq!(t.apply(br#"{"status":"test"}"#).unwrap(), None);
    }

    #[test]
    fn output_is_one_compact_line_in_input_key_order() {
        let t = Transform::new(|_| Keep::Yes);
        let out = text(t.apply(b"{\n \"z\": 1,\n \"a\": \"x\\ny\"\n}").unwrap()).unwrap();
        assert_eq!(out, r#"{"z":1,"a":"x\ny"}"#);
        assert!(!out.contains('\n'));
    }

    #[test]
    fn paths_that_do_not_exist_change_nothing() {
        let mut v = json!({"a": {"b": 1}, "n": 5});
        assert!(!remove_field(&mut v, "a.c"));
        assert!(!remove_field(&mut v, "n.x"));
        assert!(!mask_field(&mut v, "x.y"));
        assert_eq!(v, json!({"a": {"b": 1}, "n": 5}));
        assert!(remove_field(&mut v, "a.b"));
        assert_eq!(v, json!({"a": {}, "n": 5}));
    }

    #[test]
    fn non_object_values_pass_through_helpers_untouched() {
        let mut v = json!([1, 2]);
        assert!(!mask_field(&mut v, "a"));
        assert!(!remove_field(&mut v, "a"));
        assert_eq!(v, json!([1, 2]));
    }

    fn encode_with(envelope: Envelope, values: &[&[u8]]) -> Encoded {
        let mut batch = Batch::new(Instant::now(), 0);
        for (i, v) in values.iter().enumerate() {
            batch.push(&RecordRef {
                offset: i as i64,
                timestamp_ms: Some(0),
                key: None,
                value: Some(v),
                headers: &[],
                flaw: None,
                cursor: None,
            });
        }
        let opts = EncodeOptions {
            topic: "t".into(),
            envelope,
            compression: Compression::None,
            invalid: InvalidRecordPolicy::DeadLetter,
            max_record_bytes: 1000,
            transform: Some(Transform::new(|v| {
                remove_field(v, "secret");
                Keep::from(v["keep"] == true)
            })),
            format: crate::config::Format::Ndjson,
            registry: None,
            table_columns: None,
        };
        encode(&batch, 0, &opts).unwrap()
    }

    #[test]
    fn the_encoder_writes_transformed_values_and_counts_dropped_ones() {
        let values: [&[u8]; 4] = [
            br#"{"keep":true,"secret":1}"#,
            br#"{"keep":false}"#,
            b"not json",
            b"{\n\"keep\": true}",
        ];
        let out = encode_with(Envelope::Raw, &values);
        assert_eq!(
            String::from_utf8(out.data).unwrap(),
            "{\"keep\":true}\n{\"keep\":true}\n"
        );
        assert_eq!((out.records, out.filtered, out.dead_lettered), (2, 1, 1));

        let out = encode_with(Envelope::Metadata, &values);
        let text = String::from_utf8(out.data).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["offset"], 0);
        assert_eq!(lines[0]["value"], json!({"keep": true}));
        assert_eq!(lines[1]["offset"], 3);
        assert_eq!((out.filtered, out.dead_lettered), (1, 1));
    }

    #[test]
    fn debug_does_not_try_to_print_the_closure() {
        assert_eq!(
            format!("{:?}", Transform::new(|_| Keep::No)),
            "Transform(..)"
        );
    }
}
