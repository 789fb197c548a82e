//! The tree of a snapshot in the incremental repository (format 2): the format-1 index, and
//! per file the chunks its content is made of.
//!
//! The tree is itself stored as chunks (cut like any content, so the tree of an hourly
//! snapshot that changed little shares most of its chunks with the previous one); the
//! sidecar names them, with the tree's size and blake3, and its signature covers those. A
//! reader rebuilds each file from its chunks and checks it against the index's blake3, so the
//! chain from a signed sidecar to every byte restored holds without any key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::index::{EntryKind, Index};

/// The tree format written by this release.
pub const TREE_FORMAT: u32 = 2;

/// Largest tree accepted: as large as the largest index, plus its chunk lists.
pub const MAX_TREE_BYTES: u64 = 2 * super::MAX_INDEX_BYTES;

/// A snapshot's tree; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// [`TREE_FORMAT`].
    pub format: u32,
    /// Exactly what a format-1 archive carries as `agentbak/index.json`.
    pub index: Index,
    /// Per file entry of the index (by archive path), its chunks.
    pub files: BTreeMap<String, TreeFile>,
}

/// A file's content as chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeFile {
    /// Chunk ids (64 hex digits), in order; empty for an empty file.
    pub chunks: Vec<String>,
}

impl Tree {
    /// What is wrong with a tree read from a repository (untrusted): a file entry without
    /// chunks, chunks for a path that is no file entry, a malformed chunk id.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.format != TREE_FORMAT {
            out.push(format!(
                "the tree's format is {}, not {TREE_FORMAT}",
                self.format
            ));
        }
        for e in &self.index.entries {
            if e.kind == EntryKind::File && !self.files.contains_key(&e.path) {
                out.push(format!("`{}` has no chunk list", e.path));
            }
        }
        for (path, file) in &self.files {
            let is_file = self
                .index
                .entry(path)
                .is_some_and(|e| e.kind == EntryKind::File);
            if !is_file {
                out.push(format!(
                    "`{path}` has a chunk list but is no file of the index"
                ));
            }
            if file.chunks.iter().any(|c| !is_chunk_id(c)) {
                out.push(format!("`{path}` lists a malformed chunk id"));
            }
        }
        out
    }
}

/// Whether `s` is 64 lowercase hex digits.
pub fn is_chunk_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
