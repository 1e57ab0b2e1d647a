//! Encoding: a batch's records into the bytes of its files. NDJSON lines ([`ndjson`]) checked by
//! a fast JSON scan ([`json`]), optionally reshaped by a per-topic [`transform`], compressed as
//! gzip parts ([`gzip`]), and started while the batch still fills ([`ahead`]).
//!
//! Pure and CPU-bound: nothing here does I/O or needs an async runtime; the flush runs an
//! [`Encoder`] on a blocking thread. Invariants: every record ends up in exactly one of the data
//! file, the dead-letter file, a counted skip or filter, or an [`InvalidRecord`] error; encoding
//! ahead then finishing writes the very file one encode would.
//!
//! Parquet files ([`parquet`]) are an encoder beside [`Encoder`], chosen from
//! `EncodeOptions::format`, with the same accounting ([`Encoded`]) and the same record-or-error
//! rule; they are written whole when the batch is sealed (nothing is encoded ahead).

pub mod ahead;
mod encoder;
pub mod gzip;
pub mod json;
mod ndjson;
pub mod parquet;
pub mod transform;

pub use ahead::Ahead;
pub use encoder::{encode, EncodeOptions, Encoded, Encoder, InvalidRecord};
pub use ndjson::compact_into;
