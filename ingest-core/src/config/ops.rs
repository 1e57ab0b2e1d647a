//! Operations settings: logs, the HTTP endpoint, health thresholds and fault injection for the
//! crash tests.
//!
//! Pure: parsing only; nothing here binds a socket.

use std::io::IsTerminal;

use super::defaults;
use super::parse::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr (where logs go) is not a terminal, text otherwise.
    Auto,
    Json,
    Text,
}

impl LogFormat {
    pub fn is_json(self) -> bool {
        match self {
            LogFormat::Auto => !std::io::stderr().is_terminal(),
            LogFormat::Json => true,
            LogFormat::Text => false,
        }
    }
}

/// `INGEST_HTTP_ADDR` (default `0.0.0.0:8080`; `off` or empty disables the endpoint).
pub(super) fn http_addr(raw: Option<&str>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let http_addr = match raw.map(str::trim) {
        Some("off") | Some("") => None,
        other => {
            let v = other.unwrap_or(defaults::HTTP_ADDR);
            Some(v.parse::<std::net::SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    "HTTP_ADDR",
                    v,
                    "ip:port for /healthz, /readyz and /metrics (e.g. 0.0.0.0:8080), or off",
                )
            })?)
        }
    };
    Ok(http_addr)
}

/// Fault injection for crash tests. `INGEST_FAULT_HANG_AFTER_UPLOADS=N`: after the N-th data
/// file is uploaded, print `FAULT: hanging before commit` to stderr and hang without committing.
/// `INGEST_FAULT_FAIL_MULTIPART_AFTER_PARTS=N`: every multipart upload fails after N parts
/// (the upload is then aborted and the flush retried). `INGEST_FAULT_CONFLICT_CREATES=1,3`:
/// the first and third create-only writes answer a write conflict (an HTTP 409 as S3 gives
/// while another conditional write to the name is in flight) without writing anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fault {
    pub hang_after_uploads: Option<u64>,
    pub fail_multipart_after_parts: Option<usize>,
    /// Bit `n - 1` set: the `n`-th create answers a conflict (creates 1 to 64).
    pub conflict_creates: u64,
}

/// `INGEST_FAULT_CONFLICT_CREATES`: which creates (1 to 64, comma-separated) conflict.
pub(super) fn conflict_creates(raw: Option<String>) -> Result<u64, ConfigError> {
    let Some(raw) = raw else { return Ok(0) };
    raw.split(',')
        .try_fold(0u64, |mask, n| match n.trim().parse::<u32>() {
            Ok(n @ 1..=64) => Ok(mask | 1 << (n - 1)),
            _ => Err(ConfigError::invalid(
                "FAULT_CONFLICT_CREATES",
                &raw,
                "create numbers from 1 to 64, comma-separated (test only)",
            )),
        })
}
