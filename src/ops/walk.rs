//! Walking the state folder: which entries a snapshot holds, in a deterministic order.
//!
//! Globs are gitignore-style and relative to the state folder: a pattern without `/` matches at
//! any depth (`*.tmp` is `**/*.tmp`), and an excluded folder excludes everything under it (the
//! walk does not descend into it). Symlinks are entries of their own and are never followed.
//! Sockets, FIFOs and devices are skipped with a warning; unreadable entries are reported.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// The kind of an entry the snapshot will hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of this many bytes (when walked; it may change before it is read).
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A folder.
    Dir,
    /// A symbolic link, stored as a link.
    Symlink {
        /// The link's target, as stored in the link.
        target: PathBuf,
    },
}

/// One entry of the state, relative to the state folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the state folder, with `/` separators.
    pub rel: String,
    /// Absolute path on disk.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// What says the file is the one a parent snapshot read: size, times to the nanosecond,
    /// inode (the files cache of the incremental repository compares it).
    pub stat: StatKey,
    /// A SQLite database (by its header, `crate::sqlite::sniff`): archived through a
    /// consistent copy, and its `-wal`, `-shm` and `-journal` files are not walked.
    pub sqlite: bool,
}

/// Size, modification and change times (nanoseconds) and inode of a walked entry: a file
/// whose key is unchanged since the parent snapshot is taken to be unchanged (as restic and
/// borg take it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StatKey {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

impl StatKey {
    /// The key of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> StatKey {
        use std::os::unix::fs::MetadataExt;
        StatKey {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
            ino: meta.ino(),
        }
    }
}

/// Something the walk could not take, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the state folder.
    pub rel: String,
    /// Why (a socket, a FIFO, a device, permission denied).
    pub reason: String,
    /// True when data the user expects in the backup is missing (exit 3), false for special
    /// files that never belong in a backup.
    pub unreadable: bool,
}

/// The result of a walk.
#[derive(Debug, Default)]
pub struct Walk {
    /// Entries in path order (a folder before its contents).
    pub entries: Vec<Entry>,
    /// Entries left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Compiles gitignore-style globs.
pub fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(compile(p)?);
    }
    builder
        .build()
        .map_err(|e| Error::Usage(format!("invalid glob set: {e}")))
}

fn compile(pattern: &str) -> Result<Glob> {
    let trimmed = pattern.trim_start_matches('/').trim_end_matches('/');
    let anchored = pattern.starts_with('/') || trimmed.contains('/');
    let full = if anchored {
        trimmed.to_string()
    } else {
        format!("**/{trimmed}")
    };
    GlobBuilder::new(&full)
        .literal_separator(true)
        .build()
        .map_err(|e| Error::Usage(format!("invalid glob `{pattern}`: {e}")))
}

/// Walks `state`, keeping what `include` matches and `exclude` does not.
pub fn walk(state: &Path, include: &[String], exclude: &[String]) -> Result<Walk> {
    let include = glob_set(include)?;
    let exclude = glob_set(exclude)?;
    let meta = std::fs::symlink_metadata(state).map_err(|e| Error::io(state, e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            state,
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "the state is not a folder",
            ),
        ));
    }
    let mut out = Walk::default();
    let mut dirs = Vec::new();
    let mut it = walkdir::WalkDir::new(state)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(next) = it.next() {
        let dent = match next {
            Ok(d) => d,
            Err(e) => {
                let rel = e
                    .path()
                    .and_then(|p| p.strip_prefix(state).ok())
                    .map(rel_string)
                    .unwrap_or_default();
                out.skipped.push(Skipped {
                    rel,
                    reason: e
                        .io_error()
                        .map_or_else(|| e.to_string(), ToString::to_string),
                    unreadable: true,
                });
                continue;
            }
        };
        let rel = rel_string(dent.path().strip_prefix(state).unwrap_or(dent.path()));
        let ft = dent.file_type();
        if is_excluded(&exclude, &rel, ft.is_dir()) {
            if ft.is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        let meta = match dent.metadata() {
            Ok(m) => m,
            Err(e) => {
                out.skipped.push(Skipped::unreadable(rel, &e));
                continue;
            }
        };
        let kind = if ft.is_dir() {
            dirs.push(out.entries.len());
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File { size: meta.len() }
        } else if ft.is_symlink() {
            match std::fs::read_link(dent.path()) {
                Ok(target) => EntryKind::Symlink { target },
                Err(e) => {
                    out.skipped.push(Skipped::unreadable(rel, &e));
                    continue;
                }
            }
        } else {
            out.skipped.push(Skipped {
                rel,
                reason: special_kind(&ft).to_string(),
                unreadable: false,
            });
            continue;
        };
        if !matches!(kind, EntryKind::Dir) && !include.is_match(&rel) {
            continue;
        }
        let sqlite =
            matches!(kind, EntryKind::File { size } if crate::sqlite::sniff(dent.path(), size));
        out.entries.push(Entry {
            rel,
            path: dent.path().to_path_buf(),
            sqlite,
            kind,
            mode: mode_of(&meta),
            mtime: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
            stat: StatKey::of(&meta),
        });
    }
    drop_companions(&mut out.entries);
    keep_needed_dirs(&mut out.entries, &include);
    Ok(out)
}

/// Leaves out the `-wal`, `-shm` and `-journal` files of every SQLite database walked: the
/// database's consistent copy holds what they hold, and a copy of them taken at another
/// moment than the database would not match it.
fn drop_companions(entries: &mut Vec<Entry>) {
    let databases: std::collections::HashSet<&str> = entries
        .iter()
        .filter(|e| e.sqlite)
        .map(|e| e.rel.as_str())
        .collect();
    if databases.is_empty() {
        return;
    }
    let companion = |rel: &str| {
        crate::sqlite::COMPANIONS.iter().any(|suffix| {
            rel.strip_suffix(suffix)
                .is_some_and(|db| databases.contains(db))
        })
    };
    let dropped: Vec<bool> = entries
        .iter()
        .map(|e| !matches!(e.kind, EntryKind::Dir) && companion(&e.rel))
        .collect();
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        !dropped[i - 1]
    });
}

impl Skipped {
    /// An entry that could not be read (its metadata, a link's target).
    fn unreadable(rel: String, e: &dyn std::fmt::Display) -> Skipped {
        Skipped {
            rel,
            reason: e.to_string(),
            unreadable: true,
        }
    }
}

/// An excluded folder excludes its contents (gitignore). A pattern such as `cache/*` names
/// every child of `cache`; the NUL probe (no file name holds NUL) asks "would any child match",
/// so the walk prunes the folder instead of visiting each child.
fn is_excluded(exclude: &GlobSet, rel: &str, is_dir: bool) -> bool {
    exclude.is_match(rel) || (is_dir && exclude.is_match(format!("{rel}/\u{0}")))
}

/// Keeps a folder when `include` names it or it holds a kept entry; with the default `**`
/// every folder stays, empty ones included.
fn keep_needed_dirs(entries: &mut Vec<Entry>, include: &GlobSet) {
    let mut needed = std::collections::HashSet::new();
    for e in entries.iter() {
        if !matches!(e.kind, EntryKind::Dir) || include.is_match(&e.rel) {
            let mut p = e.rel.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !needed.insert(parent.to_string()) {
                    break;
                }
                p = parent;
            }
            if matches!(e.kind, EntryKind::Dir) {
                needed.insert(e.rel.clone());
            }
        }
    }
    entries.retain(|e| !matches!(e.kind, EntryKind::Dir) || needed.contains(&e.rel));
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_socket() {
        "a socket: skipped"
    } else if ft.is_fifo() {
        "a FIFO: skipped"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device: skipped"
    } else {
        "not a regular file, folder or symlink: skipped"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file, folder or symlink: skipped"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "memory/notes.md",
            "memory/deep/a.json",
            "cache/blob.bin",
            "cache/sub/x.bin",
            "logs/run.log",
            "logs/run.tmp",
            "top.tmp",
            "config.json",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        std::fs::create_dir_all(root.join("empty")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", root.join("link-out")).unwrap();
        dir
    }

    fn rels(w: &Walk) -> Vec<&str> {
        w.entries.iter().map(|e| e.rel.as_str()).collect()
    }

    #[test]
    fn default_include_takes_everything_in_sorted_order() {
        let dir = tree();
        let w = walk(dir.path(), &["**".into()], &[]).unwrap();
        let r = rels(&w);
        let mut sorted = r.clone();
        sorted.sort();
        assert_eq!(r, sorted);
        assert!(r.contains(&"empty"));
        assert!(r.contains(&"cache/sub/x.bin"));
        assert_eq!(r.len(), 15, "{r:?}");
    }

    #[test]
    fn exclude_prunes_folders_and_unanchored_patterns_match_at_any_depth() {
        let dir = tree();
        let w = walk(
            dir.path(),
            &["**".into()],
            &["cache/**".into(), "*.tmp".into()],
        )
        .unwrap();
        let r = rels(&w);
        assert!(!r.iter().any(|p| p.starts_with("cache")), "{r:?}");
        assert!(!r.iter().any(|p| p.ends_with(".tmp")), "{r:?}");
        assert!(r.contains(&"logs/run.log"));
    }

    #[test]
    fn include_keeps_only_the_folders_it_needs() {
        let dir = tree();
        let w = walk(dir.path(), &["memory/**".into()], &[]).unwrap();
        assert_eq!(
            rels(&w),
            vec![
                "memory",
                "memory/deep",
                "memory/deep/a.json",
                "memory/notes.md"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_entries_never_followed() {
        let dir = tree();
        let w = walk(dir.path(), &["**".into()], &[]).unwrap();
        let link = w.entries.iter().find(|e| e.rel == "link-out").unwrap();
        assert_eq!(
            link.kind,
            EntryKind::Symlink {
                target: "/etc/passwd".into()
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn sockets_are_skipped_with_a_reason() {
        let dir = tree();
        let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("agent.sock")).unwrap();
        let w = walk(dir.path(), &["**".into()], &[]).unwrap();
        assert!(!rels(&w).contains(&"agent.sock"));
        assert_eq!(w.skipped.len(), 1);
        assert!(w.skipped[0].reason.contains("socket"));
        assert!(!w.skipped[0].unreadable);
    }
}
