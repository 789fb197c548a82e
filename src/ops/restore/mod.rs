//! `restore`: check, extract beside the target, rehydrate, and only then rename into place.
//!
//! The pipeline (SPEC "Restore", issue 7):
//! 1. Check the snapshot's signature against what the manifest trusts, before anything is read
//!    ([`crate::ops::trust`]); look at the target: a non-empty folder needs `force` (`target`).
//! 2. Stream the archive through [`read_archive`]: its blake3 and size against the sidecar,
//!    age, zstd, tar, with a decompression bound taken from the sidecar. The `Extractor`
//!    writes `state/…` into a fresh hidden folder beside the target (`extract`). Nothing in it
//!    is trusted until the read returns `Ok` and every entry matched the index (exit 5 else).
//! 3. Trust only what the restoring manifest declares: an index that asks for any handle the
//!    manifest does not declare is a forged snapshot (exit 5, nothing written;
//!    [`crate::ops::trust`]), with or without `rehydrate`.
//! 4. With `rehydrate`: resolve **every** handle of the index first (`rehydrate`). One that is
//!    unresolved stops the restore: the folder is removed and the report says why, per handle.
//! 5. Put the values back, create the links that stay inside, restore modes and mtimes (files
//!    that hold a value stay `0600`), sync, and rename the folder into place.
//!
//! With `include` ([`Include`], `--include`), only the selected entries (and the folders above
//! them) are written and only their handles are resolved; every check above still covers the
//! whole archive. A partial restore never replaces a non-empty target (exit 2), even with
//! `force`: that would delete everything the globs leave out (docs/restore.md).
//!
//! [`restore_file`] restores a standalone archive (`agentbak export`, `--from FILE`): its
//! sidecar `FILE.json`, when present, is checked exactly like a repository's; without one the
//! archive is unsigned and unchecked, and is refused unless `allow_unsigned`.
//!
//! Invariants: nothing is written outside the hidden folder until the final rename; every
//! failure removes that folder (its guard does); `dry_run` writes nothing at all; reports and
//! errors name files and handles, never values. The restored tree is the *contents* of the
//! archive's `state/`; the index is not written into it.

mod extract;
mod guard;
mod include;
mod rehydrate;
mod safe_path;
mod target;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use extract::{Extracted, SkippedLink};
pub use guard::Protected;
pub use include::Include;
pub use rehydrate::{HandleReport, Versions};

use crate::archive::{
    ArchiveEntry, Counts, EntryData, Identity, IntegrityError, IntegrityProblem, ReadOptions,
    SIDECAR_FORMAT, Sidecar, read_archive,
};
use crate::error::{Error, ExitCode, Report, Result};
use crate::ops::trust::{DeclaredHandles, SignatureStatus, SignatureVerifier};
use crate::repo::Repository;
use crate::store::{ResolveOptions, Stores};
use extract::Extractor;
use rehydrate::Plan;
use target::Staging;

/// How to restore.
#[derive(Debug)]
pub struct RestoreOptions<'a> {
    /// The handles the restoring manifest declares: an index that asks for any other is
    /// refused (exit 5, nothing written; see [`crate::ops::trust`]).
    pub declared: &'a DeclaredHandles,
    /// Checks the snapshot's signature before any entry is read.
    pub signatures: &'a SignatureVerifier<'a>,
    /// Accept an unsigned snapshot although the manifest configures signing.
    pub allow_unsigned: bool,
    /// The folder to restore into.
    pub target: PathBuf,
    /// Fetch every handle's value and put it back (else placeholders stay).
    pub rehydrate: bool,
    /// Replace a non-empty target.
    pub force: bool,
    /// Check and resolve, write nothing.
    pub dry_run: bool,
    /// Which versions `rehydrate` fetches.
    pub versions: Versions,
    /// The identity of an encrypted archive.
    pub identity: Option<&'a Identity>,
    /// Resolver settings (deadline, concurrency, retries, cache use).
    pub resolve: ResolveOptions,
    /// What the target must not be, hold or lie inside (exit 2 before anything is touched).
    pub protected: Protected,
    /// `--include`: restore only the entries these globs select (`None`: everything).
    pub include: Option<&'a Include>,
}

/// How a restore ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target holds the restored tree.
    Restored,
    /// `--dry-run`: checked and resolved, nothing written.
    DryRun,
    /// A handle could not be resolved: nothing was written.
    Unresolved,
}

/// What a restore did, for people (`cli`) and machines (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: String,
    /// Its signature, as checked before any entry was read.
    pub signature: SignatureStatus,
    /// The target folder.
    pub target: PathBuf,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether values were put back.
    pub rehydrate: bool,
    /// Which versions were asked for.
    pub versions: Versions,
    /// What the archive held (and, unless a dry run, what was written).
    pub counts: Extracted,
    /// Files holding placeholders (with `rehydrate`, the files that got values back).
    pub secret_files: usize,
    /// One line per handle of the index (empty without `rehydrate`).
    pub handles: Vec<HandleReport>,
    /// Symlinks not created because their target leaves the restored folder.
    pub skipped_links: Vec<SkippedLink>,
    /// The `--include` globs of a partial restore (absent for a whole one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

impl Report for RestoreReport {
    /// The exit code this outcome calls for: 6 when a handle is unresolved; 3 when values came
    /// from a cache, an ephemeral value was left empty, or a link was skipped; 0 otherwise.
    fn exit_code(&self) -> ExitCode {
        if self.outcome == Outcome::Unresolved {
            return ExitCode::Unresolved;
        }
        let cached = self
            .handles
            .iter()
            .any(|h| matches!(h.status, crate::store::Status::FromCache { .. }));
        let empty = self.handles.iter().any(|h| h.left_empty);
        if cached || empty || !self.skipped_links.is_empty() {
            ExitCode::Warnings
        } else {
            ExitCode::Success
        }
    }
}

/// Restores snapshot `wanted` (`latest`, an id, or a unique prefix) of `repo`.
pub fn restore(
    repo: &Repository,
    wanted: &str,
    stores: &Stores,
    options: &RestoreOptions<'_>,
) -> Result<RestoreReport> {
    let listing = repo.list_for(stores.agent())?;
    let sidecar = repo.resolve(&listing, wanted)?;
    crate::repo::rebuild::with_content(repo, sidecar, options.identity, |archive| {
        restore_archive(archive, sidecar, stores, options)
    })
}

/// Restores one archive read from `input`, whose sidecar is `sidecar`.
pub fn restore_archive(
    input: impl Read + Send,
    sidecar: &Sidecar,
    stores: &Stores,
    options: &RestoreOptions<'_>,
) -> Result<RestoreReport> {
    options.protected.check(&options.target)?;
    // Before anything is read or written: whoever can write the repository must not get to
    // choose what restore fetches and writes.
    let signature = options.signatures.check(sidecar, options.allow_unsigned)?;
    // A partial restore refuses any non-empty target, with or without `force` (below).
    let state = target::inspect(&options.target, options.force || options.include.is_some())?;
    if let (Some(include), target::TargetState::NonEmpty) = (options.include, state) {
        return Err(Error::Usage(format!(
            "restore target {}: the folder is not empty, and --include restores part of a \
             snapshot: --force would replace the whole folder with that part; restore into a \
             new folder and move what you need (globs: {})",
            options.target.display(),
            include.patterns().join(" ")
        )));
    }
    let staging = if options.dry_run {
        None
    } else {
        Some(Staging::create(&options.target)?)
    };
    let name = sidecar.id.clone();
    let mut extractor = Extractor::new(staging.as_ref().map(|s| s.path().to_path_buf()), &name)
        .select(options.include.cloned());
    let read = ReadOptions {
        name: name.clone(),
        expected: sidecar.content_digest(),
        identity: options.identity,
        // The zip-bomb guard: an honest archive holds exactly the bytes its sidecar counts.
        max_bytes: Some(sidecar.counts.bytes),
    };
    let report = read_archive(input, &read, &mut extractor)?;
    report.ensure_clean(&name)?;
    // The whole index is checked, selected or not: a forged one is refused as a whole.
    options.declared.check(&report.index, &name)?;
    if let Some(include) = options.include {
        include.check_matches(&report.index)?;
    }
    let plan = Plan::from_index_selected(&report.index, &name, |file| {
        options
            .include
            .is_none_or(|i| safe_path::relative(file).is_ok_and(|rel| i.selects(&rel)))
    })?;
    let mut out = RestoreReport {
        snapshot: name,
        signature,
        target: options.target.clone(),
        outcome: Outcome::DryRun,
        rehydrate: options.rehydrate,
        versions: options.versions,
        counts: extractor.counts(),
        secret_files: plan.file_count(),
        handles: Vec::new(),
        skipped_links: Vec::new(),
        include: options
            .include
            .map(|i| i.patterns().to_vec())
            .unwrap_or_default(),
    };
    let mut values = rehydrate::Values::new();
    if options.rehydrate {
        let (handles, resolved) =
            rehydrate::resolve(&plan, stores, options.versions, &options.resolve);
        out.handles = handles;
        values = resolved;
        if !out.handles.iter().all(HandleReport::usable) {
            out.outcome = Outcome::Unresolved;
            // `staging` drops here: the partial folder goes with it.
            return Ok(out);
        }
        // A value its file's format cannot carry exactly is refused before anything is
        // written; `staging` drops with the error.
        rehydrate::check(&plan, &values)?;
    } else {
        tracing::debug!(
            handles = plan.handles().count(),
            "no --rehydrate: placeholders stay in place"
        );
    }
    out.skipped_links = extractor.create_links()?;
    out.counts = extractor.counts();
    let Some(staging) = staging else {
        return Ok(out);
    };
    let private = if options.rehydrate {
        rehydrate::rehydrate(staging.path(), &plan, &values)?
    } else {
        Default::default()
    };
    drop(values);
    extractor.apply_metadata(&private)?;
    staging.commit(state)?;
    out.outcome = Outcome::Restored;
    Ok(out)
}

/// The sidecar of a standalone archive: `FILE.json` beside `FILE`.
pub fn sidecar_path_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(crate::repo::SIDECAR_SUFFIX);
    PathBuf::from(name)
}

/// Restores the standalone archive `file` (`restore --from`, as `agentbak export` writes it).
///
/// With `FILE.json` beside it, that sidecar is used exactly as a repository's (signature,
/// then size and blake3, then the entries). Without one, nothing vouches for the archive:
/// it is refused (exit 5) unless `options.allow_unsigned`; then a first read takes its index,
/// size and blake3 (writing nothing), and the restore reads it again held to those, so the
/// index bounds what is written and a file changed in between is refused.
pub fn restore_file(
    file: &Path,
    stores: &Stores,
    options: &RestoreOptions<'_>,
) -> Result<RestoreReport> {
    let name = file.display().to_string();
    let sidecar_path = sidecar_path_of(file);
    let open = || std::fs::File::open(file).map_err(|e| Error::io(file, e));
    let sidecar = match std::fs::read(&sidecar_path) {
        Ok(bytes) => {
            let sidecar = Sidecar::from_json(&bytes).map_err(|e| {
                Error::Integrity(IntegrityError {
                    archive: sidecar_path.display().to_string(),
                    problem: IntegrityProblem::Index(format!("the sidecar does not parse: {e}")),
                })
            })?;
            if sidecar.format != SIDECAR_FORMAT {
                return Err(Error::Usage(format!(
                    "{}: a format {} sidecar; --from reads standalone format-{SIDECAR_FORMAT} \
                     archives (as `agentbak export` writes them)",
                    sidecar_path.display(),
                    sidecar.format
                )));
            }
            sidecar
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !options.allow_unsigned {
                return Err(Error::Integrity(IntegrityError {
                    archive: name,
                    problem: IntegrityProblem::Signature(format!(
                        "no sidecar {} beside it: the archive is unsigned and nothing checks \
                         its size or blake3; pass --allow-unsigned to restore it anyway (only \
                         if you know where the file comes from)",
                        sidecar_path.display()
                    )),
                }));
            }
            tracing::warn!(
                archive = %name,
                "no sidecar: restoring an unsigned archive (--allow-unsigned)"
            );
            standalone_sidecar(open()?, file, options.identity)?
        }
        Err(e) => return Err(Error::io(&sidecar_path, e)),
    };
    restore_archive(open()?, &sidecar, stores, options)
}

/// A sidecar for an archive that came without one, from a first full read of it (which
/// writes nothing): its size, blake3 and encryption as read, its counts from its index.
fn standalone_sidecar(
    input: impl Read + Send,
    file: &Path,
    identity: Option<&Identity>,
) -> Result<Sidecar> {
    let name = file.display().to_string();
    let read = ReadOptions {
        name: name.clone(),
        expected: None,
        identity,
        max_bytes: None,
    };
    let mut skip = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
    let report = read_archive(input, &read, &mut skip)?;
    report.ensure_clean(&name)?;
    let index = &report.index;
    let count = |kind| index.entries.iter().filter(|e| e.kind == kind).count() as u64;
    use crate::archive::EntryKind;
    Ok(Sidecar {
        format: SIDECAR_FORMAT,
        id: index.snapshot_id.clone(),
        agent: index.agent.clone(),
        host: String::new(),
        created_at: index.created_at,
        tags: Vec::new(),
        tool_version: index.tool_version.clone(),
        archive: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: report.size,
        blake3: report.blake3.clone(),
        counts: Counts {
            files: count(EntryKind::File),
            dirs: count(EntryKind::Dir),
            symlinks: count(EntryKind::Symlink),
            bytes: index.file_bytes(),
            secrets: index.secrets.len() as u64,
        },
        encrypted: report.encrypted,
        degraded: Vec::new(),
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
    })
}
