//! Garbage collection of the incremental repository (format 2), the second half of `prune`:
//! chunks no kept snapshot refers to are reclaimed.
//!
//! The live set is the union of the refs files of every format-2 snapshot left, of every
//! agent (a fleet shares packs). Each live chunk is claimed by one copy (a chunk stored twice,
//! after an interrupted repack, keeps the copy in the fullest pack). Then each pack is:
//! - **dead** (no claimed chunk): deleted;
//! - **sparse** (claimed chunks under half its bytes): repacked — its live chunks are read
//!   and written into new packs — when it can be read (a plain pack, or an encrypted one with
//!   the identity); without the identity it is kept and the report says so;
//! - kept otherwise.
//!
//! `kill -9` at any moment loses no chunk a kept snapshot needs, because nothing is deleted
//! before what replaces it is durable:
//! 1. the new packs are committed with their index file;
//! 2. one consolidated index file, listing every kept and new pack, is written and synced;
//! 3. only then are the other index files deleted, then the dead and repacked packs, then
//!    packs no index lists (leftovers of killed snapshots: the repository lock keeps a
//!    running snapshot out, so none is in flight).
//!
//! A crash between the steps leaves extra copies or extra index files, which the next prune
//! tidies; never a live chunk without a listed, durable copy. Before any deletion, every live
//! chunk is checked to be in the consolidated index: a missing one (a damaged repository)
//! stops the collection with an error, and nothing is deleted.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::packs::{ChunkId, ChunkIndex, PackInfo, PackReader, PackWriter, write_index_file};
use super::{RepoLock, Repository, sync_dir};
use crate::archive::{
    Identity, IntegrityError, IntegrityProblem, Recipients, SIDECAR_FORMAT_PACKS,
};
use crate::error::{Error, Result};

/// A pack whose live chunks are less than this share of its bytes is repacked.
const SPARSE: f64 = 0.5;

/// What the collection did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Distinct chunks the kept snapshots need.
    pub live_chunks: u64,
    /// Packs deleted because no kept snapshot needs any of their chunks.
    pub packs_deleted: u64,
    /// Sparse packs whose live chunks were written into new packs.
    pub packs_repacked: u64,
    /// New packs written by the repacking.
    pub packs_written: u64,
    /// Pack files no index listed (leftovers of killed runs), deleted.
    pub unreferenced_deleted: u64,
    /// Bytes of pack files deleted.
    pub bytes_freed: u64,
    /// Bytes written into new packs.
    pub bytes_written: u64,
    /// Sparse packs left as they are because they are encrypted and no identity was given.
    pub sparse_kept: u64,
    /// Dead bytes left in the packs kept.
    pub dead_bytes_left: u64,
}

/// How to collect.
pub struct GcOptions<'a> {
    /// To read encrypted packs for repacking.
    pub identity: Option<&'a Identity>,
    /// To encrypt the new packs (the manifest's).
    pub recipients: Option<&'a Recipients>,
    /// zstd level of the new packs.
    pub level: i32,
    /// Report only.
    pub dry_run: bool,
}

/// Collects the repository's garbage under `lock`; `None` when it has no format-2 layout.
pub fn collect(
    repo: &Repository,
    _lock: &RepoLock,
    options: &GcOptions<'_>,
) -> Result<Option<GcReport>> {
    let root = repo.root();
    if !root.join("index").is_dir() && !root.join("packs").is_dir() {
        return Ok(None);
    }
    let live = live_chunks(repo)?;
    let index = ChunkIndex::load(root)?;
    let mut report = GcReport {
        live_chunks: live.len() as u64,
        ..GcReport::default()
    };
    let packs = distinct_packs(&index);
    let claims = claim(&packs, &live);
    let mut keep: Vec<PackInfo> = Vec::new();
    let mut drop_packs: Vec<&PackInfo> = Vec::new();
    let mut repack: Vec<(&PackInfo, Vec<ChunkId>)> = Vec::new();
    for (i, pack) in packs.iter().enumerate() {
        let claimed = &claims[i];
        let total: u64 = pack.blobs.iter().map(|b| u64::from(b.length)).sum();
        let live_bytes: u64 = pack
            .blobs
            .iter()
            .filter(|b| claimed.contains(&b.id))
            .map(|b| u64::from(b.length))
            .sum();
        if claimed.is_empty() {
            drop_packs.push(pack);
        } else if (live_bytes as f64) < SPARSE * total as f64 {
            if pack.encrypted && options.identity.is_none() {
                report.sparse_kept += 1;
                report.dead_bytes_left += total - live_bytes;
                keep.push((*pack).clone());
            } else {
                let ids = pack
                    .blobs
                    .iter()
                    .filter(|b| claimed.contains(&b.id))
                    .map(|b| b.id)
                    .collect();
                repack.push((pack, ids));
            }
        } else {
            report.dead_bytes_left += total - live_bytes;
            keep.push((*pack).clone());
        }
    }
    report.packs_deleted = drop_packs.len() as u64;
    report.packs_repacked = repack.len() as u64;
    let listed: HashSet<PathBuf> = packs.iter().map(|p| p.path(root)).collect();
    let unreferenced: Vec<(PathBuf, u64)> = super::packs::pack_files(root)?
        .into_iter()
        .filter(|(p, _)| !listed.contains(p))
        .collect();
    report.unreferenced_deleted = unreferenced.len() as u64;
    report.bytes_freed = drop_packs
        .iter()
        .chain(repack.iter().map(|(p, _)| p))
        .map(|p| p.size)
        .sum::<u64>()
        + unreferenced.iter().map(|(_, size)| size).sum::<u64>();
    let nothing_to_do = drop_packs.is_empty()
        && repack.is_empty()
        && unreferenced.is_empty()
        && index.index_files().len() <= 1;
    if options.dry_run || nothing_to_do {
        return Ok(Some(report));
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    // 1. The live chunks of sparse packs, into new packs.
    if !repack.is_empty() {
        let mut reader = PackReader::new(root, &index, options.identity);
        let mut writer = PackWriter::new(
            root,
            options.recipients,
            options.level,
            crate::archive::default_threads(),
        )?;
        for (_, ids) in &repack {
            for id in ids {
                writer.add(*id, reader.read_chunk(id)?)?;
            }
        }
        let pending = writer.finish()?;
        // Only the finished writer counts the chunks that were still being compressed.
        report.bytes_written = pending.stats().stored_bytes;
        let written = pending.commit(&format!("prune-{stamp}-repacked"))?;
        report.packs_written = written.len() as u64;
        keep.extend(written);
    }
    // 2. One index of every pack kept, checked to hold every live chunk.
    let consolidated = ChunkIndex::from_packs(keep.clone());
    if let Some(missing) = live.iter().find(|id| !consolidated.contains(id)) {
        return Err(Error::Integrity(IntegrityError {
            archive: root.display().to_string(),
            problem: IntegrityProblem::Index(format!(
                "chunk {} that a kept snapshot needs is in no pack; nothing was deleted (run \
                 `agentbak check`)",
                super::packs::hex(missing)
            )),
        }));
    }
    let kept_index = write_index_file(root, &format!("prune-{stamp}"), &keep)?;
    // 3. The rest, now that nothing live depends on it.
    for file in index.index_files() {
        remove(file)?;
    }
    for file in fs::read_dir(root.join("index"))
        .map_err(|e| Error::io(root.join("index"), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains("-repacked") && *p != kept_index)
    {
        remove(&file)?;
    }
    sync_dir(&root.join("index"))?;
    for pack in drop_packs.iter().chain(repack.iter().map(|(p, _)| p)) {
        remove(&pack.path(root))?;
    }
    for (path, _) in &unreferenced {
        remove(path)?;
    }
    Ok(Some(report))
}

/// Every chunk a format-2 snapshot of any agent refers to. A refs file that cannot be read
/// or is damaged stops the collection: deleting without knowing what is live loses data.
fn live_chunks(repo: &Repository) -> Result<HashSet<ChunkId>> {
    let listing = repo.list()?;
    let mut live = HashSet::new();
    for sidecar in listing
        .snapshots
        .iter()
        .filter(|s| s.format == SIDECAR_FORMAT_PACKS)
    {
        let refs = repo.read_refs(sidecar)?;
        live.extend(refs);
    }
    Ok(live)
}

/// The packs of the index, each once (a pack listed by two index files comes twice).
fn distinct_packs(index: &ChunkIndex) -> Vec<&PackInfo> {
    let mut seen = HashSet::new();
    index.packs().filter(|p| seen.insert(&p.id)).collect()
}

/// Which pack keeps each live chunk: the fullest pack that holds it (by live bytes).
fn claim(packs: &[&PackInfo], live: &HashSet<ChunkId>) -> Vec<HashSet<ChunkId>> {
    let live_bytes: Vec<u64> = packs
        .iter()
        .map(|p| {
            p.blobs
                .iter()
                .filter(|b| live.contains(&b.id))
                .map(|b| u64::from(b.length))
                .sum()
        })
        .collect();
    let mut order: Vec<usize> = (0..packs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(live_bytes[i]), packs[i].id.clone()));
    let mut owner: HashMap<ChunkId, usize> = HashMap::new();
    for &i in &order {
        for b in &packs[i].blobs {
            if live.contains(&b.id) {
                owner.entry(b.id).or_insert(i);
            }
        }
    }
    let mut claims = vec![HashSet::new(); packs.len()];
    for (id, i) in owner {
        claims[i].insert(id);
    }
    claims
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}
