//! Known values: the secrets a leak search looks for, read from the state or fetched from
//! the stores. `scan` and `verify` both take theirs from here, so that a value is found by
//! the same reading in either command.
//!
//! - [`from_state`]: the values at the manifest's declared locations, read from the state
//!   folder by the redaction engine's parsers (`redact::values_at`, the ones the snapshot
//!   uses), labelled by handle. A file that cannot be read is a note, so a report says what
//!   was not searched.
//! - [`from_stores`]: every value each handle's field has had in the versions its store keeps
//!   (one history per secret path), labelled `HANDLE (current vN)` for the current value and
//!   `HANDLE (previous vN)` for each older one, at the version where it first appeared
//!   ([`is_store_label`]), and the handles whose current value could not be fetched (their
//!   absence is unproven).
//!
//! Invariant: values go straight into [`Secret`]s; labels, notes and summaries name handles,
//! files and counts, never a value.

use std::collections::BTreeSet;
use std::path::Path;

use crate::handle::Handle;
use crate::manifest::{Locator, Manifest};
use crate::redact::values_at;
use crate::secret::Secret;
use crate::store::{ResolveOptions, Status, Stores, resolve_histories};

/// Values labelled for findings (`HANDLE`, or `HANDLE (current v3)`).
pub type Labelled = Vec<(String, Secret)>;

/// The values the state holds at the declared locations, and what could not be read.
#[derive(Debug)]
pub struct FromState {
    /// The values, labelled by handle.
    pub values: Labelled,
    /// Rules whose values were not read, and why.
    pub notes: Vec<String>,
}

/// Largest file read for a value: a secret file is small; a huge one is not a value.
const MAX_VALUE_FILE: u64 = 16 * 1024 * 1024;

/// Reads every declared value from the manifest's state folder.
pub fn from_state(manifest: &Manifest) -> FromState {
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for (index, rule) in manifest.secrets.iter().enumerate() {
        let label = rule.handle.with_agent(&manifest.agent).to_string();
        let locator = rule.locator();
        let files = match rule.files_in(&manifest.state) {
            Ok(files) => files,
            Err(reason) => {
                notes.push(format!("secrets[{index}] ({label}): {reason}"));
                continue;
            }
        };
        for file in files {
            match read_values(&file, &locator) {
                Ok(found) => values.extend(found.into_iter().map(|v| (label.clone(), v))),
                Err(e) => notes.push(format!("{}: {e}", file.display())),
            }
        }
    }
    FromState { values, notes }
}

fn read_values(path: &Path, locator: &Locator) -> std::io::Result<Vec<Secret>> {
    if let Locator::Sqlite(cells) = locator {
        // A live database is read through a consistent copy, its WAL included.
        return crate::sqlite::values_in_file(path, &path.display().to_string(), cells)
            .map_err(|e| std::io::Error::other(e.to_string()));
    }
    let size = std::fs::metadata(path)?.len();
    if size > MAX_VALUE_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_VALUE_FILE} bytes; not read for values"
        )));
    }
    let content = Secret::new(std::fs::read(path)?);
    let mut out = values_at(&path.display().to_string(), content.expose(), locator)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if *locator == Locator::WholeFile {
        // A store usually holds a whole-file value without the file's final newline.
        let bytes = content.expose();
        if let Some(t) = bytes
            .strip_suffix(b"\n")
            .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
        {
            out.push(Secret::from_slice(t));
        }
    }
    Ok(out)
}

/// Every handle the manifest declares (with `{agent}` filled), in first-seen order, once.
pub fn declared_handles(manifest: &Manifest) -> Vec<Handle> {
    let mut seen = BTreeSet::new();
    manifest
        .secrets
        .iter()
        .map(|r| r.handle.with_agent(&manifest.agent))
        .filter(|h| seen.insert(h.clone()))
        .collect()
}

/// Values fetched from the stores.
#[derive(Debug)]
pub struct FromStores {
    /// The current and older values, labelled `HANDLE (current vN)` / `HANDLE (previous vN)`.
    pub values: Labelled,
    /// Handles whose current value could not be fetched.
    pub unresolved: Vec<Handle>,
    /// One line for a report: `store: 3 current, 1 previous value(s) of 3 handle(s)`.
    pub summary: String,
}

/// The current value of `handles` and every older value the stores keep. A handle without
/// older values (never rotated) is not a problem; one whose current value does not resolve is
/// `unresolved`.
pub fn from_stores(stores: &Stores, handles: &[Handle]) -> FromStores {
    // Current values first: where two labels name the same bytes, the first one names them.
    let mut values = Vec::new();
    let mut previous = Vec::new();
    let mut unresolved = Vec::new();
    for found in resolve_histories(stores, handles, &ResolveOptions::default()) {
        for older in found.older() {
            let label = format!("{} (previous v{})", found.handle, older.since.version);
            previous.push((label, older.value.clone()));
        }
        match (found.value, &found.status) {
            (Some(value), Status::Resolved { version, .. })
            | (Some(value), Status::FromCache { version, .. }) => {
                values.push((format!("{} (current v{version})", found.handle), value));
            }
            _ => unresolved.push(found.handle),
        }
    }
    let summary = format!(
        "store: {} current, {} previous value(s) of {} handle(s)",
        values.len(),
        previous.len(),
        handles.len()
    );
    values.extend(previous);
    FromStores {
        values,
        unresolved,
        summary,
    }
}

/// One note per handle whose current value could not be fetched.
pub fn unresolved_notes(unresolved: &[Handle]) -> Vec<String> {
    unresolved
        .iter()
        .map(|h| format!("{h}: the current value could not be fetched, so it is not proven absent"))
        .collect()
}

/// Whether a known-value label is one [`from_stores`] made (`HANDLE (current v3)`).
pub fn is_store_label(label: &str) -> bool {
    label.ends_with(')') && (label.contains(" (current v") || label.contains(" (previous v"))
}
