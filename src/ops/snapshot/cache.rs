//! The files cache: what the last snapshot of an agent read, kept on the host that made it,
//! so that the next snapshot need not read a file that did not change (borg's files cache).
//!
//! It lives outside the repository (`$AGENTBAK_CACHE_DIR`, else `$XDG_CACHE_HOME/agentbak`,
//! else `~/.cache/agentbak`), in `<repository id>/<agent>.json`, `0600` in a `0700` folder:
//! a repository encrypted to a key the cron host does not hold cannot tell it what a parent
//! snapshot held, and whoever can write the repository cannot make a snapshot reuse anything.
//! It holds no secret value: paths, stat keys, redacted contents' blake3 and chunk ids, and
//! the secret locations of the index (handles, never values).
//!
//! A file is taken from the cache only when (1) the cache was written under the same
//! fingerprint (keyed hash of every known value, store version, rule and the tool version:
//! a newly declared secret whose value sits in an unchanged file must be searched for again),
//! (2) its size, mtime and ctime to the nanosecond and inode are unchanged, (3) it has no
//! declared rule (rule files are read anyway), and (4) the repository still holds every one of
//! its chunks. A lost or damaged cache only costs a full read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::SecretLocation;
use crate::archive::tree::Tree;
use crate::ops::walk::{EntryKind, StatKey, Walk};
use crate::repo::packs::{ChunkId, parse_hex};

/// The cache format written by this release; any other is ignored.
const CACHE_FORMAT: u32 = 1;

/// One agent's files cache.
#[derive(Debug, Serialize, Deserialize)]
pub struct FilesCache {
    format: u32,
    /// The snapshot it describes.
    pub snapshot: String,
    /// The fingerprint that snapshot was checked under (hex).
    pub fingerprint: String,
    /// Per file (relative to the state), what the snapshot took.
    pub files: BTreeMap<String, CachedFile>,
}

/// A file as a snapshot took it.
#[derive(Debug, Serialize, Deserialize)]
pub struct CachedFile {
    /// The file on disk when it was read.
    pub stat: StatKey,
    /// Its content as stored (redacted): size, blake3, chunks.
    pub size: u64,
    /// blake3 of that content.
    pub blake3: String,
    /// Its chunk ids.
    pub chunks: Vec<String>,
    /// Its secret locations.
    pub secrets: Vec<SecretLocation>,
}

impl CachedFile {
    /// Its chunk ids, parsed; `None` if one is malformed.
    pub fn chunk_ids(&self) -> Option<Vec<ChunkId>> {
        self.chunks.iter().map(|c| parse_hex(c)).collect()
    }
}

/// The folder of the files caches.
pub fn cache_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AGENTBAK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("agentbak"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("agentbak"))
}

/// The cache file of `agent` in repository `repo_id`.
pub fn cache_path(repo_id: &str, agent: &str) -> Option<PathBuf> {
    cache_root().map(|root| root.join(repo_id).join(format!("{agent}.json")))
}

impl FilesCache {
    /// The cache at `path`, if it is there, readable, and made under `fingerprint` for the
    /// snapshot `parent`; anything else is logged and ignored (a full read is always right).
    pub fn load(path: &Path, fingerprint: &str, parent: Option<&str>) -> Option<FilesCache> {
        let bytes = std::fs::read(path).ok()?;
        let cache: FilesCache = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(
                    "{}: not a files cache ({e}); every file is read",
                    path.display()
                );
                return None;
            }
        };
        if cache.format != CACHE_FORMAT || Some(cache.snapshot.as_str()) != parent {
            tracing::info!(
                "{}: made for another snapshot than the latest; every file is read",
                path.display()
            );
            return None;
        }
        if cache.fingerprint != fingerprint {
            tracing::info!(
                "the known values or rules changed since the last snapshot; every file is read \
                 and checked again"
            );
            return None;
        }
        Some(cache)
    }

    /// The cache of a committed snapshot: its tree, and the stat keys the walk saw.
    pub fn of(snapshot: &str, fingerprint: &str, tree: &Tree, walked: &Walk) -> FilesCache {
        let mut secrets: BTreeMap<&str, Vec<SecretLocation>> = BTreeMap::new();
        for s in &tree.index.secrets {
            secrets.entry(s.file.as_str()).or_default().push(s.clone());
        }
        let mut files = BTreeMap::new();
        for entry in &walked.entries {
            if !matches!(entry.kind, EntryKind::File { .. }) {
                continue;
            }
            let path = format!("state/{}", entry.rel);
            let (Some(e), Some(f)) = (tree.index.entry(&path), tree.files.get(&path)) else {
                continue;
            };
            let Some(blake3) = e.blake3.clone() else {
                continue;
            };
            files.insert(
                entry.rel.clone(),
                CachedFile {
                    stat: entry.stat,
                    size: e.size,
                    blake3,
                    chunks: f.chunks.clone(),
                    secrets: secrets.remove(path.as_str()).unwrap_or_default(),
                },
            );
        }
        FilesCache {
            format: CACHE_FORMAT,
            snapshot: snapshot.to_string(),
            fingerprint: fingerprint.to_string(),
            files,
        }
    }

    /// Writes the cache (a private temporary file renamed into place); a failure is logged:
    /// the next snapshot then reads every file.
    pub fn save(&self, path: &Path) {
        let result = (|| -> std::io::Result<()> {
            let dir = path.parent().expect("a cache path has a folder");
            std::fs::create_dir_all(dir)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            let tmp = dir.join(format!(".{}.tmp", std::process::id()));
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&serde_json::to_vec(self).expect("a cache serializes"))?;
            }
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            tracing::warn!(
                "{}: the files cache could not be written ({e}); the next snapshot reads every file",
                path.display()
            );
        }
    }
}
