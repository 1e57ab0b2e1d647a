//! Installs the tracing subscriber: the only place that does. Level from `RUST_LOG` (default
//! [`DEFAULT_FILTER`]), JSON or text from `INGEST_LOG_FORMAT`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// What is logged when `RUST_LOG` is not set: `info`, without the Delta kernel's own events.
/// Every kernel failure comes back to the service as an error, which it logs once with what
/// happens next (a table not created yet, a round retried after an outage); the kernel's own
/// ERROR lines for the same failures read as problems to whoever alerts on ERROR.
/// `RUST_LOG=info,delta_kernel=info` shows them.
pub const DEFAULT_FILTER: &str = "info,delta_kernel=off";

/// Installs the global subscriber; a second call (tests, embedding) is a no-op.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format.is_json() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_default_keeps_the_services_events_and_drops_the_delta_kernels() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(DEFAULT_FILTER))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "delta_kernel::snapshot::builder", "No table version found.");
            tracing::warn!(target: "ingest::pipeline::table", "the Delta table's commit failed");
            tracing::debug!(target: "ingest::table", "no Delta log yet");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("the Delta table's commit failed"), "{text}");
        assert!(!text.contains("No table version found"), "{text}");
        assert!(
            !text.contains("no Delta log yet"),
            "debug is below the default: {text}"
        );
    }
}
