//! What every setting's validation shares: the one-line [`ConfigError`], and the readers of
//! numbers and choices.
//!
//! Pure. Invariant: an error names the variable, the value (`***` when the name suggests a
//! secret) and what is expected.

/// A configuration problem, displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}{shown} {problem}: expected {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub(super) shown: String,
    pub(super) problem: &'static str,
    pub expected: String,
}

impl ConfigError {
    pub(super) fn missing(variable: &str, expected: impl Into<String>) -> Self {
        ConfigError {
            variable: format!("INGEST_{variable}"),
            shown: String::new(),
            problem: "is not set",
            expected: expected.into(),
        }
    }

    pub(super) fn invalid(variable: &str, value: &str, expected: impl Into<String>) -> Self {
        let variable = format!("INGEST_{variable}");
        let shown = if is_secret_name(&variable) {
            "=***".to_string()
        } else {
            format!("={value:?}")
        };
        ConfigError {
            variable,
            shown,
            problem: "is invalid",
            expected: expected.into(),
        }
    }
}

pub(super) fn positive<T: std::str::FromStr + Default + PartialEq>(
    var: &str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().replace('_', "").parse::<T>() {
            Ok(n) if n != T::default() => Ok(n),
            _ => Err(ConfigError::invalid(var, &v, "a positive whole number")),
        },
    }
}

/// A positive whole number that has no default (unset means off).
pub(super) fn optional<T: std::str::FromStr + Default + PartialEq>(
    var: &str,
    value: Option<String>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| positive(var, Some(v), T::default()))
        .transpose()
}

pub(super) fn choice<T: Copy>(
    var: &str,
    value: Option<String>,
    options: &[(&str, T)],
    default: T,
) -> Result<T, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v.trim()))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            ConfigError::invalid(var, &v, format!("one of {}", names.join(", ")))
        })
}

pub(super) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "key.pem",
        "token",
        "sasl.oauthbearer.config",
        "connection",
    ]
    .iter()
    .any(|s| n.contains(s) || n.contains(&s.replace('.', "_")))
}
