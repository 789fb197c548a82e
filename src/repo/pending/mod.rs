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
//!   named, synced `tmp/<name>.partial` and renaming that (the gate has passed by then, so a
//!   name is allowed). A link never replaces an existing file, where a rename would.
//! - **Sealed**, where the file system has no `O_TMPFILE` (some FUSE, NFS and overlay set-ups:
//!   the open fails with `EOPNOTSUPP`, `EISDIR` or `EINVAL`): the archive goes into
//!   `tmp/<name>.sealed`, age-encrypted to an X25519 key made for this run and held only in
//!   memory. A crash leaves ciphertext whose key died with the process, and the next locked
//!   run deletes it. Commit decrypts it into `tmp/<name>.partial`, checks its size and blake3
//!   against the sidecar, syncs it and renames it into place. The price: the archive is
//!   encrypted, written, read, decrypted and written again: about 0.3 s more on a 0.7–0.9 s
//!   snapshot of 500 MiB (a 130 MiB archive; docs/format.md has the measurements). The
//!   unnamed file costs nothing measurable.
//!
//! Sealing was chosen over writing a named plaintext partial with a warning: the warning would
//! break point 9 on exactly the file systems a repository is likeliest to be synced from, and
//! the copy is paid only there.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use super::durable::ArchiveFile;
use super::{
    ENCRYPTED_SUFFIX, PARTIAL_SUFFIX, PLAIN_SUFFIX, Repository, SIDECAR_SUFFIX, SnapshotId,
    create_private, sync_dir,
};
use crate::archive::{HashingReader, Sidecar};
use crate::error::{Error, Result};

/// Ending of a sealed archive in `tmp/` (see the module documentation).
const SEALED_SUFFIX: &str = ".sealed";

/// Bytes read at a time when an archive is copied at commit.
const COPY_BUFFER: usize = 1 << 20;

/// How a pending archive is kept unreadable until its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Way {
    /// An `O_TMPFILE`, with a fall back to [`Way::Sealed`] where the file system has none.
    Unnamed,
    /// A named file encrypted to a key held in memory. Only tests ask for it: elsewhere it is
    /// reached through the fall back of [`Way::Unnamed`].
    #[cfg_attr(not(test), allow(dead_code))]
    Sealed,
}

/// The ways commit gives an unnamed archive its name, in the order tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW)`.
    Proc,
    /// `linkat(fd, "", AT_EMPTY_PATH)`.
    EmptyPath,
    /// Copy into a named file, sync, rename.
    Copy,
}

/// Every way of naming an unnamed archive, in the order tried.
const ALL_LINKS: &[Link] = &[Link::Proc, Link::EmptyPath, Link::Copy];

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
pub struct PendingFile(Out);

enum Out {
    /// Reaches the disk in the background as it grows (see `ArchiveFile`).
    Unnamed(ArchiveFile),
    /// Not synced: it is read back at commit, and after a crash it is useless anyway.
    Sealed {
        stream: age::stream::StreamWriter<File>,
        path: PathBuf,
        key: age::x25519::Identity,
    },
}

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
        let tmp = repo.tmp_dir();
        let out = match way {
            Way::Unnamed => match open_unnamed(&tmp) {
                Ok(file) => Out::Unnamed(ArchiveFile::new(file)),
                Err(e) if lacks_unnamed_files(&e) => {
                    tracing::info!(
                        folder = %tmp.display(),
                        "the file system has no unnamed files (O_TMPFILE); the archive is \
                         written encrypted with a key held in memory and decrypted at commit"
                    );
                    seal(&tmp.join(format!("{name}{SEALED_SUFFIX}")))?
                }
                Err(e) => return Err(Error::io(&tmp, e)),
            },
            Way::Sealed => seal(&tmp.join(format!("{name}{SEALED_SUFFIX}")))?,
        };
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
        match self.out.as_ref().map(|f| &f.0) {
            Some(Out::Sealed { path, .. }) => path.clone(),
            _ => self.repo.tmp_dir(),
        }
    }

    /// Makes the snapshot visible: sync the archive and give it its name in `snapshots/`
    /// (see the module documentation), then write the sidecar through a synced temporary
    /// file, rename it beside the archive and sync the folder.
    pub fn commit(mut self, sidecar: &Sidecar) -> Result<()> {
        if sidecar.id != self.id.as_str() || sidecar.archive != self.name {
            return Err(self.mismatch(format!(
                "the sidecar names snapshot `{}` and archive `{}`",
                sidecar.id, sidecar.archive
            )));
        }
        let archive = self.repo.snapshots_dir().join(&self.name);
        match self.out.take().expect("commit runs once").0 {
            Out::Unnamed(file) => {
                let tmp = self.repo.tmp_dir();
                let file = file.finish().map_err(|e| Error::io(&tmp, e))?;
                let len = file.metadata().map_err(|e| Error::io(&tmp, e))?.len();
                if len != sidecar.size {
                    return Err(self.mismatch(format!(
                        "the file holds {len} bytes, the sidecar says {}",
                        sidecar.size
                    )));
                }
                self.link(file, &archive, sidecar)?;
            }
            Out::Sealed { stream, path, key } => {
                let copied = stream
                    .finish()
                    .map_err(|e| Error::io(&path, e))
                    .and_then(|file| {
                        drop(file);
                        self.unseal(&path, &key, &archive, sidecar)
                    });
                // The ciphertext is of no use once copied, nor after a failure.
                let _ = fs::remove_file(&path);
                copied?;
            }
        }
        self.write_marker(sidecar)
    }

    /// Gives the unnamed, synced `file` its name `archive`, the first way that works.
    fn link(&self, mut file: File, archive: &Path, sidecar: &Sidecar) -> Result<()> {
        let mut refused = Errno::NOENT;
        for &way in self.link_ways {
            let linked = match way {
                Link::Proc => rustix::fs::linkat(
                    CWD,
                    format!("/proc/self/fd/{}", file.as_raw_fd()),
                    CWD,
                    archive,
                    AtFlags::SYMLINK_FOLLOW,
                ),
                Link::EmptyPath => rustix::fs::linkat(&file, "", CWD, archive, AtFlags::EMPTY_PATH),
                Link::Copy => {
                    let tmp = self.repo.tmp_dir();
                    file.rewind().map_err(|e| Error::io(&tmp, e))?;
                    return self.copy_into_place(file, &tmp, archive, sidecar);
                }
            };
            match linked {
                Ok(()) => return Ok(()),
                Err(e) if may_link_otherwise(e) => {
                    tracing::debug!(?way, error = %e, "linking the archive failed; next way");
                    refused = e;
                }
                Err(e) => return Err(Error::io(archive, e.into())),
            }
        }
        Err(Error::io(archive, refused.into()))
    }

    /// Decrypts the sealed file at `path` into place as `archive`.
    fn unseal(
        &self,
        path: &Path,
        key: &age::x25519::Identity,
        archive: &Path,
        sidecar: &Sidecar,
    ) -> Result<()> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let undecryptable = |e: age::DecryptError| {
            let reason = format!("the sealed archive does not decrypt: {e}");
            Error::io(path, io::Error::new(io::ErrorKind::InvalidData, reason))
        };
        let plain = age::Decryptor::new_buffered(BufReader::with_capacity(COPY_BUFFER, file))
            .map_err(undecryptable)?
            .decrypt(std::iter::once(key as &dyn age::Identity))
            .map_err(undecryptable)?;
        self.copy_into_place(plain, path, archive, sidecar)
    }

    /// Copies `from` (named `source` in messages) into a new `tmp/<name>.partial`, checks it
    /// against the sidecar, syncs it and renames it to `archive`. The copy is removed on
    /// failure.
    fn copy_into_place(
        &self,
        from: impl Read,
        source: &Path,
        archive: &Path,
        sidecar: &Sidecar,
    ) -> Result<()> {
        let partial = self
            .repo
            .tmp_dir()
            .join(format!("{}{PARTIAL_SUFFIX}", self.name));
        let copied = (|| {
            let mut out = ArchiveFile::new(create_private(&partial)?);
            let mut from = HashingReader::new(from);
            let mut buf = vec![0; COPY_BUFFER];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(source, e)),
                };
                out.write_all(&buf[..n])
                    .map_err(|e| Error::io(&partial, e))?;
            }
            let (len, blake3) = from.digest();
            if len != sidecar.size || blake3 != sidecar.blake3 {
                return Err(self.mismatch(format!(
                    "the copy holds {len} bytes with blake3 {blake3}, the sidecar says {} \
                     bytes with blake3 {}",
                    sidecar.size, sidecar.blake3
                )));
            }
            out.finish().map_err(|e| Error::io(&partial, e))?;
            fs::rename(&partial, archive).map_err(|e| Error::io(archive, e))
        })();
        if copied.is_err() {
            let _ = fs::remove_file(&partial);
        }
        copied
    }

    /// Writes the sidecar through a synced temporary file and renames it beside the archive:
    /// from then on the snapshot is listed.
    fn write_marker(&self, sidecar: &Sidecar) -> Result<()> {
        let sidecar_tmp = self
            .repo
            .tmp_dir()
            .join(format!("{}{SIDECAR_SUFFIX}{PARTIAL_SUFFIX}", self.id));
        let mut out = create_private(&sidecar_tmp)?;
        out.write_all(&sidecar.to_json())
            .and_then(|()| out.sync_all())
            .map_err(|e| Error::io(&sidecar_tmp, e))?;
        drop(out);
        let marker = self.repo.sidecar_path(self.id.as_str());
        fs::rename(&sidecar_tmp, &marker).map_err(|e| Error::io(&marker, e))?;
        sync_dir(&self.repo.snapshots_dir())
    }

    fn mismatch(&self, reason: String) -> Error {
        Error::Entry {
            path: self.name.clone(),
            reason,
        }
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

impl std::fmt::Debug for PendingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Out::Unnamed(file) => f.debug_tuple("Unnamed").field(file).finish(),
            // The key stays out of every message.
            Out::Sealed { path, .. } => f.debug_tuple("Sealed").field(path).finish(),
        }
    }
}

impl Drop for PendingArchive<'_> {
    fn drop(&mut self) {
        // Not committed (an error, a refused leak gate): leave nothing behind. An unnamed file
        // needs nothing: the kernel frees it when it is closed.
        if let Some(PendingFile(Out::Sealed { stream, path, .. })) = self.out.take() {
            drop(stream);
            let _ = fs::remove_file(path);
        }
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Out::Unnamed(file) => file.write(buf),
            Out::Sealed { stream, .. } => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Out::Unnamed(file) => file.flush(),
            Out::Sealed { stream, .. } => stream.flush(),
        }
    }
}

/// A new `0600` file in `dir` that no folder names (`O_TMPFILE`). Opened for reading too, so
/// that commit can copy it when it may not link it.
fn open_unnamed(dir: &Path) -> io::Result<File> {
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Whether an `O_TMPFILE` open failed because the file system (or kernel) has none:
/// `EOPNOTSUPP` from the file system, `EISDIR` from a kernel that ignores the flag and opens
/// the folder, `EINVAL` from some that know the flag but not for this file system.
fn lacks_unnamed_files(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL)
    )
}

/// Whether a failed `linkat` may succeed another way: `/proc` is absent (`ENOENT`), the
/// capability for `AT_EMPTY_PATH` is missing (`ENOENT` too), or the file system refuses links.
/// Any other error (no space, an existing file) is the commit's error.
fn may_link_otherwise(e: Errno) -> bool {
    matches!(
        e,
        Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::XDEV | Errno::OPNOTSUPP
    )
}

/// A new `0600` file at `path` that receives the archive encrypted to a fresh key, held only
/// in memory.
fn seal(path: &Path) -> Result<Out> {
    let file = create_private(path)?;
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public();
    let stream = age::Encryptor::with_recipients(std::iter::once(&recipient as _))
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|encryptor| encryptor.wrap_output(file));
    match stream {
        Ok(stream) => Ok(Out::Sealed {
            stream,
            path: path.to_path_buf(),
            key,
        }),
        Err(e) => {
            let _ = fs::remove_file(path);
            Err(Error::io(path, e))
        }
    }
}

#[cfg(test)]
mod tests;
