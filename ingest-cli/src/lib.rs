//! `ingest-cli`'s library: service scaffolding and checks, shared by the binary and its tests.
//!
//! Everything here is pure or touches only the local filesystem; `demo` (which runs a
//! pipeline) lives in the binary.

pub mod autoloader;
pub mod names;
pub mod render;
pub mod sample;
pub mod scaffold;
pub mod services;
pub mod values;
