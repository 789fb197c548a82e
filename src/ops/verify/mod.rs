//! `verify`: the audit of a repository's snapshots — intact? secret-free? restorable today?
//! rotated as the policy says?
//!
//! Each snapshot gets a list of [`Check`]s, each with a result and the exit code it implies:
//!
//! | check | needs | fails with |
//! | --- | --- | --- |
//! | `sidecar` | nothing | 5: the sidecar does not match its schema or its archive's name |
//! | `signature` | the manifest's `signing` (and its store) | 5: unsigned while signing is configured, a bad signature, a revoked or unknown key; checked before the contents are read |
//! | `archive` | nothing | 5: size or blake3 differ from the sidecar (bit rot, truncation) |
//! | `contents` | the identity, or an unencrypted archive | 5: undecryptable, damaged, entries differ from the index |
//! | `index` | the contents | 5: the index does not match `schemas/index.schema.json` or the sidecar |
//! | `declared` | the contents | 5: the index asks for a handle the manifest does not declare (a forged index) |
//! | `leak-scan` | the contents | 4: a rule or a known value matched an entry, a name or the index |
//! | `against-store` | `--against-store` | 6: a handle's current value could not be fetched, so its absence is unproven |
//! | `handles` | `--check-handles` | 6: a handle does not resolve now (3 for an ephemeral one or a cached value) |
//! | `rotation` | `--check-handles` | 3: a current version is older than `rotation.max_age_days` |
//!
//! Orphans of the repository (an archive without its sidecar, a sidecar without its archive)
//! are a missing half of a snapshot: exit 5. The run's exit code is the most severe of all
//! ([`ExitCode::worst`], order in `docs/exit-codes.md`).
//!
//! Invariants: the report holds no value and nothing derived from one (findings carry masked
//! previews; handle statuses carry versions and times). Values fetched from stores live in
//! [`crate::secret::Secret`]s inside the detector and are dropped when the run ends. Nothing
//! here prints; `cli::verify` renders the report.
//!
//! Speed: a deep check is one streaming pass (blake3 of the archive, age, zstd, tar, blake3 of
//! each entry, leak scan) in memory bounded by the detector's window; `--all` verifies
//! [`VerifyOptions::parallel`] snapshots at once.

mod archive;
mod handles;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{Identity, Sidecar};
use crate::detect::{Detector, Finding, Severity};
use crate::error::{ExitCode, Report, Result};
use crate::handle::Handle;
use crate::manifest::Manifest;
use crate::ops::trust::{DeclaredHandles, SignatureStatus, SignatureVerifier};
use crate::repo::{Orphan, OrphanKind, Repository};
use crate::store::Stores;

pub use handles::HandleCheck;

/// Which snapshots to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The newest snapshot (the default).
    Latest,
    /// These ids (`latest`, full ids or unique prefixes), in this order.
    Ids(Vec<String>),
    /// Every snapshot, oldest first.
    All,
}

/// How to verify.
#[derive(Debug)]
pub struct VerifyOptions<'a> {
    /// The snapshots.
    pub selection: Selection,
    /// The decryption identity; without it encrypted archives get the key-less checks only.
    pub identity: Option<&'a Identity>,
    /// Resolve every handle now and compare versions and ages (`--check-handles`).
    pub check_handles: bool,
    /// Search for the current and previous value of every handle (`--against-store`).
    pub against_store: bool,
    /// Snapshots verified at once (each holds one decompression window and one scan window).
    pub parallel: usize,
    /// "Now", for rotation ages.
    pub now: DateTime<Utc>,
    /// Accept unsigned snapshots although the manifest configures signing.
    pub allow_unsigned: bool,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        VerifyOptions {
            selection: Selection::Latest,
            identity: None,
            check_handles: false,
            against_store: false,
            parallel: 2,
            now: Utc::now(),
            allow_unsigned: false,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    /// Nothing wrong.
    Pass,
    /// Something needs attention (exit 3).
    Warn,
    /// The check failed; its exit code says how.
    Fail,
    /// Not run (no identity, not asked for, an earlier check failed).
    Skipped,
}

/// One check of one snapshot.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Check {
    /// Which check, in the order they run (see docs/verify.md).
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = [
            "sidecar", "signature", "archive", "contents", "index", "declared", "leak-scan",
            "against-store", "handles", "rotation"
        ]))
    )]
    pub name: &'static str,
    /// The outcome.
    pub result: CheckResult,
    /// The exit code this check implies (0 when it passed or was skipped).
    pub exit_code: ExitCode,
    /// What was found, or why it was skipped. Never a value.
    pub detail: Vec<String>,
}

impl Check {
    fn pass(name: &'static str) -> Check {
        Check::new(name, CheckResult::Pass, ExitCode::Success, Vec::new())
    }

    fn skipped(name: &'static str, why: impl Into<String>) -> Check {
        Check::new(
            name,
            CheckResult::Skipped,
            ExitCode::Success,
            vec![why.into()],
        )
    }

    /// A check whose outcome is `code`: pass for 0, warn for 3, fail otherwise.
    fn with_code(name: &'static str, code: ExitCode, detail: Vec<String>) -> Check {
        let result = match code {
            ExitCode::Success => CheckResult::Pass,
            ExitCode::Warnings => CheckResult::Warn,
            _ => CheckResult::Fail,
        };
        Check::new(name, result, code, detail)
    }

    fn new(name: &'static str, result: CheckResult, code: ExitCode, detail: Vec<String>) -> Check {
        Check {
            name,
            result,
            exit_code: code,
            detail,
        }
    }
}

/// What verify found about one snapshot.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct SnapshotReport {
    /// The snapshot id.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::SNAPSHOT_ID))
    )]
    pub id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The host that made it.
    pub host: String,
    /// The agent.
    pub agent: String,
    /// The archive's file name.
    pub archive: String,
    /// Whether the archive is age-encrypted.
    pub encrypted: bool,
    /// The archive's size in bytes, as the sidecar says.
    pub size: u64,
    /// Version of agentbak that wrote the snapshot.
    pub tool_version: String,
    /// The snapshot's signature, checked before its contents (docs/signing.md).
    pub signature: SignatureStatus,
    /// Whether the contents were decrypted, decompressed and scanned.
    pub deep: bool,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
    /// Leak-scan findings, masked.
    pub findings: Vec<Finding>,
    /// Per handle of the snapshot (`--check-handles`).
    pub handles: Vec<HandleCheck>,
    /// The most severe exit code of its checks.
    pub exit_code: ExitCode,
}

impl SnapshotReport {
    fn new(sidecar: &Sidecar) -> SnapshotReport {
        SnapshotReport {
            id: sidecar.id.clone(),
            created_at: sidecar.created_at,
            host: sidecar.host.clone(),
            agent: sidecar.agent.clone(),
            archive: sidecar.archive.clone(),
            encrypted: sidecar.encrypted,
            size: sidecar.size,
            tool_version: sidecar.tool_version.clone(),
            signature: SignatureStatus::Unsigned,
            deep: false,
            checks: Vec::new(),
            findings: Vec::new(),
            handles: Vec::new(),
            exit_code: ExitCode::Success,
        }
    }

    /// The check called `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn settle(&mut self) {
        self.exit_code = self
            .checks
            .iter()
            .fold(ExitCode::Success, |acc, c| acc.worst(c.exit_code));
    }
}

/// What values the leak scan searched for, by source; never the values.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct KnownSummary {
    /// Distinct known values searched, each in every encoding.
    pub values: usize,
    /// Where they came from, e.g. `state: 3 values`, `store: 4 current, 2 previous`.
    pub sources: Vec<String>,
    /// Handles whose value is under 8 bytes: not searched, not proven absent.
    pub too_short: Vec<String>,
    /// What could not be read (a yaml locator, a state folder that is gone).
    pub notes: Vec<String>,
}

/// What `agentbak verify --json` prints: per snapshot the checks run and their results,
/// leak-scan findings with masked previews, handle statuses and rotation; the repository's
/// orphans; the run's exit code. Never a secret value. See docs/verify.md.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(title = "agentbak verify report", deny_unknown_fields)
)]
pub struct VerifyReport {
    /// Version of agentbak that verified.
    pub tool_version: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// The repository folder.
    pub repository: String,
    /// What was asked.
    pub options: RunOptions,
    /// Ids of the rules the leak scan ran.
    pub rules: Vec<String>,
    /// The known values searched.
    pub known_values: KnownSummary,
    /// One report per snapshot, in the order verified.
    pub snapshots: Vec<SnapshotReport>,
    /// Files of the repository that are half of a snapshot, or foreign.
    pub orphans: Vec<Orphan>,
    /// The exit code of the run: the most severe of every snapshot's and the orphans'.
    pub exit_code: ExitCode,
}

/// The options of a run, as the report records them.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct RunOptions {
    /// Whether a decryption identity was given.
    pub identity: bool,
    /// `--check-handles`.
    pub check_handles: bool,
    /// `--against-store`.
    pub against_store: bool,
    /// `--all`.
    pub all: bool,
}

impl Report for VerifyReport {
    /// The most severe of every snapshot's and the orphans'.
    fn exit_code(&self) -> ExitCode {
        self.exit_code
    }
}

pub use crate::ops::identity::load_identity;

/// The exit code an orphan implies: half a snapshot is an integrity failure, a foreign file a
/// warning.
pub fn orphan_code(orphan: &Orphan) -> ExitCode {
    match orphan.kind {
        OrphanKind::Unknown => ExitCode::Warnings,
        _ => ExitCode::Integrity,
    }
}

/// Verifies the snapshots `options.selection` names in the manifest's repository.
///
/// `stores` is used only for `--against-store` and `--check-handles`. Returns `Err` only when
/// the run cannot start (no repository, an unknown id, a bad `detect` section); everything a
/// snapshot can be blamed for is in the report.
pub fn verify(
    manifest: &Manifest,
    stores: &Stores,
    options: &VerifyOptions<'_>,
) -> Result<VerifyReport> {
    let started_at = Utc::now();
    let repo = Repository::open(&manifest.repository)?;
    let listing = repo.list_for(&manifest.agent)?;
    let selected: Vec<Sidecar> = match &options.selection {
        Selection::All => listing.snapshots.clone(),
        Selection::Latest if listing.snapshots.is_empty() && !listing.orphans.is_empty() => {
            // Only broken halves: the report says so (exit 5) rather than "no snapshot".
            Vec::new()
        }
        Selection::Latest => vec![repo.resolve(&listing, "latest")?.clone()],
        Selection::Ids(ids) => {
            let mut out: Vec<Sidecar> = Vec::new();
            for id in ids {
                let s = repo.resolve(&listing, id)?;
                if !out.iter().any(|o| o.id == s.id) {
                    out.push(s.clone());
                }
            }
            out
        }
    };

    let manifest_handles = crate::ops::known::declared_handles(manifest);
    let mut known = KnownSummary::default();
    let values = handles::known_values(
        manifest,
        stores,
        options.against_store.then_some(manifest_handles.as_slice()),
        &mut known,
    );
    let incomplete = values.unresolved.clone();
    let detector = Detector::new(&manifest.detect, Some(values.values))?.with_manifest(manifest);
    if let Some(k) = detector.known() {
        known.values = k.len();
        known.too_short = k.too_short().to_vec();
    }

    let trust = Trust {
        declared: DeclaredHandles::from_manifest(manifest),
        signatures: SignatureVerifier::new(manifest, stores),
        allow_unsigned: options.allow_unsigned,
    };
    let mut reports = run_parallel(&repo, &selected, &detector, &trust, options);
    let rules = detector.rules().into_iter().map(|r| r.id).collect();
    drop(detector);

    let searched: BTreeSet<Handle> = manifest_handles.iter().cloned().collect();
    let search = handles::StoreSearch {
        repo: &repo,
        stores,
        options,
        searched: &searched,
        unresolved: &incomplete,
    };
    for ((report, index_handles), sidecar) in reports.iter_mut().zip(&selected) {
        if options.against_store {
            handles::against_store(&search, sidecar, report, index_handles.as_deref());
        } else {
            report.checks.push(Check::skipped(
                "against-store",
                "not asked for (--against-store)",
            ));
        }
    }
    if options.check_handles {
        handles::check_handles(manifest, stores, &mut reports, &manifest_handles, options);
    } else {
        for (report, _) in &mut reports {
            for name in ["handles", "rotation"] {
                report
                    .checks
                    .push(Check::skipped(name, "not asked for (--check-handles)"));
            }
        }
    }

    let mut snapshots: Vec<SnapshotReport> = reports.into_iter().map(|(r, _)| r).collect();
    let mut code = ExitCode::Success;
    for s in &mut snapshots {
        s.settle();
        code = code.worst(s.exit_code);
    }
    for orphan in &listing.orphans {
        code = code.worst(orphan_code(orphan));
    }
    Ok(VerifyReport {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        finished_at: Utc::now(),
        repository: manifest.repository.display().to_string(),
        options: RunOptions {
            identity: options.identity.is_some(),
            check_handles: options.check_handles,
            against_store: options.against_store,
            all: options.selection == Selection::All,
        },
        rules,
        known_values: known,
        snapshots,
        orphans: listing.orphans,
        exit_code: code,
    })
}

/// What the restoring side trusts: the manifest's handles and signing keys.
pub(super) struct Trust<'a> {
    declared: DeclaredHandles,
    signatures: SignatureVerifier<'a>,
    allow_unsigned: bool,
}

/// A snapshot's report and the handles its index names (`None` when the index was not read).
type Verified = (SnapshotReport, Option<Vec<IndexHandle>>);

/// What a snapshot's index says about one handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexHandle {
    /// The handle (with `{agent}` filled at snapshot time).
    pub handle: Handle,
    /// The newest store version a location of it recorded.
    pub store_version: Option<u64>,
    /// Whether every location of it was ephemeral.
    pub ephemeral: bool,
}

/// Verifies `selected` with `options.parallel` workers; results keep the selection's order.
fn run_parallel(
    repo: &Repository,
    selected: &[Sidecar],
    detector: &Detector,
    trust: &Trust<'_>,
    options: &VerifyOptions<'_>,
) -> Vec<Verified> {
    crate::pool::map(selected, options.parallel, |sidecar| {
        archive::verify_snapshot(repo, sidecar, detector, trust, options.identity)
    })
}

/// Handles in first-seen order, without repeats.
fn distinct(handles: impl Iterator<Item = Handle>) -> Vec<Handle> {
    let mut seen = BTreeSet::new();
    handles.filter(|h| seen.insert(h.clone())).collect()
}

/// Whether a finding fails the leak scan: warn-level findings (entropy under
/// `detect.entropy: "warn"`) are reported but do not, as in `scan`.
fn blocks(f: &Finding) -> bool {
    f.severity == Severity::Error
}
