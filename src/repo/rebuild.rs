//! A snapshot's content as one archive stream, whatever its format: the archive file of a
//! format-1 snapshot, or, for a format-2 snapshot, the archive rebuilt from its tree and
//! chunks.
//!
//! The rebuilt stream is a format-1 `tar.zst`: the tree's index entries in order, each file's
//! content made of its chunks' stored zstd frames, copied from the packs as they are, and the
//! tar headers, padding and `agentbak/index.json` as small zstd frames between them.
//! Concatenated zstd frames are one zstd stream, so the archive reader (and `zstd -d | tar
//! -x`, for `export`) takes it as it is, decompresses the chunks on every core, and checks
//! every file against the index's blake3. The tree itself is checked against the sidecar's
//! size and blake3 first, so a signed sidecar vouches for every byte restored.
//!
//! The stream is produced on its own thread, a few frames ahead of the reader, so reading and
//! decrypting the packs overlaps with decompression and extraction.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::Repository;
use super::packs::{ChunkIndex, PackReader, parse_hex};
use crate::archive::tree::{MAX_TREE_BYTES, Tree};
use crate::archive::{
    EntryKind, INDEX_PATH, Identity, IntegrityError, IntegrityProblem, SIDECAR_FORMAT_PACKS,
    Sidecar, wellformed,
};
use crate::error::{Error, Result};

/// Frames produced ahead of the reader.
const AHEAD: usize = 16;

/// Plain bytes (headers, padding) gathered into one frame at most.
const PLAIN_FRAME: usize = 1 << 20;

/// Runs `f` on the archive stream of the snapshot `sidecar` describes.
pub fn with_content<T>(
    repo: &Repository,
    sidecar: &Sidecar,
    identity: Option<&Identity>,
    f: impl FnOnce(&mut (dyn Read + Send)) -> Result<T>,
) -> Result<T> {
    if sidecar.format != SIDECAR_FORMAT_PACKS {
        let mut file = repo.open_archive(sidecar)?;
        return f(&mut file);
    }
    let index = ChunkIndex::load(repo.root())?;
    let tree = read_tree(repo, &index, sidecar, identity)?;
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(AHEAD);
        let index = &index;
        let tree = &tree;
        let producer = scope.spawn(move || produce(repo, index, tree, identity, &tx));
        let mut reader = Frames {
            rx,
            piece: Vec::new(),
            at: 0,
        };
        let result = f(&mut reader);
        drop(reader);
        let produced = producer
            .join()
            .expect("the rebuilding thread does not panic");
        // The producer's own error explains a failed read best (a missing pack).
        match (result, produced) {
            (Err(_), Err(e)) => Err(e),
            (result, _) => result,
        }
    })
}

/// The tree of a format-2 snapshot, checked against its sidecar and its own rules.
pub fn read_tree(
    repo: &Repository,
    index: &ChunkIndex,
    sidecar: &Sidecar,
    identity: Option<&Identity>,
) -> Result<Tree> {
    let bad = |problem: String| -> Error {
        IntegrityError {
            archive: sidecar.id.clone(),
            problem: IntegrityProblem::Tree(problem),
        }
        .into()
    };
    let Some(tree_ref) = &sidecar.tree else {
        return Err(bad("the sidecar names no tree".to_string()));
    };
    if tree_ref.size > MAX_TREE_BYTES {
        return Err(bad(format!(
            "the tree is larger than {MAX_TREE_BYTES} bytes"
        )));
    }
    let mut reader = PackReader::new(repo.root(), index, identity);
    let mut json = Vec::with_capacity(tree_ref.size as usize);
    for hex in &tree_ref.chunks {
        let id = parse_hex(hex).ok_or_else(|| bad("a tree chunk id is malformed".to_string()))?;
        json.extend_from_slice(&reader.read_chunk(&id)?);
        if json.len() as u64 > tree_ref.size {
            return Err(bad("the tree is longer than its sidecar says".to_string()));
        }
    }
    if json.len() as u64 != tree_ref.size
        || blake3::hash(&json).to_hex().as_str() != tree_ref.blake3
    {
        return Err(bad(
            "the tree differs from its sidecar's size and blake3".to_string()
        ));
    }
    let tree: Tree =
        serde_json::from_slice(&json).map_err(|e| bad(format!("the tree is not a tree: {e}")))?;
    let mut problems = tree.problems();
    problems.extend(wellformed::index_problems(&tree.index));
    if tree.index.snapshot_id != sidecar.id {
        problems.push("the tree belongs to another snapshot".to_string());
    }
    if let Some(first) = problems.first() {
        return Err(bad(first.clone()));
    }
    Ok(tree)
}

/// Writes the archive stream of `tree` into `tx`, frame by frame.
fn produce(
    repo: &Repository,
    index: &ChunkIndex,
    tree: &Tree,
    identity: Option<&Identity>,
    tx: &SyncSender<io::Result<Vec<u8>>>,
) -> Result<()> {
    let mut out = Out {
        tx,
        gone: false,
        tar: tar::Builder::new(Vec::new()),
        compressor: zstd::bulk::Compressor::new(1).map_err(|e| Error::io("<zstd>", e))?,
    };
    out.compressor
        .include_checksum(true)
        .map_err(|e| Error::io("<zstd>", e))?;
    let mut packs = PackReader::new(repo.root(), index, identity);
    let result = (|| -> Result<()> {
        for entry in &tree.index.entries {
            if out.gone {
                // The reader stopped (it failed, or refused the stream): nothing more to read.
                return Ok(());
            }
            let meta = crate::archive::EntryMeta {
                mode: entry.mode,
                mtime: entry.mtime,
            };
            let io_err = |e| Error::io(&entry.path, e);
            match entry.kind {
                EntryKind::Dir => {
                    let mut h = crate::archive::tar_header(tar::EntryType::Directory, meta, 0);
                    out.tar
                        .append_data(&mut h, &entry.path, io::empty())
                        .map_err(io_err)?;
                }
                EntryKind::Symlink => {
                    let mut h = crate::archive::tar_header(tar::EntryType::Symlink, meta, 0);
                    let link = entry.link.as_deref().unwrap_or_default();
                    out.tar
                        .append_link(&mut h, &entry.path, link)
                        .map_err(io_err)?;
                }
                EntryKind::File => {
                    let mut h =
                        crate::archive::tar_header(tar::EntryType::Regular, meta, entry.size);
                    out.tar
                        .append_data(&mut h, &entry.path, io::empty())
                        .map_err(io_err)?;
                    let chunks = tree
                        .files
                        .get(&entry.path)
                        .map(|f| f.chunks.as_slice())
                        .unwrap_or_default();
                    if !chunks.is_empty() {
                        out.flush_plain()?;
                    }
                    for hex in chunks {
                        let id = parse_hex(hex).expect("the tree's chunk ids were checked");
                        let blob = packs.read_blob(&id)?;
                        if !out.send(blob) {
                            return Ok(());
                        }
                    }
                    let pad = (512 - entry.size % 512) % 512;
                    out.tar
                        .get_mut()
                        .extend(std::iter::repeat_n(0, pad as usize));
                }
            }
            if out.tar.get_ref().len() >= PLAIN_FRAME {
                out.flush_plain()?;
            }
        }
        let (mut h, json) = crate::archive::index_member(&tree.index);
        out.tar
            .append_data(&mut h, INDEX_PATH, json.as_slice())
            .map_err(|e| Error::io(INDEX_PATH, e))?;
        out.tar.finish().map_err(|e| Error::io(INDEX_PATH, e))?;
        out.flush_plain()
    })();
    if let Err(e) = &result {
        // The reader sees the stream break where the chunk is missing.
        let _ = tx.send(Err(io::Error::other(e.to_string())));
    }
    result
}

struct Out<'t> {
    tx: &'t SyncSender<io::Result<Vec<u8>>>,
    /// Whether the reader is gone.
    gone: bool,
    /// Headers and padding not sent yet (the builder writes into its `Vec`).
    tar: tar::Builder<Vec<u8>>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl Out<'_> {
    /// Sends a frame; false when the reader is gone.
    fn send(&mut self, frame: Vec<u8>) -> bool {
        self.gone = self.gone || self.tx.send(Ok(frame)).is_err();
        !self.gone
    }

    /// Sends the plain bytes gathered as one frame.
    fn flush_plain(&mut self) -> Result<()> {
        let plain = std::mem::take(self.tar.get_mut());
        if plain.is_empty() {
            return Ok(());
        }
        let frame = self
            .compressor
            .compress(&plain)
            .map_err(|e| Error::io("<zstd>", e))?;
        self.send(frame);
        Ok(())
    }
}

/// The reading end: frames as one byte stream.
struct Frames {
    rx: Receiver<io::Result<Vec<u8>>>,
    piece: Vec<u8>,
    at: usize,
}

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.piece.len() {
            match self.rx.recv() {
                Ok(piece) => {
                    self.piece = piece?;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
