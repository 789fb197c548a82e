//! `ls` and `diff`: a snapshot's index, read and checked, and what operators ask of it.
//!
//! [`load_index`] returns a snapshot's index checked like a restore checks it (the archive's
//! size and blake3 against the sidecar, every entry against the index); [`open`] first checks
//! the snapshot's signature against what the manifest trusts (the same check restore makes
//! before it reads anything, [`SignatureVerifier::check`]), so that `ls` and `diff` never show
//! what a writer of the repository forged as if it were the agent's.
//!
//! Invariants: an index holds no secret value (see [`crate::archive::Index`]), and nothing
//! here adds one: entries, handles and store versions only. The declared-handles check
//! ([`crate::ops::trust::DeclaredHandles`]) is restore's: it guards what restore *fetches*,
//! and `ls`/`diff` fetch nothing, so an old snapshot whose rules were since removed can still
//! be inspected.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{
    ArchiveEntry, EntryData, EntryKind, Identity, Index, IndexEntry, ReadOptions, SIDECAR_FORMAT,
    SIDECAR_FORMAT_PACKS, Sidecar, read_archive, state_relative,
};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::ops::trust::{SignatureStatus, SignatureVerifier};
use crate::repo::Repository;

/// Reads snapshot `sidecar`'s index from `repo`, checked: the archive's size and blake3 are
/// the sidecar's, and every entry matches the index (else exit 5).
///
/// The signature is **not** checked here: call [`open`], or check it first as restore does.
pub fn load_index(
    repo: &Repository,
    sidecar: &Sidecar,
    identity: Option<&Identity>,
) -> Result<Index> {
    match sidecar.format {
        SIDECAR_FORMAT => read_index(repo.open_archive(sidecar)?, sidecar, identity),
        // The tree is checked against the sidecar: no content needs reading.
        SIDECAR_FORMAT_PACKS => {
            let chunks = crate::repo::packs::ChunkIndex::load(repo.root())?;
            crate::repo::rebuild::read_tree(repo, &chunks, sidecar, identity).map(|t| t.index)
        }
        other => Err(Error::Usage(format!(
            "snapshot {}: sidecar format {other} is not one this version reads",
            sidecar.id
        ))),
    }
}

/// Reads the index of the format-1 archive streamed from `input`, whose sidecar is
/// `sidecar`: the whole archive is read (the index is its last entry) and checked against
/// the sidecar's digest; no content is kept.
pub fn read_index(
    input: impl Read + Send,
    sidecar: &Sidecar,
    identity: Option<&Identity>,
) -> Result<Index> {
    let options = ReadOptions {
        name: sidecar.id.clone(),
        expected: Some(sidecar.digest()),
        identity,
        max_bytes: Some(sidecar.counts.bytes),
    };
    // Takes nothing: the reader drains and hashes each entry's content itself.
    let mut skip = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
    let report = read_archive(input, &options, &mut skip)?;
    report.ensure_clean(&sidecar.id)?;
    Ok(report.index)
}

/// What `ls` and `diff` trust: the manifest's signing keys.
#[derive(Debug, Clone, Copy)]
pub struct InspectOptions<'a> {
    /// Checks the snapshot's signature before its archive is read.
    pub signatures: &'a SignatureVerifier<'a>,
    /// Accept an unsigned snapshot although the manifest configures signing.
    pub allow_unsigned: bool,
    /// The identity of an encrypted archive.
    pub identity: Option<&'a Identity>,
}

/// A snapshot whose signature was checked and whose index was read.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// Its sidecar.
    pub sidecar: Sidecar,
    /// Its signature, as checked before the archive was read.
    pub signature: SignatureStatus,
    /// Its index, checked against the archive.
    pub index: Index,
}

/// Checks `sidecar`'s signature (exit 5 when the manifest's signing does not vouch for it),
/// then reads its index with [`load_index`].
pub fn open(
    repo: &Repository,
    sidecar: &Sidecar,
    options: &InspectOptions<'_>,
) -> Result<Inspected> {
    let signature = options.signatures.check(sidecar, options.allow_unsigned)?;
    let index = load_index(repo, sidecar, options.identity)?;
    Ok(Inspected {
        sidecar: sidecar.clone(),
        signature,
        index,
    })
}

/// One line of `agentbak ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LsEntry {
    /// Path relative to the state folder (`""` for the state folder itself).
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits, as a number (`420` for `0o644`).
    pub mode: u32,
    /// The type and permission bits as `ls -l` shows them (`-rw-r--r--`).
    pub mode_string: String,
    /// Content size in bytes (0 for folders and links).
    pub size: u64,
    /// Modification time (UTC).
    pub mtime: DateTime<Utc>,
    /// A symlink's target as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The file's secret placeholders (redacted locations); 0 for folders and links.
    pub placeholders: usize,
    /// The handles those placeholders name, sorted, each once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub handles: Vec<Handle>,
}

/// The entries of `index` at or below `under` (a path relative to the state folder: a folder
/// or a file; `None`, `""` or `.` for all), in index order. A path that names no entry is an
/// error (exit 2).
pub fn list(index: &Index, under: Option<&str>) -> Result<Vec<LsEntry>> {
    let prefix = under
        .map(|p| p.trim_start_matches("./").trim_end_matches('/'))
        .filter(|p| !p.is_empty() && *p != ".");
    let mut placeholders: BTreeMap<&str, (usize, Vec<Handle>)> = BTreeMap::new();
    for loc in &index.secrets {
        let slot = placeholders.entry(loc.file.as_str()).or_default();
        slot.0 += 1;
        if !slot.1.contains(&loc.handle) {
            slot.1.push(loc.handle.clone());
        }
    }
    let mut out = Vec::new();
    for entry in &index.entries {
        let Some(rel) = state_relative(&entry.path) else {
            continue;
        };
        if let Some(p) = prefix
            && !(rel == p || rel.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        {
            continue;
        }
        let (count, mut handles) = placeholders
            .get(entry.path.as_str())
            .cloned()
            .unwrap_or_default();
        handles.sort();
        out.push(LsEntry {
            path: rel.to_string(),
            kind: entry.kind,
            mode: entry.mode,
            mode_string: mode_string(entry.kind, entry.mode),
            size: entry.size,
            mtime: DateTime::from_timestamp(entry.mtime, 0).unwrap_or_default(),
            link: entry.link.clone(),
            placeholders: count,
            handles,
        });
    }
    if let Some(p) = prefix
        && out.is_empty()
    {
        return Err(Error::Usage(format!(
            "no entry `{p}` in snapshot {} (paths are relative to the state folder)",
            index.snapshot_id
        )));
    }
    Ok(out)
}

/// `ls -l`'s type and permission column: `drwx------`, `-rw-r--r--`, `lrwxrwxrwx`, with
/// set-user-ID, set-group-ID and sticky bits as `s`/`S` and `t`/`T`.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(match kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, lower, upper)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        out.push(match (mode & bit != 0, x) {
            (true, true) => *lower,
            (true, false) => *upper,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// What differs in a path present in both snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// File, folder or symlink changed.
    Type,
    /// The content's blake3 (after redaction).
    Content,
    /// The size.
    Size,
    /// The permission bits.
    Mode,
    /// A symlink's target.
    Link,
}

impl Change {
    /// The name shown to people (`content`, `mode`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Type => "type",
            Change::Content => "content",
            Change::Size => "size",
            Change::Mode => "mode",
            Change::Link => "link",
        }
    }
}

/// A path whose entry differs between the two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// Path relative to the state folder.
    pub path: String,
    /// What differs, in the order of [`Change`].
    pub changes: Vec<Change>,
}

/// A handle whose store version differs between the two snapshots (a rotation in between).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotated {
    /// The handle.
    pub handle: Handle,
    /// The store version the first snapshot recorded.
    pub from: u64,
    /// The store version the second snapshot recorded.
    pub to: u64,
}

/// How two snapshots' handles differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HandleDiff {
    /// Handles the second snapshot names and the first does not.
    pub added: Vec<Handle>,
    /// Handles the first snapshot names and the second does not.
    pub removed: Vec<Handle>,
    /// Handles whose recorded store version differs.
    pub rotated: Vec<Rotated>,
}

/// What `agentbak diff A B` found: from `A` to `B`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The first snapshot's id.
    pub from: String,
    /// The second snapshot's id.
    pub to: String,
    /// Paths only in the second, sorted.
    pub added: Vec<String>,
    /// Paths only in the first, sorted.
    pub removed: Vec<String>,
    /// Paths in both whose entries differ, sorted.
    pub changed: Vec<Changed>,
    /// Handles added, removed and rotated.
    pub handles: HandleDiff,
}

impl Diff {
    /// Whether the two snapshots hold the same entries and handle versions.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.handles == HandleDiff::default()
    }
}

/// Compares two indexes: entries by path (type, content blake3, size, mode, link target; not
/// mtime) and handles by the store version their locations recorded (the highest, when a
/// handle's locations disagree). A handle without a recorded version in either snapshot (a
/// store unreachable then, an `env:` handle) is never reported rotated.
pub fn diff(a: &Index, b: &Index) -> Diff {
    let entries = |i: &'_ Index| -> BTreeMap<String, IndexEntry> {
        i.entries
            .iter()
            .filter_map(|e| state_relative(&e.path).map(|r| (r.to_string(), e.clone())))
            .collect()
    };
    let (ea, eb) = (entries(a), entries(b));
    let added = eb
        .keys()
        .filter(|p| !ea.contains_key(*p))
        .cloned()
        .collect();
    let removed = ea
        .keys()
        .filter(|p| !eb.contains_key(*p))
        .cloned()
        .collect();
    let mut changed = Vec::new();
    for (path, x) in &ea {
        let Some(y) = eb.get(path) else { continue };
        let mut changes = Vec::new();
        if x.kind != y.kind {
            changes.push(Change::Type);
        }
        if x.blake3 != y.blake3 && x.kind == y.kind {
            changes.push(Change::Content);
        }
        if x.size != y.size {
            changes.push(Change::Size);
        }
        if x.mode != y.mode {
            changes.push(Change::Mode);
        }
        if x.link != y.link && x.kind == y.kind {
            changes.push(Change::Link);
        }
        if !changes.is_empty() {
            changed.push(Changed {
                path: path.clone(),
                changes,
            });
        }
    }
    let versions = |i: &'_ Index| -> BTreeMap<Handle, Option<u64>> {
        let mut out: BTreeMap<Handle, Option<u64>> = BTreeMap::new();
        for loc in &i.secrets {
            let v = out.entry(loc.handle.clone()).or_default();
            *v = (*v).max(loc.store_version);
        }
        out
    };
    let (ha, hb) = (versions(a), versions(b));
    let mut handles = HandleDiff::default();
    for (h, va) in &ha {
        match hb.get(h) {
            None => handles.removed.push(h.clone()),
            Some(vb) => {
                if let (Some(from), Some(to)) = (*va, *vb)
                    && from != to
                {
                    handles.rotated.push(Rotated {
                        handle: h.clone(),
                        from,
                        to,
                    });
                }
            }
        }
    }
    handles.added = hb
        .keys()
        .filter(|h| !ha.contains_key(*h))
        .cloned()
        .collect();
    Diff {
        from: a.snapshot_id.clone(),
        to: b.snapshot_id.clone(),
        added,
        removed,
        changed,
        handles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(EntryKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(EntryKind::Dir, 0o700), "drwx------");
        assert_eq!(mode_string(EntryKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(EntryKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryKind::File, 0o2640), "-rw-r-S---");
    }
}
