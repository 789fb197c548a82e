//! The checks of one snapshot's files: sidecar, archive digest, contents, index, leak scan.
//!
//! A deep check is one pass of [`read_archive`]: it hashes the raw archive against the sidecar,
//! decrypts, decompresses and checks every entry against the index, while the visitor here
//! streams each entry through the detector. Entry names, link targets and the index are
//! scanned too, since a value in a file name leaks as surely as one in a file; the index, which
//! agentbak writes itself, for known values only (`scan_index`).
//!
//! The sidecar and the index are held to their formats (`schemas/`) by their serde parse
//! (unknown fields, types) and by [`crate::archive::wellformed`] (patterns, ranges, which
//! fields each entry type has), whose problems name a location only
//! (`/entries/3/blake3: not 64 lowercase hex digits`), never the offending text: a forged
//! index could hold a value.

use super::{Check, CheckResult, IndexHandle, SnapshotReport, Trust, Verified, blocks};
use crate::archive::wellformed::{index_problems, sidecar_problems};
use crate::archive::{
    ArchiveEntry, EntryData, EntryKind, Identity, Index, IntegrityError, IntegrityProblem,
    ReadOptions, SharedBytes, Sidecar, check_digest, read_archive,
};
use crate::detect::{Detector, Finding, FindingKind, NameMasks, StreamScan};
use crate::error::{Error, ExitCode, Result};
use crate::handle::Handle;
use crate::ops::trust::{DeclaredHandles, SignatureStatus};
use crate::repo::{ENCRYPTED_SUFFIX, Repository};

/// Runs every file check of one snapshot; returns its report and the handles of its index.
pub(super) fn verify_snapshot(
    repo: &Repository,
    sidecar: &Sidecar,
    detector: &Detector,
    trust: &Trust<'_>,
    identity: Option<&Identity>,
) -> Verified {
    let mut report = SnapshotReport::new(sidecar);
    report.checks.push(check_sidecar(sidecar));
    // Before any entry is read: a snapshot that is not vouched for is not opened.
    match trust.signatures.check(sidecar, trust.allow_unsigned) {
        Ok(status) => {
            report.checks.push(Check::new(
                "signature",
                CheckResult::Pass,
                ExitCode::Success,
                vec![status.describe()],
            ));
            report.signature = status;
        }
        Err(e) => {
            report.signature = SignatureStatus::Invalid {
                reason: e.to_string(),
            };
            report.checks.push(Check::with_code(
                "signature",
                e.exit_code(),
                vec![e.to_string()],
            ));
            report.checks.push(check_archive_digest(repo, sidecar));
            for name in ["contents", "index", "declared", "leak-scan"] {
                report.checks.push(Check::skipped(
                    name,
                    "the signature check failed: the contents are not read",
                ));
            }
            return (report, None);
        }
    }
    if sidecar.encrypted && identity.is_none() {
        report.checks.push(check_archive_digest(repo, sidecar));
        for name in ["contents", "index", "declared", "leak-scan"] {
            report.checks.push(Check::skipped(
                name,
                "the archive is encrypted: pass --identity (or AGENTBAK_IDENTITY) to read it",
            ));
        }
        return (report, None);
    }
    report.deep = true;
    match scan_archive(repo, sidecar, detector, identity) {
        Err(e) => {
            let digest = matches!(
                &e,
                Error::Integrity(IntegrityError {
                    problem: IntegrityProblem::Digest { .. },
                    ..
                })
            );
            let detail = vec![e.to_string()];
            if digest {
                report
                    .checks
                    .push(Check::with_code("archive", e.exit_code(), detail));
                report.checks.push(Check::skipped(
                    "contents",
                    "the archive does not match its sidecar",
                ));
            } else {
                report.checks.push(Check::pass("archive"));
                report
                    .checks
                    .push(Check::with_code("contents", e.exit_code(), detail));
            }
            for name in ["index", "declared", "leak-scan"] {
                report
                    .checks
                    .push(Check::skipped(name, "the contents could not be read"));
            }
            (report, None)
        }
        Ok(scanned) => {
            report.checks.push(Check::pass("archive"));
            report.checks.push(if scanned.problems.is_empty() {
                Check::pass("contents")
            } else {
                Check::with_code("contents", ExitCode::Integrity, scanned.problems)
            });
            report.checks.push(check_index(&scanned.index, sidecar));
            report
                .checks
                .push(check_declared(&scanned.index, &trust.declared));
            report
                .checks
                .push(leak_check(&scanned.findings, "leak-scan"));
            report.findings = scanned.findings;
            mask_names(&mut report, &scanned.masks);
            let handles = index_handles(&scanned.index);
            (report, Some(handles))
        }
    }
}

/// The index's secret records against the handles the manifest declares.
fn check_declared(index: &Index, declared: &DeclaredHandles) -> Check {
    let undeclared = declared.undeclared(index);
    if undeclared.is_empty() {
        Check::pass("declared")
    } else {
        let mut detail = vec![format!(
            "the index asks for {} handle record(s) the manifest does not declare (a forged \
             index?); restore refuses this snapshot",
            undeclared.len()
        )];
        detail.extend(undeclared);
        Check::with_code("declared", ExitCode::Integrity, detail)
    }
}

/// The leak-scan check for `findings`: fails (4) on any blocking finding, warns on none.
pub(super) fn leak_check(findings: &[Finding], name: &'static str) -> Check {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| blocks(f))
        .map(|f| {
            format!(
                "{}:{}:{} {} {}",
                f.path, f.line, f.column, f.rule, f.preview
            )
        })
        .collect();
    if errors.is_empty() {
        Check::pass(name)
    } else {
        Check::with_code(name, ExitCode::SecretsFound, errors)
    }
}

/// What a deep read found.
pub(super) struct Scanned {
    /// The archive's index.
    pub index: Index,
    /// Differences between the entries and the index.
    pub problems: Vec<String>,
    /// Leak-scan findings in entries, names and the index.
    pub findings: Vec<Finding>,
    /// The secrets found in entry names, and their masked forms (see [`mask_names`]).
    pub masks: NameMasks,
}

/// Reads the whole archive once, checking it against the sidecar and the index and scanning
/// every entry, every name and the index with `detector`.
pub(super) fn scan_archive(
    repo: &Repository,
    sidecar: &Sidecar,
    detector: &Detector,
    identity: Option<&Identity>,
) -> Result<Scanned> {
    crate::repo::rebuild::with_content(repo, sidecar, identity, |file| {
        scan_content(file, sidecar, detector, identity)
    })
}

/// [`scan_archive`] of the archive stream `file`.
fn scan_content(
    file: &mut (dyn std::io::Read + Send),
    sidecar: &Sidecar,
    detector: &Detector,
    identity: Option<&Identity>,
) -> Result<Scanned> {
    let options = ReadOptions {
        name: sidecar.id.clone(),
        expected: sidecar.content_digest(),
        identity,
        max_bytes: None,
    };
    let mut names = Vec::new();
    // The scan runs on its own threads, one entry at a time each, fed through small bounded
    // queues, so that it overlaps decryption, decompression and hashing instead of adding to
    // them, and takes every core the reading leaves. Entries are handed over as they lie in
    // the decompressed frames, and scanned there: nothing is copied on the way.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_SCANNERS));
    let (read, mut findings) = std::thread::scope(|scope| {
        let (queues, scanners): (Vec<_>, Vec<_>) = (0..threads)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(QUEUE);
                (tx, scope.spawn(move || scan_pieces(detector, rx)))
            })
            .unzip();
        let mut files = 0;
        let mut visit = |entry: &ArchiveEntry, data: &mut EntryData<'_>| -> Result<()> {
            names.push(entry.path.clone());
            if let Some(link) = &entry.link {
                names.push(format!("{} -> {link}", entry.path));
            }
            if entry.kind != EntryKind::File {
                return Ok(());
            }
            let tx = &queues[files % queues.len()];
            // A closed queue means the scanner is gone (it panicked): join reports that.
            let _ = tx.send(Piece::Start(files, entry.path.clone()));
            files += 1;
            while let Some(bytes) = data.next_shared().map_err(|e| Error::io(&entry.path, e))? {
                let _ = tx.send(Piece::Data(bytes));
            }
            Ok(())
        };
        let read = read_archive(file, &options, &mut visit);
        drop(queues);
        let mut findings: Vec<(usize, Finding)> = scanners
            .into_iter()
            .flat_map(|s| s.join().expect("the scanner thread does not panic"))
            .collect();
        // Archive order; within an entry, a stream's findings are already in offset order.
        findings.sort_by_key(|(entry, _)| *entry);
        (
            read,
            findings.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
        )
    });
    let read = read?;
    // Fingerprints and `detect.allow` as the gate and `scan` apply them: relative to the state
    // (issue 19), so that a finding allowed at snapshot is allowed here.
    findings.retain_mut(|f| match crate::archive::state_relative(&f.path) {
        Some(state_path) => {
            let state_path = state_path.to_string();
            f.relocate(&state_path);
            !detector.allows_at(f, &state_path)
        }
        None => true,
    });
    let (in_names, masks) = scan_names(detector, &names);
    findings.extend(in_names);
    let mut index_json = serde_json::to_vec_pretty(&read.index).expect("a parsed index serializes");
    index_json.push(b'\n');
    findings.extend(scan_index(detector, &index_json));
    Ok(Scanned {
        masks,
        problems: read.problems.iter().map(ToString::to_string).collect(),
        index: read.index,
        findings,
    })
}

/// The index's findings: known values only. The index is agentbak's own record, written from
/// the manifest (handles, locators such as a rule's regex source, placeholders' places) and
/// the walk (paths, which `scan_names` scans with every rule as entry names); a rule or
/// heuristic matching that text is agentbak flagging itself (issue 19: init's regex rule
/// `\bGITHUB_TOKEN=([A-Za-z0-9…]+)`, stored as a locator, made `verify` exit 4 right after a
/// clean snapshot). A known value in it is still a leak, whatever put it there.
fn scan_index(detector: &Detector, index_json: &[u8]) -> Vec<Finding> {
    detector
        .scan_bytes(crate::archive::INDEX_PATH, index_json)
        .into_iter()
        .filter(|f| matches!(f.kind, FindingKind::KnownValue { .. }))
        .collect()
}

/// What the reader hands a scanner thread: the start of an entry (its number among the
/// files, and its path), or its next bytes.
enum Piece {
    Start(usize, String),
    Data(SharedBytes),
}

/// Pieces in flight at most per scanner. A piece holds on to its frame (2 MiB at most) until
/// it is scanned.
const QUEUE: usize = 4;

/// Scanner threads per snapshot at most (one per core up to this).
const MAX_SCANNERS: usize = 4;

/// A scanner thread: one stream scan per entry it is given, findings tagged with the entry's
/// number.
fn scan_pieces(detector: &Detector, rx: std::sync::mpsc::Receiver<Piece>) -> Vec<(usize, Finding)> {
    let mut findings = Vec::new();
    let mut current: Option<(usize, StreamScan<'_>)> = None;
    for piece in rx {
        match piece {
            Piece::Start(entry, path) => {
                if let Some((number, scan)) = current.replace((entry, detector.stream(&path))) {
                    findings.extend(scan.finish().into_iter().map(|f| (number, f)));
                }
            }
            Piece::Data(bytes) => {
                if let Some((_, scan)) = current.as_mut() {
                    scan.write_shared(&bytes);
                }
            }
        }
    }
    if let Some((done, scan)) = current {
        findings.extend(scan.finish().into_iter().map(|f| (done, f)));
    }
    findings
}

/// Scans entry names and link targets as one text, one per line; a finding names its entry
/// (masked). The masks hide those secrets wherever the report shows a name ([`mask_names`]).
fn scan_names(detector: &Detector, names: &[String]) -> (Vec<Finding>, NameMasks) {
    let (mut found, masks) = NameMasks::scan(detector, "<entry names>", names);
    for f in &mut found {
        f.path.push_str(" (entry name)");
    }
    (found, masks)
}

/// Replaces every name that holds a secret by its masked form, wherever the report shows it.
pub(super) fn mask_names(report: &mut SnapshotReport, masks: &NameMasks) {
    if masks.is_empty() {
        return;
    }
    for f in &mut report.findings {
        masks.apply(&mut f.path);
    }
    for c in &mut report.checks {
        c.detail.iter_mut().for_each(|d| masks.apply(d));
    }
}

/// The key-less check: the archive's size and blake3 against the sidecar.
fn check_archive_digest(repo: &Repository, sidecar: &Sidecar) -> Check {
    let result = repo
        .open_archive(sidecar)
        .and_then(|file| check_digest(file, &sidecar.digest(), &sidecar.id));
    match result {
        Ok(()) => Check::pass("archive"),
        Err(e) => Check::with_code("archive", e.exit_code(), vec![e.to_string()]),
    }
}

/// The sidecar against its format (`schemas/sidecar.schema.json`: its parse already refused
/// unknown fields and wrong types), and its name against its flag.
fn check_sidecar(sidecar: &Sidecar) -> Check {
    let mut problems = sidecar_problems(sidecar);
    // A format-2 snapshot's `encrypted` is about its packs; its `archive` is the refs file.
    if sidecar.content_digest().is_some()
        && sidecar.archive.ends_with(ENCRYPTED_SUFFIX) != sidecar.encrypted
    {
        problems.push(format!(
            "`encrypted` is {} but the archive is named `{}`",
            sidecar.encrypted, sidecar.archive
        ));
    }
    if problems.is_empty() {
        Check::pass("sidecar")
    } else {
        Check::with_code("sidecar", ExitCode::Integrity, problems)
    }
}

/// The index against its format (`schemas/index.schema.json`: its parse already refused
/// unknown fields and wrong types) and against the sidecar's summary of it.
fn check_index(index: &Index, sidecar: &Sidecar) -> Check {
    let mut problems = index_problems(index);
    let mut differs = |field: &str, indexed: String, sidecar: String| {
        if indexed != sidecar {
            problems.push(format!(
                "{field} is {indexed} in the index, {sidecar} in the sidecar"
            ));
        }
    };
    differs("snapshot id", index.snapshot_id.clone(), sidecar.id.clone());
    differs("agent", index.agent.clone(), sidecar.agent.clone());
    differs(
        "created_at",
        index.created_at.to_rfc3339(),
        sidecar.created_at.to_rfc3339(),
    );
    let count = |kind: EntryKind| index.entries.iter().filter(|e| e.kind == kind).count() as u64;
    differs(
        "files",
        count(EntryKind::File).to_string(),
        sidecar.counts.files.to_string(),
    );
    differs(
        "bytes",
        index.file_bytes().to_string(),
        sidecar.counts.bytes.to_string(),
    );
    differs(
        "secrets",
        index.secrets.len().to_string(),
        sidecar.counts.secrets.to_string(),
    );
    if problems.is_empty() {
        Check::pass("index")
    } else {
        Check::with_code("index", ExitCode::Integrity, problems)
    }
}

/// Each handle of an index once, with the newest version recorded and whether every location
/// of it was ephemeral.
fn index_handles(index: &Index) -> Vec<IndexHandle> {
    let mut out: Vec<IndexHandle> = Vec::new();
    for s in &index.secrets {
        match out.iter_mut().find(|h| h.handle == s.handle) {
            Some(h) => {
                h.store_version = h.store_version.max(s.store_version);
                h.ephemeral &= s.ephemeral;
            }
            None => out.push(IndexHandle {
                handle: s.handle.clone(),
                store_version: s.store_version,
                ephemeral: s.ephemeral,
            }),
        }
    }
    out
}

/// Handles of an index that the detector was not built with.
pub(super) fn missing_handles<'h>(
    index_handles: &'h [Handle],
    searched: &std::collections::BTreeSet<Handle>,
) -> Vec<&'h Handle> {
    index_handles
        .iter()
        .filter(|h| !searched.contains(*h))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_problems_name_the_place_not_the_text() {
        let value = serde_json::json!({
            "format": 1, "id": "20261128T225501Z-3f9a2c1b", "agent": "kevin", "host": "h",
            "created_at": "2026-11-28T22:55:01Z", "tags": [], "tool_version": "0.1.0",
            "archive": "20261128T225501Z-3f9a2c1b.tar.zst", "size": 1,
            "blake3": "sk-live-not-a-digest-but-a-secret-value",
            "counts": {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "secrets": 0},
            "encrypted": false, "degraded": []
        });
        let sidecar = Sidecar::from_json(value.to_string().as_bytes()).unwrap();
        let check = check_sidecar(&sidecar);
        assert_eq!(check.exit_code, ExitCode::Integrity);
        assert_eq!(
            check.detail,
            vec!["/blake3: not 64 lowercase hex digits".to_string()]
        );
    }
}
