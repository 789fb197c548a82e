//! `agentbak stats`: what the repository holds, for the manifest's agent and for all agents.

use std::fmt::Write as _;

use super::list::human_size;
use super::{Cli, load_manifest, write_stdout};
use crate::error::{ExitCode, Result};
use crate::ops::stats::{self, Scope, StatsReport};
use crate::repo::Repository;

pub(super) fn stats(cli: &Cli) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let repo = Repository::open(&manifest.repository)?;
    let report = stats::stats(&repo, &manifest.agent)?;
    let text = if cli.json {
        let mut out = serde_json::to_string_pretty(&report).expect("a report serializes");
        out.push('\n');
        out
    } else {
        human(&report)
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::Success)
}

fn human(report: &StatsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "agent {}:", report.agent_name);
    scope(&mut out, &report.agent);
    let _ = writeln!(
        out,
        "repository {} (all agents):",
        report.repository.display()
    );
    scope(&mut out, &report.repository_total);
    let _ = writeln!(out, "  indexed chunks      {}", report.indexed_chunks);
    for refs in &report.unreadable_refs {
        let _ = writeln!(out, "  unreadable refs     {refs} (run `agentbak check`)");
    }
    out
}

fn scope(out: &mut String, s: &Scope) {
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
    let _ = writeln!(
        out,
        "  snapshots           {} ({} incremental, {} format-1)",
        s.snapshots, s.incremental_snapshots, s.archives
    );
    let _ = writeln!(
        out,
        "  logical bytes       {} ({} bytes)",
        human_size(s.logical_bytes),
        s.logical_bytes
    );
    let _ = writeln!(
        out,
        "  unique chunks       {}: {} raw, {} stored",
        s.unique_chunks,
        human_size(s.unique_raw_bytes),
        human_size(s.unique_stored_bytes)
    );
    if s.missing_chunks > 0 {
        let _ = writeln!(
            out,
            "  missing chunks      {} (run `agentbak check`)",
            s.missing_chunks
        );
    }
    let _ = writeln!(
        out,
        "  pack files          {}: {}",
        s.packs,
        human_size(s.pack_bytes)
    );
    if s.archives > 0 {
        let _ = writeln!(
            out,
            "  format-1 archives   {}: {}",
            s.archives,
            human_size(s.archive_bytes)
        );
    }
    let _ = writeln!(out, "  dedup ratio         {}", ratio(s.dedup_ratio));
    let _ = writeln!(out, "  compression ratio   {}", ratio(s.compression_ratio));
}
