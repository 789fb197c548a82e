//! `agentbak list`: the repository's snapshots, oldest first (newest last), and its orphans.

use std::fmt::Write as _;

use super::{Cli, load_manifest, write_stdout};
use crate::archive::Sidecar;
use crate::error::{ExitCode, Result};
use crate::repo::{Listing, Repository};

pub(super) fn list(cli: &Cli) -> Result<ExitCode> {
    let manifest = load_manifest(cli.manifest.as_deref())?;
    // A repository that does not exist yet simply has no snapshots.
    let listing = if manifest.repository.join("snapshots").is_dir() {
        Repository::open(&manifest.repository)?.list_for(&manifest.agent)?
    } else {
        tracing::info!(repository = %manifest.repository.display(), "no snapshots yet");
        Listing::default()
    };
    for orphan in &listing.orphans {
        tracing::warn!(repository = %manifest.repository.display(), "orphan {orphan}");
    }
    if cli.json {
        let mut out = serde_json::to_vec_pretty(&listing).expect("a listing serializes");
        out.push(b'\n');
        write_stdout(&out)?;
    } else {
        write_stdout(table(&listing.snapshots).as_bytes())?;
    }
    Ok(ExitCode::Success)
}

/// The human table: one row per snapshot, columns padded to fit.
fn table(snapshots: &[Sidecar]) -> String {
    let header = [
        "ID",
        "TIME",
        "HOST",
        "TAGS",
        "FILES",
        "SIZE",
        "ADDED",
        "SECRETS",
        "ENCRYPTED",
    ];
    let mut rows = vec![header.map(str::to_string).to_vec()];
    for s in snapshots {
        rows.push(vec![
            s.id.clone(),
            s.created_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            s.host.clone(),
            if s.tags.is_empty() {
                "-".into()
            } else {
                s.tags.join(",")
            },
            s.counts.files.to_string(),
            human_size(s.counts.bytes),
            // What the snapshot added to the repository: its archive, or its new chunks.
            human_size(s.stored.map_or(s.size, |st| st.stored_bytes)),
            s.counts.secrets.to_string(),
            if s.encrypted { "yes" } else { "no" }.into(),
        ]);
    }
    let mut out = crate::report::columns(&rows, "");
    let n = snapshots.len();
    let _ = writeln!(out, "{n} snapshot{}", if n == 1 { "" } else { "s" });
    out
}

/// Bytes in binary units with one decimal: `812 B`, `1.5 KiB`, `3.2 GiB`.
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
