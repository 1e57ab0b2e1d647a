//! `ingest`: land one Kafka topic (or Azure event hub) in object storage as NDJSON files,
//! exactly once.
//!
//! A service's `main` is `ingest::run()`: it reads `INGEST_*` variables, installs tracing, wires
//! SIGTERM/SIGINT and runs until shutdown. Embedders and tests use [`Pipeline`] with a
//! [`Config`] and a `CancellationToken` instead.
//!
//! The crate is laid out by stage, in the order records travel (`ARCHITECTURE.md` has the
//! picture and the invariants):
//!
//! - [`source`]: where records come from (Kafka, Event Hubs) behind one seam.
//! - [`batch`]: the records of each partition's future files, and when to flush them.
//! - [`encode`]: batches into NDJSON (optionally gzip), ahead of the flush where possible.
//! - [`land`]: the delivery protocol: claim, upload create-only, then commit.
//! - [`storage`]: object storage with create-only writes.
//! - `pipeline`: the loop that drives the stages ([`Pipeline`]).
//! - [`ops`]: health, the HTTP endpoint, metrics, logs and progress.
//! - [`config`]: every `INGEST_*` variable, validated.
//!
//! Dependencies point one way: `pipeline` uses every stage; `land` uses `encode`, `batch`,
//! `storage` and `source`'s commit handle; `encode` uses `batch`; `batch`, `storage` and `source`
//! use only `config` (and `clock`). `cores` (the cores this process may use, read once) is a leaf
//! like `clock`. The pure stages (`batch`, `encode`, naming and recovery in `land`) do no I/O and
//! are unit-tested on their own.

pub mod batch;
mod clock;
pub mod config;
mod cores;
pub mod encode;
mod error;
pub mod land;
pub mod ops;
mod pipeline;
pub mod registry;
mod service;
pub mod source;
pub mod storage;
pub mod table;

use std::process::ExitCode;

pub use config::Config;
pub use encode::transform;
pub use encode::transform::Keep;
pub use error::Error;
pub use ops::progress::Progress;
pub use ops::telemetry::init as init_tracing;
pub use pipeline::Pipeline;
pub use service::Service;
pub use tokio_util::sync::CancellationToken;

/// Exit code for a configuration error (the service cannot start as configured).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code after a second signal: exited at once, nothing unlanded was committed.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs a sink service from the environment until SIGTERM/SIGINT. All a `main` needs.
///
/// Exit codes: 0 after a clean shutdown (everything buffered landed and was committed),
/// 1 on a runtime error, 2 on a configuration error, 130 after a second signal.
pub fn run() -> ExitCode {
    run_with(None)
}

/// The stack each runtime thread reserves. Decoding an AMQP message recurses once per level of
/// its body (in `fe2o3-amqp`, before the service sees the event), and so do converting and
/// dropping it. With a thread's 2 MiB default, a list nested 10,000 deep (90 KB) aborted the
/// process, on the same event at every restart. Values described inside values nest at three
/// bytes a level, so an Event Hubs event of 1 MB can nest 350,000 deep. A release build takes
/// 0.8 to 1.4 KB of stack a level: 256 MiB aborted at 350,000 levels, 512 MiB did not, and
/// this reservation decodes 1,000,000 (a 3 MB event). A debug build takes 7 to 11 KB a level:
/// 100,000 here, as `tests/eventhubs.rs` sends. Only the pages a thread touches are memory:
/// the reservation costs address space, and a body that deep costs its depth in stack once.
const THREAD_STACK_BYTES: usize = 1 << 30;

/// [`run`] with an optional per-topic transform ([`Service`] is the public way in).
fn run_with(transform: Option<transform::Transform>) -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ingest: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    ops::telemetry::init(config.log_format);
    for var in &config.unknown_variables {
        tracing::warn!("{var} is not an ingest setting and is ignored; check its spelling");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ingest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        match Pipeline::new(config)
            .with_transform(transform)
            .run(shutdown)
            .await
        {
            Ok(_) => ExitCode::SUCCESS,
            Err(e @ (Error::Config(_) | Error::KafkaSetting(_))) => {
                tracing::error!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                tracing::error!(retryable = e.is_retryable(), "{e}");
                ExitCode::FAILURE
            }
        }
    });
    // Everything the service owes is done here: what landed is committed, the source closed
    // (its group left, its ownerships released). Work still running is work the stop cut short
    // (a Delta commit past the shutdown timeout, on a blocking thread). Shutting the runtime
    // down under it panics that thread's timers ("being shutdown"); the process ends around it
    // instead, as a SIGKILL at that moment would, which the delivery rules make safe.
    std::mem::forget(runtime);
    code
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once (safe: nothing is committed
/// before its file landed, and landed-but-uncommitted files are claimed).
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!(
            "cannot install signal handlers; stop the service with SIGKILL (safe, nothing is lost)"
        );
        return;
    };
    for n in 0.. {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if n == 0 {
            tracing::info!(
                signal = name,
                "stopping: flushing buffers; send it again to exit at once"
            );
            shutdown.cancel();
        } else {
            tracing::warn!(
                signal = name,
                "second signal: exiting now; unlanded records stay uncommitted"
            );
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    }
}
