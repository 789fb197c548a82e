//! `agentbak diff ID1 ID2`: what changed from one snapshot to the other. Exits 0 whatever the
//! difference (as `restic diff`); errors keep their codes.

use std::fmt::Write as _;

use super::{Cli, DiffArgs, write_stdout};
use crate::error::{ExitCode, Result};
use crate::ops::inspect::{self, Diff};

pub(super) fn diff(cli: &Cli, args: &DiffArgs) -> Result<ExitCode> {
    let [a, b] = super::ls::inspect_snapshots(
        cli,
        args.identity.as_deref(),
        args.allow_unsigned,
        [args.from.as_str(), args.to.as_str()],
    )?;
    let found = inspect::diff(&a.index, &b.index);
    if cli.json {
        let mut out = serde_json::to_vec_pretty(&found).expect("a diff serializes");
        out.push(b'\n');
        write_stdout(&out)?;
    } else {
        write_stdout(human(&found).as_bytes())?;
    }
    Ok(ExitCode::Success)
}

/// One line per difference, `+`/`-`/`M` for paths and `~`/`+`/`-` for handles, then a summary.
fn human(d: &Diff) -> String {
    let shown = |p: &str| {
        if p.is_empty() {
            ".".to_string()
        } else {
            p.to_string()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "comparing {} to {}", d.from, d.to);
    for p in &d.added {
        let _ = writeln!(out, "+  {}", shown(p));
    }
    for p in &d.removed {
        let _ = writeln!(out, "-  {}", shown(p));
    }
    for c in &d.changed {
        let what: Vec<&str> = c.changes.iter().map(|c| c.as_str()).collect();
        let _ = writeln!(out, "M  {}  ({})", shown(&c.path), what.join(", "));
    }
    for r in &d.handles.rotated {
        let _ = writeln!(out, "~  {}  v{} -> v{}", r.handle, r.from, r.to);
    }
    for h in &d.handles.added {
        let _ = writeln!(out, "+  handle {h}");
    }
    for h in &d.handles.removed {
        let _ = writeln!(out, "-  handle {h}");
    }
    let _ = writeln!(
        out,
        "{} added, {} removed, {} changed; handles: {} rotated, {} added, {} removed",
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.handles.rotated.len(),
        d.handles.added.len(),
        d.handles.removed.len()
    );
    out
}
