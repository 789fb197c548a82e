//! `agentbak scan`: files and folders (in parallel), standard input, git history, staged
//! changes, and a followed log, all through one [`Detector`].
//!
//! Invariants: every file is read through the detector's bounded stream (no whole-file
//! reads); a file that cannot be read is reported in [`ScanReport::skipped`], never silently
//! dropped; `.git` folders and symlinks are not entered (history is `--git`'s job, and a link
//! may point outside the scanned tree). Findings come back sorted by path and offset.
//!
//! File names are scanned too (a token can be a name, `sessions/ghp_….json`): a secret in a
//! name is a finding of its own, and every path the report shows has such secrets masked
//! ([`NameMasks`], as `verify` and `snapshot` do).
//!
//! agentbak never flags itself ([`OwnFiles`]): in the manifest in use and under the repository
//! it names (sidecars, archives), only a known value is a finding; their handles, locators
//! (a rule's regex source) and signatures are what agentbak or its operator wrote for it.

mod follow;
mod git;

pub use follow::{FollowSummary, follow};
pub use git::{scan_git, scan_staged};

use std::path::{Path, PathBuf};

use crate::detect::{Detector, Finding, FindingKind, KnownValues, NameMasks, Severity};
use crate::error::{Error, ExitCode, Report, Result};
use crate::manifest::Manifest;
use crate::ops::known;
use crate::store::Stores;

/// What a scan looked at and what it found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ScanReport {
    /// Every finding, sorted by path and offset.
    pub findings: Vec<Finding>,
    /// Files (or streams, or commit files) scanned.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Known values too short to prove absent (their labels).
    pub too_short: Vec<String>,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<Skipped>,
    /// Notes on what was not searched (e.g. locators whose values could not be read).
    pub notes: Vec<String>,
    /// Handles whose current value could not be fetched (`--known-from-store`): not proven
    /// absent.
    pub unresolved: Vec<String>,
}

/// A file that could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl Report for ScanReport {
    /// 4 when a finding blocks, 6 when a store value could not be fetched, 3 when a path
    /// was skipped, else 0.
    fn exit_code(&self) -> ExitCode {
        if self.errors() > 0 {
            ExitCode::SecretsFound
        } else if !self.unresolved.is_empty() {
            ExitCode::Unresolved
        } else if !self.skipped.is_empty() {
            ExitCode::Warnings
        } else {
            ExitCode::Success
        }
    }
}

impl ScanReport {
    /// Findings that block (severity `error`).
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Findings that only warn.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.path, a.offset, &a.rule).cmp(&(&b.path, b.offset, &b.rule)));
    }
}

/// The known values of a scan, and what the report says about them.
#[derive(Debug)]
pub struct KnownFromManifest {
    /// The values, labelled by handle (store values: `HANDLE (current vN)`).
    pub values: KnownValues,
    /// Values that were not read or fetched, and why.
    pub notes: Vec<String>,
    /// Handles whose current value could not be fetched from its store.
    pub unresolved: Vec<String>,
}

/// The values the manifest's state holds at its declared locations; with `stores`
/// (`--known-from-store`), also the current and previous value of every declared handle, as
/// `verify --against-store` searches for them.
pub fn known_values(manifest: &Manifest, stores: Option<&Stores>) -> KnownFromManifest {
    let state = known::from_state(manifest);
    let mut values = state.values;
    let mut notes = state.notes;
    let mut unresolved = Vec::new();
    if let Some(stores) = stores {
        let fetched = known::from_stores(stores, &known::declared_handles(manifest));
        tracing::info!("{}", fetched.summary);
        values.extend(fetched.values);
        notes.extend(known::unresolved_notes(&fetched.unresolved));
        unresolved = fetched.unresolved.iter().map(ToString::to_string).collect();
    }
    KnownFromManifest {
        values: KnownValues::new(values),
        notes,
        unresolved,
    }
}

/// agentbak's own files, whose content is searched for known values only: the manifest in
/// use and everything under the repository it names. Kept as canonical paths.
/// Also the agent's state folder, against which findings are fingerprinted and allow-checked
/// as in `snapshot` and `verify`.
#[derive(Debug, Clone, Default)]
pub struct OwnFiles {
    files: Vec<PathBuf>,
    folders: Vec<PathBuf>,
    state: Option<PathBuf>,
}

impl OwnFiles {
    /// The manifest at `manifest_path` and its repository folder (those that exist).
    pub fn of(manifest_path: &Path, manifest: &Manifest) -> OwnFiles {
        OwnFiles {
            files: std::fs::canonicalize(manifest_path).into_iter().collect(),
            folders: std::fs::canonicalize(&manifest.repository)
                .into_iter()
                .collect(),
            state: std::fs::canonicalize(&manifest.state).ok(),
        }
    }

    /// `path` relative to the state folder, `/`-separated, if it lies under it.
    fn state_path(&self, path: &Path) -> Option<String> {
        let state = self.state.as_ref()?;
        let full = std::fs::canonicalize(path).ok()?;
        let rel = full.strip_prefix(state).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some(parts.join("/"))
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.folders.is_empty()
    }

    /// Whether `path` is one of them (a file that cannot be resolved is not).
    fn contains(&self, path: &Path) -> bool {
        if self.is_empty() {
            return false;
        }
        std::fs::canonicalize(path)
            .is_ok_and(|p| self.files.contains(&p) || self.folders.iter().any(|f| p.starts_with(f)))
    }
}

/// Scans files and folders (recursively), `threads` files at a time (0: one per core).
pub fn scan_paths(detector: &Detector, paths: &[PathBuf], threads: usize) -> Result<ScanReport> {
    scan_paths_own(detector, paths, threads, &OwnFiles::default())
}

/// [`scan_paths`], where the files of `own` (agentbak's own) yield known values only.
pub fn scan_paths_own(
    detector: &Detector,
    paths: &[PathBuf],
    threads: usize,
    own: &OwnFiles,
) -> Result<ScanReport> {
    let mut report = ScanReport::default();
    let mut files = Vec::new();
    for root in paths {
        collect_files(root, &mut files, &mut report.skipped)?;
    }
    let threads = match threads {
        0 => crate::pool::cores(),
        n => n,
    };
    let names: Vec<String> = files
        .iter()
        .map(|p| display(p))
        .chain(report.skipped.iter().map(|s| s.path.clone()))
        .collect();
    let (in_names, masks) = NameMasks::scan(detector, "<file names>", &names);
    drop(names);
    for (path, outcome) in files.iter().zip(crate::pool::map(&files, threads, |path| {
        scan_file(detector, path)
    })) {
        match outcome {
            Ok((bytes, mut findings)) => {
                report.files += 1;
                report.bytes += bytes;
                if own.contains(path) {
                    findings.retain(|f| matches!(f.kind, FindingKind::KnownValue { .. }));
                }
                if let Some(state_path) = own.state_path(path) {
                    findings.retain_mut(|f| {
                        f.relocate(&state_path);
                        !detector.allows_at(f, &state_path)
                    });
                }
                report.findings.extend(findings);
            }
            Err(e) => report.skipped.push(Skipped {
                path: display(path),
                reason: e.to_string(),
            }),
        }
    }
    report.findings.extend(in_names.into_iter().map(|mut f| {
        // A name is one line; the column is the secret's place in it.
        f.line = 1;
        f.path.push_str(" (file name)");
        f
    }));
    for f in &mut report.findings {
        masks.apply(&mut f.path);
    }
    for s in &mut report.skipped {
        masks.apply(&mut s.path);
        masks.apply(&mut s.reason);
    }
    report.sort();
    add_known_notes(detector, &mut report);
    Ok(report)
}

/// Scans one reader (standard input) under `name`.
pub fn scan_reader(
    detector: &Detector,
    name: &str,
    reader: impl std::io::Read,
) -> Result<ScanReport> {
    let mut counting = CountingReader {
        inner: reader,
        bytes: 0,
    };
    let findings = detector
        .scan_reader(name, &mut counting)
        .map_err(|e| Error::io(name, e))?;
    let mut report = ScanReport {
        findings,
        files: 1,
        bytes: counting.bytes,
        ..ScanReport::default()
    };
    report.sort();
    add_known_notes(detector, &mut report);
    Ok(report)
}

pub(crate) fn add_known_notes(detector: &Detector, report: &mut ScanReport) {
    if let Some(known) = detector.known() {
        report.too_short = known.too_short().to_vec();
    }
}

fn scan_file(detector: &Detector, path: &Path) -> std::io::Result<(u64, Vec<Finding>)> {
    let file = std::fs::File::open(path)?;
    let mut counting = CountingReader {
        inner: file,
        bytes: 0,
    };
    let findings = detector.scan_reader(&display(path), &mut counting)?;
    Ok((counting.bytes, findings))
}

/// Every regular file under `root` (or `root` itself), not following links, skipping `.git`.
fn collect_files(root: &Path, out: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) -> Result<()> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.is_file() {
        out.push(root.to_path_buf());
        return Ok(());
    }
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && e.file_name() == ".git"));
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() => out.push(e.into_path()),
            Ok(_) => {}
            Err(e) => skipped.push(Skipped {
                path: e.path().map(display).unwrap_or_default(),
                reason: e.to_string(),
            }),
        }
    }
    Ok(())
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}
