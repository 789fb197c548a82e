//! `agentbak stats`: how much a repository holds and how well it dedups (restic's `stats`),
//! for the manifest's agent and for the whole repository. Needs no key: sidecars, refs files
//! and index files are plain.
//!
//! - *logical bytes*: the sum of the snapshots' `counts.bytes` (what a restore of each would
//!   write, files only);
//! - *unique chunks*: the union of the format-2 snapshots' refs files (tree and content), with
//!   their raw size (the index's raw lengths) and stored size (blob lengths);
//! - *dedup ratio*: logical bytes of the format-2 snapshots / raw size of their unique chunks;
//!   *compression ratio*: raw / stored size of those chunks;
//! - pack files: for the repository, every file under `packs/`; for an agent, the packs that
//!   hold one of its chunks;
//! - format-1 snapshots are counted apart, with the size of their archives.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::archive::{SIDECAR_FORMAT_PACKS, Sidecar};
use crate::error::Result;
use crate::repo::Repository;
use crate::repo::packs::{ChunkId, ChunkIndex};

/// The numbers of one scope (an agent, or the whole repository).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scope {
    /// Snapshots, both formats.
    pub snapshots: u64,
    /// Of those, format-2 (incremental) snapshots.
    pub incremental_snapshots: u64,
    /// Sum of `counts.bytes` over all the snapshots.
    pub logical_bytes: u64,
    /// Sum of `counts.bytes` over the format-2 snapshots.
    pub incremental_logical_bytes: u64,
    /// Distinct chunks the format-2 snapshots refer to (trees and content).
    pub unique_chunks: u64,
    /// Their size, decompressed (from the index's raw lengths).
    pub unique_raw_bytes: u64,
    /// Their size as stored (blob lengths).
    pub unique_stored_bytes: u64,
    /// Chunks referred to that no index file lists (see `agentbak check`).
    pub missing_chunks: u64,
    /// Pack files (repository: all under `packs/`; agent: those holding one of its chunks).
    pub packs: u64,
    /// Their total size on disk.
    pub pack_bytes: u64,
    /// Format-1 snapshots (one archive each).
    pub archives: u64,
    /// Total size of their archives.
    pub archive_bytes: u64,
    /// `incremental_logical_bytes / unique_raw_bytes`, when both are non-zero.
    pub dedup_ratio: Option<f64>,
    /// `unique_raw_bytes / unique_stored_bytes`, when both are non-zero.
    pub compression_ratio: Option<f64>,
}

/// The outcome of `stats`.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// The repository folder.
    pub repository: PathBuf,
    /// The manifest's agent.
    pub agent_name: String,
    /// Its snapshots.
    pub agent: Scope,
    /// Every agent's.
    pub repository_total: Scope,
    /// Distinct chunks the index files list (referred to or not).
    pub indexed_chunks: u64,
    /// Refs files that could not be read (`agentbak check` says why); their snapshots count
    /// without chunks.
    pub unreadable_refs: Vec<String>,
}

/// The statistics of `repo`, for `agent` and for the whole repository.
pub fn stats(repo: &Repository, agent: &str) -> Result<StatsReport> {
    let listing = repo.list()?;
    let index = ChunkIndex::load(repo.root())?;
    let mut unreadable = Vec::new();
    let mut refs: BTreeMap<String, Vec<ChunkId>> = BTreeMap::new();
    for s in &listing.snapshots {
        if s.format != SIDECAR_FORMAT_PACKS {
            continue;
        }
        match repo.read_refs(s) {
            Ok(ids) => {
                refs.insert(s.id.clone(), ids);
            }
            Err(_) => unreadable.push(s.archive.clone()),
        }
    }
    let ours: Vec<&Sidecar> = listing
        .snapshots
        .iter()
        .filter(|s| s.agent == agent)
        .collect();
    let all: Vec<&Sidecar> = listing.snapshots.iter().collect();
    let mut agent_scope = scope(&ours, &refs, &index);
    // An agent's packs: those that hold one of its chunks, at their listed size.
    let mut packs = BTreeMap::new();
    for s in &ours {
        for id in refs.get(&s.id).into_iter().flatten() {
            if let Some((pack, _)) = index.locate(id) {
                packs.insert((pack.id.as_str(), pack.encrypted), pack.size);
            }
        }
    }
    agent_scope.packs = packs.len() as u64;
    agent_scope.pack_bytes = packs.values().sum();
    let mut total = scope(&all, &refs, &index);
    let files = crate::repo::packs::pack_files(repo.root())?;
    total.packs = files.len() as u64;
    total.pack_bytes = files.iter().map(|(_, size)| size).sum();
    Ok(StatsReport {
        repository: repo.root().to_path_buf(),
        agent_name: agent.to_string(),
        agent: agent_scope,
        repository_total: total,
        indexed_chunks: index.len() as u64,
        unreadable_refs: unreadable,
    })
}

/// The numbers of `snapshots`, but their packs.
fn scope(
    snapshots: &[&Sidecar],
    refs: &BTreeMap<String, Vec<ChunkId>>,
    index: &ChunkIndex,
) -> Scope {
    let mut out = Scope::default();
    let mut unique: HashSet<&ChunkId> = HashSet::new();
    for s in snapshots {
        out.snapshots += 1;
        out.logical_bytes += s.counts.bytes;
        if s.format == SIDECAR_FORMAT_PACKS {
            out.incremental_snapshots += 1;
            out.incremental_logical_bytes += s.counts.bytes;
            unique.extend(refs.get(&s.id).into_iter().flatten());
        } else {
            out.archives += 1;
            out.archive_bytes += s.size;
        }
    }
    out.unique_chunks = unique.len() as u64;
    for id in unique {
        match index.locate(id) {
            Some((_, blob)) => {
                out.unique_raw_bytes += u64::from(blob.raw_length);
                out.unique_stored_bytes += u64::from(blob.length);
            }
            None => out.missing_chunks += 1,
        }
    }
    let ratio = |a: u64, b: u64| (a > 0 && b > 0).then(|| a as f64 / b as f64);
    out.dedup_ratio = ratio(out.incremental_logical_bytes, out.unique_raw_bytes);
    out.compression_ratio = ratio(out.unique_raw_bytes, out.unique_stored_bytes);
    out
}
