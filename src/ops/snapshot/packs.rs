//! The body of a snapshot in the incremental repository (format 2): the tar stream's file
//! contents cut into chunks, each chunk stored once.
//!
//! The archive writer runs as for an archive (the leak gate sees the same tar stream), with
//! [`Chunker`] as its body: headers, padding and the index are dropped (the tree keeps what
//! they say); each file's content is cut with FastCDC, every chunk gets a keyed id, and the
//! chunks the repository does not hold yet go to the pack writer. A file the parent snapshot
//! holds unchanged is not read: its chunk list is taken from the files cache (`cache`).
//!
//! Nothing is named in the repository before the caller commits, which it does only after the
//! gate passed: the packs wait unnamed (`repo::packs::PendingPacks`).

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use fastcdc::v2020::FastCDC;

use crate::archive::Body;
use crate::archive::tree::{TREE_FORMAT, Tree, TreeFile};
use crate::archive::{EntryKind, Index, TreeRef};
use crate::error::{Error, Result};
use crate::repo::packs::{ChunkId, ChunkIndex, ChunkerParams, PackWriter, PendingPacks, hex};

/// Content gathered before it is cut: a few chunks of the largest size, so that a cut is
/// always found before the buffer is full.
const WINDOW: usize = 4 << 20;

/// The derivation context of the chunk-id key (from the capture key; never stored).
pub const CHUNK_KEY_CONTEXT: &str = "agentbak 2026-12 chunk ids";

/// The chunk-id key derived from the capture key.
pub fn chunk_key(capture_key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(CHUNK_KEY_CONTEXT, capture_key)
}

/// Which key made a snapshot's chunk ids: 16 hex digits of a keyed hash of a fixed text.
pub fn key_id(key: &[u8; 32]) -> String {
    blake3::keyed_hash(key, b"agentbak key check").to_hex()[..16].to_string()
}

/// The body that cuts file contents into chunks and stores the new ones.
pub struct Chunker<'r> {
    key: [u8; 32],
    params: ChunkerParams,
    index: &'r ChunkIndex,
    writer: PackWriter<'r>,
    /// Per file, in order, its chunks.
    files: Vec<Vec<ChunkId>>,
    /// Every chunk the snapshot refers to.
    refs: BTreeSet<ChunkId>,
    /// Inside a file's content: its bytes not cut yet.
    pending: Option<Vec<u8>>,
    /// A buffer for `write_from`.
    scratch: Vec<u8>,
}

impl<'r> Chunker<'r> {
    /// A chunker over the repository's chunks `index`, storing new chunks with `writer`.
    pub fn new(
        key: [u8; 32],
        params: ChunkerParams,
        index: &'r ChunkIndex,
        writer: PackWriter<'r>,
    ) -> Chunker<'r> {
        Chunker {
            key,
            params,
            index,
            writer,
            files: Vec::new(),
            refs: BTreeSet::new(),
            pending: None,
            scratch: Vec::new(),
        }
    }

    /// Takes a file's chunks from the parent snapshot, when the repository still holds every
    /// one; returns whether it did.
    pub fn adopt(&mut self, chunks: &[ChunkId]) -> bool {
        if !chunks.iter().all(|c| self.index.contains(c)) {
            return false;
        }
        self.refs.extend(chunks.iter().copied());
        self.files.push(chunks.to_vec());
        true
    }

    /// Cuts `data` (the start of a chunk), stores each whole chunk, and returns how many bytes
    /// at its end are not cut yet (all of them at the end of a file, when `last`).
    fn cut(&mut self, data: &[u8], last: bool) -> io::Result<usize> {
        let ChunkerParams { min, avg, max } = self.params;
        let mut done = 0;
        for chunk in FastCDC::new(data, min, avg, max) {
            let end = chunk.offset + chunk.length;
            // The last piece of the window may end only because the window does.
            if end == data.len() && !last {
                break;
            }
            self.store(&data[chunk.offset..end])?;
            done = end;
        }
        Ok(data.len() - done)
    }

    fn store(&mut self, chunk: &[u8]) -> io::Result<()> {
        let id = *blake3::keyed_hash(&self.key, chunk).as_bytes();
        self.refs.insert(id);
        self.files
            .last_mut()
            .expect("content is written between begin_content and end_content")
            .push(id);
        if !self.index.contains(&id) {
            self.writer
                .add(id, chunk.to_vec())
                .map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Stores `bytes` as a stream of its own (the tree) and returns its chunks.
    fn store_stream(&mut self, bytes: &[u8]) -> io::Result<Vec<ChunkId>> {
        self.files.push(Vec::new());
        if !bytes.is_empty() {
            self.cut(bytes, true)?;
        }
        Ok(self.files.pop().expect("just pushed"))
    }

    /// Builds the tree of `index` from the chunk lists, stores it, closes the packs.
    pub fn finish(mut self, index: Index) -> Result<Finished> {
        let file_paths: Vec<&str> = index
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.path.as_str())
            .collect();
        if file_paths.len() != self.files.len() {
            return Err(Error::Entry {
                path: "<tree>".to_string(),
                reason: format!(
                    "{} files in the index but {} chunk lists",
                    file_paths.len(),
                    self.files.len()
                ),
            });
        }
        let files = file_paths
            .iter()
            .zip(&self.files)
            .map(|(path, chunks)| {
                (
                    path.to_string(),
                    TreeFile {
                        chunks: chunks.iter().map(hex).collect(),
                    },
                )
            })
            .collect();
        let tree = Tree {
            format: TREE_FORMAT,
            index,
            files,
        };
        let mut json = serde_json::to_vec(&tree).expect("a tree always serializes");
        json.push(b'\n');
        let tree_chunks = self
            .store_stream(&json)
            .map_err(|e| Error::io("<tree>", e))?;
        let tree_ref = TreeRef {
            chunks: tree_chunks.iter().map(hex).collect(),
            size: json.len() as u64,
            blake3: blake3::hash(&json).to_hex().to_string(),
        };
        let pending = self.writer.finish()?;
        // Only the finished writer counts the chunks that were still being compressed.
        let stats = pending.stats();
        Ok(Finished {
            tree,
            tree_ref,
            refs: self.refs,
            pending,
            new_chunks: stats.chunks,
            new_bytes: stats.raw_bytes,
            stored_bytes: stats.stored_bytes,
            packs: stats.packs,
        })
    }
}

/// A snapshot's chunks, stored but not yet committed.
pub struct Finished {
    /// The tree.
    pub tree: Tree,
    /// Where the tree is.
    pub tree_ref: TreeRef,
    /// Every chunk the snapshot refers to, the tree's included.
    pub refs: BTreeSet<ChunkId>,
    /// The new packs, unnamed until committed.
    pub pending: PendingPacks,
    /// Chunks added.
    pub new_chunks: u64,
    /// Their bytes before compression.
    pub new_bytes: u64,
    /// Their bytes as stored.
    pub stored_bytes: u64,
    /// Packs added.
    pub packs: u64,
}

impl Finished {
    /// The refs file's bytes: the sorted chunk ids, 32 bytes each.
    pub fn refs_bytes(&self) -> Vec<u8> {
        self.refs.iter().flatten().copied().collect()
    }
}

impl Write for Chunker<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(mut pending) = self.pending.take() else {
            // Headers, padding and the index: the tree keeps what they say.
            return Ok(buf.len());
        };
        let result = if pending.is_empty() && buf.len() >= WINDOW {
            // A whole file in one piece: cut it where it lies.
            self.cut(buf, false).map(|tail| {
                pending.extend_from_slice(&buf[buf.len() - tail..]);
            })
        } else {
            pending.extend_from_slice(buf);
            if pending.len() >= WINDOW {
                self.cut(&pending, false).map(|tail| {
                    let from = pending.len() - tail;
                    pending.copy_within(from.., 0);
                    pending.truncate(tail);
                })
            } else {
                Ok(())
            }
        };
        self.pending = Some(pending);
        result.map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'r> Body for Chunker<'r> {
    type Closed = Chunker<'r>;

    fn write_from(
        &mut self,
        reader: &mut dyn Read,
        observe: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(1 << 20, 0);
        let n = loop {
            match reader.read(&mut scratch) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                read => break read?,
            }
        };
        let result = observe(&scratch[..n]).and_then(|()| self.write_all(&scratch[..n]));
        self.scratch = scratch;
        result.map(|()| n)
    }

    fn begin_content(&mut self, _size: u64) -> io::Result<()> {
        self.files.push(Vec::new());
        self.pending = Some(Vec::new());
        Ok(())
    }

    fn end_content(&mut self) -> io::Result<()> {
        let pending = self.pending.take().unwrap_or_default();
        if !pending.is_empty() {
            self.cut(&pending, true)?;
        }
        Ok(())
    }

    fn close(self) -> io::Result<Chunker<'r>> {
        Ok(self)
    }
}
