//! `agentbak discover [--update] [--import]`: run `init --discover` again on the state of an
//! existing manifest, and propose the rules it lacks.
//!
//! A living agent makes new files and new secrets after `init`; snapshot captures what no rule
//! declares (under the manifest's capture path) and this command names them: every secret
//! discovery finds that no rule of the manifest already reads at that place becomes a
//! proposed rule, with the handle init would give it (or the existing handle of the same
//! value). A proposal whose value a captured field holds says which captured handle it folds
//! (the field stays, so archived placeholders keep resolving).
//!
//! Invariants:
//! - Values stay in [`Secret`]s; the report holds masked previews and handles.
//! - `--update` edits the manifest's text: each new rule is inserted into the `secrets` array
//!   (created when absent) and every other byte is kept. The result is parsed as a manifest
//!   and compared with the old document plus the new rules before it atomically replaces the
//!   file (same permissions).
//! - `--import` stores the values of the new rules only (not of the rules the manifest had).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::detect::Detector;
use crate::error::{Error, ExitCode, Report, Result};
use crate::handle::Handle;
use crate::manifest::{Locator, Manifest, SecretRule, StoreConfig};
use crate::ops::init::discover::{self, Attention, Discovered};
use crate::ops::secrets::push::{PushItem, push};
use crate::secret::Secret;
use crate::store::{StoreErrorKind, Stores};

/// What `discover` does.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The manifest.
    pub manifest: PathBuf,
    /// Write the proposed rules into the manifest.
    pub update: bool,
    /// Store the values of the new rules (implies nothing without `update`).
    pub import: bool,
}

/// One proposed rule, as reported (masked).
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// The rule, as it is (or would be) written into `secrets`.
    pub rule: serde_json::Value,
    /// The same, as the one line `--update` inserts.
    #[serde(skip)]
    pub line: String,
    /// The files it was found in.
    pub files: Vec<String>,
    /// What made it a secret: a rule id, or `key name`.
    pub reason: String,
    /// A masked preview.
    pub preview: String,
    /// The handle is one the manifest already uses for the same value.
    pub shared: bool,
    /// Captured handles (`STORE:PATH#FIELD`) that hold the same value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub folds: Vec<String>,
}

/// What `discover` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoverReport {
    /// The manifest.
    pub manifest: PathBuf,
    /// Files inspected.
    pub files: usize,
    /// Rules the manifest lacks.
    pub proposed: Vec<Proposal>,
    /// True when `--update` wrote them into the manifest.
    pub updated: bool,
    /// What needs a person's attention.
    pub attention: Vec<Attention>,
    /// With `--import`: what happened to each new handle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<Vec<PushItem>>,
}

impl Report for DiscoverReport {
    /// 0 when the manifest lacks nothing (or `--update` wrote what it lacked); 3 when rules are
    /// proposed and not written, or something needs attention; 1 when an import failed.
    fn exit_code(&self) -> ExitCode {
        let pending = if (!self.proposed.is_empty() && !self.updated) || !self.attention.is_empty()
        {
            ExitCode::Warnings
        } else {
            ExitCode::Success
        };
        let imported = self
            .imported
            .as_deref()
            .map_or(ExitCode::Success, crate::ops::secrets::push::exit_code);
        pending.worst(imported)
    }
}

/// Runs discovery on the manifest's state and proposes (with `update`, writes; with `import`,
/// stores) the rules it lacks.
pub fn discover(opts: &DiscoverOptions) -> Result<DiscoverReport> {
    if opts.import && !opts.update {
        return Err(Error::Usage(
            "--import stores the values of the rules --update writes: add --update".into(),
        ));
    }
    let manifest = Manifest::load(&opts.manifest)?;
    let store = new_handle_store(&manifest)?;
    let detector = Detector::new(&manifest.detect, None)?;
    let mut found = discover::discover(&manifest.state, &store, &detector)?;
    let rules = std::mem::take(&mut found.found);
    let rules = discover::check(&manifest.state, rules, &mut found.attention);

    let backed_up = backed_up_files(&manifest)?;
    let existing = existing_values(&manifest);
    let mut proposals: Vec<(Discovered, bool)> = Vec::new();
    let mut attention = found.attention;
    for mut d in rules {
        d.files.retain(|f| backed_up.iter().any(|b| b == f));
        if d.files.is_empty() || declared(&manifest, &d) {
            continue;
        }
        let covered = |file: &str| {
            existing
                .iter()
                .any(|(f, v, _)| f == file && (d.ephemeral || *v == d.value))
        };
        if d.files.iter().all(|f| covered(f)) {
            continue;
        }
        let mut shared = false;
        if !d.ephemeral
            && let Some((_, _, h)) = existing.iter().find(|(_, v, _)| *v == d.value)
        {
            d.handle = h.clone();
            shared = true;
        }
        proposals.push((d, shared));
    }
    rename_taken(&manifest, &mut proposals);

    let captured = captured_fields(&manifest, &mut attention);
    let report_rows: Vec<Proposal> = proposals
        .iter()
        .map(|(d, shared)| Proposal {
            rule: serde_json::from_str(&crate::ops::init::rule_json(d))
                .expect("a rule line is JSON"),
            line: crate::ops::init::rule_json(d),
            files: d.files.clone(),
            reason: d.reason.clone(),
            preview: d.value.masked(),
            shared: *shared,
            folds: captured
                .iter()
                .filter(|(_, v)| !d.ephemeral && *v == d.value)
                .map(|(h, _)| h.clone())
                .collect(),
        })
        .collect();

    let mut updated = false;
    let mut imported = None;
    if opts.update && !proposals.is_empty() {
        let lines: Vec<String> = proposals
            .iter()
            .map(|(d, _)| crate::ops::init::rule_json(d))
            .collect();
        update_manifest(&opts.manifest, &lines)?;
        updated = true;
        if opts.import {
            let mut only_new = Manifest::load(&opts.manifest)?;
            let keep = only_new.secrets.len() - lines.len();
            only_new.secrets.drain(..keep);
            let stores = Stores::from_manifest(&only_new)?;
            imported = Some(push(&only_new, &stores, false));
        }
    } else if opts.import {
        imported = Some(Vec::new());
    }
    Ok(DiscoverReport {
        manifest: opts.manifest.clone(),
        files: found.files,
        proposed: report_rows,
        updated,
        attention,
        imported,
    })
}

/// The store new handles point into: the capture store, else the first key/value store.
fn new_handle_store(manifest: &Manifest) -> Result<String> {
    if let Some((store, _)) = manifest.capture_target() {
        return Ok(store);
    }
    manifest
        .stores
        .iter()
        .find(|(_, s)| !matches!(s, StoreConfig::Env(_)))
        .map(|(n, _)| n.clone())
        .ok_or_else(|| {
            Error::Usage(
                "the manifest has no key/value store for new handles: add a `local` or `vault` store"
                    .into(),
            )
        })
}

/// The files a snapshot backs up (`include` minus `exclude`), relative to the state.
fn backed_up_files(manifest: &Manifest) -> Result<Vec<String>> {
    let walked = crate::ops::walk::walk(&manifest.state, &manifest.include, &manifest.exclude)?;
    Ok(walked
        .entries
        .into_iter()
        .filter(|e| matches!(e.kind, crate::ops::walk::EntryKind::File { .. }))
        .map(|e| e.rel)
        .collect())
}

/// Whether the manifest has this very rule (same `file` and locator).
fn declared(manifest: &Manifest, d: &Discovered) -> bool {
    manifest
        .secrets
        .iter()
        .any(|r| r.file == d.file && r.locator() == d.locator)
}

/// Every value the manifest's rules read from the state now: (file, value, handle).
fn existing_values(manifest: &Manifest) -> Vec<(String, Secret, Handle)> {
    let mut out = Vec::new();
    for rule in &manifest.secrets {
        for (file, value) in rule_values(&manifest.state, rule) {
            out.push((file, value, rule.handle.clone()));
        }
    }
    out
}

fn rule_values(state: &Path, rule: &SecretRule) -> Vec<(String, Secret)> {
    let locator: Locator = rule.locator();
    let mut out = Vec::new();
    for path in rule.files_in(state).unwrap_or_default() {
        let rel = path
            .strip_prefix(state)
            .unwrap_or(&path)
            .display()
            .to_string();
        let values = if let Locator::Sqlite(cells) = &locator {
            // A live database is read through a consistent copy, its WAL included.
            crate::sqlite::values_in_file(&path, &rel, cells)
        } else {
            let Ok(bytes) = std::fs::read(&path).map(zeroize::Zeroizing::new) else {
                continue;
            };
            crate::redact::values_at(&rel, &bytes, &locator)
        };
        if let Ok(values) = values {
            out.extend(values.into_iter().map(|v| (rel.clone(), v)));
        }
    }
    out
}

/// A new handle the manifest already uses for another value gets a number (`#token-2`).
fn rename_taken(manifest: &Manifest, proposals: &mut [(Discovered, bool)]) {
    let mut taken: Vec<String> = manifest
        .secrets
        .iter()
        .map(|r| r.handle.to_string())
        .collect();
    for (d, shared) in proposals.iter_mut() {
        if *shared || d.ephemeral {
            continue;
        }
        let base = d.handle.to_string();
        let mut text = base.clone();
        let mut n = 2;
        while taken.contains(&text) {
            text = format!("{base}-{n}");
            n += 1;
        }
        if text != base
            && let Ok(h) = Handle::parse(&text)
        {
            d.handle = h;
        }
        taken.push(text);
    }
}

/// The fields of the captured secret (`STORE:PATH#FIELD`, value); nothing when none was
/// captured, and an [`Attention`] when the store cannot be read.
fn captured_fields(manifest: &Manifest, attention: &mut Vec<Attention>) -> Vec<(String, Secret)> {
    let Some((store, path)) = manifest.capture_target() else {
        return Vec::new();
    };
    let stores = match Stores::from_manifest(manifest) {
        Ok(s) => s,
        Err(e) => {
            attention.push(Attention {
                file: String::new(),
                line: None,
                message: format!("captured secrets not read: {e}"),
            });
            return Vec::new();
        }
    };
    let Some(kv) = stores.get(&store) else {
        return Vec::new();
    };
    match kv.read(&path, None) {
        Ok(version) => version
            .fields
            .into_iter()
            .map(|(field, value)| (format!("{store}:{path}#{field}"), value))
            .collect(),
        Err(e) if e.kind == StoreErrorKind::Missing => Vec::new(),
        Err(e) => {
            attention.push(Attention {
                file: String::new(),
                line: None,
                message: format!("captured secrets at {store}:{path} not read: {e}"),
            });
            Vec::new()
        }
    }
}

/// Inserts `rules` (one JSON object each) at the end of the manifest's `secrets` array,
/// keeping every other byte; checks the result and replaces the file atomically.
fn update_manifest(path: &Path, rules: &[String]) -> Result<()> {
    let old = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let new = insert_rules(&old, rules).map_err(|reason| {
        Error::Usage(format!(
            "{}: the new rules could not be inserted ({reason}); add them by hand",
            path.display()
        ))
    })?;
    // The result must be a manifest, and the old document plus the new rules, nothing else.
    Manifest::parse(path, &new)?;
    let mut want: serde_json::Value =
        serde_json::from_slice(&old).map_err(|e| Error::Usage(e.to_string()))?;
    let added: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| serde_json::from_str(r).expect("a rule line is JSON"))
        .collect();
    let object = want
        .as_object_mut()
        .ok_or_else(|| Error::Usage("the manifest is not a JSON object".into()))?;
    match object.get_mut("secrets") {
        Some(serde_json::Value::Array(list)) => list.extend(added),
        _ => {
            object.insert("secrets".into(), serde_json::Value::Array(added));
        }
    }
    let got: serde_json::Value =
        serde_json::from_slice(&new).map_err(|e| Error::Usage(e.to_string()))?;
    if got != want {
        return Err(Error::Usage(format!(
            "{}: inserting the new rules would change more than `secrets` (a bug; please report it)",
            path.display()
        )));
    }
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o644)
    };
    crate::store::sealed::write_file_atomic(path, &new, mode).map_err(|e| Error::io(path, e))
}

/// The manifest text with `rules` appended to `secrets`, in the indentation of its last entry
/// (or two more than the key's when the array is empty or absent).
fn insert_rules(doc: &[u8], rules: &[String]) -> std::result::Result<Vec<u8>, String> {
    use crate::json_span::value_span;
    let err = |e: crate::json_span::ScanError| e.to_string();
    let line_indent = |at: usize| -> String {
        let start = doc[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        doc[start..at]
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .map(|b| *b as char)
            .collect()
    };
    let mut out = Vec::with_capacity(doc.len() + rules.len() * 128);
    match value_span(doc, "/secrets").map_err(err)? {
        Some(array) => {
            let count = serde_json::from_slice::<Vec<serde_json::Value>>(&doc[array.clone()])
                .map_err(|e| e.to_string())?
                .len();
            if count > 0 {
                let last = value_span(doc, &format!("/secrets/{}", count - 1))
                    .map_err(err)?
                    .ok_or("the last rule has no place")?;
                let indent = line_indent(last.start);
                out.extend_from_slice(&doc[..last.end]);
                for r in rules {
                    out.extend_from_slice(format!(",\n{indent}{r}").as_bytes());
                }
                out.extend_from_slice(&doc[last.end..]);
            } else {
                let key = line_indent(array.start);
                let inner = format!("{key}  ");
                let body: Vec<String> = rules.iter().map(|r| format!("{inner}{r}")).collect();
                out.extend_from_slice(&doc[..array.start]);
                out.extend_from_slice(format!("[\n{}\n{key}]", body.join(",\n")).as_bytes());
                out.extend_from_slice(&doc[array.end..]);
            }
        }
        None => {
            let root = value_span(doc, "").map_err(err)?.ok_or("no document")?;
            let close = root.end - 1;
            let last = doc[root.start + 1..close]
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map(|i| root.start + 1 + i)
                .ok_or("an empty manifest")?;
            let body: Vec<String> = rules.iter().map(|r| format!("    {r}")).collect();
            out.extend_from_slice(&doc[..=last]);
            out.extend_from_slice(
                format!(",\n  \"secrets\": [\n{}\n  ]", body.join(",\n")).as_bytes(),
            );
            out.extend_from_slice(&doc[last + 1..]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"{ "file": "b.json", "json": "/k", "handle": "local:a#k" }"#;

    fn inserted(doc: &str) -> String {
        String::from_utf8(insert_rules(doc.as_bytes(), &[RULE.to_string()]).unwrap()).unwrap()
    }

    #[test]
    fn rules_go_after_the_last_one_in_its_indentation_and_nothing_else_moves() {
        let doc = "{\n  \"version\": 1,\n  \"secrets\": [\n    { \"file\": \"a\", \"env\": \"K\", \"handle\": \"env:K\" }\n  ],\n  \"x\": 1\n}\n";
        let got = inserted(doc);
        assert_eq!(
            got,
            format!(
                "{{\n  \"version\": 1,\n  \"secrets\": [\n    {{ \"file\": \"a\", \"env\": \"K\", \"handle\": \"env:K\" }},\n    {RULE}\n  ],\n  \"x\": 1\n}}\n"
            )
        );
    }

    #[test]
    fn an_empty_or_absent_secrets_array_gets_one() {
        let got = inserted("{\n  \"version\": 1,\n  \"secrets\": []\n}\n");
        assert_eq!(
            got,
            format!("{{\n  \"version\": 1,\n  \"secrets\": [\n    {RULE}\n  ]\n}}\n")
        );
        let got = inserted("{\n  \"version\": 1\n}\n");
        assert_eq!(
            got,
            format!("{{\n  \"version\": 1,\n  \"secrets\": [\n    {RULE}\n  ]\n}}\n")
        );
    }
}
