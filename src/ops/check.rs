//! `agentbak check`: the integrity of a repository as a whole (restic's `check`), every
//! agent's snapshots at once, without any key.
//!
//! **What.** `verify` answers "can this snapshot of this agent be restored, and is it free of
//! secrets?"; `check` answers "is this repository whole?": its configuration and every index
//! file parse, every pack an index lists is there with the listed size and its blobs tile it,
//! every sidecar is well formed, every refs file matches its sidecar and names only chunks the
//! index holds, every format-1 archive matches its sidecar. Packs that no index lists are
//! warnings (a snapshot being written, or leftovers that prune removes). With `read_data`
//! every pack is read whole: its blake3 must be its name (no key needed), and its blobs
//! (plain packs, or encrypted ones with an identity) must decompress to their raw lengths,
//! under the chunk-id key (when the store gives it) to their ids; and every format-2
//! snapshot's tree is read and each file's chunks looked up.
//!
//! **Concurrency.** `check` takes no lock: it only reads complete files. It reads the
//! sidecars first, then the index files, then the pack folders, the reverse of the order in
//! which a snapshot run writes them (packs, index, refs, sidecar), so a snapshot finished
//! during the check is either seen whole or not at all, and the packs of one in progress are
//! only "unreferenced". A `prune` or `forget` running at the same time can make it report
//! objects missing that were just deleted on purpose.
//!
//! Nothing here prints: progress goes through a callback, problems into the report.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;
use zstd::zstd_safe;

use crate::archive::{
    EntryKind, Identity, SIDECAR_FORMAT_PACKS, Sidecar, check_digest, wellformed,
};
use crate::error::{Error, ExitCode, Report, Result};
use crate::manifest::Manifest;
use crate::ops::snapshot::packs::{chunk_key as derive_chunk_key, key_id};
use crate::repo::packs::{
    Blob, ChunkId, ChunkIndex, PACK_ENCRYPTED_SUFFIX, PackInfo, RepoConfig, hex, parse_hex,
};
use crate::repo::{OrphanKind, Repository, rebuild};
use crate::store::Stores;

/// Chunk ids quoted in one problem at most.
const QUOTED_IDS: usize = 3;

/// What `check` does besides the structural checks.
#[derive(Default)]
pub struct CheckOptions<'a> {
    /// Read every pack whole: its blake3, its blobs, the trees.
    pub read_data: bool,
    /// Decrypts encrypted packs (for the blobs and the trees); without it they are hashed only.
    pub identity: Option<&'a Identity>,
    /// The chunk-id key: with it, each blob of a snapshot made under that key is checked to
    /// hash to its chunk id.
    pub chunk_key: Option<&'a [u8; 32]>,
    /// Called with (bytes read, bytes to read) while packs are read.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The repository is damaged: exit 5.
    Error,
    /// Worth a look, nothing lost: exit 3.
    Warning,
}

/// One thing found wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The object, relative to the repository: `packs/ab/ab12…`, `index/x.json`,
    /// `snapshots/ID.refs`, `config.json`.
    pub object: String,
    /// What is wrong (never a secret: ids, sizes and hashes only).
    pub message: String,
}

/// What was looked at.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckSummary {
    /// Index files read.
    pub index_files: u64,
    /// Distinct packs the index files list.
    pub packs: u64,
    /// Pack files found under `packs/`.
    pub pack_files: u64,
    /// Their total size.
    pub pack_bytes: u64,
    /// Pack files that no index file lists.
    pub unreferenced_packs: u64,
    /// Distinct chunks the index files list.
    pub blobs: u64,
    /// Snapshots checked (every agent), format 2 and format 1.
    pub snapshots: u64,
    /// Of those, format-1 snapshots (one archive each).
    pub archives: u64,
    /// Bytes read to check (refs files, archives, and with `--read-data` every pack).
    pub bytes_read: u64,
    /// Whether every pack was read whole.
    pub read_data: bool,
    /// Packs whose blake3 was checked against their name.
    pub packs_hashed: u64,
    /// Blobs decompressed and checked against their raw length.
    pub blobs_checked: u64,
    /// Of those, blobs checked against their chunk id under the chunk-id key.
    pub chunk_ids_checked: u64,
    /// Format-2 trees read and checked.
    pub trees_checked: u64,
}

/// The outcome of `check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The repository folder.
    pub repository: PathBuf,
    /// Everything found wrong, errors and warnings, in the order found.
    pub problems: Vec<Problem>,
    /// What was not checked, and why (no identity, no chunk-id key).
    pub notes: Vec<String>,
    /// What was looked at.
    pub summary: CheckSummary,
    /// 0 clean, 3 warnings only, 5 any error.
    pub exit_code: ExitCode,
}

impl CheckReport {
    /// Number of problems of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == severity)
            .count()
    }
}

impl Report for CheckReport {
    fn exit_code(&self) -> ExitCode {
        self.exit_code
    }
}

/// The chunk-id key of the manifest's capture store, read (never made: `check` writes
/// nothing): `None` when the manifest has no capture store or the store has no key yet.
pub fn chunk_key(m: &Manifest, stores: &Stores) -> Result<Option<Zeroizing<[u8; 32]>>> {
    let Some((store, path)) = m.capture_target() else {
        return Ok(None);
    };
    let Some(store) = stores.get(&store) else {
        return Ok(None);
    };
    let Some(key) = crate::ops::snapshot::read_capture_key(store, &path)? else {
        return Ok(None);
    };
    Ok(Some(Zeroizing::new(derive_chunk_key(&key))))
}

/// A pack file found under `packs/`.
struct PackFile {
    path: PathBuf,
    size: u64,
}

/// A format-2 snapshot's refs, sorted.
struct Refs {
    sidecar: Sidecar,
    chunks: Vec<ChunkId>,
}

struct Checker<'a> {
    root: &'a Path,
    problems: Vec<Problem>,
    notes: Vec<String>,
    summary: CheckSummary,
}

impl Checker<'_> {
    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Error,
            object: object.into(),
            message: message.into(),
        });
    }

    fn warning(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            object: object.into(),
            message: message.into(),
        });
    }

    /// `path` relative to the repository, for a problem's object.
    fn name(&self, path: &Path) -> String {
        path.strip_prefix(self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Checks the repository `repo`; see the module documentation. Problems go into the report;
/// only a repository that cannot be read at all (no `snapshots/` folder) is an error.
pub fn check(repo: &Repository, options: &CheckOptions<'_>) -> Result<CheckReport> {
    let root = repo.root();
    let mut c = Checker {
        root,
        problems: Vec::new(),
        notes: Vec::new(),
        summary: CheckSummary {
            read_data: options.read_data,
            ..CheckSummary::default()
        },
    };
    // Sidecars first, then index files, then packs: the reverse of the order of writing.
    let listing = repo.list()?;
    let index = load_index(&mut c)?;
    let disk = pack_files(&mut c)?;
    check_config(&mut c, &index, &disk);
    let (indexed, live) = check_packs(&mut c, &index, &disk);
    for orphan in &listing.orphans {
        let object = format!("snapshots/{}", orphan.file);
        match &orphan.kind {
            OrphanKind::BadSidecar(why) => c.error(object, format!("unreadable sidecar: {why}")),
            OrphanKind::SidecarWithoutArchive => c.error(
                object,
                "the snapshot's refs file or archive is missing: it cannot be restored",
            ),
            OrphanKind::ArchiveWithoutSidecar => c.warning(
                object,
                "no sidecar names it (a snapshot being written, or an interrupted forget)",
            ),
            OrphanKind::Unknown => c.warning(object, "not a file agentbak writes"),
        }
    }
    let mut refs = Vec::new();
    for sidecar in &listing.snapshots {
        c.summary.snapshots += 1;
        if let Some(r) = check_snapshot(&mut c, repo, &index, &live, sidecar) {
            refs.push(r);
        }
    }
    if options.read_data {
        read_packs(&mut c, &index, &disk, &indexed, &refs, options);
        read_trees(&mut c, repo, &live, &refs, options.identity);
    }
    let exit_code = if c.problems.iter().any(|p| p.severity == Severity::Error) {
        ExitCode::Integrity
    } else if c.problems.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::Warnings
    };
    Ok(CheckReport {
        repository: root.to_path_buf(),
        problems: c.problems,
        notes: c.notes,
        summary: c.summary,
        exit_code,
    })
}

/// Reads every index file: each malformed one is an error, the others make the index.
fn load_index(c: &mut Checker<'_>) -> Result<ChunkIndex> {
    let dir = c.root.join("index");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ChunkIndex::empty()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        } else {
            let name = c.name(&path);
            c.warning(
                name,
                "not a file agentbak writes (index files end in .json)",
            );
        }
    }
    files.sort();
    let mut packs = Vec::new();
    for path in files {
        c.summary.index_files += 1;
        match ChunkIndex::read_file(&path) {
            Ok(read) => packs.extend(read),
            Err(e) => {
                let name = c.name(&path);
                c.error(name, e.to_string());
            }
        }
    }
    let index = ChunkIndex::from_packs(packs);
    c.summary.blobs = index.len() as u64;
    Ok(index)
}

/// Every pack file under `packs/`, by (id, encrypted); anything else there is a warning.
fn pack_files(c: &mut Checker<'_>) -> Result<BTreeMap<(String, bool), PackFile>> {
    let dir = c.root.join("packs");
    let mut found = BTreeMap::new();
    let folders = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut folders = folders
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(&dir, e)))
        .collect::<Result<Vec<_>>>()?;
    folders.sort();
    for folder in folders {
        let prefix = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_prefix = prefix.len() == 2
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_prefix || !folder.is_dir() {
            let name = c.name(&folder);
            c.warning(name, "not a file agentbak writes");
            continue;
        }
        for entry in fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))? {
            let entry = entry.map_err(|e| Error::io(&folder, e))?;
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let (id, encrypted) = match file_name.strip_suffix(PACK_ENCRYPTED_SUFFIX) {
                Some(id) => (id.to_string(), true),
                None => (file_name.clone(), false),
            };
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            if parse_hex(&id).is_none() || !id.starts_with(&prefix) || !meta.is_file() {
                let name = c.name(&path);
                c.warning(name, "not a file agentbak writes");
                continue;
            }
            c.summary.pack_files += 1;
            c.summary.pack_bytes += meta.len();
            found.insert(
                (id, encrypted),
                PackFile {
                    path,
                    size: meta.len(),
                },
            );
        }
    }
    Ok(found)
}

/// `config.json` parses, and is there when format-2 objects are.
fn check_config(
    c: &mut Checker<'_>,
    index: &ChunkIndex,
    disk: &BTreeMap<(String, bool), PackFile>,
) {
    match RepoConfig::load(c.root) {
        Ok(Some(_)) => {}
        Ok(None) if c.summary.index_files > 0 || !disk.is_empty() || !index.is_empty() => {
            c.error(
                "config.json",
                "missing, while the repository holds packs or index files",
            );
        }
        Ok(None) => {}
        Err(e) => c.error("config.json", e.to_string()),
    }
}

/// The packs the index files list, by (id, encrypted), each with its listings.
type Listed<'i> = BTreeMap<(String, bool), Vec<&'i PackInfo>>;

/// Every listed pack is on disk with its size, its blobs tile it; packs on disk that no index
/// lists are warnings. A listed pack that is missing is an error, unless every chunk it held
/// has a copy in a pack that is there (the stale listing of an interrupted prune): a warning.
/// Returns the listed packs, and the index of the packs that are there with their size.
fn check_packs<'i>(
    c: &mut Checker<'_>,
    index: &'i ChunkIndex,
    disk: &BTreeMap<(String, bool), PackFile>,
) -> (Listed<'i>, ChunkIndex) {
    let mut listed: BTreeMap<(String, bool), Vec<&PackInfo>> = BTreeMap::new();
    for pack in index.packs() {
        listed
            .entry((pack.id.clone(), pack.encrypted))
            .or_default()
            .push(pack);
    }
    c.summary.packs = listed.len() as u64;
    let mut present = Vec::new();
    let mut lost = Vec::new();
    for ((id, encrypted), packs) in &listed {
        let first = packs[0];
        let object = c.name(&first.path(c.root));
        if packs.iter().any(|p| p.size != first.size) {
            c.error(&object, "index files list the pack with different sizes");
        }
        if packs.iter().any(|p| p.blobs != first.blobs) {
            c.error(&object, "index files list different blobs in the pack");
        }
        for pack in dedup(packs) {
            if let Some(problem) = tiling(pack, None) {
                c.error(
                    &object,
                    format!("the index's blobs do not tile the pack: {problem}"),
                );
            }
        }
        match disk.get(&(id.clone(), *encrypted)) {
            None => lost.push((object, first)),
            Some(file) if file.size != first.size => c.error(
                &object,
                format!(
                    "the pack holds {} bytes, the index says {}: truncated or damaged",
                    file.size, first.size
                ),
            ),
            Some(_) => present.push(first.clone()),
        }
    }
    let live = ChunkIndex::from_packs(present);
    for (object, pack) in lost {
        let chunks = pack.blobs.len();
        let copies = pack.blobs.iter().filter(|b| live.contains(&b.id)).count();
        if copies == chunks {
            c.warning(
                object,
                "missing, but every chunk it held is in another pack: the index files that \
                 list it are stale (an interrupted prune)",
            );
        } else {
            c.error(
                object,
                format!(
                    "missing: an index file lists it; {} of its {chunks} chunk{} have no other \
                     copy",
                    chunks - copies,
                    plural(chunks)
                ),
            );
        }
    }
    for ((id, encrypted), file) in disk {
        if !listed.contains_key(&(id.clone(), *encrypted)) {
            c.summary.unreferenced_packs += 1;
            let object = c.name(&file.path);
            c.warning(
                object,
                "unreferenced pack: no index file lists it (a snapshot being written, or a \
                 leftover of an interrupted run): prune removes them",
            );
        }
    }
    (listed, live)
}

/// The listings of a pack, each distinct one once.
fn dedup<'i>(packs: &[&'i PackInfo]) -> Vec<&'i PackInfo> {
    let mut out: Vec<&PackInfo> = Vec::new();
    for &p in packs {
        if !out.iter().any(|q| q.blobs == p.blobs && q.size == p.size) {
            out.push(p);
        }
    }
    out
}

/// Why the blobs of `pack` are not the whole of its plaintext (`plain_len`, known for a plain
/// pack from its size, for an encrypted one once decrypted): a pack is its blobs, in order,
/// nothing else.
fn tiling(pack: &PackInfo, plain_len: Option<u64>) -> Option<String> {
    let mut blobs: Vec<&Blob> = pack.blobs.iter().collect();
    blobs.sort_by_key(|b| b.offset);
    let mut end = 0u64;
    for b in blobs {
        if b.offset != end {
            return Some(format!(
                "the blob of chunk {} starts at byte {}, the one before ends at {end}",
                hex(&b.id),
                b.offset
            ));
        }
        end += u64::from(b.length);
    }
    let expected = plain_len.or((!pack.encrypted).then_some(pack.size));
    match expected {
        Some(len) if len != end => Some(format!("the blobs end at byte {end}, not at {len}")),
        _ => None,
    }
}

/// The structural checks of one snapshot; returns its refs when it is a readable format-2
/// snapshot.
fn check_snapshot(
    c: &mut Checker<'_>,
    repo: &Repository,
    index: &ChunkIndex,
    live: &ChunkIndex,
    sidecar: &Sidecar,
) -> Option<Refs> {
    let sidecar_name = format!("snapshots/{}.json", sidecar.id);
    let problems = wellformed::sidecar_problems(sidecar);
    let wellformed = problems.is_empty();
    for p in problems {
        c.error(&sidecar_name, p);
    }
    let path = repo.archive_path(sidecar);
    let object = c.name(&path);
    if sidecar.format != SIDECAR_FORMAT_PACKS {
        c.summary.archives += 1;
        match fs::File::open(&path) {
            Ok(file) => {
                if let Err(e) = check_digest(file, &sidecar.digest(), &object) {
                    c.error(&object, strip_name(&e, &object));
                }
                c.summary.bytes_read += sidecar.size;
            }
            Err(e) => c.error(&object, e.to_string()),
        }
        return None;
    }
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            c.error(&object, e.to_string());
            return None;
        }
    };
    c.summary.bytes_read += bytes.len() as u64;
    if let Err(e) = check_digest(bytes.as_slice(), &sidecar.digest(), &object) {
        c.error(&object, strip_name(&e, &object));
    }
    if bytes.len() % 32 != 0 {
        c.error(
            &object,
            format!(
                "{} bytes: not a whole number of 32-byte chunk ids",
                bytes.len()
            ),
        );
        return None;
    }
    let chunks: Vec<ChunkId> = bytes
        .chunks_exact(32)
        .map(|b| b.try_into().expect("32 bytes"))
        .collect();
    if chunks.windows(2).any(|w| w[0] >= w[1]) {
        c.error(&object, "the chunk ids are not sorted and distinct");
        return None;
    }
    let missing: Vec<&ChunkId> = chunks.iter().filter(|id| !index.contains(id)).collect();
    if !missing.is_empty() {
        c.error(
            &object,
            format!(
                "{} of its {} chunk{} are in no index file ({}): the snapshot cannot be restored",
                missing.len(),
                chunks.len(),
                plural(chunks.len()),
                quote(missing.iter().copied())
            ),
        );
    }
    let lost: Vec<&ChunkId> = chunks
        .iter()
        .filter(|id| index.contains(id) && !live.contains(id))
        .collect();
    if !lost.is_empty() {
        c.error(
            &object,
            format!(
                "{} of its {} chunk{} are only in missing or damaged packs ({}): the snapshot \
                 cannot be restored",
                lost.len(),
                chunks.len(),
                plural(chunks.len()),
                quote(lost.iter().copied())
            ),
        );
    }
    if let Some(tree) = &sidecar.tree {
        let outside: Vec<ChunkId> = tree
            .chunks
            .iter()
            .filter_map(|h| parse_hex(h))
            .filter(|id| chunks.binary_search(id).is_err())
            .collect();
        if !outside.is_empty() {
            c.error(
                &sidecar_name,
                format!(
                    "{} tree chunk{} not in the refs file ({})",
                    outside.len(),
                    if outside.len() == 1 { " is" } else { "s are" },
                    quote(outside.iter())
                ),
            );
        }
    }
    wellformed.then(|| Refs {
        sidecar: sidecar.clone(),
        chunks,
    })
}

/// Reads every pack whole: its blake3 against its name; its blobs, when it can be read
/// (plain, or encrypted with an identity).
fn read_packs(
    c: &mut Checker<'_>,
    index: &ChunkIndex,
    disk: &BTreeMap<(String, bool), PackFile>,
    listed: &BTreeMap<(String, bool), Vec<&PackInfo>>,
    refs: &[Refs],
    options: &CheckOptions<'_>,
) {
    // Chunks whose id the key can check: those of snapshots made under that key.
    let keyed: Option<(&[u8; 32], HashSet<ChunkId>)> = options.chunk_key.and_then(|key| {
        let id = key_id(key);
        let set: HashSet<ChunkId> = refs
            .iter()
            .filter(|r| r.sidecar.chunk_key.as_deref() == Some(id.as_str()))
            .flat_map(|r| r.chunks.iter().copied())
            .collect();
        if set.is_empty() && !refs.is_empty() {
            c.notes.push(format!(
                "chunk ids not checked: no snapshot's ids were made with the capture key of \
                 this manifest's store (key check {id})"
            ));
            return None;
        }
        Some((key, set))
    });
    let total: u64 = disk.values().map(|f| f.size).sum();
    let mut done = 0u64;
    let mut locked = 0u64;
    for ((id, encrypted), file) in disk {
        let object = c.name(&file.path);
        let bytes = match fs::read(&file.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                c.error(&object, e.to_string());
                continue;
            }
        };
        done += file.size;
        c.summary.bytes_read += bytes.len() as u64;
        if let Some(progress) = options.progress {
            progress(done, total);
        }
        c.summary.packs_hashed += 1;
        let actual = blake3::hash(&bytes);
        if actual.to_hex().as_str() != id {
            c.error(
                &object,
                format!(
                    "the pack's blake3 is {}, not its name: bit rot or tampering",
                    actual.to_hex()
                ),
            );
        }
        let Some(packs) = listed.get(&(id.clone(), *encrypted)) else {
            continue;
        };
        let plain = if *encrypted {
            let Some(identity) = options.identity else {
                locked += 1;
                continue;
            };
            match decrypt(&bytes, identity) {
                Ok(plain) => Zeroizing::new(plain),
                Err(e) => {
                    c.error(&object, format!("cannot be decrypted: {e}"));
                    continue;
                }
            }
        } else {
            Zeroizing::new(bytes)
        };
        for pack in dedup(packs) {
            if *encrypted && let Some(problem) = tiling(pack, Some(plain.len() as u64)) {
                c.error(&object, format!("the decrypted pack: {problem}"));
            }
            for blob in &pack.blobs {
                let key = keyed
                    .as_ref()
                    .filter(|(_, set)| set.contains(&blob.id))
                    .map(|(key, _)| *key);
                c.summary.blobs_checked += 1;
                if key.is_some() {
                    c.summary.chunk_ids_checked += 1;
                }
                if let Err(problem) = check_blob(&plain, blob, key) {
                    c.error(
                        &object,
                        format!(
                            "the blob of chunk {} at offset {}: {problem}",
                            hex(&blob.id),
                            blob.offset
                        ),
                    );
                }
            }
        }
    }
    if locked > 0 {
        c.notes.push(format!(
            "{locked} encrypted pack{} hashed only, blobs not read: pass --identity FILE to \
             decrypt them",
            plural(locked as usize)
        ));
    }
    if options.chunk_key.is_none() && !index.is_empty() {
        c.notes
            .push("chunk ids not checked: no chunk-id key (the capture key in the store)".into());
    }
}

/// The plaintext of an age-encrypted pack.
fn decrypt(bytes: &[u8], identity: &Identity) -> std::result::Result<Vec<u8>, String> {
    let mut plain = Vec::with_capacity(bytes.len());
    age::Decryptor::new_buffered(bytes)
        .map_err(|e| e.to_string())?
        .decrypt(identity.as_dyn())
        .map_err(|e| e.to_string())?
        .read_to_end(&mut plain)
        .map_err(|e| e.to_string())?;
    Ok(plain)
}

/// Why `blob` of the pack plaintext `plain` is not the chunk it should be: not one zstd frame
/// of its length, not of its raw length, a failed checksum, or (with `key`) another id.
fn check_blob(
    plain: &[u8],
    blob: &Blob,
    key: Option<&[u8; 32]>,
) -> std::result::Result<(), String> {
    let end = blob.offset + u64::from(blob.length);
    if end > plain.len() as u64 {
        return Err(format!("runs past the pack's end ({} bytes)", plain.len()));
    }
    let frame = &plain[blob.offset as usize..end as usize];
    match zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => {}
        Ok(n) => return Err(format!("a zstd frame of {n} bytes, not {}", frame.len())),
        Err(code) => {
            return Err(format!(
                "not a zstd frame ({})",
                zstd_safe::get_error_name(code)
            ));
        }
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(blob.raw_length as usize));
    match zstd_safe::decompress(&mut *raw, frame) {
        Ok(n) if n == blob.raw_length as usize => {}
        Ok(n) => {
            return Err(format!(
                "decompresses to {n} bytes, the index says {}",
                blob.raw_length
            ));
        }
        Err(code) => {
            return Err(format!(
                "does not decompress: {}",
                zstd_safe::get_error_name(code)
            ));
        }
    }
    if let Some(key) = key
        && blake3::keyed_hash(key, &raw).as_bytes() != &blob.id
    {
        return Err("its content has another chunk id under the chunk-id key".into());
    }
    Ok(())
}

/// Reads each format-2 snapshot's tree and looks up every file's chunks, through `index`:
/// the packs that are there (so a copy listed first in a missing pack does not hide another).
fn read_trees(
    c: &mut Checker<'_>,
    repo: &Repository,
    index: &ChunkIndex,
    refs: &[Refs],
    identity: Option<&Identity>,
) {
    let mut locked = 0usize;
    for r in refs {
        let sidecar = &r.sidecar;
        let object = format!("snapshots/{}.json", sidecar.id);
        if sidecar.encrypted && identity.is_none() {
            locked += 1;
            continue;
        }
        let tree = match rebuild::read_tree(repo, index, sidecar, identity) {
            Ok(tree) => tree,
            Err(e) => {
                c.error(&object, e.to_string());
                continue;
            }
        };
        c.summary.trees_checked += 1;
        for entry in tree
            .index
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
        {
            let Some(file) = tree.files.get(&entry.path) else {
                continue; // read_tree refuses a tree without it
            };
            let mut size = 0u64;
            let mut missing = BTreeSet::new();
            let mut unreferenced = BTreeSet::new();
            for id in file.chunks.iter().filter_map(|h| parse_hex(h)) {
                match index.locate(&id) {
                    Some((_, blob)) => size += u64::from(blob.raw_length),
                    None => {
                        missing.insert(id);
                    }
                }
                if r.chunks.binary_search(&id).is_err() {
                    unreferenced.insert(id);
                }
            }
            if !missing.is_empty() {
                c.error(
                    &object,
                    format!(
                        "`{}`: {} chunk{} in no pack that is there ({})",
                        entry.path,
                        missing.len(),
                        plural(missing.len()),
                        quote(missing.iter())
                    ),
                );
            } else if size != entry.size {
                c.error(
                    &object,
                    format!(
                        "`{}`: its chunks hold {size} bytes, the index says {}",
                        entry.path, entry.size
                    ),
                );
            }
            if !unreferenced.is_empty() {
                c.error(
                    &object,
                    format!(
                        "`{}`: {} chunk{} not in the refs file ({}): prune would delete them",
                        entry.path,
                        unreferenced.len(),
                        plural(unreferenced.len()),
                        quote(unreferenced.iter())
                    ),
                );
            }
        }
    }
    if locked > 0 {
        c.notes.push(format!(
            "{locked} encrypted snapshot{}: tree not read: pass --identity FILE to read it",
            plural(locked)
        ));
    }
}

/// The message of an error about `object`, without the object's name in front.
fn strip_name(e: &Error, object: &str) -> String {
    let text = e.to_string();
    text.strip_prefix(object)
        .and_then(|t| t.strip_prefix(": "))
        .map_or_else(|| text.clone(), str::to_string)
}

/// The first few ids, and how many more.
fn quote<'i>(ids: impl ExactSizeIterator<Item = &'i ChunkId>) -> String {
    let n = ids.len();
    let mut shown: Vec<String> = ids.take(QUOTED_IDS).map(hex).collect();
    if n > QUOTED_IDS {
        shown.push(format!("and {} more", n - QUOTED_IDS));
    }
    shown.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
