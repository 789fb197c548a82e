//! `agentbak prune`: applies the retention policy (restic's `forget` semantics); and
//! `agentbak forget ID...`: removes named snapshots.
//!
//! The policy is the manifest's `retention`, unless any `--keep-*` flag is given: then the
//! flags alone are the policy, so `prune --keep-last 1` means exactly that.

use std::fmt::Write as _;

use super::{Cli, ForgetArgs, PruneArgs, load_manifest, write_stdout};
use crate::error::{ExitCode, Result};
use crate::repo::Repository;
use crate::repo::gc::GcOptions;
use crate::repo::retention::{Policy, forget as forget_ids, prune as apply};

pub(super) fn prune(cli: &Cli, args: &PruneArgs) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let flags = Policy {
        last: args.keep_last.unwrap_or(0),
        hourly: args.keep_hourly.unwrap_or(0),
        daily: args.keep_daily.unwrap_or(0),
        weekly: args.keep_weekly.unwrap_or(0),
        monthly: args.keep_monthly.unwrap_or(0),
        yearly: args.keep_yearly.unwrap_or(0),
        tags: args.keep_tags.iter().cloned().collect(),
    };
    // Flags replace the manifest's policy as soon as one is given, even `--keep-last 0`.
    let given = [
        args.keep_last,
        args.keep_hourly,
        args.keep_daily,
        args.keep_weekly,
        args.keep_monthly,
        args.keep_yearly,
    ]
    .iter()
    .any(Option::is_some)
        || !args.keep_tags.is_empty();
    let policy = if !given {
        Policy::from(&manifest.retention)
    } else {
        flags
    };
    if policy.is_empty() {
        tracing::warn!(
            "no retention policy (manifest `retention` or --keep-*): nothing is removed"
        );
    }
    let repo = Repository::open(&manifest.repository)?;
    let identity = match &args.identity {
        Some(given) => {
            let stores = crate::store::Stores::from_manifest(&manifest)?;
            Some(crate::ops::identity::load_identity(given, &stores)?)
        }
        None => None,
    };
    let recipients = match &manifest.encryption {
        Some(e) => Some(crate::archive::Recipients::parse(&e.recipients)?),
        None => None,
    };
    let gc = GcOptions {
        identity: identity.as_ref(),
        recipients: recipients.as_ref(),
        level: manifest.compression.level,
        dry_run: args.dry_run,
    };
    let report = apply(&repo, &manifest.agent, &policy, args.dry_run, None, &gc)?;
    for orphan in &report.orphans {
        tracing::warn!(repository = %manifest.repository.display(), "orphan {orphan} (left as is)");
    }
    if cli.json {
        let mut out = serde_json::to_vec_pretty(&report).expect("a report serializes");
        out.push(b'\n');
        return write_stdout(&out).map(|()| ExitCode::Success);
    }
    let mut out = String::new();
    for d in &report.decisions {
        if d.keep {
            let _ = writeln!(out, "keep    {}  ({})", d.id, d.reasons.join(", "));
        } else {
            let verb = if report.dry_run {
                "would remove"
            } else {
                "remove"
            };
            let _ = writeln!(out, "{verb:<7} {}", d.id);
        }
    }
    let total = report.decisions.len();
    let removed = report.removed.len();
    let _ = if report.dry_run {
        writeln!(out, "would remove {removed} of {total} snapshots (dry run)")
    } else {
        writeln!(out, "removed {removed} of {total} snapshots")
    };
    if let Some(gc) = &report.gc {
        let verb = if report.dry_run {
            "would free"
        } else {
            "freed"
        };
        let _ = writeln!(
            out,
            "{verb} {} ({} packs deleted, {} repacked into {}, {} unreferenced); {} chunks live",
            super::list::human_size(gc.bytes_freed),
            gc.packs_deleted,
            gc.packs_repacked,
            gc.packs_written,
            gc.unreferenced_deleted,
            gc.live_chunks
        );
        if gc.sparse_kept > 0 {
            let _ = writeln!(
                out,
                "{} sparse encrypted packs kept ({} unused): repacking them needs --identity",
                gc.sparse_kept,
                super::list::human_size(gc.dead_bytes_left)
            );
        }
    }
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::Success)
}

/// `agentbak forget ID...`: prints each id removed (or that would be).
pub(super) fn forget(cli: &Cli, args: &ForgetArgs) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let repo = Repository::open(&manifest.repository)?;
    let ids = forget_ids(&repo, &manifest.agent, &args.snapshots, args.dry_run)?;
    let out = if cli.json {
        let doc = serde_json::json!({ "dry_run": args.dry_run, "removed": ids });
        format!("{doc:#}\n")
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        ids.iter().map(|id| format!("{verb} {id}\n")).collect()
    };
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::Success)
}
