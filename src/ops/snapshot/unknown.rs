//! What an attempt does with leak-gate findings that no rule declares, by the manifest's
//! `detect.on_unknown`:
//! - `capture` (the default): the values are stored under the capture path and the attempt
//!   starts over with them known (`capture`), so the snapshot happens (exit 3) and the
//!   archive holds placeholders; what cannot be captured (a binary file, a file name, a store
//!   that refuses the write) refuses the snapshot, with what to do about it;
//! - `warn`: as `capture`, except that heuristic findings (a credential-like assignment) are
//!   archived as they are and reported (exit 3);
//! - `refuse`: every finding refuses the snapshot (exit 4).

use std::collections::BTreeSet;

use super::archive::redacted_stream;
use super::capture::{self, Capture, Spans};
use super::known::Known;
use super::{MAX_IN_MEMORY, SnapshotOptions, SnapshotReport, read_file};
use crate::detect::{Detector, Finding, Severity};
use crate::error::Result;
use crate::manifest::{Manifest, OnUnknown};
use crate::ops::walk::{EntryKind, Walk};
use crate::redact::{Rule, redact_file_with};
use crate::secret::Secret;
use crate::store::Stores;
use zeroize::Zeroizing;

/// Rules whose findings are a guess from a name and a value's shape, not a known format.
const HEURISTIC_RULES: &[&str] = &["generic-assignment", "password-assignment"];

/// What the attempt does next.
pub(super) enum Next {
    /// Start over: new values were captured.
    Retry,
    /// Go on with the report as it is (commit, or refuse when findings remain).
    Go,
}

/// What the attempts of one snapshot captured.
#[derive(Default)]
pub(super) struct Captured {
    /// Values stored for the first time.
    new: usize,
    /// The files they were found in.
    files: BTreeSet<String>,
}

impl Captured {
    /// Names captured placeholders in the report, and says so when new ones were stored.
    pub fn summarize(&self, capture: Option<&Capture>, report: &mut SnapshotReport) {
        let Some(capture) = capture else { return };
        for r in &mut report.redacted {
            let Ok(handle) = crate::handle::Handle::parse(&r.handle) else {
                continue;
            };
            if capture.owns(&handle) {
                r.locator = "captured".to_string();
                report.captured.push(format!("{}: {}", r.file, r.handle));
            }
        }
        if self.new > 0 {
            report.warnings.push(format!(
                "captured {} new secret{} that no rule declares, in {}; \
                 `agentbak discover --update` names them",
                self.new,
                if self.new == 1 { "" } else { "s" },
                self.files.iter().cloned().collect::<Vec<_>>().join(", "),
            ));
        }
    }
}

/// One attempt's view, to read its files' findings back.
pub(super) struct Unknown<'a> {
    pub m: &'a Manifest,
    pub opts: &'a SnapshotOptions,
    pub stores: &'a Stores,
    pub walked: &'a Walk,
    pub known: &'a Known,
    pub detector: &'a Detector,
    pub rules: &'a super::rules::Rules,
    pub text_files: &'a BTreeSet<String>,
}

impl Unknown<'_> {
    /// Applies `detect.on_unknown` to the report's findings.
    pub fn handle(
        &self,
        capture: Option<&mut Capture>,
        captured: &mut Captured,
        report: &mut SnapshotReport,
    ) -> Result<Next> {
        let policy = self.m.detect.on_unknown;
        if policy == OnUnknown::Refuse {
            return Ok(Next::Go);
        }
        if policy == OnUnknown::Warn {
            let (kept, rest): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut report.findings)
                .into_iter()
                .partition(|f| HEURISTIC_RULES.contains(&f.rule.as_str()));
            for f in &kept {
                report.warnings.push(format!(
                    "{}@{}: {} ({}) archived as it is (detect.on_unknown: warn)",
                    f.path, f.offset, f.rule, f.preview
                ));
            }
            report.unknown_kept.extend(kept);
            report.findings = rest;
            if report.findings.is_empty() {
                return Ok(Next::Go);
            }
        }
        let Some(capture) = capture else {
            report.warnings.push(
                "secrets that no rule declares cannot be captured: the manifest has no \
                 key/value store (add one, and `capture` if it should not be the first)"
                    .to_string(),
            );
            return Ok(Next::Go);
        };
        let stuck: BTreeSet<&str> = report
            .findings
            .iter()
            .filter(|f| !self.text_files.contains(&f.path))
            .map(|f| f.path.as_str())
            .collect();
        if !stuck.is_empty() {
            for path in stuck {
                report.warnings.push(format!(
                    "{path}: a secret outside a text file cannot be captured: exclude the file \
                     (`exclude`), declare it whole (a `whole_file` rule), or accept it \
                     (`detect.allow`)"
                ));
            }
            return Ok(Next::Go);
        }
        let files = capture::capturable_files(&report.findings, self.text_files);
        let mut values = Vec::new();
        let mut found_in = BTreeSet::new();
        for rel in &files {
            if self.values_of(rel, &mut values)? > 0 {
                found_in.insert(rel.clone());
            }
        }
        if values.is_empty() {
            // The file changed since the gate read it; the next run sees it again.
            return Ok(Next::Go);
        }
        if self.opts.dry_run {
            report.warnings.push(format!(
                "would capture {} secret{} in {} file{} that no rule declares",
                values.len(),
                if values.len() == 1 { "" } else { "s" },
                found_in.len(),
                if found_in.len() == 1 { "" } else { "s" },
            ));
            report.findings.clear();
            return Ok(Next::Go);
        }
        match capture.add(self.stores, values) {
            Ok(0) => {
                report.warnings.push(
                    "secrets that no rule declares are captured already, yet the gate still \
                     finds them: they are too short to search for; declare them with a rule"
                        .to_string(),
                );
                Ok(Next::Go)
            }
            Ok(n) => {
                captured.new += n;
                captured.files.extend(found_in);
                Ok(Next::Retry)
            }
            Err(e) => {
                report.warnings.push(format!(
                    "secrets that no rule declares could not be captured ({e}); the snapshot \
                     is refused rather than archive them"
                ));
                Ok(Next::Go)
            }
        }
    }

    /// The values of the blocking findings in file `rel` as it was archived; how many.
    fn values_of(&self, rel: &str, out: &mut Vec<(String, Secret)>) -> Result<usize> {
        let Some(entry) = self.walked.entries.iter().find(|e| e.rel == rel) else {
            return Ok(0);
        };
        let EntryKind::File { size } = entry.kind else {
            return Ok(0);
        };
        let file_rules: Vec<Rule> = self
            .rules
            .for_file(rel)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if super::archive::is_captured_database(entry, &file_rules) {
            // The text cells as archived: the findings the gate made in them.
            let copy = crate::sqlite::Copy::capture(&entry.path, rel)?;
            let mut n = 0;
            let mut read = |cell: &[u8]| n += capture::values_in(self.detector, rel, cell, out);
            crate::sqlite::read_cells(rel, &copy, &file_rules, &self.known.stray, &mut read)?;
            return Ok(n);
        }
        let blocking = |f: &Finding| f.severity == Severity::Error;
        if file_rules.is_empty() && size > MAX_IN_MEMORY {
            let reader = redacted_stream(entry, size, &self.known.stray)?;
            let found: Vec<Finding> = self
                .detector
                .scan_reader(rel, reader)
                .map_err(|e| crate::error::Error::io(&entry.path, e))?
                .into_iter()
                .filter(blocking)
                .collect();
            let mut spans = Spans::default();
            spans.extend(&found);
            if spans.is_empty() {
                return Ok(0);
            }
            let again = redacted_stream(entry, size, &self.known.stray)?;
            let values = spans
                .read(again)
                .map_err(|e| crate::error::Error::io(&entry.path, e))?;
            let n = values.len();
            out.extend(values);
            return Ok(n);
        }
        let bytes = Zeroizing::new(read_file(entry)?);
        let redacted = redact_file_with(rel, &bytes, &file_rules, &self.known.stray)?;
        Ok(capture::values_in(
            self.detector,
            rel,
            &redacted.output,
            out,
        ))
    }
}
