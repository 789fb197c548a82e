//! `agentbak check [--read-data]`: the integrity of the whole repository (every agent), then
//! the report; exit 0 clean, 3 warnings only, 5 any integrity problem.

use std::fmt::Write as _;
use std::io::IsTerminal;

use clap::Args;

use super::list::human_size;
use super::{Cli, load_manifest, write_stdout};
use crate::error::{ExitCode, Report as _, Result};
use crate::ops::check::{self, CheckOptions, CheckReport, Severity};
use crate::ops::identity::load_identity;
use crate::repo::Repository;
use crate::store::Stores;

/// `agentbak check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read every pack: its blake3 against its name, every blob decompressed (plain
    /// packs, or encrypted ones with --identity), chunk ids under the capture key, trees.
    #[arg(long)]
    pub read_data: bool,
    /// Age identity file, or a handle holding one, to read encrypted packs with --read-data
    /// [env: AGENTBAK_IDENTITY].
    #[arg(long, value_name = "FILE|HANDLE", env = "AGENTBAK_IDENTITY")]
    pub identity: Option<String>,
}

pub(super) fn check(cli: &Cli, args: &CheckArgs) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    let repo = Repository::open(&manifest.repository)?;
    let identity_text = args.identity.as_deref().filter(|t| !t.is_empty());
    let needs_stores = args.read_data || identity_text.is_some();
    let stores = if needs_stores {
        Some(Stores::from_manifest(&manifest)?)
    } else {
        None
    };
    let identity = match (identity_text, &stores) {
        (Some(text), Some(stores)) => Some(load_identity(text, stores)?),
        _ => None,
    };
    let mut key_note = None;
    let key = match (&stores, args.read_data) {
        (Some(stores), true) => match check::chunk_key(&manifest, stores) {
            Ok(Some(key)) => Some(key),
            Ok(None) => None,
            Err(e) => {
                key_note = Some(format!(
                    "chunk ids not checked: the chunk-id key could not be read ({e})"
                ));
                None
            }
        },
        _ => None,
    };
    let bar = (args.read_data && !cli.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "reading packs {bar:30} {binary_bytes}/{binary_total_bytes} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let options = CheckOptions {
        read_data: args.read_data,
        identity: identity.as_ref(),
        chunk_key: key.as_deref(),
        progress: Some(&progress),
    };
    let mut report = check::check(&repo, &options)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(note) = key_note {
        report
            .notes
            .retain(|n| !n.starts_with("chunk ids not checked"));
        report.notes.push(note);
    }
    let text = if cli.json {
        let mut out = serde_json::to_string_pretty(&report).expect("a report serializes");
        out.push('\n');
        out
    } else {
        human(&report)
    };
    write_stdout(text.as_bytes())?;
    Ok(report.exit_code())
}

/// One line per problem, the notes, a summary.
fn human(report: &CheckReport) -> String {
    let mut out = String::new();
    for p in &report.problems {
        let label = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label:<7} {}: {}", p.object, p.message);
    }
    for note in &report.notes {
        let _ = writeln!(out, "note    {note}");
    }
    let s = &report.summary;
    let _ = write!(
        out,
        "checked {} index file{}, {} pack{} ({} on disk), {} blob{}, {} snapshot{}",
        s.index_files,
        plural(s.index_files),
        s.packs,
        plural(s.packs),
        human_size(s.pack_bytes),
        s.blobs,
        plural(s.blobs),
        s.snapshots,
        plural(s.snapshots),
    );
    if s.archives > 0 {
        let _ = write!(out, " ({} format-1)", s.archives);
    }
    let _ = writeln!(out, "; read {}", human_size(s.bytes_read));
    if s.read_data {
        let _ = writeln!(
            out,
            "read data: {} pack{} hashed, {} blob{} decompressed ({} chunk id{} checked), {} \
             tree{} read",
            s.packs_hashed,
            plural(s.packs_hashed),
            s.blobs_checked,
            plural(s.blobs_checked),
            s.chunk_ids_checked,
            plural(s.chunk_ids_checked),
            s.trees_checked,
            plural(s.trees_checked),
        );
    }
    let (errors, warnings) = (
        report.count(Severity::Error),
        report.count(Severity::Warning),
    );
    if errors + warnings == 0 {
        out.push_str("no problems found\n");
    } else {
        let _ = writeln!(
            out,
            "{errors} error{}, {warnings} warning{}",
            plural(errors as u64),
            plural(warnings as u64)
        );
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
