//! `agentbak restore`: picks the snapshot (or `--from FILE`), finds the identity, calls
//! `ops::restore`, renders.

use std::fmt::Write as _;

use super::{Cli, RestoreArgs, load_manifest, write_stdout};
use crate::error::{ExitCode, Report as _, Result};
use crate::manifest::find_manifest_path;
use crate::ops::restore::{
    Include, Outcome, Protected, RestoreOptions, RestoreReport, Versions, restore_archive,
    restore_file,
};
use crate::ops::trust::{DeclaredHandles, SignatureStatus, SignatureVerifier};
use crate::repo::Repository;
use crate::store::{ResolveOptions, Status, Stores};

pub(super) fn restore(cli: &Cli, args: &RestoreArgs) -> Result<ExitCode> {
    // The path `load_manifest` reads: the guard keeps a restore from replacing it.
    let manifest_path = find_manifest_path(cli.manifest.as_deref());
    let manifest = load_manifest(Some(&manifest_path))?;
    let protected = Protected::new(&manifest, &manifest_path);
    let stores = Stores::from_manifest(&manifest)?;
    let include = match args.include.as_slice() {
        [] => None,
        globs => Some(Include::new(globs)?),
    };
    // `--from` needs no repository; a snapshot of the repository is read without its lock
    // (readers only ever see complete files).
    let snapshot = match &args.from {
        Some(_) => None,
        None => {
            let repo = Repository::open(&manifest.repository)?;
            let listing = repo.list_for(&manifest.agent)?;
            let sidecar = repo.resolve(&listing, &args.snapshot)?.clone();
            Some((repo, sidecar))
        }
    };
    // A standalone archive without a sidecar may be encrypted: take the identity when given.
    let encrypted = snapshot.as_ref().is_none_or(|(_, s)| s.encrypted);
    let identity = match (&args.identity, encrypted) {
        (Some(given), true) => Some(crate::ops::identity::load_identity(given, &stores)?),
        _ => None,
    };
    let declared = DeclaredHandles::from_manifest(&manifest);
    let signatures = SignatureVerifier::new(&manifest, &stores);
    let options = RestoreOptions {
        declared: &declared,
        signatures: &signatures,
        allow_unsigned: args.allow_unsigned,
        target: args.target.clone(),
        rehydrate: args.rehydrate,
        force: args.force,
        dry_run: args.dry_run,
        versions: match (args.pin, args.previous) {
            (true, _) => Versions::Pinned,
            (_, true) => Versions::Previous,
            _ => Versions::Current,
        },
        identity: identity.as_ref(),
        resolve: ResolveOptions::default(),
        protected,
        include: include.as_ref(),
    };
    let report = match (&snapshot, &args.from) {
        (Some((repo, sidecar)), _) => {
            crate::repo::rebuild::with_content(repo, sidecar, options.identity, |input| {
                restore_archive(input, sidecar, &stores, &options)
            })?
        }
        (None, Some(file)) => restore_file(file, &stores, &options)?,
        (None, None) => unreachable!("a snapshot is resolved unless --from is given"),
    };
    warn(&report);
    if cli.json {
        let mut out = serde_json::to_vec_pretty(&report).expect("a restore report serializes");
        out.push(b'\n');
        write_stdout(&out)?;
    } else {
        write_stdout(human(&report).as_bytes())?;
    }
    Ok(report.exit_code())
}

/// `--identity` is a handle when it parses as one of a store the manifest names; else a file.
/// Warnings on stderr: what needs attention even though the restore went through.
fn warn(report: &RestoreReport) {
    if let SignatureStatus::NotChecked { .. } = report.signature {
        tracing::warn!(
            "snapshot {}: {}",
            report.snapshot,
            report.signature.describe()
        );
    }
    for h in &report.handles {
        match &h.status {
            Status::FromCache { reason, .. } => {
                tracing::warn!(handle = %h.handle, "value served from the cache: {reason}");
            }
            _ if h.left_empty => {
                tracing::warn!(handle = %h.handle, "ephemeral value not set: restored as empty");
            }
            _ => {}
        }
    }
    for link in &report.skipped_links {
        tracing::warn!(
            link = %link.path,
            target = %link.target,
            "symlink not restored: {}",
            link.reason
        );
    }
}

/// The human report on stdout.
fn human(r: &RestoreReport) -> String {
    let mut out = String::new();
    let c = &r.counts;
    let mut what = format!(
        "{} files, {} folders, {} links, {} bytes",
        c.files, c.dirs, c.symlinks, c.bytes
    );
    if !r.include.is_empty() {
        let _ = write!(what, " (only --include {})", r.include.join(" "));
    }
    let _ = match r.outcome {
        Outcome::Restored => writeln!(
            out,
            "restored {} into {}: {what}",
            r.snapshot,
            r.target.display()
        ),
        Outcome::DryRun => writeln!(
            out,
            "dry run: {} would be restored into {}: {what}",
            r.snapshot,
            r.target.display()
        ),
        Outcome::Unresolved => writeln!(
            out,
            "nothing restored: {} of {} handles could not be resolved",
            r.handles.iter().filter(|h| !h.usable()).count(),
            r.handles.len()
        ),
    };
    let _ = writeln!(out, "signature: {}", r.signature.describe());
    if !r.rehydrate {
        let _ = writeln!(
            out,
            "{} files keep their placeholders (pass --rehydrate to fetch the values)",
            r.secret_files
        );
    }
    for h in &r.handles {
        let _ = writeln!(out, "  {}  {}", h.handle, handle_line(h));
    }
    for l in &r.skipped_links {
        let _ = writeln!(
            out,
            "  skipped link {} -> {}: {}",
            l.path, l.target, l.reason
        );
    }
    out
}

fn handle_line(h: &crate::ops::restore::HandleReport) -> String {
    let version = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("v{v}"));
    let rotation = format!(
        "(snapshot {}, restored {}{})",
        version(h.snapshot_version),
        version(h.restored_version),
        if h.rotated { ", rotated" } else { "" }
    );
    match &h.status {
        Status::Resolved { .. } => format!("resolved {rotation}"),
        Status::FromCache { .. } => format!("from cache {rotation}"),
        _ if h.left_empty => "left empty (ephemeral, variable not set)".to_string(),
        other => crate::ops::identity::status_detail(other),
    }
}
