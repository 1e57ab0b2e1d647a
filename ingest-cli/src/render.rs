//! Template rendering: `templates/service/**.tmpl` files (embedded in the binary) with
//! `@@name@@` placeholders.
//!
//! Pure. `@@` cannot clash with Helm's `{{ }}`, Rust, TOML or YAML syntax. Invariant: a render
//! either fills every placeholder or fails naming the template and the placeholder, and a
//! variable nobody uses is an error too (it is probably misspelt in a template).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

/// Every template: path relative to `templates/service/` (with `.tmpl`) and its text.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml.tmpl",
        include_str!("../../templates/service/Cargo.toml.tmpl"),
    ),
    (
        "src/main.rs.tmpl",
        include_str!("../../templates/service/src/main.rs.tmpl"),
    ),
    (
        "values.yaml.tmpl",
        include_str!("../../templates/service/values.yaml.tmpl"),
    ),
    (
        "README.md.tmpl",
        include_str!("../../templates/service/README.md.tmpl"),
    ),
];

const OPEN_CLOSE: &str = "@@";

/// Renders every template: (output path without `.tmpl`, contents).
pub fn render_all(vars: &BTreeMap<&str, String>) -> Result<Vec<(String, String)>> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for (path, text) in TEMPLATES {
        let Some(target) = path.strip_suffix(".tmpl") else {
            bail!("template {path} has no .tmpl suffix; rename it to {path}.tmpl");
        };
        out.push((target.to_string(), render(path, text, vars, &mut used)?));
    }
    if let Some(unused) = vars.keys().find(|k| !used.contains(*k)) {
        bail!("no template uses the variable {unused:?}; check the placeholders' spelling");
    }
    Ok(out)
}

/// Replaces `@@name@@` in `text` with `vars[name]`, recording the names used.
pub fn render<'v>(
    template: &str,
    text: &str,
    vars: &'v BTreeMap<&str, String>,
    used: &mut BTreeSet<&'v str>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN_CLOSE) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN_CLOSE.len()..];
        let Some(len) = after.find(OPEN_CLOSE) else {
            bail!(
                "template {template}: unclosed placeholder at {:?}",
                line_of(after)
            );
        };
        let name = &after[..len];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            bail!("template {template}: bad placeholder @@{name}@@ (expected @@lower_snake@@)");
        }
        let Some((key, value)) = vars.get_key_value(name) else {
            bail!("template {template}: no value for placeholder @@{name}@@");
        };
        used.insert(key);
        out.push_str(value);
        rest = &after[len + OPEN_CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

fn line_of(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn fills_placeholders_and_leaves_helm_braces_alone() {
        let v = vars(&[("topic", "orders")]);
        let mut used = BTreeSet::new();
        let out = render("t", "a @@topic@@ {{ .Values.x }} @@topic@@", &v, &mut used).unwrap();
        assert_eq!(out, "a orders {{ .Values.x }} orders");
        assert!(used.contains("topic"));
    }

    #[test]
    fn unknown_unclosed_and_malformed_placeholders_fail_naming_the_template() {
        let v = vars(&[("topic", "orders")]);
        let mut used = BTreeSet::new();
        for (text, expect) in [
            ("@@nope@@", "no value for placeholder @@nope@@"),
            ("x @@topic", "unclosed placeholder"),
            ("@@Topic@@", "bad placeholder"),
            ("@@@@", "bad placeholder"),
        ] {
            let err = render("f.tmpl", text, &v, &mut used)
                .unwrap_err()
                .to_string();
            assert!(err.contains("f.tmpl") && err.contains(expect), "{err}");
        }
    }

    #[test]
    fn every_file_under_templates_is_embedded_and_has_the_suffix() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/service");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap().to_str().unwrap();
                    on_disk.push(rel.to_string());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = TEMPLATES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "list new templates in render::TEMPLATES");
        assert!(embedded.iter().all(|p| p.ends_with(".tmpl")));
    }
}
