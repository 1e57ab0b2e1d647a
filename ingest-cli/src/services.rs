//! The services of a workspace: every `<services>/<dir>/Cargo.toml`, with the topic from its
//! `values.yaml`.
//!
//! Invariant: a service is found by its directory name or its crate name, and an ambiguous or
//! unknown name is an error listing what exists.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::values;

#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub dir: PathBuf,
    pub crate_name: String,
    /// From `values.yaml`; `None` when the service has none (yet).
    pub topic: Option<String>,
}

impl ServiceInfo {
    pub fn values_path(&self) -> PathBuf {
        self.dir.join("values.yaml")
    }

    pub fn dir_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Every service under `root`, sorted by crate name.
pub fn list(root: &Path) -> Result<Vec<ServiceInfo>> {
    let entries = std::fs::read_dir(root).with_context(|| {
        format!(
            "cannot read {}; run from the workspace root or pass --services-dir",
            root.display()
        )
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let Some(crate_name) = package_name(&text) else {
            continue;
        };
        let values_path = dir.join("values.yaml");
        let topic = if values_path.exists() {
            let v = values::load(&values_path)?;
            v["topic"].as_str().map(str::to_string)
        } else {
            None
        };
        out.push(ServiceInfo {
            dir,
            crate_name,
            topic,
        });
    }
    out.sort_by(|a, b| a.crate_name.cmp(&b.crate_name));
    Ok(out)
}

/// The `name` of the `[package]` table (enough TOML for the manifests we generate).
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
                if let Some(value) = value.strip_prefix('=') {
                    return Some(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

/// The service called `name` (directory or crate name).
pub fn find(root: &Path, name: &str) -> Result<ServiceInfo> {
    let all = list(root)?;
    let mut hits = all
        .iter()
        .filter(|s| s.crate_name == name || s.dir_name() == name);
    match (hits.next(), hits.next()) {
        (Some(s), None) => Ok(s.clone()),
        (Some(_), Some(_)) => bail!("{name:?} names more than one service; use the directory name"),
        (None, _) => {
            let known: Vec<&str> = all.iter().map(|s| s.crate_name.as_str()).collect();
            bail!(
                "no service {name:?} under {}; known: {}",
                root.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_package_name_only() {
        let toml = "[workspace]\nname = \"no\"\n[package]\nname = \"orders\"\nversion = \"1\"\n";
        assert_eq!(package_name(toml).as_deref(), Some("orders"));
        assert_eq!(package_name("[lib]\nname = \"x\"\n"), None);
    }
}
