//! The safe extractor: an [`EntryVisitor`] that writes `state/…` entries below a fresh root.
//!
//! Invariants, each the answer to a classic tar extraction attack:
//! - Nothing is written outside the root: paths are clean (the reader and
//!   [`safe_path::relative`]), folders are created by the extraction itself, and **no symlink
//!   exists below the root while files are written** — links are created last, by
//!   [`Extractor::create_links`], after the archive was read to its end and checked.
//! - An entry below a symlink entry (`link -> /etc`, then `link/passwd`) is refused, whatever
//!   the order of the two entries; so is a link placed over a path that already holds entries.
//! - Files are created with `O_EXCL` and mode `0600`, so a value written into one later (by
//!   rehydration) is never readable by others, even before modes are restored.
//! - A link whose target leaves the root is not created (see `docs/restore.md`): it is
//!   reported as [`SkippedLink`] and the restore ends with a warning.
//! - With `--include` ([`Include`]), entries that are not selected are checked exactly as
//!   others (the attacks above are refused whatever is selected) but not written; the folders
//!   above a selected entry are created and get their archive mode and time.
//!
//! Everything written is untrusted until `read_archive` returns `Ok` and the report's
//! `ensure_clean` passes; the caller removes the folder otherwise.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT};
use serde::Serialize;

use super::include::Include;
use super::safe_path;
use crate::archive::{
    ArchiveEntry, EntryData, EntryKind, EntryVisitor, IntegrityError, IntegrityProblem,
};
use crate::error::{Error, Result};

/// Permission bits kept from the archive: set-user-ID and set-group-ID are dropped, since an
/// agent's state has no use for them and a forged archive could plant one.
const MODE_MASK: u32 = 0o1777;

/// A symlink that was not created because its target leaves the restored folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLink {
    /// The link, relative to the restored folder.
    pub path: String,
    /// Its target as stored in the archive.
    pub target: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Counts of what was extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// Regular files.
    pub files: u64,
    /// Folders (the root included).
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Content bytes of the files.
    pub bytes: u64,
}

/// Mode and mtime to set once everything is written.
struct Meta {
    rel: PathBuf,
    kind: EntryKind,
    mode: u32,
    mtime: i64,
}

/// Writes entries below `root`, or only checks them when `root` is `None` (`--dry-run`).
pub(crate) struct Extractor {
    root: Option<PathBuf>,
    archive: String,
    /// Every path written or declared so far (files and folders), for the link-over-entries check.
    seen: BTreeSet<PathBuf>,
    /// Symlink entries: relative path → stored target.
    links: HashMap<PathBuf, PathBuf>,
    link_order: Vec<(PathBuf, Meta)>,
    metas: Vec<Meta>,
    counts: Extracted,
    /// `--include`: what is written (everything when `None`).
    select: Option<Include>,
    /// Folders not selected themselves: created only when above a selected entry.
    held_dirs: Vec<Meta>,
    /// Every folder above a selected entry.
    needed: BTreeSet<PathBuf>,
}

impl Extractor {
    /// An extractor into `root` (an existing, empty folder), or a checker when `None`.
    pub(crate) fn new(root: Option<PathBuf>, archive: &str) -> Extractor {
        Extractor {
            root,
            archive: archive.to_string(),
            seen: BTreeSet::new(),
            links: HashMap::new(),
            link_order: Vec::new(),
            metas: Vec::new(),
            counts: Extracted::default(),
            select: None,
            held_dirs: Vec::new(),
            needed: BTreeSet::new(),
        }
    }

    /// Writes only the entries `include` selects (and the folders above them).
    pub(crate) fn select(mut self, include: Option<Include>) -> Extractor {
        self.select = include;
        self
    }

    /// Whether the entry at `rel` is written; marks the folders above it as needed.
    fn selected(&mut self, rel: &Path) -> bool {
        let Some(include) = &self.select else {
            return true;
        };
        if !include.selects(rel) {
            return false;
        }
        for a in rel.ancestors().skip(1) {
            if !self.needed.insert(a.to_path_buf()) {
                break;
            }
        }
        true
    }

    fn refuse(&self, path: &str, reason: impl ToString) -> Error {
        Error::Integrity(IntegrityError {
            archive: self.archive.clone(),
            problem: IntegrityProblem::UnsafeEntry {
                path: path.to_string(),
                reason: reason.to_string(),
            },
        })
    }

    /// What was extracted so far.
    pub(crate) fn counts(&self) -> Extracted {
        self.counts
    }

    fn write_file(&mut self, rel: &Path, data: &mut EntryData<'_>) -> io::Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            make_dir(parent)?;
        }
        // O_EXCL also refuses to follow a symlink in the last component.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // Written from the decompressed frames where they lie: no copy, a write per frame.
        while let Some(bytes) = data.next_shared()? {
            file.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Creates the links that stay inside the root; returns those skipped. Call only after
    /// the archive was read to its end and checked: from here on, nothing else is written
    /// except rehydrated files, which are opened without following links.
    pub(crate) fn create_links(&mut self) -> Result<Vec<SkippedLink>> {
        // The folders above selected entries, now that every entry was seen.
        for meta in std::mem::take(&mut self.held_dirs) {
            if self.needed.contains(&meta.rel) {
                if let Some(root) = &self.root {
                    let path = root.join(&meta.rel);
                    make_dir(&path).map_err(|e| Error::io(&path, e))?;
                }
                self.counts.dirs += 1;
                self.metas.push(meta);
            }
        }
        let mut skipped = Vec::new();
        let pending = std::mem::take(&mut self.link_order);
        for (target, meta) in pending {
            if let Err(refusal) = safe_path::check_link(&meta.rel, &target, &self.links) {
                skipped.push(SkippedLink {
                    path: meta.rel.display().to_string(),
                    target: target.display().to_string(),
                    reason: refusal.to_string(),
                });
                continue;
            }
            if let Some(root) = &self.root {
                let path = root.join(&meta.rel);
                if let Some(parent) = path.parent() {
                    make_dir(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::os::unix::fs::symlink(&target, &path).map_err(|e| Error::io(&path, e))?;
            }
            self.counts.symlinks += 1;
            self.metas.push(meta);
        }
        Ok(skipped)
    }

    /// Sets every entry's mode and mtime, children before their folders (so that a folder's
    /// own mode cannot stop the work below it, and writing below it cannot move its mtime).
    /// Files in `private` get `0600` whatever the archive says.
    pub(crate) fn apply_metadata(&mut self, private: &BTreeSet<PathBuf>) -> Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        self.metas
            .sort_by_key(|m| std::cmp::Reverse(m.rel.components().count()));
        for meta in &self.metas {
            let path = root.join(&meta.rel);
            let mode = if private.contains(&meta.rel) {
                0o600
            } else {
                meta.mode & MODE_MASK
            };
            if meta.kind != EntryKind::Symlink {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io(&path, e))?;
            }
            let times = Timestamps {
                last_access: Timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_OMIT,
                },
                last_modification: Timespec {
                    tv_sec: meta.mtime,
                    tv_nsec: 0,
                },
            };
            rustix::fs::utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io(&path, e.into()))?;
        }
        Ok(())
    }
}

impl EntryVisitor for Extractor {
    fn visit(&mut self, entry: &ArchiveEntry, data: &mut EntryData<'_>) -> Result<()> {
        let rel = safe_path::relative(&entry.path).map_err(|r| self.refuse(&entry.path, r))?;
        if rel.as_os_str().is_empty() && entry.kind != EntryKind::Dir {
            return Err(self.refuse(&entry.path, "the state folder itself is not a folder"));
        }
        if rel.ancestors().skip(1).any(|a| self.links.contains_key(a)) {
            return Err(self.refuse(&entry.path, "it lies below a symlink of the archive"));
        }
        let meta = Meta {
            rel: rel.clone(),
            kind: entry.kind,
            mode: entry.mode,
            mtime: entry.mtime,
        };
        let selected = self.selected(&rel);
        match entry.kind {
            EntryKind::Dir if !selected => {
                self.held_dirs.push(meta);
                self.seen.insert(rel);
                return Ok(());
            }
            EntryKind::File if !selected => {
                // Not written: the reader drains and hashes the content.
                self.seen.insert(rel);
                return Ok(());
            }
            EntryKind::Dir => {
                if let Some(root) = &self.root {
                    let path = root.join(&rel);
                    make_dir(&path).map_err(|e| Error::io(&path, e))?;
                }
                self.counts.dirs += 1;
            }
            EntryKind::File => {
                self.write_file(&rel, data).map_err(|e| {
                    let at = self.root.as_deref().unwrap_or(Path::new("")).join(&rel);
                    Error::io(at, e)
                })?;
                self.counts.files += 1;
                // The reader fails the whole read if the content is shorter than declared.
                self.counts.bytes += entry.size;
            }
            EntryKind::Symlink => {
                let below = self.seen.range(rel.clone()..).next();
                if below.is_some_and(|p| p.starts_with(&rel)) {
                    return Err(self.refuse(&entry.path, "a link over entries already extracted"));
                }
                let target = PathBuf::from(entry.link.clone().unwrap_or_default());
                // Every link of the archive counts in the checks, selected or not.
                self.links.insert(rel.clone(), target.clone());
                if selected {
                    self.link_order.push((target, meta));
                }
                return Ok(());
            }
        }
        self.seen.insert(rel);
        self.metas.push(meta);
        Ok(())
    }
}

/// Creates a folder (and missing parents) `0700`; an existing folder is fine. No link exists
/// below the root during extraction, so the recursive creation cannot be redirected.
fn make_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}
