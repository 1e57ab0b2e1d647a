//! Sink service for the `orders` topic: all behaviour comes from `INGEST_*` variables.
//! To filter records or drop or mask fields, see "Transform records" in this service's README.

fn main() -> std::process::ExitCode {
    ingest::run()
}
