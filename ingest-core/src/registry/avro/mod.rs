//! Avro in a schema registry's wire format: the writer's schema parsed once ([`schema`]), each
//! datum decoded with it into JSON text ([`decode`]), logical values as text ([`time`]).
//!
//! Pure: no I/O. The registry client ([`super::client`]) fetches the schema text.

pub mod columns;
pub mod decode;
pub mod schema;
pub mod time;

pub use decode::{to_json, DecodeError};
pub use schema::Schema;

#[cfg(test)]
mod tests;
