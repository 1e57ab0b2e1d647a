//! [`Service`]: the builder a service's `main` uses when it needs more than `ingest::run()`,
//! today a per-topic [`Transform`].
//!
//! Invariant: `Service::new().run()` behaves exactly like `ingest::run()` (same configuration,
//! signals and exit codes); the builder only adds code hooks, never settings, which stay in
//! `INGEST_*` variables.

use std::process::ExitCode;

use serde_json::Value;

use crate::encode::transform::{Keep, Transform};

/// A sink service configured from `INGEST_*` variables (read when [`Service::run`] starts),
/// plus optional code hooks.
///
/// ```no_run
/// use ingest::{transform, Keep, Service};
///
/// fn main() -> std::process::ExitCode {
///     Service::new()
///         .transform(|order| {
///             transform::mask_field(order, "customer.email");
///             Keep::from(order["status"] != "test")
///         })
///         .run()
/// }
/// ```
#[derive(Debug, Default, Clone)]
#[must_use = "a Service does nothing until .run() is called"]
pub struct Service {
    transform: Option<Transform>,
}

impl Service {
    pub fn new() -> Service {
        Service::default()
    }

    /// Runs `f` on every record value (one parsed JSON document) before it is written: modify
    /// it in place, return [`Keep::No`] to leave it out. Dropped records are committed with
    /// their batch. Runs on the encoder's blocking thread, so it may be CPU-heavy but should
    /// not block on I/O. A record the transform panics on is an invalid record (a dead letter
    /// under the default policy, its error naming the panic), so it cannot crash-loop the
    /// service.
    ///
    /// Records that pass through a transform are re-serialised (keys keep their order; numbers
    /// are read as 64-bit integers or doubles). A batch whose records are all dropped still
    /// lands as an empty file, which keeps the claim protocol unchanged.
    pub fn transform(mut self, f: impl Fn(&mut Value) -> Keep + Send + Sync + 'static) -> Self {
        self.transform = Some(Transform::new(f));
        self
    }

    /// Reads the configuration, installs tracing, wires SIGTERM/SIGINT and runs until
    /// shutdown. Exit codes as for [`crate::run`].
    pub fn run(self) -> ExitCode {
        crate::run_with(self.transform)
    }
}
