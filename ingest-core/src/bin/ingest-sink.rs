//! A sink service for whatever topic `INGEST_TOPIC` names: exactly what a generated service's
//! `main` is. Used by the integration tests and handy for ad-hoc runs.

fn main() -> std::process::ExitCode {
    ingest::run()
}
