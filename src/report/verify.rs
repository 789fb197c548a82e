//! Rendering of a [`VerifyReport`]: a table for people, one JSON document for machines
//! (described by `schemas/verify-report.schema.json`).
//!
//! Both show only what the report holds: check results, masked finding previews, handle
//! versions and ages. Never a value.

use std::fmt::Write as _;

use crate::error::ExitCode;
use crate::ops::verify::{CheckResult, HandleCheck, SnapshotReport, VerifyReport, orphan_code};
use crate::report::scan::human_line;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// The report as one pretty JSON document with a trailing newline.
pub fn json(report: &VerifyReport) -> String {
    let mut text = serde_json::to_string_pretty(report).expect("a verify report serializes");
    text.push('\n');
    text
}

/// What an exit code means, in a word or two.
pub fn code_label(code: ExitCode) -> &'static str {
    match code {
        ExitCode::Success => "clean",
        ExitCode::Warnings => "needs attention",
        ExitCode::SecretsFound => "secrets found",
        ExitCode::Integrity => "integrity failure",
        ExitCode::Unresolved => "unresolved handles",
        ExitCode::Error | ExitCode::Usage | ExitCode::Locked => "error",
    }
}

/// The report for people: per snapshot a status line, its checks, findings and handles; then
/// orphans, notes and a summary line.
pub fn human(report: &VerifyReport, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    for s in &report.snapshots {
        snapshot(&mut out, s, color, &paint);
    }
    if !report.orphans.is_empty() {
        let _ = writeln!(out, "orphans in {}:", report.repository);
        for o in &report.orphans {
            let mark = if orphan_code(o).code() == 5 {
                paint(RED, "fail")
            } else {
                paint(YELLOW, "warn")
            };
            let _ = writeln!(out, "  {mark}  {o}");
        }
    }
    let k = &report.known_values;
    let sources = if k.sources.is_empty() {
        "rules only".to_string()
    } else {
        k.sources.join("; ")
    };
    let _ = writeln!(
        out,
        "searched: {} rule(s), {} known value(s) ({sources})",
        report.rules.len(),
        k.values
    );
    for label in &k.too_short {
        let _ = writeln!(
            out,
            "not proven absent: the value of {label} is shorter than 8 bytes"
        );
    }
    for note in &k.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let bad = report
        .snapshots
        .iter()
        .filter(|s| s.exit_code != ExitCode::Success)
        .count();
    let _ = writeln!(
        out,
        "{} snapshot(s) verified, {bad} with problems, {} orphan(s): exit {} ({})",
        report.snapshots.len(),
        report.orphans.len(),
        report.exit_code.code(),
        code_label(report.exit_code)
    );
    out
}

fn snapshot(
    out: &mut String,
    s: &SnapshotReport,
    color: bool,
    paint: &dyn Fn(&str, &str) -> String,
) {
    let verdict = match s.exit_code {
        ExitCode::Success => paint(GREEN, "ok"),
        ExitCode::Warnings => paint(YELLOW, "warn"),
        c => paint(RED, &format!("FAIL (exit {}: {})", c.code(), code_label(c))),
    };
    let _ = writeln!(
        out,
        "snapshot {}  {}  {}  {}{}  {verdict}",
        s.id,
        s.created_at.format("%Y-%m-%d %H:%M:%SZ"),
        s.host,
        s.size,
        if s.encrypted {
            " bytes, encrypted"
        } else {
            " bytes"
        },
    );
    for c in &s.checks {
        let result = match c.result {
            CheckResult::Pass => paint(GREEN, "pass"),
            CheckResult::Warn => paint(YELLOW, "warn"),
            CheckResult::Fail => paint(RED, "fail"),
            CheckResult::Skipped => paint(DIM, "skip"),
        };
        let first = c.detail.first().map(String::as_str).unwrap_or("");
        let _ = writeln!(out, "  {:<14} {result}  {first}", c.name);
        for more in c.detail.iter().skip(1) {
            let _ = writeln!(out, "  {:<14}       {more}", "");
        }
    }
    if !s.findings.is_empty() {
        let _ = writeln!(out, "  findings:");
        for f in &s.findings {
            let _ = writeln!(out, "    {}", human_line(f, color));
        }
    }
    if !s.handles.is_empty() {
        handle_table(out, &s.handles);
    }
}

fn handle_table(out: &mut String, handles: &[HandleCheck]) {
    let mut rows = vec![[
        "HANDLE".to_string(),
        "NOW".into(),
        "AT SNAPSHOT".into(),
        "CURRENT".into(),
        "AGE (DAYS)".into(),
        "ROTATION".into(),
    ]];
    let v = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("v{v}"));
    for h in handles {
        rows.push([
            format!(
                "{}{}",
                h.now.handle,
                if h.ephemeral { " (ephemeral)" } else { "" }
            ),
            h.now.status.label().to_string(),
            v(h.version_at_snapshot),
            v(h.current_version()),
            h.now.age_days.map_or("-".into(), |d| format!("{d:.1}")),
            format!("{} (max {})", h.now.rotation.label(), h.now.max_age_days),
        ]);
    }
    let _ = writeln!(out, "  handles:");
    out.push_str(&super::columns(&rows, "    "));
}
