//! `init --discover`: find the secrets of a state folder and the rule that locates each.
//!
//! Two passes over the files, in path order, and one for databases:
//! 1. **Structured files and keys.** A file whose name says JSON, YAML, TOML, dotenv or INI is
//!    parsed by its redactor, which lists every string value with its locator
//!    ([`Redactor::keys`](crate::redact::Redactor::keys)). A value is a secret when a detection
//!    rule fires inside it, or when its key reads like a credential (`api_key`, `token`,
//!    `password`, …) and the value is random enough to be one. A PEM private key file is a
//!    whole-file secret.
//! 2. **Everything else that is text** (logs, notes): each finding of a detection rule becomes
//!    a `regex` rule anchored on the words before it on its line (`Bearer (…)`, `api_key=(…)`),
//!    unless its value was found in pass 1: snapshots replace known values wherever they sit.
//!    A regex that captures several different values (a token that rotates through a log) gets
//!    an ephemeral `env:` handle, since no one stored version fits them all.
//!
//! A **SQLite database** (by its header) is read through a consistent copy, table by table:
//! credential columns, key/value rows whose key names a credential, and cells a provider rule
//! matches whole become `sqlite` rules (`sqlite`); a token pasted inside a message does not.
//!
//! Every proposed rule is checked with the redaction engine before it is kept: its locator
//! must find exactly the value that was discovered. The same value found in several places
//! gets one handle. Values stay in [`Secret`]s; the report shows masked previews only.
//!
//! This module walks the state and runs the passes; `structured` is pass 1, `text` pass 2,
//! `sqlite` reads databases, `handles` names the handles, and [`check`] reads every rule back
//! (a database's rules through a new consistent copy).

mod classify;
mod follow;
mod handles;
mod sqlite;
mod structured;
mod text;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use zeroize::Zeroizing;

use crate::detect::{Detector, Finding};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::manifest::Locator;
use crate::ops::walk::{Entry, EntryKind, walk};
use crate::redact::{is_binary, values_at};
use crate::secret::Secret;
use handles::name_handles;
use structured::{structured, whole_file_key};
use text::from_text;

/// Files larger than this are not read (state files with secrets are small; a large file is
/// still scanned by every snapshot's leak gate).
const MAX_FILE: u64 = 16 << 20;

/// Folder names that hold caches, never state worth a backup.
const CACHE_DIRS: &[&str] = &[
    ".cache",
    "cache",
    "caches",
    "__pycache__",
    "node_modules",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
];

/// File name endings of editor and temporary files.
const TEMP_SUFFIXES: &[&str] = &[".tmp", ".swp", ".pyc", "~"];

/// A secret found in the state, with the rule that locates it.
#[derive(Debug)]
pub struct Discovered {
    /// The rule's `file`, relative to the state folder: a path, or a glob
    /// (`sessions/**/*.jsonl`) when the agent makes such files by pattern.
    pub file: String,
    /// The files it was found in (one for a plain path).
    pub files: Vec<String>,
    /// Where the value sits in it.
    pub locator: Locator,
    /// The handle the rule maps it to (with `{agent}` in its path).
    pub handle: Handle,
    /// The value found (for `--import`); several for an ephemeral rule.
    pub value: Secret,
    /// True for a rule whose values change between snapshots (an `env:` handle).
    pub ephemeral: bool,
    /// What made it a secret: a rule id, or `key name`.
    pub reason: String,
    /// True when an earlier rule has the same value, hence the same handle.
    pub shared: bool,
}

/// Something discovery saw but could not turn into a rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attention {
    /// The file, relative to the state folder.
    pub file: String,
    /// 1-based line, when there is one.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

/// The result of [`discover`].
#[derive(Debug, Default)]
pub struct Discovery {
    /// One rule per secret location, in file order.
    pub found: Vec<Discovered>,
    /// Cache folders and temporary files to leave out (`exclude` globs).
    pub exclude: Vec<String>,
    /// Things a person should look at.
    pub attention: Vec<Attention>,
    /// Files read.
    pub files: usize,
}

/// A value seen in pass 1 or 2, before it has a handle.
struct Candidate {
    /// The rule's `file`: a path, or a glob when the agent makes such files by pattern.
    file: String,
    /// The files it was found in.
    files: Vec<String>,
    locator: Locator,
    value: Secret,
    reason: String,
    /// The words that name it (a key, a pointer, a regex anchor), for the handle's field.
    name: String,
    ephemeral: bool,
}

/// Finds the secrets of `state` and proposes a rule and handle for each. `store` names the
/// store the handles point into.
pub fn discover(state: &Path, store: &str, detector: &Detector) -> Result<Discovery> {
    let walked = walk(state, &["**".to_string()], &[])?;
    let mut out = Discovery::default();
    let mut cache_dirs: Vec<String> = Vec::new();
    let mut temp_globs: BTreeSet<String> = BTreeSet::new();
    let mut texts: Vec<(String, Zeroizing<Vec<u8>>, Vec<Finding>)> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();

    for entry in &walked.entries {
        if !inspect(entry, &mut cache_dirs, &mut temp_globs, &mut out.attention) {
            continue;
        }
        if entry.sqlite {
            out.files += 1;
            sqlite::database(entry, detector, &mut candidates, &mut out.attention);
            continue;
        }
        // State files hold the secrets: their bytes live in zeroized memory.
        let bytes =
            Zeroizing::new(std::fs::read(&entry.path).map_err(|e| Error::io(&entry.path, e))?);
        out.files += 1;
        let findings = detector.scan_bytes(&entry.rel, &bytes);
        if is_binary(&bytes) {
            if let Some(f) = findings.first() {
                out.attention.push(Attention {
                    file: entry.rel.clone(),
                    line: None,
                    message: format!(
                        "a binary file holds what looks like a secret ({}, at byte {}): a \
                         snapshot cannot edit it; exclude the file or keep the secret elsewhere",
                        f.rule, f.offset
                    ),
                });
            }
            continue;
        }
        if let Some(c) = whole_file_key(&entry.rel, &bytes, &findings) {
            candidates.push(c);
            continue;
        }
        let rest = match structured(&entry.rel, &bytes, &findings, &mut candidates) {
            Ok(rest) => rest,
            Err(attention) => {
                out.attention.push(attention);
                findings
            }
        };
        if !rest.is_empty() {
            texts.push((entry.rel.clone(), bytes, rest));
        }
    }

    let known: Vec<Secret> = candidates.iter().map(|c| c.value.clone()).collect();
    for (file, bytes, findings) in &texts {
        from_text(
            file,
            bytes,
            findings,
            &known,
            &mut candidates,
            &mut out.attention,
        );
    }

    out.exclude = cache_dirs.iter().map(|d| format!("{d}/**")).collect();
    out.exclude.extend(temp_globs);
    let candidates = follow::follow(candidates);
    out.found = name_handles(candidates, store);
    Ok(out)
}

/// Whether discovery reads `entry`: a regular file of at most [`MAX_FILE`] bytes, outside
/// cache folders, not a temporary file. Cache folders and temporary files found are noted for
/// `exclude`; a file too large to read is noted for attention.
fn inspect(
    entry: &Entry,
    cache_dirs: &mut Vec<String>,
    temp_globs: &mut BTreeSet<String>,
    attention: &mut Vec<Attention>,
) -> bool {
    if cache_dirs
        .iter()
        .any(|d| entry.rel.starts_with(&format!("{d}/")))
    {
        return false;
    }
    let name = entry.rel.rsplit('/').next().unwrap_or(&entry.rel);
    match entry.kind {
        EntryKind::Dir if CACHE_DIRS.contains(&name) => {
            cache_dirs.push(entry.rel.clone());
            false
        }
        EntryKind::File { size } => {
            if let Some(suffix) = TEMP_SUFFIXES.iter().find(|s| name.ends_with(**s)) {
                temp_globs.insert(format!("**/*{suffix}"));
                return false;
            }
            if size > MAX_FILE {
                attention.push(Attention {
                    file: entry.rel.clone(),
                    line: None,
                    message: format!(
                        "larger than {} MiB: not inspected (each snapshot's leak gate still scans it)",
                        MAX_FILE >> 20
                    ),
                });
                return false;
            }
            true
        }
        _ => false,
    }
}

/// Checks each rule with the redaction engine: its locator, read from `state`, must give back
/// exactly the discovered value. A rule that does not is dropped with an [`Attention`]. A
/// `sqlite` rule reads a consistent copy of its database, as snapshots do.
pub fn check(
    state: &Path,
    found: Vec<Discovered>,
    attention: &mut Vec<Attention>,
) -> Vec<Discovered> {
    let mut files: HashMap<String, Zeroizing<Vec<u8>>> = HashMap::new();
    let mut databases: HashMap<String, Option<crate::sqlite::Copy>> = HashMap::new();
    let mut kept = Vec::with_capacity(found.len());
    for d in found {
        // A glob rule reads every file it names, not only those it was found in.
        let names = if d.files.len() == 1 && d.files[0] == d.file {
            d.files.clone()
        } else {
            glob_files(state, &d.file)
        };
        let mut all: Vec<Secret> = Vec::new();
        let mut ok = !names.is_empty();
        for name in &names {
            let values = if let Locator::Sqlite(cells) = &d.locator {
                let copy = databases
                    .entry(name.clone())
                    .or_insert_with(|| crate::sqlite::Copy::capture(&state.join(name), name).ok());
                match copy {
                    Some(copy) => crate::sqlite::values_in(name, copy, cells),
                    None => {
                        ok = false;
                        continue;
                    }
                }
            } else {
                let bytes = files.entry(name.clone()).or_insert_with(|| {
                    Zeroizing::new(std::fs::read(state.join(name)).unwrap_or_default())
                });
                values_at(name, bytes, &d.locator)
            };
            match values {
                Ok(values) => all.extend(values),
                Err(_) => ok = false,
            }
        }
        let ok = ok
            && if d.ephemeral {
                all.contains(&d.value)
            } else {
                !all.is_empty() && all.iter().all(|v| *v == d.value)
            };
        if ok {
            kept.push(d);
        } else {
            attention.push(Attention {
                file: d.file.clone(),
                line: None,
                message: format!(
                    "a secret at {} that its rule does not read back exactly: add a rule by hand",
                    d.locator
                ),
            });
        }
    }
    kept
}

/// The state files a glob names, relative, as a manifest rule matches them.
fn glob_files(state: &Path, glob: &str) -> Vec<String> {
    let Ok(matcher) = globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
    else {
        return Vec::new();
    };
    walkdir::WalkDir::new(state)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(state).ok()?;
            matcher
                .is_match(rel)
                .then(|| rel.to_string_lossy().into_owned())
        })
        .collect()
}
