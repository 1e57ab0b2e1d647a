//! An Avro schema, parsed from the JSON text a schema registry serves, into a table of nodes
//! (named types refer to each other by index, so recursive records need no cycles of owners).
//!
//! Pure. Invariant: every index in a [`Node`] is inside the table, and every named reference
//! resolves (to a type defined in the schema or in one of the schemas it references); a logical
//! type on the wrong base type is ignored, as the Avro specification says.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// One type of a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// `int` days since 1970-01-01.
    Date,
    /// `int` milliseconds or `long` microseconds after midnight.
    Time(Unit),
    /// `long` since the epoch: UTC (`timestamp-*`) or local (`local-timestamp-*`).
    Timestamp {
        unit: Unit,
        utc: bool,
    },
    /// `bytes` (size `None`) or `fixed` holding a two's-complement big-endian unscaled value.
    Decimal {
        scale: u32,
        precision: u32,
        size: Option<usize>,
    },
    /// `fixed` of 16 bytes; a `string` UUID is a plain string.
    Uuid,
    /// `fixed` of 12 bytes: months, days, milliseconds (little-endian u32 each).
    Duration,
    Fixed(usize),
    Enum(Vec<String>),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<Field>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Micros,
    Nanos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub node: usize,
}

/// A parsed schema: its nodes, the root first among those it defines.
#[derive(Debug, Clone)]
pub struct Schema {
    pub nodes: Vec<Node>,
    pub root: usize,
}

/// Types named in a schema and in the schemas it references, by full name.
#[derive(Default)]
struct Parser {
    nodes: Vec<Node>,
    names: HashMap<String, usize>,
}

/// Nesting of schema definitions past which a schema is refused (a registry would not serve one).
const MAX_SCHEMA_DEPTH: usize = 256;

impl Schema {
    /// Parses `text`, after the schemas it references (`references`, in dependency order: a
    /// reference's own references first), whose named types it may use.
    pub fn parse(text: &str, references: &[String]) -> Result<Schema, String> {
        let mut parser = Parser::default();
        for r in references {
            let json = serde_json::from_str(r).map_err(|e| format!("a referenced schema: {e}"))?;
            parser.node(&json, "", 0)?;
        }
        let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let root = parser.node(&json, "", 0)?;
        Ok(Schema {
            nodes: parser.nodes,
            root,
        })
    }
}

fn primitive(name: &str) -> Option<Node> {
    Some(match name {
        "null" => Node::Null,
        "boolean" => Node::Boolean,
        "int" => Node::Int,
        "long" => Node::Long,
        "float" => Node::Float,
        "double" => Node::Double,
        "bytes" => Node::Bytes,
        "string" => Node::String,
        _ => return None,
    })
}

/// The full name of `name` declared in `namespace`: a dotted name is already full.
fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

impl Parser {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn node(&mut self, json: &Value, namespace: &str, depth: usize) -> Result<usize, String> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(format!("nested deeper than {MAX_SCHEMA_DEPTH} levels"));
        }
        match json {
            Value::String(name) => self.named(name, namespace),
            Value::Array(branches) => {
                let mut nodes = Vec::with_capacity(branches.len());
                for b in branches {
                    nodes.push(self.node(b, namespace, depth + 1)?);
                }
                Ok(self.push(Node::Union(nodes)))
            }
            Value::Object(o) => self.complex(o, namespace, depth),
            other => Err(format!("{other} is not a type")),
        }
    }

    /// A type by name: a primitive, or a named type defined earlier (or being defined).
    fn named(&mut self, name: &str, namespace: &str) -> Result<usize, String> {
        if let Some(p) = primitive(name) {
            return Ok(self.push(p));
        }
        self.names
            .get(&full_name(name, namespace))
            .or_else(|| self.names.get(name))
            .copied()
            .ok_or_else(|| format!("type {name:?} is not defined (nor referenced)"))
    }

    fn complex(
        &mut self,
        o: &Map<String, Value>,
        namespace: &str,
        depth: usize,
    ) -> Result<usize, String> {
        let kind = match o.get("type") {
            Some(Value::String(k)) => k.as_str(),
            // {"type": {...}} or {"type": [...]}: the inner type, attributes aside.
            Some(inner) => return self.node(inner, namespace, depth + 1),
            None => return Err("an object without \"type\"".into()),
        };
        let logical = o.get("logicalType").and_then(Value::as_str);
        let name = o.get("name").and_then(Value::as_str);
        let own_namespace = match (o.get("namespace").and_then(Value::as_str), name) {
            (Some(ns), _) => ns.to_string(),
            (None, Some(n)) if n.contains('.') => n[..n.rfind('.').unwrap_or(0)].to_string(),
            _ => namespace.to_string(),
        };
        match kind {
            "record" | "error" => {
                let name = name.ok_or("a record without a name")?;
                // Registered before its fields, which may refer to it.
                let at = self.define(name, &own_namespace, Node::Record(Vec::new()))?;
                let fields = o
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("record {name} without \"fields\""))?;
                let mut parsed = Vec::with_capacity(fields.len());
                for f in fields {
                    let fname = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("a field of {name} without a name"))?;
                    let ftype = f
                        .get("type")
                        .ok_or_else(|| format!("field {name}.{fname} without a type"))?;
                    let node = self.node(ftype, &own_namespace, depth + 1)?;
                    parsed.push(Field {
                        name: fname.to_string(),
                        node,
                    });
                }
                self.nodes[at] = Node::Record(parsed);
                Ok(at)
            }
            "enum" => {
                let name = name.ok_or("an enum without a name")?;
                let symbols = o
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("enum {name} without \"symbols\""))?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("enum {name} has a symbol that is not a string"))?;
                self.define(name, &own_namespace, Node::Enum(symbols))
            }
            "fixed" => {
                let name = name.ok_or("a fixed without a name")?;
                let size = o
                    .get("size")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("fixed {name} without a size"))?
                    as usize;
                let node = match logical {
                    Some("decimal") => decimal(o, Some(size)).unwrap_or(Node::Fixed(size)),
                    Some("uuid") if size == 16 => Node::Uuid,
                    Some("duration") if size == 12 => Node::Duration,
                    _ => Node::Fixed(size),
                };
                self.define(name, &own_namespace, node)
            }
            "array" => {
                let items = o.get("items").ok_or("an array without \"items\"")?;
                let items = self.node(items, namespace, depth + 1)?;
                Ok(self.push(Node::Array(items)))
            }
            "map" => {
                let values = o.get("values").ok_or("a map without \"values\"")?;
                let values = self.node(values, namespace, depth + 1)?;
                Ok(self.push(Node::Map(values)))
            }
            primitive_name => {
                let base = self.named(primitive_name, namespace)?;
                let logical_node = match (&self.nodes[base], logical) {
                    (Node::Int, Some("date")) => Some(Node::Date),
                    (Node::Int, Some("time-millis")) => Some(Node::Time(Unit::Millis)),
                    (Node::Long, Some("time-micros")) => Some(Node::Time(Unit::Micros)),
                    (Node::Long, Some(l)) => timestamp(l),
                    (Node::Bytes, Some("decimal")) => decimal(o, None),
                    _ => None,
                };
                if let Some(n) = logical_node {
                    self.nodes[base] = n;
                }
                Ok(base)
            }
        }
    }

    /// Defines named type `name` as `node`; a name defined twice is an error.
    fn define(&mut self, name: &str, namespace: &str, node: Node) -> Result<usize, String> {
        let full = full_name(name.rsplit('.').next().unwrap_or(name), namespace);
        if self.names.contains_key(&full) {
            return Err(format!("type {full} is defined twice"));
        }
        let at = self.push(node);
        self.names.insert(full, at);
        Ok(at)
    }
}

fn timestamp(logical: &str) -> Option<Node> {
    let (utc, unit) = match logical {
        "timestamp-millis" => (true, Unit::Millis),
        "timestamp-micros" => (true, Unit::Micros),
        "timestamp-nanos" => (true, Unit::Nanos),
        "local-timestamp-millis" => (false, Unit::Millis),
        "local-timestamp-micros" => (false, Unit::Micros),
        "local-timestamp-nanos" => (false, Unit::Nanos),
        _ => return None,
    };
    Some(Node::Timestamp { unit, utc })
}

/// A decimal's node, or `None` when its attributes are not valid (then the base type is used).
fn decimal(o: &Map<String, Value>, size: Option<usize>) -> Option<Node> {
    let precision = o.get("precision")?.as_u64()? as u32;
    let scale = o.get("scale").map_or(Some(0), Value::as_u64)? as u32;
    (precision > 0 && scale <= precision).then_some(Node::Decimal {
        scale,
        precision,
        size,
    })
}
