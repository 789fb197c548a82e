//! Index files (`index/<name>.json`) and the chunk index, their union.
//!
//! An index file is untrusted input: it is parsed into bounded numbers and checked hex
//! before anything uses it (a pack id becomes a path; an offset and a length become a read).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Blob, ChunkId, FORMAT, MAX_BLOB_LENGTH, MAX_RAW_LENGTH, PackInfo, hex, make_dirs, malformed,
    parse_hex, place_new_file,
};
use crate::error::{Error, Result};
use crate::repo::sync_dir;

/// An index file as JSON: `{"format": 2, "packs": [...]}`.
#[derive(Serialize, Deserialize)]
struct IndexFile {
    format: u32,
    packs: Vec<PackJson>,
}

/// A pack as JSON; blobs are `[chunk id, offset, length, raw length]`.
#[derive(Serialize, Deserialize)]
struct PackJson {
    id: String,
    size: u64,
    encrypted: bool,
    blobs: Vec<(String, u64, u64, u64)>,
}

impl PackJson {
    fn of(pack: &PackInfo) -> PackJson {
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

    /// The pack this JSON describes, or why it describes none.
    fn check(self) -> std::result::Result<PackInfo, String> {
        if parse_hex(&self.id).is_none() {
            return Err("id: expected 64 lowercase hex digits".into());
        }
        let mut blobs = Vec::with_capacity(self.blobs.len());
        for (i, (id, offset, length, raw_length)) in self.blobs.into_iter().enumerate() {
            let at = |reason: String| format!("blobs[{i}]: {reason}");
            let id = parse_hex(&id)
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
            id: self.id,
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
    let file: IndexFile =
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
#[derive(Debug, Default)]
pub struct ChunkIndex {
    packs: Vec<PackInfo>,
    /// Chunk → (pack, blob) positions in `packs`. A chunk listed twice keeps its first copy:
    /// any copy serves.
    chunks: HashMap<ChunkId, (u32, u32)>,
    files: Vec<PathBuf>,
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
            for pack in parse_index_file(&path, &bytes)? {
                index.insert_pack(pack);
            }
            index.files.push(path);
        }
        Ok(index)
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
        self.chunks.contains_key(id)
    }

    /// The pack and blob that hold chunk `id`.
    pub fn locate(&self, id: &ChunkId) -> Option<(&PackInfo, &Blob)> {
        let &(pack, blob) = self.chunks.get(id)?;
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

    /// Adds a pack (after a commit), so that later lookups find its chunks.
    pub fn insert_pack(&mut self, pack: PackInfo) {
        let at = u32::try_from(self.packs.len()).expect("fewer than 2^32 packs");
        for (i, blob) in pack.blobs.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 blobs in a pack");
            self.chunks.entry(blob.id).or_insert((at, i));
        }
        self.packs.push(pack);
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
