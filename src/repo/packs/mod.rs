//! The pack layer of repository format 2: chunks stored once, in packs, found through index
//! files.
//!
//! ```text
//! <repo>/config.json                      format, repository id, chunker parameters
//! <repo>/packs/<2 hex>/<pack id>[.age]    blobs, concatenated (age-encrypted as a whole)
//! <repo>/index/<name>.json                which blobs each pack holds, where
//! ```
//!
//! **What.** A *chunk* is a piece of a file's redacted content, named by a keyed blake3 of its
//! bytes (a [`ChunkId`], computed by the caller). Its stored form, a *blob*, is one zstd frame
//! with its content size and checksum, which `zstd -d` decodes alone. A *pack* is blobs
//! concatenated, nothing else, closed once it holds [`PACK_TARGET`] bytes of blobs; its id
//! is the unkeyed blake3 of the file as stored (the `.age` bytes when encrypted), so a pack
//! is checked without a key. An *index file* lists each pack's blobs as
//! `[chunk id, offset, length, raw length]`, offsets into the pack's plaintext. The
//! repository's [`ChunkIndex`] is the union of all index files.
//!
//! **Why.** Snapshots of agent state change little from one to the next: chunks that are
//! already in the repository are not stored again, and packs keep the number of files low
//! (one per 16 MiB instead of one per chunk) for off-site syncs.
//!
//! **Writing and crashes.** [`PackWriter`] compresses chunks on a few threads and appends the
//! blobs to packs that nothing names: `O_TMPFILE` files in `tmp/`, or, where the file system
//! has none, files sealed to a key held only in memory (the primitives of `repo::pending`, the
//! same as a format-1 archive's). Nothing is readable under `packs/` or `index/` until
//! [`PendingPacks::commit`]: the leak gate may still refuse the snapshot. Commit links every
//! synced pack into `packs/` (never replacing a file: a pack of the same id holds the same
//! bytes), syncs the folders, and only then writes the index file, itself through an unnamed
//! file that is synced and linked. So:
//! - a crash before commit leaves nothing (the kernel frees unnamed files; a sealed file's key
//!   died with the process, and the next locked run empties `tmp/`);
//! - a crash during commit leaves packs that no index lists: unused, harmless, and removed
//!   by prune;
//! - an index file is only ever written after every pack it lists is durable, so a listed
//!   chunk is always readable.
//!
//! **Reading.** [`PackReader`] reads a blob back at its offset: plain packs with a positioned
//! read, encrypted ones through age's seekable stream reader, the last pack kept open so that
//! consecutive blobs of a pack do not decrypt its header again. Index files, packs and the
//! configuration are untrusted input: every length and offset is bounded and checked before
//! use, and a malformed file is an error that names it, never a panic.

mod index;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use index::{ChunkIndex, write_index_file};
pub use reader::PackReader;
pub use writer::{PackWriter, PendingPacks, WriterStats};

use super::pending::{ALL_LINKS, Expect, HiddenFile, Way};
use super::sync_dir;
use crate::archive::{IntegrityError, IntegrityProblem};
use crate::error::{Error, Result};

/// A chunk's id: the keyed blake3 of its plaintext bytes (64 hex in JSON, 32 bytes in refs).
pub type ChunkId = [u8; 32];

/// Bytes of blobs after which a pack is closed (16 MiB).
pub const PACK_TARGET: u64 = 16 << 20;

/// Largest blob (stored bytes) an index file may list: a compressed chunk of
/// [`MAX_RAW_LENGTH`] bytes is at most a few KiB longer.
pub const MAX_BLOB_LENGTH: u32 = 4 << 20;

/// Largest chunk (raw bytes) the writer takes and an index file may list: the largest
/// chunker maximum a configuration may set (1 MiB, the default).
pub const MAX_RAW_LENGTH: u32 = 1 << 20;

/// The repository format these modules write.
pub const FORMAT: u32 = 2;

/// File name ending of an encrypted pack.
pub const PACK_ENCRYPTED_SUFFIX: &str = ".age";

/// Lowercase hex of a chunk id (64 characters).
pub fn hex(id: &ChunkId) -> String {
    crate::archive::hex(id)
}

/// The chunk id of 64 hex digits (lowercase only: ids are written so, and one spelling per
/// id keeps file names and index entries unique); `None` for anything else.
pub fn parse_hex(s: &str) -> Option<ChunkId> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut id = [0u8; 32];
    for (out, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(id)
}

/// `config.json` of a format-2 repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Always [`FORMAT`].
    pub format: u32,
    /// 32 hex: a random id, made when the repository got its first format-2 snapshot (the
    /// local files cache is kept per repository id).
    pub id: String,
    /// How files are cut into chunks.
    pub chunker: ChunkerParams,
}

/// FastCDC parameters, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk (but a file's last).
    pub min: u32,
    /// Average chunk.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 64 KiB, 256 KiB, 1 MiB.
    fn default() -> Self {
        ChunkerParams {
            min: 64 << 10,
            avg: 256 << 10,
            max: 1 << 20,
        }
    }
}

impl ChunkerParams {
    /// Why these parameters cannot be used, if they cannot: outside FastCDC 2020's ranges
    /// (where it would panic), out of order, or a maximum above [`MAX_RAW_LENGTH`].
    fn problem(&self) -> Option<String> {
        use fastcdc::v2020 as cdc;
        let ChunkerParams { min, avg, max } = *self;
        let within = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v);
        if !within(min, cdc::MINIMUM_MIN, cdc::MINIMUM_MAX)
            || !within(avg, cdc::AVERAGE_MIN, cdc::AVERAGE_MAX)
            || !within(max, cdc::MAXIMUM_MIN, cdc::MAXIMUM_MAX)
        {
            return Some(format!(
                "chunker {{min: {min}, avg: {avg}, max: {max}}} is outside FastCDC's ranges"
            ));
        }
        if !(min <= avg && avg <= max) {
            return Some(format!(
                "chunker needs min <= avg <= max, found {{min: {min}, avg: {avg}, max: {max}}}"
            ));
        }
        if max > MAX_RAW_LENGTH {
            return Some(format!(
                "chunker max {max} is above the largest chunk a repository holds \
                 ({MAX_RAW_LENGTH})"
            ));
        }
        None
    }
}

/// The configuration file's name.
const CONFIG_FILE: &str = "config.json";

impl RepoConfig {
    /// The configuration of the repository at `root`, made (with a new random id and the
    /// default chunker) when it has none. Two runs that race both end with the one that was
    /// linked first: the file is never replaced.
    pub fn load_or_create(root: &Path) -> Result<RepoConfig> {
        if let Some(config) = RepoConfig::load(root)? {
            return Ok(config);
        }
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| Error::io(root, std::io::Error::other(e.to_string())))?;
        let config = RepoConfig {
            format: FORMAT,
            id: crate::archive::hex(&random),
            chunker: ChunkerParams::default(),
        };
        let mut json = serde_json::to_vec_pretty(&config).expect("a config serializes");
        json.push(b'\n');
        make_dirs(root, &[])?;
        place_new_file(root, &root.join(CONFIG_FILE), &json, true)?;
        sync_dir(root)?;
        RepoConfig::load(root)?.ok_or_else(|| {
            Error::io(
                root.join(CONFIG_FILE),
                std::io::Error::new(std::io::ErrorKind::NotFound, "vanished after creation"),
            )
        })
    }

    /// The configuration of the repository at `root`; `None` when it has no `config.json`
    /// (a format-1 repository, or none yet). A file that does not parse, or names another
    /// format, an id that is not 32 hex or unusable chunker parameters, is an error naming it.
    pub fn load(root: &Path) -> Result<Option<RepoConfig>> {
        let path = root.join(CONFIG_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = |reason: String| malformed(&path, reason);
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let config: RepoConfig =
            serde_path_to_error::deserialize(&mut de).map_err(|e| bad(e.to_string()))?;
        if config.format != FORMAT {
            return Err(bad(format!(
                "format {} (this version reads format {FORMAT})",
                config.format
            )));
        }
        let id_ok = config.id.len() == 32
            && config
                .id
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if !id_ok {
            return Err(bad("id: expected 32 lowercase hex digits".into()));
        }
        if let Some(problem) = config.chunker.problem() {
            return Err(bad(problem));
        }
        Ok(Some(config))
    }
}

/// Every file under `packs/<2 hex>/` of the repository at `root` (listed or not), with its
/// size: for `prune` (the files no index lists) and `stats`.
pub fn pack_files(root: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let dir = root.join("packs");
    let folders = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for folder in folders {
        let folder = folder.map_err(|e| Error::io(&dir, e))?.path();
        if !folder.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))? {
            let entry = entry.map_err(|e| Error::io(&folder, e))?;
            let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
            if meta.is_file() {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    Ok(out)
}

/// A pack as an index file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// 64 hex: the blake3 of the pack file as stored.
    pub id: String,
    /// The pack file's size as stored.
    pub size: u64,
    /// Whether the pack is age-encrypted (`<id>.age`).
    pub encrypted: bool,
    /// Its blobs, in the order written.
    pub blobs: Vec<Blob>,
}

impl PackInfo {
    /// The pack's path in the repository at `root`: `packs/<id[..2]>/<id>[.age]`. The id is
    /// checked hex (by the index parser or the writer), so the path stays under `packs/`;
    /// an id of another kind, from a caller that made its own `PackInfo`, gives a path that
    /// names no pack.
    pub fn path(&self, root: &Path) -> PathBuf {
        let suffix = if self.encrypted {
            PACK_ENCRYPTED_SUFFIX
        } else {
            ""
        };
        root.join("packs")
            .join(self.id.get(..2).unwrap_or("--"))
            .join(format!("{}{suffix}", self.id))
    }
}

/// One blob of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    /// The chunk it stores.
    pub id: ChunkId,
    /// Where it starts in the pack's plaintext.
    pub offset: u64,
    /// Its stored (compressed) length.
    pub length: u32,
    /// The chunk's length (decompressed).
    pub raw_length: u32,
}

/// An error about a repository file that is not what it should be (exit code 5).
fn malformed(path: &Path, reason: String) -> Error {
    Error::Integrity(IntegrityError {
        archive: path.display().to_string(),
        problem: IntegrityProblem::Index(reason),
    })
}

/// A repository file that is damaged or missing, at `path`.
fn damaged(path: &Path, reason: String) -> Error {
    Error::Integrity(IntegrityError {
        archive: path.display().to_string(),
        problem: IntegrityProblem::Stream(reason),
    })
}

/// Creates `root/tmp` and the folders `subdirs` of `root` (`0700`) when missing, and syncs
/// `root` when one was made.
fn make_dirs(root: &Path, subdirs: &[&str]) -> Result<()> {
    let mut made = false;
    for dir in std::iter::once("tmp").chain(subdirs.iter().copied()) {
        let dir = root.join(dir);
        if dir.is_dir() {
            continue;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        made = true;
    }
    if made {
        sync_dir(root)?;
    }
    Ok(())
}

/// Writes `bytes` as the new file `target` (`0600`): into an unnamed file in `root/tmp`,
/// synced, then linked. Never replaces a file: one already at `target` is an error unless
/// `existing_ok`. The caller syncs `target`'s folder.
fn place_new_file(root: &Path, target: &Path, bytes: &[u8], existing_ok: bool) -> Result<()> {
    let tmp = root.join("tmp");
    let name = target
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut file = HiddenFile::create(&tmp, &format!("new-{name}"), Way::Unnamed)?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    let blake3 = blake3::hash(bytes).to_hex();
    let expect = Expect {
        name: &name,
        promised_by: "what was written",
        size: bytes.len() as u64,
        blake3: blake3.as_str(),
        existing_ok,
    };
    file.close()?.place(target, &expect, ALL_LINKS)
}
