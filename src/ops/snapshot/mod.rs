//! `snapshot`: walk the state, redact, check against the stores, gate, archive, commit.
//!
//! The pipeline (SPEC "Snapshot"):
//! 1. take the repository lock and clean leftovers of crashed runs;
//! 2. walk the state (`walk`);
//! 3. read the files that declared rules name, and take their values (`known`); the bytes read
//!    are kept and archived as they are, so the gate searches exactly the values archived;
//! 4. ask the stores for the current and previous value of every handle (`secrets`): together
//!    with the declared values these are the *known values*;
//! 5. compare each declared value with its store (the sync check), pushing it first with
//!    `--push-secrets`;
//! 6. write the archive into a temporary file while the leak gate (`gate`) scans the exact tar
//!    stream (`archive`): every text file is redacted again with all known values, so stray
//!    copies become placeholders too. A rule file too large to keep from step 3 is read again;
//!    if its declared values changed in between (a rotation during the run), the gate's known
//!    values are stale: the attempt is dropped and the snapshot starts over (at most
//!    [`MAX_ATTEMPTS`] times);
//! 7. refuse (exit 4) on any blocker or finding, dropping the temporary file; else sign and
//!    commit (`commit`).
//!
//! Memory: rule files are kept from step 3 up to `known::MAX_HELD` in all; other small files
//! (up to [`MAX_IN_MEMORY`]) are held one at a time; larger files stream from disk into the
//! archive, and the gate still sees every byte.

mod archive;
mod capture;
mod gate;
mod known;
mod names;
mod rules;
mod secrets;
mod unknown;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::archive::{Recipients, SIDECAR_FORMAT, Sidecar, SnapshotInfo};
use crate::detect::{Detector, Finding, NameMasks};
use crate::error::{Error, ExitCode, Report, Result};
use crate::manifest::Manifest;
use crate::repo::{ENCRYPTED_SUFFIX, PendingArchive, Repository, SnapshotId, host_name};
use crate::store::Stores;
use capture::Capture;
use known::Changed;
use rules::Rules;
use unknown::{Captured, Next, Unknown};

use crate::ops::walk::{self, Entry, Walk};
pub use secrets::Sync;

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
    /// Placeholders of captured secrets in this snapshot: `file: handle`.
    pub captured: Vec<String>,
    /// Findings archived as they are (`detect.on_unknown: warn`).
    pub unknown_kept: Vec<Finding>,
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

/// Makes a snapshot of the manifest's state.
pub fn snapshot(m: &Manifest, opts: &SnapshotOptions) -> Result<SnapshotReport> {
    // A name that holds a secret is masked in the report, the logs and any error (`names`).
    let mut masks = NameMasks::default();
    run(m, opts, &mut masks).map_err(|e| names::mask_error(&masks, e))
}

fn run(m: &Manifest, opts: &SnapshotOptions, masks: &mut NameMasks) -> Result<SnapshotReport> {
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
    let rules = Rules::new(m)?;
    let stores = Stores::from_manifest(m)?;
    let recipients = match &m.encryption {
        Some(e) => Some(Recipients::parse(&e.recipients)?),
        None => None,
    };
    let text_rules = Detector::text_rules(&m.detect)?;
    let mut load_warnings = Vec::new();
    let mut capture = Capture::load(m, &stores, &mut load_warnings);
    let mut captured = Captured::default();
    let mut attempt = 1;
    loop {
        let mut report = SnapshotReport {
            dry_run: opts.dry_run,
            warnings: load_warnings.clone(),
            ..SnapshotReport::default()
        };
        let walked = plan(m, masks, &mut report)?;
        let sources = known::Sources {
            m,
            opts,
            rules: &rules,
            stores: &stores,
            captured: capture.as_ref().map(Capture::held).unwrap_or_default(),
        };
        let (mut known, detector) = known::gather(&sources, &walked, &mut report, known::MAX_HELD)?;
        let detector = Arc::new(detector);
        masks.extend(names::masks(&detector, &names::of(&walked)));
        // Logged now that the masks know the values too (warnings are masked with the report).
        for s in walked.skipped.iter().filter(|s| !s.unreadable) {
            tracing::warn!("{}", masks.mask(&format!("{}: {}", s.rel, s.reason)));
        }

        let now = Utc::now();
        let id = SnapshotId::new(now);
        let mut pending = match (&repo, &lock) {
            (Some(r), Some(l)) => Some(r.begin(l, &id, recipients.is_some())?),
            _ => None,
        };
        let input = archive::Input {
            m,
            rules: &rules,
            walked: &walked,
            recipients: recipients.as_ref(),
            masks,
            text_rules: text_rules.as_ref(),
            info: SnapshotInfo {
                agent: m.agent.clone(),
                snapshot_id: id.to_string(),
                created_at: now,
            },
            name: pending.as_ref().map_or_else(
                || "<dry run>".to_string(),
                |p| p.tmp_path().display().to_string(),
            ),
        };
        let mut nowhere = std::io::sink();
        let sink: &mut dyn Write = match pending.as_mut() {
            Some(p) => p.file(),
            None => &mut nowhere,
        };
        let archived = match archive::write(input, &mut known, detector.clone(), sink, &mut report)?
        {
            Ok(archived) => archived,
            Err(Changed(rel)) if attempt < MAX_ATTEMPTS => {
                // Dropping the pending archive removes it; the next attempt reads afresh.
                drop(pending);
                tracing::info!(
                    "{}: its declared values changed while the snapshot read it; starting over",
                    masks.mask(&rel)
                );
                attempt += 1;
                continue;
            }
            Err(Changed(rel)) => {
                return Err(Error::Entry {
                    path: rel,
                    reason: format!(
                        "its declared values changed while the snapshot read it, {MAX_ATTEMPTS} \
                         times in a row; the next run will try again"
                    ),
                });
            }
        };
        if !report.findings.is_empty() {
            let unknown = Unknown {
                m,
                opts,
                stores: &stores,
                walked: &walked,
                known: &known,
                detector: &detector,
                rules: &rules,
                text_files: &archived.text_files,
            };
            match unknown.handle(capture.as_mut(), &mut captured, &mut report)? {
                Next::Retry if attempt < MAX_ATTEMPTS + MAX_CAPTURES => {
                    drop(pending);
                    attempt += 1;
                    continue;
                }
                Next::Retry => {
                    report.warnings.push(format!(
                        "new secrets kept appearing while the snapshot captured them, {} \
                         times in a row; the next run will try again",
                        MAX_CAPTURES
                    ));
                    names::mask_report(&mut report, masks);
                    return Ok(report);
                }
                Next::Go => {}
            }
        }
        captured.summarize(capture.as_ref(), &mut report);
        names::mask_report(&mut report, masks);
        if report.exit_code() == ExitCode::SecretsFound || !archived.complete || opts.dry_run {
            // Dropping the pending archive removes it: nothing reaches the repository.
            drop(pending);
            return Ok(report);
        }
        let pending = pending.expect("not a dry run");
        commit(m, opts, &stores, pending, now, archived, &mut report)?;
        drop(lock);
        return Ok(report);
    }
}

/// How many times a snapshot starts over to take newly captured secrets into account.
pub const MAX_CAPTURES: u32 = 3;

/// How many times a snapshot starts over when a rule file's declared values change between
/// its two reads (a rotation while the snapshot runs).
pub const MAX_ATTEMPTS: u32 = 3;

/// Walks the state and masks the secrets the rules find in its names.
fn plan(m: &Manifest, masks: &mut NameMasks, report: &mut SnapshotReport) -> Result<Walk> {
    let walked = walk::walk(&m.state, &m.include, &m.exclude)?;
    *masks = names::masks(&Detector::new(&m.detect, None)?, &names::of(&walked));
    for s in walked.skipped.iter().filter(|s| s.unreadable) {
        report.warnings.push(format!("{}: {}", s.rel, s.reason));
    }
    Ok(walked)
}

/// Writes the sidecar, signed when the manifest says so, and makes the snapshot visible.
fn commit(
    m: &Manifest,
    opts: &SnapshotOptions,
    stores: &Stores,
    pending: PendingArchive<'_>,
    now: DateTime<Utc>,
    archived: archive::Archived,
    report: &mut SnapshotReport,
) -> Result<()> {
    let id = pending.id().clone();
    let encrypted = pending.archive_name().ends_with(ENCRYPTED_SUFFIX);
    let mut sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        id: id.to_string(),
        agent: m.agent.clone(),
        host: host_name(),
        created_at: now,
        tags: opts.tags.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        archive: pending.archive_name().to_string(),
        size: archived.size,
        blake3: archived.blake3,
        counts: archived.counts,
        encrypted,
        degraded: report.degraded.clone(),
        signature: None,
    };
    if m.signing.is_some() {
        // A snapshot that cannot be signed is still a backup: keep it, say so (exit 3), and
        // let restore refuse it unless told otherwise (`--allow-unsigned`).
        match crate::ops::trust::sign(m, stores, &sidecar) {
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
    Ok(())
}

fn read_file(entry: &Entry) -> Result<Vec<u8>> {
    std::fs::read(&entry.path).map_err(|e| Error::io(&entry.path, e))
}

#[cfg(test)]
mod tests;
