//! `agentbak ls ID [PATH]`: a snapshot's entries, one per line, `ls -l` style.

use std::fmt::Write as _;

use super::{Cli, LsArgs, load_manifest, write_stdout};
use crate::error::{ExitCode, Result};
use crate::ops::inspect::{self, InspectOptions, Inspected, LsEntry};
use crate::ops::trust::{SignatureStatus, SignatureVerifier};
use crate::repo::Repository;
use crate::store::Stores;

pub(super) fn ls(cli: &Cli, args: &LsArgs) -> Result<ExitCode> {
    let [snapshot] = inspect_snapshots(
        cli,
        args.identity.as_deref(),
        args.allow_unsigned,
        [args.snapshot.as_str()],
    )?;
    let entries = inspect::list(&snapshot.index, args.path.as_deref())?;
    if cli.json {
        let doc = serde_json::json!({
            "snapshot": snapshot.sidecar.id,
            "signature": snapshot.signature,
            "entries": entries,
        });
        let mut out = serde_json::to_vec_pretty(&doc).expect("a listing serializes");
        out.push(b'\n');
        write_stdout(&out)?;
    } else {
        write_stdout(human(&entries).as_bytes())?;
    }
    Ok(ExitCode::Success)
}

/// The human listing: `drwx------  0  2026-01-01 00:00:00Z  path  [2 placeholders]`.
fn human(entries: &[LsEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mut path = if e.path.is_empty() {
                ".".to_string()
            } else {
                e.path.clone()
            };
            if let Some(link) = &e.link {
                let _ = write!(path, " -> {link}");
            }
            let secrets = match e.placeholders {
                0 => String::new(),
                1 => "[1 placeholder]".to_string(),
                n => format!("[{n} placeholders]"),
            };
            vec![
                e.mode_string.clone(),
                e.size.to_string(),
                e.mtime.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                path,
                secrets,
            ]
        })
        .collect();
    crate::report::columns(&rows, "")
}

/// Resolves each of `ids` in the manifest's repository, checks its signature and reads its
/// index (`ls`, `diff`). An unchecked signature is a warning on stderr.
pub(super) fn inspect_snapshots<const N: usize>(
    cli: &Cli,
    identity: Option<&str>,
    allow_unsigned: bool,
    ids: [&str; N],
) -> Result<[Inspected; N]> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let stores = Stores::from_manifest(&manifest)?;
    let repo = Repository::open(&manifest.repository)?;
    let listing = repo.list_for(&manifest.agent)?;
    let mut sidecars = Vec::with_capacity(N);
    for id in ids {
        sidecars.push(repo.resolve(&listing, id)?);
    }
    let identity = match identity {
        Some(given) if sidecars.iter().any(|s| s.encrypted) => {
            Some(crate::ops::identity::load_identity(given, &stores)?)
        }
        _ => None,
    };
    let signatures = SignatureVerifier::new(&manifest, &stores);
    let options = InspectOptions {
        signatures: &signatures,
        allow_unsigned,
        identity: identity.as_ref(),
    };
    let mut out = Vec::with_capacity(N);
    for sidecar in sidecars {
        let inspected = inspect::open(&repo, sidecar, &options)?;
        if let SignatureStatus::NotChecked { .. } = inspected.signature {
            tracing::warn!(
                "snapshot {}: {}",
                sidecar.id,
                inspected.signature.describe()
            );
        }
        out.push(inspected);
    }
    Ok(out
        .try_into()
        .unwrap_or_else(|_| unreachable!("one result per id")))
}
