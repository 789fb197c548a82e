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
//! In the incremental repository (format 2, `packs`), step 6 writes the same tar stream
//! through the gate, but stores each file's content as chunks (`packs`: only chunks the
//! repository lacks, into unnamed packs), takes files unchanged since the last snapshot from
//! the files cache without reading them (`cache`, under the same keyed fingerprint of the
//! known values and rules), and step 7 names the packs, writes the refs file and then the
//! sidecar (`PacksCommit`).
//!
//! Memory: rule files are kept from step 3 up to `known::MAX_HELD` in all; other small files
//! (up to [`MAX_IN_MEMORY`]) are held one at a time; larger files stream from disk into the
//! archive, and the gate still sees every byte.

mod archive;
mod cache;
mod capture;
mod gate;
mod known;
mod names;
pub(crate) mod packs;
mod rules;
mod secrets;
mod unknown;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::archive::{
    Recipients, SIDECAR_FORMAT, SIDECAR_FORMAT_PACKS, Sidecar, SnapshotInfo, Stored,
    default_threads,
};
use crate::detect::{Detector, Finding, NameMasks};
use crate::error::{Error, ExitCode, Report, Result};
use crate::manifest::Manifest;
use crate::manifest::RepositoryFormat;
use crate::repo::packs::{ChunkIndex, PackWriter, RepoConfig};
use crate::repo::{ENCRYPTED_SUFFIX, PendingArchive, Repository, SnapshotId, host_name};
use crate::repo::{REFS_SUFFIX, RepoLock};
use crate::store::Stores;
use capture::Capture;
pub(crate) use capture::read_key as read_capture_key;
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
    /// Draw a progress bar on stderr (files, bytes, throughput): for a terminal.
    pub progress: bool,
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
    /// Files the incremental repository took from the parent snapshot without reading them
    /// (unchanged size, times and inode, under the same known values and rules).
    pub reused_files: u64,
    /// Bytes of new chunks (before compression) the snapshot added to the repository (the
    /// whole content for an archive).
    pub new_bytes: u64,
    /// How long the snapshot took, in milliseconds.
    pub duration_ms: u64,
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
    let started = std::time::Instant::now();
    let mut report = run(m, opts, &mut masks).map_err(|e| names::mask_error(&masks, e))?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
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
    let packs = match &repo {
        Some(repo) if m.repository_format == RepositoryFormat::Packs => {
            Incremental::open(m, repo, capture.as_mut(), &stores, &mut load_warnings)?
        }
        _ => None,
    };
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
            fingerprint_key: packs.as_ref().map(|p| &p.key),
        };
        let (mut known, detector) = known::gather(&sources, &walked, &mut report, known::MAX_HELD)?;
        let detector = Arc::new(detector);
        masks.extend(names::masks(&detector, &names::of(&walked)));
        // Logged now that the masks know the values too (warnings are masked with the report).
        for s in walked.skipped.iter().filter(|s| !s.unreadable) {
            tracing::warn!("{}", masks.mask(&format!("{}: {}", s.rel, s.reason)));
        }

        let progress = opts.progress.then(|| progress_bar(&walked));
        let now = Utc::now();
        let id = SnapshotId::new(now);
        let info = SnapshotInfo {
            agent: m.agent.clone(),
            snapshot_id: id.to_string(),
            created_at: now,
        };
        let input = |name: String| archive::Input {
            m,
            rules: &rules,
            walked: &walked,
            recipients: recipients.as_ref(),
            masks: &*masks,
            text_rules: text_rules.as_ref(),
            info,
            name,
            progress: progress.as_ref(),
        };
        let written = match (&repo, &lock, &packs) {
            (Some(r), Some(_), Some(p)) => {
                let fingerprint = p.fingerprint(&known, m);
                let cache = p.cache_path.as_ref().and_then(|path| {
                    cache::FilesCache::load(path, &fingerprint, p.parent.as_deref())
                });
                let writer = PackWriter::new(
                    r.root(),
                    recipients.as_ref(),
                    m.compression.level,
                    default_threads(),
                )?;
                let chunker = packs::Chunker::new(p.key, p.config.chunker, &p.index, writer);
                archive::write_packs(
                    input(r.root().join("packs").display().to_string()),
                    &mut known,
                    detector.clone(),
                    chunker,
                    cache.as_ref(),
                    &mut report,
                )?
                .map(|packed| Attempt::Packs(packed, fingerprint))
            }
            _ => {
                let mut pending = match (&repo, &lock) {
                    (Some(r), Some(l)) => Some(r.begin(l, &id, recipients.is_some())?),
                    _ => None,
                };
                let input = input(pending.as_ref().map_or_else(
                    || "<dry run>".to_string(),
                    |p| p.tmp_path().display().to_string(),
                ));
                let mut nowhere = std::io::sink();
                let sink: &mut dyn Write = match pending.as_mut() {
                    Some(p) => p.file(),
                    None => &mut nowhere,
                };
                archive::write(input, &mut known, detector.clone(), sink, &mut report)?
                    .map(|archived| Attempt::Archive(pending, archived))
            }
        };
        if let Some(bar) = &progress {
            bar.finish_and_clear();
        }
        let written = match written {
            Ok(written) => written,
            Err(Changed(rel)) if attempt < MAX_ATTEMPTS => {
                // Nothing written is named yet: the next attempt reads afresh.
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
                text_files: written.text_files(),
            };
            match unknown.handle(capture.as_mut(), &mut captured, &mut report)? {
                Next::Retry if attempt < MAX_ATTEMPTS + MAX_CAPTURES => {
                    drop(written);
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
        if report.exit_code() == ExitCode::SecretsFound || !written.complete() || opts.dry_run {
            // Dropping what was written removes it: nothing reaches the repository.
            drop(written);
            return Ok(report);
        }
        match written {
            Attempt::Archive(pending, archived) => {
                let pending = pending.expect("not a dry run");
                commit(m, opts, &stores, pending, now, archived, &mut report)?;
            }
            Attempt::Packs(packed, fingerprint) => {
                let (Some(r), Some(l), Some(p)) = (&repo, &lock, &packs) else {
                    unreachable!("packs are written only into a locked repository");
                };
                let commit = PacksCommit {
                    repo: r,
                    lock: l,
                    incremental: p,
                    id: &id,
                    now,
                    encrypted: recipients.is_some(),
                };
                commit.run(m, opts, &stores, packed, &fingerprint, &walked, &mut report)?;
            }
        }
        drop(lock);
        return Ok(report);
    }
}

/// What one attempt wrote, not committed yet: dropping it leaves nothing in the repository.
enum Attempt<'r> {
    /// An archive (format 1), or nothing on a dry run.
    Archive(Option<PendingArchive<'r>>, archive::Archived),
    /// Chunks and a tree for the incremental repository, with the fingerprint they were
    /// checked under.
    Packs(archive::Packed, String),
}

impl Attempt<'_> {
    fn text_files(&self) -> &std::collections::BTreeSet<String> {
        match self {
            Attempt::Archive(_, a) => &a.text_files,
            Attempt::Packs(p, _) => &p.text_files,
        }
    }

    fn complete(&self) -> bool {
        match self {
            Attempt::Archive(_, a) => a.complete,
            Attempt::Packs(p, _) => p.complete,
        }
    }
}

/// What a snapshot into the incremental repository works with.
struct Incremental {
    /// The chunk-id key.
    key: [u8; 32],
    config: RepoConfig,
    /// The chunks the repository holds.
    index: ChunkIndex,
    /// The latest snapshot of this agent in this format, made with this key.
    parent: Option<String>,
    /// Where this agent's files cache is.
    cache_path: Option<std::path::PathBuf>,
}

impl Incremental {
    /// Opens the incremental repository, or says why this snapshot is one archive instead
    /// (no store to keep the chunk-id key in, or the store unreachable: a backup that does
    /// not happen is a failure too).
    fn open(
        m: &Manifest,
        repo: &Repository,
        capture: Option<&mut Capture>,
        stores: &Stores,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Incremental>> {
        let key = match capture.map(|c| c.chunk_key(stores)) {
            Some(Ok(key)) => key,
            Some(Err(e)) => {
                warnings.push(format!(
                    "the chunk-id key could not be read from the store ({e}); this snapshot is \
                     one full archive (repository_format `archives`)"
                ));
                return Ok(None);
            }
            None => {
                // Nothing to keep a key in (only `env` handles, or none): nothing can be
                // captured either. The snapshot is one archive, as it always was.
                tracing::info!(
                    "the manifest has no key/value store to keep the chunk-id key in; the \
                     snapshot is one full archive"
                );
                return Ok(None);
            }
        };
        let config = RepoConfig::load_or_create(repo.root())?;
        let index = ChunkIndex::load(repo.root())?;
        let key_id = packs::key_id(&key);
        let parent = repo
            .list_for(&m.agent)?
            .snapshots
            .iter()
            .rev()
            .find(|s| s.format == SIDECAR_FORMAT_PACKS && s.chunk_key.as_deref() == Some(&key_id))
            .map(|s| s.id.clone());
        let cache_path = cache::cache_path(&config.id, &m.agent);
        Ok(Some(Incremental {
            key,
            config,
            index,
            parent,
            cache_path,
        }))
    }

    /// The keyed fingerprint a file is reused under: the known values and versions, the
    /// rules, the detection settings and this release.
    fn fingerprint(&self, known: &known::Known, m: &Manifest) -> String {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(known.fingerprint.as_ref().unwrap_or(&[0; 32]));
        for part in [
            serde_json::to_vec(&m.secrets).expect("the manifest serializes"),
            serde_json::to_vec(&m.detect).expect("the manifest serializes"),
            env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
        ] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(&part);
        }
        hasher.finalize().to_hex().to_string()
    }
}

/// The commit of a snapshot into the incremental repository.
struct PacksCommit<'a> {
    repo: &'a Repository,
    lock: &'a RepoLock,
    incremental: &'a Incremental,
    id: &'a SnapshotId,
    now: DateTime<Utc>,
    encrypted: bool,
}

impl PacksCommit<'_> {
    /// Names the new packs and writes their index file, then the refs file, then the signed
    /// sidecar (from then on the snapshot exists); then the files cache.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        m: &Manifest,
        opts: &SnapshotOptions,
        stores: &Stores,
        packed: archive::Packed,
        fingerprint: &str,
        walked: &Walk,
        report: &mut SnapshotReport,
    ) -> Result<()> {
        let refs = packed.finished.refs_bytes();
        let packs::Finished {
            tree,
            tree_ref,
            refs: chunk_refs,
            pending,
            new_chunks,
            new_bytes,
            stored_bytes,
            packs,
        } = packed.finished;
        pending.commit(self.id.as_str())?;
        let refs_name = format!("{}{REFS_SUFFIX}", self.id);
        self.repo.put_object(
            self.lock,
            &self.repo.snapshots_dir().join(&refs_name),
            &refs,
        )?;
        let counts = crate::archive::Counts {
            files: report.files,
            dirs: report.dirs,
            symlinks: report.symlinks,
            bytes: report.bytes,
            secrets: tree.index.secrets.len() as u64,
        };
        let mut sidecar = Sidecar {
            format: SIDECAR_FORMAT_PACKS,
            id: self.id.to_string(),
            agent: m.agent.clone(),
            host: host_name(),
            created_at: self.now,
            tags: opts.tags.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            archive: refs_name,
            size: refs.len() as u64,
            blake3: blake3::hash(&refs).to_hex().to_string(),
            counts,
            encrypted: self.encrypted,
            degraded: report.degraded.clone(),
            tree: Some(tree_ref),
            stored: Some(Stored {
                chunks: chunk_refs.len() as u64,
                new_chunks,
                new_bytes,
                stored_bytes,
                packs,
                reused_files: report.reused_files,
            }),
            chunk_key: Some(packs::key_id(&self.incremental.key)),
            signature: None,
        };
        sign(m, stores, &mut sidecar, report);
        self.repo.put_object(
            self.lock,
            &self.repo.sidecar_path(self.id.as_str()),
            &sidecar.to_json(),
        )?;
        report.id = Some(self.id.to_string());
        if let Some(path) = &self.incremental.cache_path {
            cache::FilesCache::of(self.id.as_str(), fingerprint, &tree, walked).save(path);
        }
        Ok(())
    }
}

/// Signs the sidecar when the manifest says so. A snapshot that cannot be signed is still a
/// backup: keep it, say so (exit 3), and let restore refuse it unless told otherwise
/// (`--allow-unsigned`).
fn sign(m: &Manifest, stores: &Stores, sidecar: &mut Sidecar, report: &mut SnapshotReport) {
    if m.signing.is_none() {
        return;
    }
    match crate::ops::trust::sign(m, stores, sidecar) {
        Ok(signature) => sidecar.signature = Some(signature),
        Err(e) => {
            report.warnings.push(format!(
                "the snapshot is not signed ({e}); restore and verify refuse it unless given \
                 --allow-unsigned"
            ));
            report.degraded.push("unsigned".to_string());
            sidecar.degraded.push("unsigned".to_string());
        }
    }
}

/// A progress bar over the walk's file bytes: files done, bytes, throughput.
fn progress_bar(walked: &Walk) -> indicatif::ProgressBar {
    let total = walked
        .entries
        .iter()
        .map(|e| match e.kind {
            walk::EntryKind::File { size } => size,
            _ => 0,
        })
        .sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} snapshot {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("the template parses")
        .progress_chars("=> "),
    );
    bar.set_message("0 files");
    bar
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
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
    };
    sign(m, stores, &mut sidecar, report);
    pending.commit(&sidecar)?;
    report.id = Some(id.to_string());
    Ok(())
}

fn read_file(entry: &Entry) -> Result<Vec<u8>> {
    std::fs::read(&entry.path).map_err(|e| Error::io(&entry.path, e))
}

#[cfg(test)]
mod tests;
