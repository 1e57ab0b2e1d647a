//! Sink service for the `orders` topic: all behaviour comes from `INGEST_*` variables.

fn main() -> std::process::ExitCode {
    ingest::run()
}
