//! The repository: a local folder of snapshots, written atomically and under a lock.
//!
//! ```text
//! <repo>/snapshots/<id>.tar.zst[.age]   the archive
//! <repo>/snapshots/<id>.json            its sidecar
//! <repo>/tmp/                           sidecars being written; archives only where the file
//!                                       system has no unnamed files (sealed, see `pending`)
//! <repo>/lock                           the lock (see `lock`)
//! ```
//!
//! Invariants:
//! - A snapshot exists exactly when its sidecar and its archive are both in `snapshots/`. The
//!   sidecar is the marker: [`PendingArchive::commit`] renames it into place last, and
//!   [`Repository::remove`] deletes it first. A crash in between leaves an *orphan* (an archive
//!   without a sidecar), which [`Repository::list`] reports and never lists.
//! - Nothing is written into `snapshots/` except by a link or a rename of a fully written and
//!   synced file, followed by a sync of the folder.
//! - Nothing the leak gate has not passed is readable in the repository, even after a crash:
//!   an archive is written into a file without a name, or encrypted to a key held only in
//!   memory, until its commit (see [`PendingArchive`]).
//! - Every change (begin, commit, remove, cleaning `tmp/`) needs a [`RepoLock`]; reading needs
//!   none, since readers only ever see complete files.
//! - Files are created `0600`, folders `0700`.

mod durable;
pub mod gc;
mod id;
mod list;
mod lock;
pub mod packs;
mod pending;
pub mod rebuild;
pub mod retention;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use id::SnapshotId;
pub use list::{Listing, Orphan, OrphanKind};
pub(crate) use lock::alive;
pub use lock::{LockInfo, RepoLock, host_name};
pub use pending::{PendingArchive, PendingFile};

use crate::archive::Sidecar;
use crate::error::{Error, Result};

/// File name ending of an unencrypted archive.
pub const PLAIN_SUFFIX: &str = ".tar.zst";
/// File name ending of an encrypted archive.
pub const ENCRYPTED_SUFFIX: &str = ".tar.zst.age";
/// File name ending of a sidecar.
pub const SIDECAR_SUFFIX: &str = ".json";
/// Ending of the refs file of a format-2 snapshot (the chunks it needs).
pub const REFS_SUFFIX: &str = ".refs";
/// Ending of files being written in `tmp/`.
const PARTIAL_SUFFIX: &str = ".partial";

/// A local repository folder.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

impl Repository {
    /// The repository at `root`; creates it (and its `snapshots/` and `tmp/`, `0700`) when
    /// missing, so that the first snapshot needs no setup.
    pub fn open_or_create(root: &Path) -> Result<Repository> {
        let repo = Repository {
            root: root.to_path_buf(),
        };
        for dir in [repo.snapshots_dir(), repo.tmp_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(&dir, e))?;
        }
        Ok(repo)
    }

    /// The repository at `root`, which must exist (for commands that only read or delete).
    pub fn open(root: &Path) -> Result<Repository> {
        let repo = Repository {
            root: root.to_path_buf(),
        };
        let snapshots = repo.snapshots_dir();
        if !snapshots.is_dir() {
            let err = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no repository here (no `snapshots/` folder); run `agentbak snapshot` first",
            );
            return Err(Error::io(root, err));
        }
        Ok(repo)
    }

    /// The repository folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<repo>/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `<repo>/tmp`.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Takes the repository lock for `command`, waiting up to `wait` for another run.
    pub fn lock(&self, wait: Option<Duration>, command: &str) -> Result<RepoLock> {
        RepoLock::acquire(&self.root.join("lock"), wait, command)
    }

    /// Removes what runs that did not finish left in `tmp/` (sidecars, sealed archives whose
    /// key is gone, copies made at commit, and the plaintext `.partial` archives that earlier
    /// versions wrote); returns the paths removed.
    pub fn clean_tmp(&self, _lock: &RepoLock) -> Result<Vec<PathBuf>> {
        let tmp = self.tmp_dir();
        let mut removed = Vec::new();
        let entries = match fs::read_dir(&tmp) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(Error::io(&tmp, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&tmp, e))?.path();
            let gone = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            gone.map_err(|e| Error::io(&path, e))?;
            tracing::info!(path = %path.display(), "removed a leftover of an unfinished run");
            removed.push(path);
        }
        // A refs file without its sidecar is a format-2 snapshot killed before its last
        // write: it holds only chunk ids, and the snapshot does not exist.
        let dir = self.snapshots_dir();
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries {
                let path = entry.map_err(|e| Error::io(&dir, e))?.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let Some(id) = name.strip_suffix(REFS_SUFFIX) else {
                    continue;
                };
                if !self.sidecar_path(id).exists() {
                    fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                    tracing::info!(path = %path.display(), "removed a leftover of an unfinished run");
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }

    /// Starts writing the archive of snapshot `id` into `tmp/`, where a crash leaves nothing
    /// readable (see [`PendingArchive`]).
    pub fn begin(
        &self,
        _lock: &RepoLock,
        id: &SnapshotId,
        encrypted: bool,
    ) -> Result<PendingArchive<'_>> {
        PendingArchive::start(self, id, encrypted, pending::Way::Unnamed)
    }

    /// The path of a snapshot's archive.
    pub fn archive_path(&self, sidecar: &Sidecar) -> PathBuf {
        self.snapshots_dir().join(&sidecar.archive)
    }

    /// Writes a small object durably: into a synced private file in `tmp/`, renamed to
    /// `path` (which must not exist: objects are written once), then its folder synced.
    pub fn put_object(&self, _lock: &RepoLock, path: &Path, bytes: &[u8]) -> Result<()> {
        self.write_object(path, bytes)
    }

    /// [`Repository::put_object`], for a caller that holds the lock in another form (a
    /// pending archive's commit).
    fn write_object(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path
            .file_name()
            .map_or_else(|| "object".into(), |n| n.to_string_lossy().into_owned());
        let tmp = self.tmp_dir().join(format!("{name}{PARTIAL_SUFFIX}"));
        let _ = fs::remove_file(&tmp);
        let mut out = create_private(&tmp)?;
        out.write_all(bytes)
            .and_then(|()| out.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        drop(out);
        if path.exists() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the object exists"),
            ));
        }
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    /// The chunk ids of a format-2 snapshot's refs file, checked against its sidecar's size
    /// and blake3.
    pub fn read_refs(&self, sidecar: &Sidecar) -> Result<Vec<packs::ChunkId>> {
        let path = self.archive_path(sidecar);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let digest = blake3::hash(&bytes).to_hex();
        if bytes.len() as u64 != sidecar.size
            || digest.as_str() != sidecar.blake3
            || bytes.len() % 32 != 0
        {
            return Err(Error::Integrity(crate::archive::IntegrityError {
                archive: path.display().to_string(),
                problem: crate::archive::IntegrityProblem::Index(
                    "the refs file differs from its sidecar's size and blake3".to_string(),
                ),
            }));
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect())
    }

    /// The path of a snapshot's sidecar.
    pub fn sidecar_path(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{id}{SIDECAR_SUFFIX}"))
    }

    /// Opens a snapshot's archive for reading.
    pub fn open_archive(&self, sidecar: &Sidecar) -> Result<File> {
        let path = self.archive_path(sidecar);
        File::open(&path).map_err(|e| Error::io(&path, e))
    }

    /// Deletes a snapshot: its sidecar first (from then on it is not listed), then its archive.
    /// A crash in between leaves an orphan archive, never a listed snapshot without one.
    pub fn remove(&self, _lock: &RepoLock, sidecar: &Sidecar) -> Result<()> {
        let marker = self.sidecar_path(&sidecar.id);
        fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        sync_dir(&self.snapshots_dir())?;
        let archive = self.archive_path(sidecar);
        match fs::remove_file(&archive) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&archive, e)),
        }
        sync_dir(&self.snapshots_dir())
    }

    /// Finds a snapshot by `latest`, its full id, or a unique prefix of its id.
    pub fn resolve<'l>(&self, listing: &'l Listing, wanted: &str) -> Result<&'l Sidecar> {
        let not_found = || Error::SnapshotNotFound {
            id: wanted.to_string(),
            repository: self.root.clone(),
        };
        if wanted == "latest" {
            return listing.snapshots.last().ok_or_else(not_found);
        }
        if let Some(exact) = listing.snapshots.iter().find(|s| s.id == wanted) {
            return Ok(exact);
        }
        let mut matches = listing
            .snapshots
            .iter()
            .filter(|s| !wanted.is_empty() && s.id.starts_with(wanted));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(one),
            (Some(_), Some(_)) => Err(Error::Usage(format!(
                "`{wanted}` matches several snapshots; give more of the id"
            ))),
            _ => Err(not_found()),
        }
    }
}

fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Makes renames and removals in `dir` durable (restore uses it for the target's parent).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}
