//! Index files (`index/<name>.json`) and the chunk index, their union.
//!
//! An index file is untrusted input: it is parsed into bounded numbers and checked hex
//! before anything uses it (a pack id becomes a path; an offset and a length become a read).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Blob, ChunkId, FORMAT, MAX_BLOB_LENGTH, MAX_RAW_LENGTH, PackInfo, hex, make_dirs, malformed,
    parse_hex, place_new_file,
};
use crate::error::{Error, Result};
use crate::repo::sync_dir;

/// An index file as JSON: `{"format": 2, "packs": [...]}`, as written.
#[derive(Serialize)]
struct IndexFile {
    format: u32,
    packs: Vec<PackJson<String>>,
}

/// An index file as read: the hex ids are borrowed from the file's bytes while it is parsed,
/// so that a million chunk ids are not a million allocations. (An id with a JSON escape is
/// refused: no honest index file has one.)
#[derive(Deserialize)]
struct IndexFileIn<'a> {
    format: u32,
    #[serde(borrow)]
    packs: Vec<PackJson<&'a str>>,
}

/// A pack as JSON; blobs are `[chunk id, offset, length, raw length]`.
#[derive(Serialize, Deserialize)]
struct PackJson<S> {
    id: S,
    size: u64,
    encrypted: bool,
    blobs: Vec<(S, u64, u64, u64)>,
}

impl PackJson<String> {
    fn of(pack: &PackInfo) -> PackJson<String> {
        PackJson {
            id: pack.id.clone(),
            size: pack.size,
            encrypted: pack.encrypted,
            blobs: pack
                .blobs
                .iter()
                .map(|b| {
                    let (length, raw) = (u64::from(b.length), u64::from(b.raw_length));
                    (hex(&b.id), b.offset, length, raw)
                })
                .collect(),
        }
    }
}

impl<S: AsRef<str>> PackJson<S> {
    /// The pack this JSON describes, or why it describes none.
    fn check(self) -> std::result::Result<PackInfo, String> {
        let id = self.id.as_ref();
        if parse_hex(id).is_none() {
            return Err("id: expected 64 lowercase hex digits".into());
        }
        let mut blobs = Vec::with_capacity(self.blobs.len());
        for (i, (id, offset, length, raw_length)) in self.blobs.into_iter().enumerate() {
            let at = |reason: String| format!("blobs[{i}]: {reason}");
            let id = parse_hex(id.as_ref())
                .ok_or_else(|| at("chunk id: expected 64 lowercase hex digits".into()))?;
            if length == 0 || length > u64::from(MAX_BLOB_LENGTH) {
                return Err(at(format!(
                    "length {length} is outside 1..={MAX_BLOB_LENGTH}"
                )));
            }
            if raw_length > u64::from(MAX_RAW_LENGTH) {
                return Err(at(format!(
                    "raw length {raw_length} is above {MAX_RAW_LENGTH}"
                )));
            }
            // The plaintext of an encrypted pack is shorter than the file: within `size`
            // either way.
            let end = offset.checked_add(length);
            if end.is_none_or(|end| end > self.size) {
                return Err(at(format!(
                    "bytes {offset} + {length} run past the pack's size {}",
                    self.size
                )));
            }
            blobs.push(Blob {
                id,
                offset,
                length: length as u32,
                raw_length: raw_length as u32,
            });
        }
        Ok(PackInfo {
            id: id.to_string(),
            size: self.size,
            encrypted: self.encrypted,
            blobs,
        })
    }
}

/// Parses the index file `bytes` read from `path`.
fn parse_index_file(path: &Path, bytes: &[u8]) -> Result<Vec<PackInfo>> {
    let bad = |reason: String| malformed(path, reason);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let file: IndexFileIn =
        serde_path_to_error::deserialize(&mut de).map_err(|e| bad(e.to_string()))?;
    de.end().map_err(|e| bad(e.to_string()))?;
    if file.format != FORMAT {
        return Err(bad(format!(
            "format {} (this version reads format {FORMAT})",
            file.format
        )));
    }
    file.packs
        .into_iter()
        .enumerate()
        .map(|(i, pack)| pack.check().map_err(|e| bad(format!("packs[{i}].{e}"))))
        .collect()
}

/// The union of the repository's index files: where each chunk is stored.
///
/// Memory: the packs as listed, and one sorted 16-byte entry per chunk (the first 8 bytes of
/// its id, and where its blob is; the whole id is the blob's). A hash map of a million chunks
/// took 86 MiB, and twice that while it grew.
#[derive(Debug, Default)]
pub struct ChunkIndex {
    packs: Vec<PackInfo>,
    /// (id prefix, pack, blob) positions in `packs`, sorted by chunk id, one per chunk: a
    /// chunk listed twice keeps its first copy (any copy serves).
    chunks: Vec<(u64, u32, u32)>,
    files: Vec<PathBuf>,
}

/// The first 8 bytes of a chunk id, for the sorted entries.
fn prefix(id: &ChunkId) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes"))
}

/// Orders the entries of `packs` by chunk id, then by where the copy is listed.
fn order(packs: &[PackInfo], a: &(u64, u32, u32), b: &(u64, u32, u32)) -> std::cmp::Ordering {
    let id = |e: &(u64, u32, u32)| &packs[e.1 as usize].blobs[e.2 as usize].id;
    a.0.cmp(&b.0)
        .then_with(|| id(a).cmp(id(b)))
        .then_with(|| (a.1, a.2).cmp(&(b.1, b.2)))
}

impl ChunkIndex {
    /// Reads every `index/*.json` of the repository at `root`, in name order. A repository
    /// without `index/` has an empty index. A file that is not a well-formed index file is an
    /// error naming it.
    pub fn load(root: &Path) -> Result<ChunkIndex> {
        let dir = root.join("index");
        let mut index = ChunkIndex::empty();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(index),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            index.packs.extend(parse_index_file(&path, &bytes)?);
            index.files.push(path);
        }
        index.sort_chunks();
        Ok(index)
    }

    /// An index of `packs` (listed in this order), without index files.
    pub fn from_packs(packs: Vec<PackInfo>) -> ChunkIndex {
        let mut index = ChunkIndex {
            packs,
            ..ChunkIndex::default()
        };
        index.sort_chunks();
        index
    }

    /// Builds the sorted chunk entries of every pack, the first copy of each chunk kept.
    fn sort_chunks(&mut self) {
        let total = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut chunks = Vec::with_capacity(total);
        for (p, pack) in self.packs.iter().enumerate() {
            let p = u32::try_from(p).expect("fewer than 2^32 packs");
            for (b, blob) in pack.blobs.iter().enumerate() {
                let b = u32::try_from(b).expect("fewer than 2^32 blobs in a pack");
                chunks.push((prefix(&blob.id), p, b));
            }
        }
        self.chunks = chunks;
        self.sort_and_dedup();
        self.chunks.shrink_to_fit();
    }

    /// Sorts the entries (in place: a stable sort would take half as much again) and keeps
    /// the first copy listed of each chunk.
    fn sort_and_dedup(&mut self) {
        let packs = &self.packs;
        self.chunks.sort_unstable_by(|a, b| order(packs, a, b));
        let id = |e: &(u64, u32, u32)| packs[e.1 as usize].blobs[e.2 as usize].id;
        self.chunks
            .dedup_by(|later, first| later.0 == first.0 && id(later) == id(first));
    }

    fn find(&self, id: &ChunkId) -> Option<(u32, u32)> {
        let key = prefix(id);
        let at = self
            .chunks
            .binary_search_by(|e| {
                let listed = &self.packs[e.1 as usize].blobs[e.2 as usize].id;
                e.0.cmp(&key).then_with(|| listed.cmp(id))
            })
            .ok()?;
        let (_, pack, blob) = self.chunks[at];
        Some((pack, blob))
    }

    /// The packs the one index file at `path` lists (for `check`, which reports every
    /// malformed file instead of stopping at the first). An error names the file.
    pub fn read_file(path: &Path) -> Result<Vec<PackInfo>> {
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        parse_index_file(path, &bytes)
    }

    /// An index that lists nothing.
    pub fn empty() -> ChunkIndex {
        ChunkIndex::default()
    }

    /// Whether some pack holds chunk `id`.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.find(id).is_some()
    }

    /// The pack and blob that hold chunk `id`.
    pub fn locate(&self, id: &ChunkId) -> Option<(&PackInfo, &Blob)> {
        let (pack, blob) = self.find(id)?;
        let pack = &self.packs[pack as usize];
        Some((pack, &pack.blobs[blob as usize]))
    }

    /// Every pack listed, in the order read (a pack listed by two files comes twice).
    pub fn packs(&self) -> impl Iterator<Item = &PackInfo> {
        self.packs.iter()
    }

    /// The index files read, in name order (for prune).
    pub fn index_files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Number of distinct chunks listed.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether no chunk is listed.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Adds a pack (after a commit), so that later lookups find its chunks. Each call sorts
    /// the entries again: for many packs at once, [`ChunkIndex::from_packs`].
    pub fn insert_pack(&mut self, pack: PackInfo) {
        let at = u32::try_from(self.packs.len()).expect("fewer than 2^32 packs");
        for (i, blob) in pack.blobs.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 blobs in a pack");
            self.chunks.push((prefix(&blob.id), at, i));
        }
        self.packs.push(pack);
        self.sort_and_dedup();
    }
}

/// Writes `index/<name>.json` listing `packs` into the repository at `root` (`0600`, through
/// an unnamed file that is synced, then linked: never replacing a file), and syncs `index/`.
/// Returns its path. `name` is a plain file name (letters, digits, `-`, `_`, `.`; not
/// starting with `.`).
pub fn write_index_file(root: &Path, name: &str, packs: &[PackInfo]) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !plain {
        return Err(Error::Usage(format!(
            "index file name `{name}`: expected letters, digits, `-`, `_` or `.`"
        )));
    }
    let file = IndexFile {
        format: FORMAT,
        packs: packs.iter().map(PackJson::of).collect(),
    };
    let mut json = serde_json::to_vec(&file).expect("an index file serializes");
    json.push(b'\n');
    make_dirs(root, &["index"])?;
    let dir = root.join("index");
    let path = dir.join(format!("{name}.json"));
    place_new_file(root, &path, &json, false)?;
    sync_dir(&dir)?;
    Ok(path)
}
