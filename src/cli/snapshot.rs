//! `agentbak snapshot`: build options, run the pipeline, print the id (or the report).
//!
//! stdout gets the new snapshot's id (one line), or with `--json` the whole report; findings,
//! blockers and warnings go to stderr. Quiet when all is well, as cron wants.

use std::fmt::Write as _;
use std::io::IsTerminal;
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
        // On a terminal only: under cron a snapshot is quiet unless something needs attention.
        progress: std::io::stderr().is_terminal() && !cli.quiet && !cli.json,
    };
    let report = run_snapshot(&manifest, &options)?;
    let summary = summary(&report);
    if options.progress {
        eprintln!("{summary}");
    } else {
        tracing::info!("{summary}");
    }
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

/// The end summary: files, new and stored bytes, duration.
fn summary(r: &SnapshotReport) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let what = match &r.id {
        Some(id) => format!("snapshot {id}"),
        None if r.dry_run => "dry run".to_string(),
        None => "no snapshot".to_string(),
    };
    format!(
        "{what}: {} files ({} unchanged, not read), {:.1} MiB; {:.1} MiB new, {:.1} MiB stored; \
         {:.2} s",
        r.files,
        r.reused_files,
        mib(r.bytes),
        mib(r.new_bytes),
        mib(r.archive_size),
        r.duration_ms as f64 / 1000.0
    )
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
