//! The README and the book (`docs/`): every relative link points at a file that exists, and
//! every `#anchor` at a heading of its page; every page is in the book's summary; and
//! `mdbook build` renders the book (CI builds it here).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pages checked: the README, ARCHITECTURE.md and every page of the book.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    let mut book: Vec<PathBuf> = std::fs::read_dir(root().join("docs/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    book.sort();
    pages.extend(book);
    pages
}

/// A heading's anchor as GitHub and mdBook make it: lowercase, spaces to `-`, punctuation other
/// than `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of a page's Markdown links `[text](target)`, outside code blocks and spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop code spans: a `[x](y)` inside one is not a link.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let headings = anchors(&std::fs::read_to_string(&file).unwrap_or_default());
                if !headings.contains(anchor) {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_page_of_the_book_is_in_its_summary() {
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    for page in pages().iter().skip(2) {
        let name = page.file_name().unwrap().to_str().unwrap().to_string();
        if name != "SUMMARY.md" {
            assert!(listed.contains(&name), "{name} is not in SUMMARY.md");
        }
    }
}

#[test]
fn mdbook_builds_the_book() {
    let found = Command::new("mdbook")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "mdbook is required: cargo install mdbook --version 0.4.52 --locked --no-default-features --features search (or bash .ci/install-deps)"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new("mdbook")
        .arg("build")
        .arg(root().join("docs"))
        .arg("--dest-dir")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mdbook build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let architecture = std::fs::read_to_string(out_dir.path().join("architecture.html")).unwrap();
    assert!(
        architecture.contains("The delivery rules"),
        "ARCHITECTURE.md is included in the book"
    );
}

/// The table between a page's generated-table markers.
fn generated_table(page: &str) -> String {
    let text = std::fs::read_to_string(root().join("docs/src").join(page)).unwrap();
    let start = text.find("<!-- generated by").expect("the start marker");
    let body = &text[start..];
    let first = body.find('\n').unwrap() + 1;
    let end = body
        .find("<!-- end of the generated table -->")
        .expect("the end marker");
    body[first..end].to_string()
}

#[test]
fn the_configuration_tables_are_the_ones_the_settings_command_generates() {
    for (page, flag) in [
        ("configuration.md", None),
        ("eventhubs.md", Some("--eventhubs")),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ingest-cli"))
            .arg("settings")
            .args(flag)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            generated_table(page),
            String::from_utf8(out.stdout).unwrap(),
            "docs/src/{page} differs from `ingest-cli settings {}`: regenerate it",
            flag.unwrap_or_default()
        );
    }
}
