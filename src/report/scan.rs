//! Rendering of [`ScanReport`]s and single findings: human lines (optionally colored), one
//! JSON document, JSON lines for `--follow`, and SARIF 2.1.0 for code-scanning dashboards.
//!
//! No format carries a snippet of the scanned text: a finding shows its masked preview only.

use serde_json::{Value, json};

use crate::detect::{Finding, FindingKind, RuleInfo, Severity};
use crate::ops::scan::ScanReport;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// One finding as a line for people: `path:line:col  rule  preview  [known value …] (commit)`.
pub fn human_line(f: &Finding, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let level = match f.severity {
        Severity::Error => paint(RED, "error"),
        Severity::Warn => paint(YELLOW, "warn"),
    };
    let mut line = format!(
        "{}:{}:{}: {level} {} {}",
        paint(BOLD, &f.path),
        f.line,
        f.column,
        f.rule,
        f.preview
    );
    if let FindingKind::KnownValue { label, encoding } = &f.kind {
        line.push_str(&format!(" (known value {label}, {})", encoding.name()));
    }
    if let Some(commit) = &f.commit {
        line.push_str(&format!(
            " {}",
            paint(DIM, &format!("commit {}", short(commit)))
        ));
    }
    line.push_str(&format!(
        " {}",
        paint(DIM, &format!("fp:{}", f.fingerprint))
    ));
    line
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The whole report for people: one line per finding, then notes and a summary.
pub fn human(report: &ScanReport, color: bool) -> String {
    let mut out = String::new();
    for f in &report.findings {
        out.push_str(&human_line(f, color));
        out.push('\n');
    }
    for s in &report.skipped {
        out.push_str(&format!("skipped {}: {}\n", s.path, s.reason));
    }
    for label in &report.too_short {
        out.push_str(&format!(
            "not verified: the value of {label} is shorter than 8 bytes and cannot be proven absent\n"
        ));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&format!(
        "{} finding(s): {} error(s), {} warning(s) in {} file(s), {} bytes\n",
        report.findings.len(),
        report.errors(),
        report.warnings(),
        report.files,
        report.bytes
    ));
    out
}

/// The report as one JSON document.
pub fn json(report: &ScanReport) -> String {
    let doc = json!({
        "findings": report.findings,
        "summary": {
            "findings": report.findings.len(),
            "errors": report.errors(),
            "warnings": report.warnings(),
            "files": report.files,
            "bytes": report.bytes,
        },
        "too_short": report.too_short,
        "skipped": report.skipped,
        "notes": report.notes,
        "unresolved": report.unresolved,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a report serializes");
    text.push('\n');
    text
}

/// One finding as a JSON line (for `--follow`).
pub fn json_line(f: &Finding) -> String {
    let mut text = serde_json::to_string(f).expect("a finding serializes");
    text.push('\n');
    text
}

/// The report as a SARIF 2.1.0 log. `rules` describes every rule id a finding may carry.
pub fn sarif(report: &ScanReport, rules: &[RuleInfo]) -> String {
    let used: Vec<&RuleInfo> = rules
        .iter()
        .filter(|r| report.findings.iter().any(|f| f.rule == r.id))
        .collect();
    let driver_rules: Vec<Value> = used
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.description },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| sarif_result(f, &used))
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "agentbak",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/agentbak/agentbak",
                "rules": driver_rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("SARIF serializes");
    text.push('\n');
    text
}

fn sarif_result(f: &Finding, rules: &[&RuleInfo]) -> Value {
    let level = match f.severity {
        Severity::Error => "error",
        Severity::Warn => "warning",
    };
    let what = match &f.kind {
        FindingKind::KnownValue { label, encoding } => {
            format!(
                "known secret value of {label} ({}): {}",
                encoding.name(),
                f.preview
            )
        }
        _ => format!("{}: {}", f.rule, f.preview),
    };
    let mut result = json!({
        "ruleId": f.rule,
        "ruleIndex": rules.iter().position(|r| r.id == f.rule),
        "level": level,
        "message": { "text": what },
        "locations": [{ "physicalLocation": {
            "artifactLocation": { "uri": f.path.trim_start_matches("./") },
            "region": {
                "startLine": f.line,
                "startColumn": f.column,
                "byteOffset": f.offset,
                "byteLength": f.length,
            },
        }}],
        "partialFingerprints": { "agentbak/v1": f.fingerprint },
    });
    if let Some(commit) = &f.commit {
        result["properties"] = json!({ "commit": commit });
    }
    result
}
