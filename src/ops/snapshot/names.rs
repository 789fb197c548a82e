//! Names that hold a secret, masked in everything a snapshot shows (issue 17).
//!
//! The leak gate finds a token that is a file or folder name in the tar headers and refuses
//! the snapshot, but the name itself would then be printed: as the finding's path, in a
//! warning, in a log line, in an error. The walk's names (entries, link targets, skipped
//! entries) are scanned once with the rules as soon as the walk is done, and again with the
//! known values once they are known ([`NameMasks`]); every path the snapshot reports, logs or
//! fails on goes through those masks. What is masked is the secret, wherever it appears, so
//! relative paths, absolute paths and messages are all covered.

use super::SnapshotReport;
use crate::detect::{Detector, NameMasks};
use crate::error::Error;
use crate::ops::walk::{EntryKind, Walk};

/// The label the names are scanned under (findings are not kept: the gate reports them).
const NAMES: &str = "<state names>";

/// The names of the walk, one per entry, link target and skipped entry.
pub(super) fn of(walked: &Walk) -> Vec<String> {
    let mut names = Vec::with_capacity(walked.entries.len() + walked.skipped.len());
    for e in &walked.entries {
        names.push(e.rel.clone());
        if let EntryKind::Symlink { target } = &e.kind {
            names.push(target.to_string_lossy().into_owned());
        }
    }
    names.extend(walked.skipped.iter().map(|s| s.rel.clone()));
    names
}

/// The masks for the secrets `detector` finds in `names`.
pub(super) fn masks(detector: &Detector, names: &[String]) -> NameMasks {
    NameMasks::scan(detector, NAMES, names).1
}

/// Masks every field of the report that can show a name.
pub(super) fn mask_report(report: &mut SnapshotReport, masks: &NameMasks) {
    if masks.is_empty() {
        return;
    }
    for f in report
        .findings
        .iter_mut()
        .chain(&mut report.entropy_warnings)
        .chain(&mut report.unknown_kept)
    {
        masks.apply(&mut f.path);
    }
    for r in &mut report.redacted {
        masks.apply(&mut r.file);
    }
    for text in report
        .blockers
        .iter_mut()
        .chain(&mut report.warnings)
        .chain(&mut report.captured)
    {
        masks.apply(text);
    }
}

/// `e`, or, when its message shows a secret of a name, the same message masked with the same
/// exit code.
pub(super) fn mask_error(masks: &NameMasks, e: Error) -> Error {
    if masks.is_empty() {
        return e;
    }
    let message = e.to_string();
    match masks.mask(&message) {
        std::borrow::Cow::Borrowed(_) => e,
        std::borrow::Cow::Owned(message) => Error::Masked {
            message,
            code: e.exit_code(),
        },
    }
}
