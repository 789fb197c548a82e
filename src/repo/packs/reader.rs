//! Reading blobs back out of packs.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zstd::zstd_safe;

use super::{Blob, ChunkId, ChunkIndex, PackInfo, damaged, hex};
use crate::archive::{Identity, IntegrityError, IntegrityProblem};
use crate::error::{Error, Result};

/// Bytes read from an encrypted pack at a time: age decrypts 64 KiB chunks.
const AGE_BUFFER: usize = 64 << 10;

/// Reads blobs back, keeping the last pack open (so that consecutive blobs of one encrypted
/// pack do not decrypt its header each time).
pub struct PackReader<'a> {
    root: PathBuf,
    index: &'a ChunkIndex,
    identity: Option<&'a Identity>,
    open: Option<OpenPack>,
}

/// The pack read last.
struct OpenPack {
    id: String,
    path: PathBuf,
    source: Source,
}

enum Source {
    Plain(File),
    Age(Box<age::stream::StreamReader<BufReader<File>>>),
}

impl<'a> PackReader<'a> {
    /// A reader of the repository at `root`, finding chunks through `index`; `identity`
    /// decrypts encrypted packs.
    pub fn new(
        root: &Path,
        index: &'a ChunkIndex,
        identity: Option<&'a Identity>,
    ) -> PackReader<'a> {
        PackReader {
            root: root.to_path_buf(),
            index,
            identity,
            open: None,
        }
    }

    /// The stored zstd frame of chunk `id`, exactly as in the pack (decrypted), checked to be
    /// one frame of the blob's length that states the chunk's raw length.
    ///
    /// The first copy listed is read; when it cannot be (its pack is missing or damaged), any
    /// other copy an index file lists serves, and only when none does is the first copy's
    /// error returned.
    pub fn read_blob(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        self.read_any(id).map(|(bytes, _, _)| bytes)
    }

    /// [`PackReader::read_blob`], with the blob that was read and its pack's path.
    fn read_any(&mut self, id: &ChunkId) -> Result<(Vec<u8>, Blob, PathBuf)> {
        let index = self.index;
        let (pack, blob) = index.locate(id).ok_or_else(|| {
            damaged(
                &self.root.join("index"),
                format!("no index file lists chunk {}", hex(id)),
            )
        })?;
        let first = match self.read_at(pack, blob, id) {
            Ok(bytes) => return Ok((bytes, *blob, pack.path(&self.root))),
            Err(e) => e,
        };
        let others = index
            .packs()
            .filter(|p| p.id != pack.id)
            .filter_map(|p| p.blobs.iter().find(|b| b.id == *id).map(|b| (p, b)));
        for (pack, blob) in others {
            if let Ok(bytes) = self.read_at(pack, blob, id) {
                tracing::info!("chunk {}: read from another copy ({first})", hex(id));
                return Ok((bytes, *blob, pack.path(&self.root)));
            }
        }
        Err(first)
    }

    /// The blob `blob` of `pack`, which stores chunk `id`.
    fn read_at(&mut self, pack: &PackInfo, blob: &Blob, id: &ChunkId) -> Result<Vec<u8>> {
        let open = self.open_pack(pack, id)?;
        let mut bytes = vec![0; blob.length as usize];
        let read = match &mut open.source {
            Source::Plain(file) => file.read_exact_at(&mut bytes, blob.offset),
            Source::Age(stream) => stream
                .seek(SeekFrom::Start(blob.offset))
                .and_then(|_| stream.read_exact(&mut bytes)),
        };
        if let Err(e) = read {
            let path = open.path.clone();
            // A reader whose position is unknown is not kept.
            self.open = None;
            return Err(read_error(&path, pack, blob, e));
        }
        check_frame(&bytes, blob).map_err(|reason| {
            damaged(
                &open.path,
                format!(
                    "the blob of chunk {} at offset {}: {reason}",
                    hex(id),
                    blob.offset
                ),
            )
        })?;
        Ok(bytes)
    }

    /// Chunk `id`, decompressed; its length is checked against the index's raw length and
    /// its content against the frame's checksum.
    pub fn read_chunk(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        let (blob, stored, path) = self.read_any(id)?;
        let mut raw = Vec::with_capacity(stored.raw_length as usize);
        let decoded = zstd_safe::decompress(&mut raw, &blob);
        match decoded {
            Ok(n) if n == stored.raw_length as usize => Ok(raw),
            Ok(n) => Err(damaged(
                &path,
                format!(
                    "chunk {} decompresses to {n} bytes, the index says {}",
                    hex(id),
                    stored.raw_length
                ),
            )),
            Err(code) => Err(damaged(
                &path,
                format!(
                    "chunk {} does not decompress: {}",
                    hex(id),
                    zstd_safe::get_error_name(code)
                ),
            )),
        }
    }

    /// The open pack `pack`, opening it (and dropping the one open before) when needed.
    fn open_pack(&mut self, pack: &PackInfo, wanted: &ChunkId) -> Result<&mut OpenPack> {
        if self.open.as_ref().is_some_and(|open| open.id == pack.id) {
            return Ok(self.open.as_mut().expect("checked above"));
        }
        self.open = None;
        let path = pack.path(&self.root);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(damaged(
                    &path,
                    format!("the pack is missing (it holds chunk {})", hex(wanted)),
                ));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if size != pack.size {
            return Err(damaged(
                &path,
                format!("the pack holds {size} bytes, the index says {}", pack.size),
            ));
        }
        let source = if pack.encrypted {
            let identity = self.identity.ok_or_else(|| Error::Identity {
                origin: path.display().to_string(),
                reason: "the pack is encrypted: pass --identity FILE (or set AGENTBAK_IDENTITY)"
                    .into(),
            })?;
            let undecryptable = |e: age::DecryptError| {
                Error::Integrity(IntegrityError {
                    archive: path.display().to_string(),
                    problem: IntegrityProblem::Decrypt(e.to_string()),
                })
            };
            let stream = age::Decryptor::new_buffered(BufReader::with_capacity(AGE_BUFFER, file))
                .map_err(undecryptable)?
                .decrypt(identity.as_dyn())
                .map_err(undecryptable)?;
            Source::Age(Box::new(stream))
        } else {
            Source::Plain(file)
        };
        Ok(self.open.insert(OpenPack {
            id: pack.id.clone(),
            path,
            source,
        }))
    }
}

impl std::fmt::Debug for PackReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackReader")
            .field("root", &self.root)
            .field("open", &self.open.as_ref().map(|o| &o.path))
            .finish_non_exhaustive()
    }
}

/// The error of a failed read of `blob` from `pack` at `path`.
fn read_error(path: &Path, pack: &PackInfo, blob: &Blob, e: io::Error) -> Error {
    let end = blob.offset + u64::from(blob.length);
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return damaged(
            path,
            format!(
                "short read: the pack ends before byte {end} (chunk {} at offset {})",
                hex(&blob.id),
                blob.offset
            ),
        );
    }
    if pack.encrypted && e.kind() == io::ErrorKind::InvalidData {
        return Error::Integrity(IntegrityError {
            archive: path.display().to_string(),
            problem: IntegrityProblem::Decrypt(e.to_string()),
        });
    }
    Error::io(path, e)
}

/// Whether `bytes` are exactly one zstd frame that states `blob.raw_length` as its size.
fn check_frame(bytes: &[u8], blob: &Blob) -> std::result::Result<(), String> {
    match zstd_safe::find_frame_compressed_size(bytes) {
        Ok(n) if n == bytes.len() => {}
        Ok(n) => return Err(format!("a zstd frame of {n} bytes, not {}", bytes.len())),
        Err(code) => {
            return Err(format!(
                "not a zstd frame ({})",
                zstd_safe::get_error_name(code)
            ));
        }
    }
    match zstd_safe::get_frame_content_size(bytes) {
        Ok(Some(n)) if n == u64::from(blob.raw_length) => Ok(()),
        Ok(Some(n)) => Err(format!(
            "the frame holds {n} bytes, the index says {}",
            blob.raw_length
        )),
        _ => Err("the frame does not state its size".into()),
    }
}
