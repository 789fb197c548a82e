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
//! Invariants: nothing is written outside the hidden folder until the final rename; every
//! failure removes that folder (its guard does); `dry_run` writes nothing at all; reports and
//! errors name files and handles, never values. The restored tree is the *contents* of the
//! archive's `state/`; the index is not written into it.

mod extract;
mod guard;
mod rehydrate;
mod safe_path;
mod target;

use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;

pub use extract::{Extracted, SkippedLink};
pub use guard::Protected;
pub use rehydrate::{HandleReport, Versions};

use crate::archive::{Identity, ReadOptions, Sidecar, read_archive};
use crate::error::{ExitCode, Report, Result};
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
    let state = target::inspect(&options.target, options.force)?;
    let staging = if options.dry_run {
        None
    } else {
        Some(Staging::create(&options.target)?)
    };
    let name = sidecar.id.clone();
    let mut extractor = Extractor::new(staging.as_ref().map(|s| s.path().to_path_buf()), &name);
    let read = ReadOptions {
        name: name.clone(),
        expected: sidecar.content_digest(),
        identity: options.identity,
        // The zip-bomb guard: an honest archive holds exactly the bytes its sidecar counts.
        max_bytes: Some(sidecar.counts.bytes),
    };
    let report = read_archive(input, &read, &mut extractor)?;
    report.ensure_clean(&name)?;
    options.declared.check(&report.index, &name)?;
    let plan = Plan::from_index(&report.index, &name)?;
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
