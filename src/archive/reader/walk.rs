//! The tar walk: each entry's checks, the index, and the comparison of entries and index.
//!
//! The walk reads the decompressed stream as tar, refuses what has no place in an agentbak
//! archive (see the reader's documentation), hands each entry under `state/` to the visitor,
//! and drains and hashes what the visitor leaves. The index comes last, so entries are
//! compared with it only once the stream has ended.
//!
//! Invariants: an entry is refused before the visitor sees it; a visitor's error never hides
//! a damaged stream (the integrity error wins); index errors give a position, never the
//! index's text, which may hold anything.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;

use super::stream::{EntryData, HEADER_BUDGET, Pieces, Plain};
use super::{ArchiveEntry, EntryProblem, EntryVisitor, ReadOptions, ReadReport, integrity};
use crate::archive::IntegrityProblem;
use crate::archive::index::{EntryKind, INDEX_FORMAT, INDEX_PATH, Index, MAX_INDEX_BYTES};
use crate::error::{Error, Result};

/// The most characters of an entry's path a refusal shows.
const SHOWN_PATH_CHARS: usize = 512;

/// The tar walk over the decompressed stream; `encrypted` is filled in by the caller.
pub(super) fn walk(
    plain: Pieces,
    options: &ReadOptions<'_>,
    visitor: &mut dyn EntryVisitor,
) -> Result<ReadReport> {
    let name = options.name.as_str();
    let damaged = |e: io::Error| integrity(name, IntegrityProblem::Stream(e.to_string()));
    let pieces = Rc::new(RefCell::new(plain));
    let mut archive = tar::Archive::new(Plain(Rc::clone(&pieces)));
    let mut walk = Walk::new(options, visitor);
    for entry in archive.entries_with_seek().map_err(damaged)? {
        let entry = entry.map_err(damaged)?;
        walk.entry(entry, &pieces)?;
        // The next header, and the records before it, are read within this budget.
        pieces.borrow_mut().allow_tar(HEADER_BUDGET);
    }
    // Past the tar end-of-archive marker: read the zstd frames (and age stream) to their end, so
    // that age's final tag is verified, and the frames' checksums when they are checked.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(damaged)?;
    walk.finish()
}

/// State of one pass over the entries.
struct Walk<'v, 'o> {
    options: &'o ReadOptions<'o>,
    visitor: &'v mut dyn EntryVisitor,
    seen: HashSet<String>,
    entries: Vec<(ArchiveEntry, Option<String>)>,
    index: Option<Index>,
    total: u64,
}

impl<'v, 'o> Walk<'v, 'o> {
    fn new(options: &'o ReadOptions<'o>, visitor: &'v mut dyn EntryVisitor) -> Self {
        Walk {
            options,
            visitor,
            seen: HashSet::new(),
            entries: Vec::new(),
            index: None,
            total: 0,
        }
    }

    fn refuse(&self, path: &str, reason: &str) -> Error {
        // A forged name can be a megabyte long: the message shows its start.
        let shown = match path.char_indices().nth(SHOWN_PATH_CHARS) {
            Some((end, _)) => format!("{}… ({} bytes)", &path[..end], path.len()),
            None => path.to_string(),
        };
        integrity(
            &self.options.name,
            IntegrityProblem::UnsafeEntry {
                path: shown,
                reason: reason.to_string(),
            },
        )
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        pieces: &RefCell<Pieces>,
    ) -> Result<()> {
        let name = self.options.name.clone();
        let damaged = |e: io::Error| integrity(&name, IntegrityProblem::Stream(e.to_string()));
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = clean_path(&raw_path).map_err(|reason| self.refuse(&raw_path, reason))?;
        if self.index.is_some() {
            return Err(self.refuse(&path, "an entry after the index"));
        }
        if !self.seen.insert(path.clone()) {
            return Err(self.refuse(&path, "appears twice"));
        }
        let header = entry.header();
        let mode = header.mode().map_err(damaged)? & 0o7777;
        let mtime = i64::try_from(header.mtime().map_err(damaged)?).unwrap_or(i64::MAX);
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => return Err(self.refuse(&path, "hard links are not allowed")),
            other => {
                return Err(self.refuse(&path, &format!("entry type {other:?} is not allowed")));
            }
        };
        if path == INDEX_PATH {
            if kind != EntryKind::File {
                return Err(self.refuse(&path, "the index is not a file"));
            }
            pieces
                .borrow_mut()
                .allow_tar(MAX_INDEX_BYTES + HEADER_BUDGET);
            return self.read_index(&mut entry);
        }
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            0
        };
        let link = match (kind, entry.link_name_bytes()) {
            (EntryKind::Symlink, Some(l)) => Some(
                String::from_utf8(l.into_owned())
                    .map_err(|_| self.refuse(&path, "the link target is not UTF-8"))?,
            ),
            (EntryKind::Symlink, None) => return Err(self.refuse(&path, "a link without target")),
            _ => None,
        };
        self.total = self.total.saturating_add(size);
        if let Some(max) = self.options.max_bytes
            && self.total > max
        {
            return Err(integrity(&name, IntegrityProblem::TooLarge(max)));
        }
        let record = ArchiveEntry {
            path,
            kind,
            mode,
            size,
            mtime,
            link,
        };
        // The content is taken from the stream itself, not through `entry`: the walk seeks
        // past it afterwards (see `Plain`).
        let mut data = EntryData {
            pieces,
            left: size,
            hasher: blake3::Hasher::new(),
            failed: None,
        };
        let visited = self.visitor.visit(&record, &mut data);
        let drained = data.drain();
        if let Some(cause) = data.failed.take() {
            return Err(integrity(&name, IntegrityProblem::Stream(cause)));
        }
        visited?;
        drained.map_err(damaged)?;
        let digest = (kind == EntryKind::File).then(|| data.hasher.finalize().to_hex().to_string());
        self.entries.push((record, digest));
        Ok(())
    }

    fn read_index<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let name = &self.options.name;
        let bad = |msg: String| integrity(name, IntegrityProblem::Index(msg));
        if entry.size() > MAX_INDEX_BYTES {
            return Err(bad(format!("larger than {MAX_INDEX_BYTES} bytes")));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .take(MAX_INDEX_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| integrity(name, IntegrityProblem::Stream(e.to_string())))?;
        // serde's messages quote the offending text (`invalid type: string "…"`, `unknown field
        // `…``): a forged or damaged index could make an error print a secret. The kind and the
        // position are enough to find it.
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            let kind = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "not valid JSON"
                }
                serde_json::error::Category::Data | serde_json::error::Category::Io => {
                    "not the index format"
                }
            };
            bad(format!("{kind} at line {} column {}", e.line(), e.column()))
        })?;
        if index.format != INDEX_FORMAT {
            return Err(bad(format!(
                "format {} is not supported by this agentbak (it reads format {INDEX_FORMAT})",
                index.format
            )));
        }
        self.index = Some(index);
        Ok(())
    }

    fn finish(self) -> Result<ReadReport> {
        let index = self.index.ok_or_else(|| {
            integrity(
                &self.options.name,
                IntegrityProblem::Index(format!(
                    "`{INDEX_PATH}` is missing: the archive is truncated or not made by agentbak"
                )),
            )
        })?;
        let problems = compare(&index, &self.entries);
        Ok(ReadReport {
            index,
            // Filled in by `read_archive`, as are the size and digest.
            encrypted: false,
            size: 0,
            blake3: String::new(),
            entries: self.entries,
            problems,
        })
    }
}

/// Checks a tar path: UTF-8 (lossy decoding would have changed it otherwise), relative, no
/// `.`/`..`/empty segments, and either the index or under `state`. A trailing `/` of a folder
/// is dropped.
fn clean_path(raw: &str) -> std::result::Result<String, &'static str> {
    let path = raw.strip_suffix('/').unwrap_or(raw);
    if raw.contains('\u{FFFD}') || path.contains('\0') {
        return Err("the path is not UTF-8");
    }
    if path.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("`.`, `..` and empty path segments are not allowed");
    }
    if path == INDEX_PATH || path == "state" || path.starts_with("state/") {
        Ok(path.to_string())
    } else {
        Err("only `state/…` and `agentbak/index.json` belong in an agentbak archive")
    }
}

fn compare(index: &Index, entries: &[(ArchiveEntry, Option<String>)]) -> Vec<EntryProblem> {
    let by_path: HashMap<&str, _> = index.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut problems = Vec::new();
    for (entry, digest) in entries {
        let Some(indexed) = by_path.get(entry.path.as_str()) else {
            problems.push(EntryProblem::NotInIndex {
                path: entry.path.clone(),
            });
            continue;
        };
        let mut differs = |field: &'static str, indexed: String, found: String| {
            if indexed != found {
                // Digests and link targets are the index's text: never echoed (a forged index
                // could hold a value there).
                let shown = !matches!(field, "blake3" | "link");
                problems.push(EntryProblem::Differs {
                    path: entry.path.clone(),
                    field,
                    values: shown.then_some((found, indexed)),
                });
            }
        };
        differs(
            "type",
            indexed.kind.as_str().into(),
            entry.kind.as_str().into(),
        );
        differs(
            "mode",
            format!("{:o}", indexed.mode),
            format!("{:o}", entry.mode),
        );
        differs("size", indexed.size.to_string(), entry.size.to_string());
        differs("mtime", indexed.mtime.to_string(), entry.mtime.to_string());
        let none = || "none".to_string();
        differs(
            "blake3",
            indexed.blake3.clone().unwrap_or_else(none),
            digest.clone().unwrap_or_else(none),
        );
        differs(
            "link",
            indexed.link.clone().unwrap_or_else(none),
            entry.link.clone().unwrap_or_else(none),
        );
    }
    let present: HashSet<&str> = entries.iter().map(|(e, _)| e.path.as_str()).collect();
    for indexed in &index.entries {
        if !present.contains(indexed.path.as_str()) {
            problems.push(EntryProblem::Missing {
                path: indexed.path.clone(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::read_archive;

    #[test]
    fn clean_path_accepts_state_and_the_index_only() {
        assert_eq!(clean_path("state/").unwrap(), "state");
        assert_eq!(clean_path("state/a/b.json").unwrap(), "state/a/b.json");
        assert_eq!(clean_path(INDEX_PATH).unwrap(), INDEX_PATH);
        for bad in [
            "/etc/passwd",
            "state/../../x",
            "state/./a",
            "other/file",
            "agentbak/other.json",
            "state//a",
            "stately",
        ] {
            assert!(clean_path(bad).is_err(), "{bad}");
        }
    }

    /// Regression: a forged index made the error quote its text (serde's `invalid type:
    /// string "…"`), which could print a value planted there.
    #[test]
    fn an_invalid_index_is_reported_by_position_without_its_text() {
        let planted = "sk-live-PLANTED0123456789abcdef";
        for index in [
            format!(r#"{{"format": "{planted}"}}"#),
            format!(r#"{{"format": 1, "{planted}": 2}}"#),
            format!(r#"{{"format": 1, "entries": [{planted}]}}"#),
        ] {
            let mut tar = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_size(index.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            tar.append_data(&mut header, INDEX_PATH, index.as_bytes())
                .unwrap();
            let archive = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
            let options = ReadOptions {
                name: "forged".into(),
                ..ReadOptions::default()
            };
            let mut visit = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
            let err = read_archive(&archive[..], &options, &mut visit).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains("PLANTED"), "{text}");
            assert!(text.contains("line 1 column"), "{text}");
        }
    }
}
