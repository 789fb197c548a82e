//! `agentbak snapshot`: build options, run the pipeline, print the id (or the report).
//!
//! stdout gets the new snapshot's id (one line), or with `--json` the whole report; findings,
//! blockers and warnings go to stderr. Quiet when all is well, as cron wants.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Cli, SnapshotArgs, load_manifest, write_stdout};
use crate::detect::FindingKind;
use crate::error::{ExitCode, Report as _, Result};
use crate::ops::snapshot::{SnapshotOptions, SnapshotReport, snapshot as run_snapshot};

pub(super) fn snapshot(cli: &Cli, args: &SnapshotArgs) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let options = SnapshotOptions {
        tags: args.tags.clone(),
        dry_run: args.dry_run,
        push_secrets: args.push_secrets,
        wait: args.wait.map(Duration::from_secs),
    };
    let report = run_snapshot(&manifest, &options)?;
    if cli.json {
        let mut out = serde_json::to_vec_pretty(&report).expect("a report serializes");
        out.push(b'\n');
        write_stdout(&out)?;
    } else {
        if !cli.quiet || report.exit_code() != ExitCode::Success {
            super::logging::report(cli.log_format, "INFO", &human(&report));
        }
        if let Some(id) = &report.id {
            write_stdout(format!("{id}\n").as_bytes())?;
        }
    }
    Ok(report.exit_code())
}

/// The report for people: what needs attention, then (on a dry run) what would be redacted.
fn human(r: &SnapshotReport) -> String {
    let mut out = String::new();
    for f in &r.findings {
        let what = match &f.kind {
            FindingKind::KnownValue { label, encoding } => {
                format!("the value of {label} ({encoding:?} form)")
            }
            _ => format!("{} {}", f.rule, f.preview),
        };
        let _ = writeln!(
            out,
            "agentbak: secret: {} at byte {}: {what}",
            f.path, f.offset
        );
    }
    for b in &r.blockers {
        let _ = writeln!(out, "agentbak: secret: {b}");
    }
    if !r.findings.is_empty() || !r.blockers.is_empty() {
        let _ = writeln!(
            out,
            "agentbak: snapshot refused: {} plaintext secret(s) would remain; nothing was written. \
             Declare them in the manifest's `secrets`, or remove them from the state \
             (docs/living-agents.md).",
            r.findings.len() + r.blockers.len()
        );
    }
    for f in &r.entropy_warnings {
        let _ = writeln!(
            out,
            "agentbak: warning: {} at byte {}: high-entropy value {}",
            f.path, f.offset, f.preview
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "agentbak: warning: {w}");
    }
    for d in &r.degraded {
        let _ = writeln!(out, "agentbak: warning: degraded: {d}");
    }
    for label in &r.too_short {
        let _ = writeln!(
            out,
            "agentbak: note: the value of {label} is too short to prove absent"
        );
    }
    if r.dry_run {
        for x in &r.redacted {
            let _ = writeln!(
                out,
                "would redact {} ({}) -> {} x{}",
                x.file, x.locator, x.handle, x.count
            );
        }
        let _ = writeln!(
            out,
            "dry run: {} files, {} bytes; nothing written",
            r.files, r.bytes
        );
    }
    out
}
