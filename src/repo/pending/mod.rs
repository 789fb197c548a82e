//! The archive of a snapshot while it is written, and the commit that makes it a snapshot.
//!
//! SPEC "Snapshot" point 9: nothing reaches the disk before the leak gate passed it, or what
//! does is unreadable without a key held only in memory. The gate scans the tar stream on its
//! own thread while the archive is written and refuses only at the end, when hundreds of
//! megabytes have gone to the disk (the background flush of `ArchiveFile` sends them on
//! purpose). A `kill -9` or a power cut in that window must not leave them readable in the
//! repository, where the next off-site sync would carry them (issue 17, item 4: a 300 MB
//! `tmp/<id>.tar.zst.partial` held a token the gate would have refused). So the archive is
//! written in one of two ways:
//!
//! - **Unnamed**, the usual way: `open(tmp/, O_TMPFILE)` makes a file that no folder names.
//!   However the process ends, the kernel frees the file when its last descriptor closes;
//!   after a power cut, the file system frees it when it is mounted again (ext4, xfs and
//!   btrfs keep such inodes on their orphan list). Commit syncs the file and only then gives
//!   it its final name, `snapshots/<id>.tar.zst[.age]`, with `linkat`: through
//!   `/proc/self/fd/N` (`AT_SYMLINK_FOLLOW`, which needs no capability), else with
//!   `AT_EMPTY_PATH` (no `/proc`; needs `CAP_DAC_READ_SEARCH`), else by copying the file into a
//!   named, synced `tmp/<name>.partial` and linking that into place (the gate has passed by
//!   then, so a name is allowed). A link never replaces an existing file, where a rename
//!   would; only where the file system has no links at all is the copy renamed, and then
//!   only if nothing has the name.
//! - **Sealed**, where the file system has no `O_TMPFILE` (some FUSE, NFS and overlay set-ups:
//!   the open fails with `EOPNOTSUPP`, `EISDIR` or `EINVAL`): the archive goes into
//!   `tmp/<name>.sealed`, age-encrypted to an X25519 key made for this run and held only in
//!   memory. A crash leaves ciphertext whose key died with the process, and the next locked
//!   run deletes it. Commit decrypts it into `tmp/<name>.partial`, checks its size and blake3
//!   against the sidecar, syncs it and links it into place, as above. The price: the archive is
//!   encrypted, written, read, decrypted and written again: about 0.3 s more on a 0.7–0.9 s
//!   snapshot of 500 MiB (a 130 MiB archive; docs/format.md has the measurements). The
//!   unnamed file costs nothing measurable.
//!
//! Sealing was chosen over writing a named plaintext partial with a warning: the warning would
//! break point 9 on exactly the file systems a repository is likeliest to be synced from, and
//! the copy is paid only there.
//!
//! Both ways are the `hidden` module's [`HiddenFile`], which the packs of format 2
//! (`repo::packs`) use too.

mod hidden;

use std::io::{self, Write};
use std::path::PathBuf;

pub(crate) use hidden::{ALL_LINKS, ClosedFile, Expect, HiddenFile, Link, Way};
#[cfg(test)]
use hidden::{SEALED_SUFFIX, lacks_unnamed_files, open_unnamed};

use super::{ENCRYPTED_SUFFIX, PLAIN_SUFFIX, Repository, SnapshotId};
use crate::archive::Sidecar;
use crate::error::{Error, Result};

/// The archive of a snapshot being written; nothing of it stays behind unless committed.
pub struct PendingArchive<'r> {
    repo: &'r Repository,
    id: SnapshotId,
    name: String,
    out: Option<PendingFile>,
    /// The ways of naming that commit tries, in order ([`ALL_LINKS`]; tests try one).
    link_ways: &'static [Link],
}

/// The file a pending archive is written into (the sink of an `ArchiveWriter`).
#[derive(Debug)]
pub struct PendingFile(HiddenFile);

impl PendingArchive<'_> {
    /// Starts writing the archive of snapshot `id` into `repo`'s `tmp/`, the `way` asked for
    /// (or sealed, where the file system has no unnamed files).
    pub(super) fn start<'r>(
        repo: &'r Repository,
        id: &SnapshotId,
        encrypted: bool,
        way: Way,
    ) -> Result<PendingArchive<'r>> {
        let suffix = if encrypted {
            ENCRYPTED_SUFFIX
        } else {
            PLAIN_SUFFIX
        };
        let name = format!("{id}{suffix}");
        let out = HiddenFile::create(&repo.tmp_dir(), &name, way)?;
        Ok(PendingArchive {
            repo,
            id: id.clone(),
            name,
            out: Some(PendingFile(out)),
            link_ways: ALL_LINKS,
        })
    }

    /// The file to write the archive into (the sink of an `ArchiveWriter`).
    pub fn file(&mut self) -> &mut PendingFile {
        self.out.as_mut().expect("the file lives until commit")
    }

    /// The snapshot id.
    pub fn id(&self) -> &SnapshotId {
        &self.id
    }

    /// The archive's final file name (`<id>.tar.zst[.age]`), for the sidecar.
    pub fn archive_name(&self) -> &str {
        &self.name
    }

    /// Where the archive is being written, for messages: the `tmp/` folder that holds the
    /// unnamed file, or the sealed file in it.
    pub fn tmp_path(&self) -> PathBuf {
        match &self.out {
            Some(file) => file.0.tmp_path(),
            None => self.repo.tmp_dir(),
        }
    }

    /// Makes the snapshot visible: sync the archive and give it its name in `snapshots/`
    /// (see the module documentation), then write the sidecar through a synced temporary
    /// file, rename it beside the archive and sync the folder.
    pub fn commit(mut self, sidecar: &Sidecar) -> Result<()> {
        if sidecar.id != self.id.as_str() || sidecar.archive != self.name {
            return Err(Error::Entry {
                path: self.name.clone(),
                reason: format!(
                    "the sidecar names snapshot `{}` and archive `{}`",
                    sidecar.id, sidecar.archive
                ),
            });
        }
        let archive = self.repo.snapshots_dir().join(&self.name);
        let file = self.out.take().expect("commit runs once").0.close()?;
        let expect = Expect {
            name: &self.name,
            promised_by: "the sidecar",
            size: sidecar.size,
            blake3: &sidecar.blake3,
            existing_ok: false,
        };
        file.place(&archive, &expect, self.link_ways)?;
        self.write_marker(sidecar)
    }

    /// Writes the sidecar through a synced temporary file and renames it beside the archive:
    /// from then on the snapshot is listed.
    fn write_marker(&self, sidecar: &Sidecar) -> Result<()> {
        let marker = self.repo.sidecar_path(self.id.as_str());
        self.repo.write_object(&marker, &sidecar.to_json())
    }
}

impl std::fmt::Debug for PendingArchive<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingArchive")
            .field("repository", &self.repo.root())
            .field("id", &self.id)
            .field("name", &self.name)
            .field("file", &self.out)
            .finish()
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests;
