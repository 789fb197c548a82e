//! Listing the snapshots of a repository, and the orphans beside them.
//!
//! A snapshot is listed only when its sidecar parses, names itself by its file name, and its
//! archive is present. Anything else in `snapshots/` is an [`Orphan`]: reported so a person
//! can look, never listed, never deleted automatically (an orphan archive may be the only copy
//! of a snapshot whose sidecar was lost, and stays recoverable by hand).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use serde::Serialize;

use super::{ENCRYPTED_SUFFIX, PLAIN_SUFFIX, REFS_SUFFIX, Repository, SIDECAR_SUFFIX};
use crate::archive::Sidecar;
use crate::error::{Error, Result};

/// The snapshots of a repository, oldest first, and its orphans.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    /// Complete snapshots, oldest first (by creation time, then id).
    pub snapshots: Vec<Sidecar>,
    /// Files in `snapshots/` that are not part of a complete snapshot.
    pub orphans: Vec<Orphan>,
}

/// A file in `snapshots/` that is not part of a complete snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Orphan {
    /// The file name.
    pub file: String,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: OrphanKind,
}

/// Why a file is an orphan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case", tag = "problem", content = "detail")]
pub enum OrphanKind {
    /// An archive without its sidecar (a crash between the two renames, or a lost sidecar).
    ArchiveWithoutSidecar,
    /// A sidecar whose archive is missing.
    SidecarWithoutArchive,
    /// A sidecar that does not parse, or names another snapshot.
    BadSidecar(String),
    /// A file agentbak does not write.
    Unknown,
}

impl std::fmt::Display for Orphan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            OrphanKind::ArchiveWithoutSidecar => {
                write!(f, "{}: archive without sidecar", self.file)
            }
            OrphanKind::SidecarWithoutArchive => {
                write!(f, "{}: sidecar without archive", self.file)
            }
            OrphanKind::BadSidecar(why) => write!(f, "{}: unreadable sidecar: {why}", self.file),
            OrphanKind::Unknown => write!(f, "{}: not a file agentbak writes", self.file),
        }
    }
}

/// The snapshot id in the name of an archive (format 1) or a refs file (format 2).
fn archive_stem(name: &str) -> Option<&str> {
    name.strip_suffix(ENCRYPTED_SUFFIX)
        .or_else(|| name.strip_suffix(PLAIN_SUFFIX))
        .or_else(|| name.strip_suffix(REFS_SUFFIX))
}

impl Repository {
    /// Lists the complete snapshots of `agent` (oldest first) and every orphan. Agents of a
    /// fleet share a repository (SPEC "Beyond one host"): `latest`, `list`, `verify --all`
    /// and retention see only the snapshots of the manifest's agent. Orphans belong to no
    /// agent, so all are reported.
    pub fn list_for(&self, agent: &str) -> Result<Listing> {
        let mut listing = self.list()?;
        listing.snapshots.retain(|s| s.agent == agent);
        Ok(listing)
    }

    /// Lists complete snapshots of every agent (oldest first) and reports orphans.
    pub fn list(&self) -> Result<Listing> {
        let dir = self.snapshots_dir();
        let mut archives = BTreeSet::new();
        let mut sidecars = BTreeMap::new();
        let mut listing = Listing::default();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if archive_stem(&name).is_some() {
                archives.insert(name);
            } else if let Some(stem) = name.strip_suffix(SIDECAR_SUFFIX) {
                sidecars.insert(stem.to_string(), name);
            } else {
                listing.orphans.push(Orphan {
                    file: name,
                    kind: OrphanKind::Unknown,
                });
            }
        }
        let mut claimed = BTreeSet::new();
        for (stem, name) in sidecars {
            let path = dir.join(&name);
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let orphan = |kind| Orphan {
                file: name.clone(),
                kind,
            };
            let sidecar = match Sidecar::from_json(&bytes) {
                Ok(s) if s.id == stem && archive_stem(&s.archive) == Some(stem.as_str()) => s,
                Ok(s) => {
                    let why = format!("names snapshot `{}` and archive `{}`", s.id, s.archive);
                    listing.orphans.push(orphan(OrphanKind::BadSidecar(why)));
                    continue;
                }
                Err(e) => {
                    listing
                        .orphans
                        .push(orphan(OrphanKind::BadSidecar(e.to_string())));
                    continue;
                }
            };
            if archives.contains(&sidecar.archive) {
                claimed.insert(sidecar.archive.clone());
                listing.snapshots.push(sidecar);
            } else {
                listing
                    .orphans
                    .push(orphan(OrphanKind::SidecarWithoutArchive));
            }
        }
        for name in archives.difference(&claimed) {
            listing.orphans.push(Orphan {
                file: name.clone(),
                kind: OrphanKind::ArchiveWithoutSidecar,
            });
        }
        // By time, then id: two snapshots of one second have ids whose order is random.
        listing
            .snapshots
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        listing.orphans.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(listing)
    }
}
