//! The click records as Avro in Confluent's wire format, for the schema-registry rows of
//! `ingest-bench encode`: the same events the JSON rows encode, written under one flat schema.

use serde_json::Value;

use crate::records::click_event;

/// The clicks' schema (the field order of `records::click_event`).
pub const CLICK_SCHEMA: &str = r#"{"type":"record","name":"Click","fields":[
  {"name":"event","type":"string"},{"name":"ts","type":"long"},{"name":"user","type":"string"},
  {"name":"session","type":"string"},{"name":"page","type":"string"},{"name":"ref","type":"string"},
  {"name":"agent","type":"string"},{"name":"ms","type":"long"}]}"#;

fn long(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Click `n` framed for schema id 1: the zero byte, the id, then the datum.
pub fn click(n: u64) -> Vec<u8> {
    let event: Value = serde_json::from_slice(&click_event(n)).expect("a click is JSON");
    let mut out = vec![0, 0, 0, 0, 1];
    for (_, field) in event.as_object().expect("an object") {
        match field {
            Value::String(s) => {
                long(s.len() as i64, &mut out);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Number(x) => long(x.as_i64().expect("a whole number"), &mut out),
            other => panic!("a click field that is {other}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_click_decodes_back_to_its_json() {
        let schema = ingest::registry::avro::Schema::parse(super::CLICK_SCHEMA, &[]).unwrap();
        for n in 0..100 {
            let mut json = Vec::new();
            ingest::registry::avro::to_json(&schema, &super::click(n)[5..], &mut json, 1 << 20)
                .unwrap();
            assert_eq!(json, crate::records::click_event(n));
        }
    }
}
