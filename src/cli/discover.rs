//! `agentbak discover`: render what [`ops::discover`](crate::ops::discover) found, as a diff
//! of the manifest's `secrets` (one `+` line per rule it lacks). Values never appear: each rule
//! is followed by its reason and a masked preview.

use std::fmt::Write as _;

use super::{Cli, DiscoverArgs, write_stdout};
use crate::error::{Error, ExitCode, Report as _, Result};
use crate::manifest::find_manifest_path;
use crate::ops::discover::{DiscoverOptions, DiscoverReport, discover as run_discover};

pub(super) fn discover(cli: &Cli, args: &DiscoverArgs) -> Result<ExitCode> {
    let opts = DiscoverOptions {
        manifest: find_manifest_path(cli.manifest.as_deref()),
        update: args.update || args.import,
        import: args.import,
    };
    let report = run_discover(&opts)?;
    let out = if cli.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?
        )
    } else {
        human(&report)
    };
    write_stdout(out.as_bytes())?;
    Ok(report.exit_code())
}

fn human(r: &DiscoverReport) -> String {
    let mut out = String::new();
    for p in &r.proposed {
        let _ = writeln!(out, "+ {}", p.line);
        let mut note = format!("    {}, {}", p.reason, p.preview);
        if p.files.len() > 1 || p.rule["file"].as_str() != p.files.first().map(String::as_str) {
            let _ = write!(note, ", found in {} file(s)", p.files.len());
        }
        if p.shared {
            note.push_str(", same value as an existing rule");
        }
        for f in &p.folds {
            let _ = write!(note, "; names the captured {f}");
        }
        let _ = writeln!(out, "{note}");
    }
    let manifest = r.manifest.display();
    match (r.proposed.len(), r.updated) {
        (0, _) => {
            let _ = writeln!(
                out,
                "nothing to add: every secret found in {} file(s) has a rule in {manifest}",
                r.files
            );
        }
        (n, true) => {
            let _ = writeln!(out, "added {n} rule(s) to {manifest}");
        }
        (n, false) => {
            let _ = writeln!(
                out,
                "{n} rule(s) to add to {manifest}: `agentbak discover --update` writes them, \
                 `--import` also stores their values"
            );
        }
    }
    if !r.attention.is_empty() {
        let _ = writeln!(out, "\nneeds attention:");
        for a in &r.attention {
            let at = a.line.map(|l| format!(":{l}")).unwrap_or_default();
            let file = if a.file.is_empty() { "-" } else { &a.file };
            let _ = writeln!(out, "  {file}{at}: {}", a.message);
        }
    }
    if let Some(items) = &r.imported {
        let _ = writeln!(out, "\nimport into the store:");
        for line in super::secrets::push_lines(items).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
