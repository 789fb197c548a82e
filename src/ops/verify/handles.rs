//! The store side of verify: which values the leak scan searches for (`--against-store`), and
//! how each handle stands today (`--check-handles`).
//!
//! Known values: with `--against-store`, every value the stores keep for every handle the
//! manifest declares (the current one and each older kept version's), fetched once for the
//! whole run; a snapshot whose index names other
//! handles (an older manifest) gets a second pass with just those values. Without it, the
//! values the manifest's state holds now, if the state folder is on this host (an audit host
//! often has only the repository: then rules only, and the report says so). Both are read by
//! [`crate::ops::known`], which `scan` uses too.
//!
//! Handle status reuses [`handle_status`] (one resolution for the union of every snapshot's
//! handles) and adds what only a snapshot knows: the version it recorded, and whether the
//! location was ephemeral (then a missing value is a warning, as on restore). Rotation is per
//! field: a handle was rotated since the snapshot when its field's value changed after the
//! recorded version, so rotating one field of a secret does not mark its siblings rotated.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::IndexHandle;
use super::archive::{leak_check, mask_names, missing_handles, scan_archive};
use super::{Check, KnownSummary, SnapshotReport, Verified, VerifyOptions};
use crate::archive::Sidecar;
use crate::detect::{Detector, FindingKind, KnownValues};
use crate::error::ExitCode;
use crate::handle::Handle;
use crate::manifest::{Detect, EntropyAction, Manifest};
use crate::ops::known;
use crate::ops::secrets::status::{HandleStatus, Rotation, handle_status};
use crate::repo::Repository;
use crate::store::{ResolveOptions, Status, Stores};

/// One handle of one snapshot, as it stands now. Holds no value.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct HandleCheck {
    /// Resolution now, age and rotation state (`handle`, `status`, `version` or `message`,
    /// `age_days`, `rotation`, `max_age_days`).
    #[serde(flatten)]
    pub now: HandleStatus,
    /// The store version the snapshot recorded, if the store was reachable then.
    pub version_at_snapshot: Option<u64>,
    /// Whether the field's value changed after the version recorded at snapshot time (a
    /// rotation of this field since; a sibling field's rotation does not count).
    pub rotated_since: Option<bool>,
    /// Whether the snapshot dropped the value as ephemeral.
    pub ephemeral: bool,
    /// `index` when the snapshot's index named it; `manifest` when the index could not be
    /// read (an encrypted archive without the identity).
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["index", "manifest"])))]
    pub source: &'static str,
}

impl HandleCheck {
    /// The version resolved now, if any.
    pub fn current_version(&self) -> Option<u64> {
        match self.now.status {
            Status::Resolved { version, .. } | Status::FromCache { version, .. } => Some(version),
            _ => None,
        }
    }
}

/// Values to search for, and the handles whose current value could not be fetched.
pub(super) struct Known {
    pub values: KnownValues,
    pub unresolved: Vec<Handle>,
}

/// The known values of the run (see the module documentation); `store_handles` is `Some` with
/// `--against-store`.
pub(super) fn known_values(
    manifest: &Manifest,
    stores: &Stores,
    store_handles: Option<&[Handle]>,
    summary: &mut KnownSummary,
) -> Known {
    if let Some(handles) = store_handles {
        let found = known::from_stores(stores, handles);
        summary.sources.push(found.summary);
        summary
            .notes
            .extend(known::unresolved_notes(&found.unresolved));
        return Known {
            values: KnownValues::new(found.values),
            unresolved: found.unresolved,
        };
    }
    if !manifest.state.is_dir() {
        summary.notes.push(format!(
            "the state folder {} is not on this host: no known values from it (use \
             --against-store to search for the stores' values)",
            manifest.state.display()
        ));
        return Known {
            values: KnownValues::new(Vec::new()),
            unresolved: Vec::new(),
        };
    }
    let found = known::from_state(manifest);
    let values = KnownValues::new(found.values);
    summary
        .sources
        .push(format!("state: {} value(s)", values.len()));
    summary.notes.extend(found.notes);
    Known {
        values,
        unresolved: Vec::new(),
    }
}

/// Everything `--against-store` needs beyond one snapshot.
pub(super) struct StoreSearch<'a> {
    pub repo: &'a Repository,
    pub stores: &'a Stores,
    pub options: &'a VerifyOptions<'a>,
    /// Handles whose values the run's detector holds.
    pub searched: &'a BTreeSet<Handle>,
    /// Handles whose current value could not be fetched.
    pub unresolved: &'a [Handle],
}

/// The `against-store` check of one snapshot: a second pass for handles of its index the
/// first pass did not search for, then pass (4 if a store value was found, 6 if a current
/// value could not be fetched).
pub(super) fn against_store(
    ctx: &StoreSearch<'_>,
    sidecar: &Sidecar,
    report: &mut SnapshotReport,
    index: Option<&[IndexHandle]>,
) {
    let Some(index) = index else {
        report.checks.push(Check::skipped(
            "against-store",
            "the contents were not read",
        ));
        return;
    };
    let handles: Vec<Handle> = index.iter().map(|h| h.handle.clone()).collect();
    let extra: Vec<Handle> = missing_handles(&handles, ctx.searched)
        .into_iter()
        .cloned()
        .collect();
    let mut unresolved: Vec<Handle> = ctx
        .unresolved
        .iter()
        .filter(|h| handles.contains(h))
        .cloned()
        .collect();
    if !extra.is_empty() {
        let found = known::from_stores(ctx.stores, &extra);
        unresolved.extend(found.unresolved);
        let only_values = Detect {
            builtin: false,
            entropy: EntropyAction::Off,
            rules: Vec::new(),
            allow: Vec::new(),
            ..Detect::default()
        };
        let second = Detector::new(&only_values, Some(KnownValues::new(found.values)))
            .expect("a detector without rules always builds");
        match scan_archive(ctx.repo, sidecar, &second, ctx.options.identity) {
            Ok(scanned) => {
                report.findings.extend(scanned.findings);
                mask_names(report, &scanned.masks);
            }
            Err(e) => {
                report.checks.push(Check::with_code(
                    "against-store",
                    e.exit_code(),
                    vec![e.to_string()],
                ));
                return;
            }
        }
        if let Some(leak) = report.checks.iter_mut().find(|c| c.name == "leak-scan") {
            *leak = leak_check(&report.findings, "leak-scan");
        }
    }
    let from_store: Vec<String> = report
        .findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::KnownValue { label, encoding } if known::is_store_label(label) => {
                Some(format!(
                    "{label} found as {} in {}:{}",
                    encoding.name(),
                    f.path,
                    f.line
                ))
            }
            _ => None,
        })
        .collect();
    report.checks.push(if !from_store.is_empty() {
        Check::with_code("against-store", ExitCode::SecretsFound, from_store)
    } else if !unresolved.is_empty() {
        Check::with_code(
            "against-store",
            ExitCode::Unresolved,
            known::unresolved_notes(&unresolved),
        )
    } else {
        Check::with_code(
            "against-store",
            ExitCode::Success,
            vec![format!(
                "no current or older kept value of {} handle(s) found",
                handles.len()
            )],
        )
    });
}

/// The `handles` and `rotation` checks of every snapshot, from one resolution of the union of
/// their handles.
pub(super) fn check_handles(
    manifest: &Manifest,
    stores: &Stores,
    reports: &mut [Verified],
    manifest_handles: &[Handle],
    options: &VerifyOptions<'_>,
) {
    let from_manifest: Vec<IndexHandle> = manifest_handles
        .iter()
        .map(|h| IndexHandle {
            handle: h.clone(),
            store_version: None,
            ephemeral: manifest
                .secrets
                .iter()
                .filter(|r| r.handle.with_agent(&manifest.agent) == *h)
                .all(|r| r.ephemeral),
        })
        .collect();
    let union: Vec<Handle> = super::distinct(reports.iter().flat_map(|(_, index)| {
        index
            .as_deref()
            .unwrap_or(&from_manifest)
            .iter()
            .map(|h| h.handle.clone())
            .collect::<Vec<_>>()
    }));
    let opts = ResolveOptions::default();
    let max_age = manifest.rotation.max_age_days;
    let statuses: BTreeMap<Handle, HandleStatus> =
        handle_status(stores, &union, max_age, &opts, options.now)
            .into_iter()
            .map(|s| (s.handle.clone(), s))
            .collect();
    for (report, index) in reports.iter_mut() {
        let (list, source) = match index.as_deref() {
            Some(list) => (list, "index"),
            None => (from_manifest.as_slice(), "manifest"),
        };
        report.handles = list
            .iter()
            .filter_map(|h| {
                let now = statuses.get(&h.handle)?.clone();
                let mut check = HandleCheck {
                    now,
                    version_at_snapshot: h.store_version,
                    rotated_since: None,
                    ephemeral: h.ephemeral,
                    source,
                };
                check.rotated_since = match (h.store_version, check.now.changed_version) {
                    (Some(then), Some(changed)) => Some(changed > then),
                    // No history (a value from the cache): the secret's version is all we have.
                    (Some(then), None) => check.current_version().map(|now| now != then),
                    _ => None,
                };
                Some(check)
            })
            .collect();
        report.checks.push(handles_check(&report.handles));
        report.checks.push(rotation_check(&report.handles));
    }
}

fn handles_check(handles: &[HandleCheck]) -> Check {
    let mut code = ExitCode::Success;
    let mut detail = Vec::new();
    for h in handles {
        let status = &h.now.status;
        let this = match status {
            Status::Resolved { .. } => ExitCode::Success,
            Status::FromCache { .. } => ExitCode::Warnings,
            _ if h.ephemeral => ExitCode::Warnings,
            _ => ExitCode::Unresolved,
        };
        if this != ExitCode::Success {
            let why = match status {
                Status::Missing { message }
                | Status::Forbidden { message }
                | Status::Unreachable { message }
                | Status::Other { message } => format!(": {message}"),
                Status::FromCache { reason, .. } => format!(": {reason}"),
                Status::Resolved { .. } => String::new(),
            };
            let eph = if h.ephemeral { " (ephemeral)" } else { "" };
            detail.push(format!("{}{eph} {}{why}", h.now.handle, status.label()));
        }
        code = code.worst(this);
    }
    Check::with_code("handles", code, detail)
}

fn rotation_check(handles: &[HandleCheck]) -> Check {
    let mut code = ExitCode::Success;
    let mut detail = Vec::new();
    for h in handles {
        if matches!(h.now.rotation, Rotation::Due | Rotation::Overdue) {
            let age = h.now.age_days.unwrap_or_default();
            let since = h
                .now
                .changed_version
                .map(|v| format!(", since version {v}"))
                .unwrap_or_default();
            detail.push(format!(
                "{} {}: current value is {age:.1} days old{since} (max {})",
                h.now.handle,
                h.now.rotation.label(),
                h.now.max_age_days
            ));
        }
        if h.now.rotation == Rotation::Overdue {
            code = ExitCode::Warnings;
        }
    }
    Check::with_code("rotation", code, detail)
}
