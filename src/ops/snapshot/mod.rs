//! `snapshot`: walk the state, redact, check against the stores, gate, archive, commit.
//!
//! The pipeline (SPEC "Snapshot"):
//! 1. take the repository lock and clean leftovers of crashed runs;
//! 2. walk the state (`walk`);
//! 3. read the files that declared rules name, and take their values (`redact`);
//! 4. ask the stores for the current and previous value of every handle (`secrets`): together
//!    with the declared values these are the *known values*;
//! 5. compare each declared value with its store (the sync check), pushing it first with
//!    `--push-secrets`;
//! 6. write the archive into a temporary file while the leak gate (`gate`) scans the exact tar
//!    stream: every text file is redacted again with all known values, so stray copies become
//!    placeholders too;
//! 7. refuse (exit 4) on any blocker or finding, dropping the temporary file; else commit.
//!
//! Memory: files that rules name and small files (up to [`MAX_IN_MEMORY`]) are held one at a
//! time; larger files stream from disk into the archive, and the gate still sees every byte.

mod gate;
mod names;
mod secrets;
pub mod walk;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use chrono::Utc;
use zeroize::{Zeroize, Zeroizing};

use crate::archive::{
    ArchiveWriter, EntryMeta, INDEX_PATH, Recipients, SIDECAR_FORMAT, SecretLocation, Sidecar,
    SnapshotInfo, WriterOptions, Written, default_threads,
};
use crate::detect::{Detector, Finding, KnownValues, NameMasks};
use crate::error::{Error, ExitCode, Report, Result};
use crate::handle::Handle;
use crate::manifest::{Manifest, SecretRule};
use crate::redact::{Blocker, RedactedFile, Rule, Source, WarningKind, redact_file};
use crate::repo::{Repository, SnapshotId, host_name};
use crate::secret::Secret;
use crate::store::Stores;

pub use secrets::Sync;
use walk::{Entry, EntryKind};

/// Files up to this size are read whole so that stray known values can be replaced in them;
/// larger files stream into the archive and the leak gate refuses them if they hold one.
pub const MAX_IN_MEMORY: u64 = 16 * 1024 * 1024;

/// What the snapshot should do.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Tags recorded in the sidecar.
    pub tags: Vec<String>,
    /// Report, write nothing.
    pub dry_run: bool,
    /// Store declared values that the store lacks before snapshotting.
    pub push_secrets: bool,
    /// Wait this long for another run's lock.
    pub wait: Option<Duration>,
}

/// One redacted location, for the report (never a value).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Redacted {
    /// The file, relative to the state folder.
    pub file: String,
    /// The locator (`json /a/b`), or `stray` for a known value found elsewhere.
    pub locator: String,
    /// The handle.
    pub handle: String,
    /// How many placeholders were written.
    pub count: usize,
}

/// A declared value and its store, for the report (never a value).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncStatus {
    /// The handle.
    pub handle: String,
    /// `current`, `previous`, `unsynced`, `pushed`, `unknown` (store unreachable).
    pub status: String,
    /// The store version that holds the value, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// What a snapshot did, or would do, or why it refused.
#[derive(Debug, Default, serde::Serialize)]
pub struct SnapshotReport {
    /// The new snapshot's id; `None` on a dry run or a refusal.
    pub id: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Files, folders, symlinks, bytes and secret locations archived.
    pub files: u64,
    /// Folders archived.
    pub dirs: u64,
    /// Symlinks archived.
    pub symlinks: u64,
    /// Bytes of file content archived (after redaction).
    pub bytes: u64,
    /// Size of the archive file.
    pub archive_size: u64,
    /// Every redacted location.
    pub redacted: Vec<Redacted>,
    /// Every declared value against its store.
    pub sync: Vec<SyncStatus>,
    /// Leak-gate findings that refused the snapshot.
    pub findings: Vec<Finding>,
    /// Entropy findings that did not block.
    pub entropy_warnings: Vec<Finding>,
    /// Known values inside binary files: `path@offset: handle`.
    pub blockers: Vec<String>,
    /// Things that need attention (exit 3): unreadable files, unsynced values, empty rules.
    pub warnings: Vec<String>,
    /// Degraded conditions recorded in the sidecar (`store-unreachable:NAME`).
    pub degraded: Vec<String>,
    /// Known values too short to prove absent (labels).
    pub too_short: Vec<String>,
}

impl Report for SnapshotReport {
    /// 4 when refused for secrets, 3 with warnings, else 0.
    fn exit_code(&self) -> ExitCode {
        if !self.findings.is_empty() || !self.blockers.is_empty() {
            ExitCode::SecretsFound
        } else if !self.warnings.is_empty() || !self.degraded.is_empty() {
            ExitCode::Warnings
        } else {
            ExitCode::Success
        }
    }
}

/// The rules of the manifest with `{agent}` filled and their file globs compiled.
struct Rules {
    rules: Vec<(SecretRule, Handle, globset::GlobMatcher)>,
}

impl Rules {
    fn new(m: &Manifest) -> Result<Rules> {
        let mut rules = Vec::new();
        for rule in &m.secrets {
            let glob = rule
                .file_matcher()
                .map_err(|e| Error::Usage(format!("secret rule file `{}`: {e}", rule.file)))?;
            rules.push((rule.clone(), rule.handle.with_agent(&m.agent), glob));
        }
        Ok(Rules { rules })
    }

    /// The rules whose `file` matches `rel`, as redaction rules.
    fn for_file(&self, rel: &str) -> Vec<(usize, Rule)> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, (_, _, glob))| glob.is_match(rel))
            .map(|(i, (rule, handle, _))| {
                (
                    i,
                    Rule {
                        locator: rule.locator(),
                        handle: handle.clone(),
                    },
                )
            })
            .collect()
    }

    fn handles(&self) -> Vec<Handle> {
        let mut out: Vec<Handle> = self
            .rules
            .iter()
            .filter(|(r, _, _)| !r.ephemeral)
            .map(|(_, h, _)| h.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn is_ephemeral(&self, handle: &Handle) -> bool {
        self.rules
            .iter()
            .any(|(r, h, _)| h == handle && r.ephemeral)
    }
}

/// Makes a snapshot of the manifest's state.
pub fn snapshot(m: &Manifest, opts: &SnapshotOptions) -> Result<SnapshotReport> {
    // A name that holds a secret is masked in the report, the logs and any error (`names`).
    let mut masks = NameMasks::default();
    run(m, opts, &mut masks).map_err(|e| names::mask_error(&masks, e))
}

fn run(m: &Manifest, opts: &SnapshotOptions, masks: &mut NameMasks) -> Result<SnapshotReport> {
    let mut report = SnapshotReport {
        dry_run: opts.dry_run,
        ..SnapshotReport::default()
    };
    let repo = if opts.dry_run {
        None
    } else {
        Some(Repository::open_or_create(&m.repository)?)
    };
    let lock = match &repo {
        Some(r) => {
            // A stale lock taken over is logged by the lock itself.
            let lock = r.lock(opts.wait, "snapshot")?;
            r.clean_tmp(&lock)?;
            Some(lock)
        }
        None => None,
    };

    let walked = walk::walk(&m.state, &m.include, &m.exclude)?;
    let state_names = names::of(&walked);
    *masks = names::masks(&Detector::new(&m.detect, None)?, &state_names);
    for s in walked.skipped.iter().filter(|s| s.unreadable) {
        report.warnings.push(format!("{}: {}", s.rel, s.reason));
    }
    let rules = Rules::new(m)?;
    let stores = Stores::from_manifest(m)?;

    // Declared values first: they are known values for every other file.
    let mut declared: Vec<(Handle, Secret)> = Vec::new();
    let mut matched = vec![false; rules.rules.len()];
    for entry in &walked.entries {
        let EntryKind::File { .. } = entry.kind else {
            continue;
        };
        let file_rules = rules.for_file(&entry.rel);
        if file_rules.is_empty() {
            continue;
        }
        for (i, _) in &file_rules {
            matched[*i] = true;
        }
        let bytes = read_file(entry)?;
        let only: Vec<Rule> = file_rules.into_iter().map(|(_, r)| r).collect();
        let redacted = redact_file(&entry.rel, &bytes, &only, &[])?;
        for (h, v) in redacted.values {
            if !declared.iter().any(|(dh, dv)| *dh == h && *dv == v) {
                declared.push((h, v));
            }
        }
    }
    for (i, (rule, _, _)) in rules.rules.iter().enumerate() {
        if !matched[i] {
            report.warnings.push(format!(
                "secret rule `{}` ({}) matches no file of the state",
                rule.file,
                rule.locator()
            ));
        }
    }

    let view = secrets::StoreView::fetch(&stores, &rules.handles());
    for name in &view.unreachable {
        report.degraded.push(format!("store-unreachable:{name}"));
    }
    report.warnings.extend(view.problems.iter().cloned());
    let versions = sync_check(&stores, &view, &rules, &declared, opts, &mut report)?;

    let mut known: Vec<(Handle, Secret)> = declared;
    for (h, v) in view.known {
        if !known.iter().any(|(kh, kv)| *kh == h && *kv == v) {
            known.push((h, v));
        }
    }
    let known_values = KnownValues::new(known.iter().map(|(h, v)| (h.to_string(), v.clone())));
    report.too_short = known_values.too_short().to_vec();
    let detector = Detector::new(&m.detect, Some(known_values))?;
    masks.extend(names::masks(&detector, &state_names));
    // Logged now that the masks know the values too (warnings are masked with the report).
    for s in walked.skipped.iter().filter(|s| !s.unreadable) {
        tracing::warn!("{}", masks.mask(&format!("{}: {}", s.rel, s.reason)));
    }

    let now = Utc::now();
    let id = SnapshotId::new(now);
    let recipients = match &m.encryption {
        Some(e) => Some(Recipients::parse(&e.recipients)?),
        None => None,
    };
    let mut pending = match (&repo, &lock) {
        (Some(r), Some(l)) => Some(r.begin(l, &id, recipients.is_some())?),
        _ => None,
    };
    let writer_options = WriterOptions {
        level: m.compression.level,
        threads: default_threads(),
        recipients: recipients.as_ref(),
        name: pending.as_ref().map_or_else(
            || "<dry run>".to_string(),
            |p| p.tmp_path().display().to_string(),
        ),
    };
    let gate = gate::Gate::new(std::sync::Arc::new(detector));
    let mut observer = gate.clone();
    let mut nowhere = std::io::sink();
    let sink: &mut dyn Write = match pending.as_mut() {
        Some(p) => p.file(),
        None => &mut nowhere,
    };
    let mut writer = ArchiveWriter::new(sink, &writer_options, Some(&mut observer))?;
    let mut locations = Vec::new();
    let mut blockers: Vec<Blocker> = Vec::new();
    let mut archived_ok = true;
    // File contents, read whole, one file after another; zeroized when the snapshot ends.
    let mut read_buf = Zeroizing::new(Vec::new());
    for entry in &walked.entries {
        let meta = EntryMeta {
            mode: entry.mode,
            mtime: entry.mtime as i64,
        };
        gate.begin_entry(&entry.rel);
        match &entry.kind {
            EntryKind::Dir => {
                writer.append_dir(&entry.rel, meta)?;
                gate.end_entry(0);
            }
            EntryKind::Symlink { target } => {
                writer.append_symlink(&entry.rel, meta, target)?;
                gate.end_entry(0);
            }
            EntryKind::File { size } => {
                let file_rules: Vec<Rule> = rules
                    .for_file(&entry.rel)
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect();
                if file_rules.is_empty() && *size > MAX_IN_MEMORY {
                    let result = stream_file(&mut writer, entry, meta, *size);
                    gate.end_entry(*size);
                    if let Err(e) = result {
                        report.warnings.push(e.to_string());
                        archived_ok = false;
                    }
                    continue;
                }
                read_into(entry, &mut read_buf)?;
                let redacted = redact_file(&entry.rel, &read_buf, &file_rules, &known)?;
                note_redaction(&entry.rel, &redacted, masks, &mut report);
                blockers.extend(redacted.blockers);
                let len = redacted.output.len() as u64;
                writer.append_bytes(&entry.rel, meta, &redacted.output)?;
                gate.end_entry(len);
                for r in redacted.replacements {
                    locations.push(SecretLocation {
                        file: format!("state/{}", entry.rel),
                        locator: match &r.source {
                            Source::Rule(l) => Some(l.clone()),
                            Source::Stray => None,
                        },
                        store_version: versions.get(&r.handle).copied(),
                        ephemeral: rules.is_ephemeral(&r.handle),
                        handle: r.handle.clone(),
                        context: serde_json::to_value(&r).expect("a replacement serializes"),
                    });
                }
            }
        }
    }
    gate.begin_entry(INDEX_PATH);
    let written = writer.finish(
        SnapshotInfo {
            agent: m.agent.clone(),
            snapshot_id: id.to_string(),
            created_at: now,
        },
        locations,
    )?;
    drop(observer);
    let (findings, entropy) = gate.finish();
    report.findings = findings;
    report.entropy_warnings = entropy;
    report.blockers = blockers
        .iter()
        .map(|b| {
            format!(
                "{}@{}: a value of {} in a binary file",
                b.path, b.offset, b.handle
            )
        })
        .collect();
    names::mask_report(&mut report, masks);
    let Written {
        sink,
        size,
        blake3,
        counts,
        ..
    } = written;
    sink.flush()
        .map_err(|e| Error::io(&writer_options.name, e))?;
    report.files = counts.files;
    report.dirs = counts.dirs;
    report.symlinks = counts.symlinks;
    report.bytes = counts.bytes;
    report.archive_size = size;

    if report.exit_code() == ExitCode::SecretsFound || !archived_ok || opts.dry_run {
        // Dropping the pending archive removes the temporary file: nothing reaches the
        // repository.
        drop(pending);
        return Ok(report);
    }
    let pending = pending.expect("not a dry run");
    let mut sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        id: id.to_string(),
        agent: m.agent.clone(),
        host: host_name(),
        created_at: now,
        tags: opts.tags.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        archive: pending.archive_name().to_string(),
        size,
        blake3,
        counts,
        encrypted: recipients.is_some(),
        degraded: report.degraded.clone(),
        signature: None,
    };
    if m.signing.is_some() {
        // A snapshot that cannot be signed is still a backup: keep it, say so (exit 3), and
        // let restore refuse it unless told otherwise (`--allow-unsigned`).
        match crate::ops::trust::sign(m, &stores, &sidecar) {
            Ok(signature) => sidecar.signature = Some(signature),
            Err(e) => {
                report.warnings.push(format!(
                    "the snapshot is not signed ({e}); restore and verify refuse it unless \
                     given --allow-unsigned"
                ));
                report.degraded.push("unsigned".to_string());
                sidecar.degraded.push("unsigned".to_string());
            }
        }
    }
    pending.commit(&sidecar)?;
    report.id = Some(id.to_string());
    drop(lock);
    Ok(report)
}

/// The sync check (SPEC "Snapshot" point 4). Returns the store version that holds each
/// declared value, for the index.
fn sync_check(
    stores: &Stores,
    view: &secrets::StoreView,
    rules: &Rules,
    declared: &[(Handle, Secret)],
    opts: &SnapshotOptions,
    report: &mut SnapshotReport,
) -> Result<BTreeMap<Handle, u64>> {
    let mut versions = BTreeMap::new();
    for (handle, value) in declared {
        if handle.is_env() || rules.is_ephemeral(handle) {
            continue;
        }
        let (status, version) = match view.sync(handle, value) {
            Sync::Current(v) => ("current", Some(v)),
            Sync::Previous(v) => ("previous", Some(v)),
            Sync::Unknown => ("unknown", None),
            Sync::Unsynced if opts.push_secrets && !opts.dry_run => {
                let store = stores.for_handle(handle)?;
                let address = crate::store::Address::of(handle);
                let v = store.put(&address.path, &address.field, value, None)?;
                ("pushed", Some(v))
            }
            Sync::Unsynced => {
                report.warnings.push(format!(
                    "{handle}: the value in the state is not in its store (current or previous); \
                     a restore would give the agent a different credential. Store it with \
                     `agentbak secrets push` or `snapshot --push-secrets`"
                ));
                ("unsynced", None)
            }
        };
        if let Some(v) = version {
            versions.insert(handle.clone(), v);
        }
        report.sync.push(SyncStatus {
            handle: handle.to_string(),
            status: status.to_string(),
            version,
        });
    }
    Ok(versions)
}

/// Adds a file's redactions and redaction warnings to the report.
fn note_redaction(
    rel: &str,
    redacted: &RedactedFile<'_>,
    masks: &NameMasks,
    report: &mut SnapshotReport,
) {
    for r in &redacted.replacements {
        report.redacted.push(Redacted {
            file: rel.to_string(),
            locator: match &r.source {
                Source::Rule(l) => l.to_string(),
                Source::Stray => "stray".to_string(),
            },
            handle: r.handle.to_string(),
            count: r.offsets.len(),
        });
    }
    for w in &redacted.warnings {
        match w.kind {
            WarningKind::NotFound => report
                .warnings
                .push(format!("{}: declared {} found no value", w.path, w.locator)),
            WarningKind::Inexact => tracing::info!(
                "{}: {} is written with an unusual escaping; a restore writes it the usual way",
                masks.mask(&w.path),
                w.locator
            ),
        }
    }
}

fn read_file(entry: &Entry) -> Result<Vec<u8>> {
    std::fs::read(&entry.path).map_err(|e| Error::io(&entry.path, e))
}

/// Reads a file into `buf`, reusing its memory: a fresh buffer per file costs a page fault and
/// a zeroed page every 4 KiB. A buffer grown past [`MAX_IN_MEMORY`] (a large file with rules)
/// is released afterwards, so memory stays flat.
fn read_into(entry: &Entry, buf: &mut Vec<u8>) -> Result<()> {
    if buf.capacity() > MAX_IN_MEMORY as usize {
        buf.zeroize();
        *buf = Vec::new();
    }
    buf.clear();
    File::open(&entry.path)
        .and_then(|mut f| f.read_to_end(buf))
        .map(drop)
        .map_err(|e| Error::io(&entry.path, e))
}

/// Streams a large file into the archive. A file that changes size while read is reported.
fn stream_file<W: Write>(
    writer: &mut ArchiveWriter<'_, W>,
    entry: &Entry,
    meta: EntryMeta,
    size: u64,
) -> Result<()> {
    let file = File::open(&entry.path).map_err(|e| Error::io(&entry.path, e))?;
    writer.append_file(&entry.rel, meta, size, file.take(size + 1))?;
    Ok(())
}
