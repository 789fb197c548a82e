//! A file nobody can read until it is given its name: the primitive under both a pending
//! archive ([`super::PendingArchive`]) and the packs of format 2 (`repo::packs`).
//!
//! [`HiddenFile::create`] opens it one of two ways (see the documentation of `pending` for
//! why): **unnamed** (`O_TMPFILE` in `tmp/`, freed by the kernel however the process ends),
//! or, where the file system has none, **sealed** (`tmp/<label>.sealed`, age-encrypted to a
//! key held only in memory, removed when dropped). [`HiddenFile::close`] syncs it;
//! [`ClosedFile::place`] gives it its final name without ever replacing a file: a link of the
//! unnamed file, else a checked copy into `tmp/<label>.partial` that is then linked (or,
//! where the file system has no links, renamed) into place.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use super::super::durable::ArchiveFile;
use super::super::{PARTIAL_SUFFIX, create_private};
use crate::archive::HashingReader;
use crate::error::{Error, Result};

/// Ending of a sealed file in `tmp/` (see the module documentation).
pub(crate) const SEALED_SUFFIX: &str = ".sealed";

/// Bytes read at a time when a file is copied at commit.
const COPY_BUFFER: usize = 1 << 20;

/// How a hidden file is kept unreadable until it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// An `O_TMPFILE`, with a fall back to [`Way::Sealed`] where the file system has none.
    Unnamed,
    /// A named file encrypted to a key held in memory. Only tests ask for it: elsewhere it is
    /// reached through the fall back of [`Way::Unnamed`].
    #[cfg_attr(not(test), allow(dead_code))]
    Sealed,
}

/// The ways [`ClosedFile::place`] gives an unnamed file its name, in the order tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// `linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW)`.
    Proc,
    /// `linkat(fd, "", AT_EMPTY_PATH)`.
    EmptyPath,
    /// Copy into a named file, sync, link (or rename) it into place.
    Copy,
}

/// Every way of naming an unnamed file, in the order tried.
pub(crate) const ALL_LINKS: &[Link] = &[Link::Proc, Link::EmptyPath, Link::Copy];

/// What the placed file must be: a copy is checked against it before it gets its name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    /// How errors name the file (`<id>.tar.zst`, a pack's id).
    pub(crate) name: &'a str,
    /// Who promised `size` and `blake3`, for errors (`the sidecar`).
    pub(crate) promised_by: &'a str,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// The blake3 of its bytes, lowercase hex.
    pub(crate) blake3: &'a str,
    /// Whether a file already at the target is taken as this one (content-addressed names).
    /// Otherwise it is an error; either way it is never replaced.
    pub(crate) existing_ok: bool,
}

impl Expect<'_> {
    fn mismatch(&self, reason: String) -> Error {
        Error::Entry {
            path: self.name.to_string(),
            reason,
        }
    }
}

/// A file being written that nothing names (or that is sealed); see the module documentation.
pub(crate) struct HiddenFile {
    out: Option<Out>,
    tmp: PathBuf,
    label: String,
}

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

impl HiddenFile {
    /// A new hidden file in the folder `tmp`, the `way` asked for (or sealed, where the file
    /// system has no unnamed files). `label` names its files in `tmp/` when it has any
    /// (`<label>.sealed`, `<label>.partial`).
    pub(crate) fn create(tmp: &Path, label: &str, way: Way) -> Result<HiddenFile> {
        let sealed = || tmp.join(format!("{label}{SEALED_SUFFIX}"));
        let out = match way {
            Way::Unnamed => match open_unnamed(tmp) {
                Ok(file) => Out::Unnamed(ArchiveFile::new(file)),
                Err(e) if lacks_unnamed_files(&e) => {
                    tracing::info!(
                        folder = %tmp.display(),
                        "the file system has no unnamed files (O_TMPFILE); the file is \
                         written encrypted with a key held in memory and decrypted at commit"
                    );
                    seal(&sealed())?
                }
                Err(e) => return Err(Error::io(tmp, e)),
            },
            Way::Sealed => seal(&sealed())?,
        };
        Ok(HiddenFile {
            out: Some(out),
            tmp: tmp.to_path_buf(),
            label: label.to_string(),
        })
    }

    /// Where the file is being written, for messages: the `tmp/` folder that holds the
    /// unnamed file, or the sealed file in it.
    pub(crate) fn tmp_path(&self) -> PathBuf {
        match &self.out {
            Some(Out::Sealed { path, .. }) => path.clone(),
            _ => self.tmp.clone(),
        }
    }

    /// The unnamed file written into; `None` when sealed.
    #[cfg(test)]
    pub(crate) fn unnamed(&self) -> Option<&File> {
        match &self.out {
            Some(Out::Unnamed(file)) => Some(file.get_ref()),
            _ => None,
        }
    }

    /// Ends writing: syncs an unnamed file (data and metadata), finishes a sealed one's
    /// encryption. Nothing is named yet.
    pub(crate) fn close(mut self) -> Result<ClosedFile> {
        let closed = match self.out.take().expect("closed once") {
            Out::Unnamed(file) => {
                Closed::Unnamed(file.finish().map_err(|e| Error::io(&self.tmp, e))?)
            }
            Out::Sealed { stream, path, key } => match stream.finish() {
                Ok(file) => {
                    drop(file);
                    Closed::Sealed { path, key }
                }
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(Error::io(&path, e));
                }
            },
        };
        Ok(ClosedFile {
            closed: Some(closed),
            tmp: std::mem::take(&mut self.tmp),
            label: std::mem::take(&mut self.label),
        })
    }
}

impl Drop for HiddenFile {
    fn drop(&mut self) {
        // Not closed (an error, a refused leak gate): leave nothing behind. An unnamed file
        // needs nothing: the kernel frees it when it is closed.
        if let Some(Out::Sealed { stream, path, .. }) = self.out.take() {
            drop(stream);
            let _ = fs::remove_file(path);
        }
    }
}

impl Write for HiddenFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.out.as_mut().expect("written until closed") {
            Out::Unnamed(file) => file.write(buf),
            Out::Sealed { stream, .. } => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut().expect("written until closed") {
            Out::Unnamed(file) => file.flush(),
            Out::Sealed { stream, .. } => stream.flush(),
        }
    }
}

impl std::fmt::Debug for HiddenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.out {
            Some(Out::Unnamed(file)) => f.debug_tuple("Unnamed").field(file).finish(),
            // The key stays out of every message.
            Some(Out::Sealed { path, .. }) => f.debug_tuple("Sealed").field(path).finish(),
            None => f.write_str("Closed"),
        }
    }
}

/// A hidden file, written and synced, waiting for its name.
pub(crate) struct ClosedFile {
    closed: Option<Closed>,
    tmp: PathBuf,
    label: String,
}

enum Closed {
    Unnamed(File),
    Sealed {
        path: PathBuf,
        key: age::x25519::Identity,
    },
}

impl ClosedFile {
    /// Gives the file its name `target`, the first of `links` that works for an unnamed file;
    /// a sealed one is decrypted into place. Never replaces a file at `target` (see
    /// [`Expect::existing_ok`]). The caller syncs `target`'s folder.
    pub(crate) fn place(
        mut self,
        target: &Path,
        expect: &Expect<'_>,
        links: &[Link],
    ) -> Result<()> {
        match self.closed.take().expect("placed once") {
            Closed::Unnamed(file) => {
                let len = file.metadata().map_err(|e| Error::io(&self.tmp, e))?.len();
                if len != expect.size {
                    return Err(expect.mismatch(format!(
                        "the file holds {len} bytes, {} says {}",
                        expect.promised_by, expect.size
                    )));
                }
                self.link(file, target, expect, links)
            }
            Closed::Sealed { path, key } => {
                let copied = self.unseal(&path, &key, target, expect);
                // The ciphertext is of no use once copied, nor after a failure.
                let _ = fs::remove_file(&path);
                copied
            }
        }
    }

    /// Gives the unnamed, synced `file` its name `target`, the first way that works.
    fn link(
        &self,
        mut file: File,
        target: &Path,
        expect: &Expect<'_>,
        links: &[Link],
    ) -> Result<()> {
        let mut refused = Errno::NOENT;
        for &way in links {
            let linked = match way {
                Link::Proc => rustix::fs::linkat(
                    CWD,
                    format!("/proc/self/fd/{}", file.as_raw_fd()),
                    CWD,
                    target,
                    AtFlags::SYMLINK_FOLLOW,
                ),
                Link::EmptyPath => rustix::fs::linkat(&file, "", CWD, target, AtFlags::EMPTY_PATH),
                Link::Copy => {
                    file.rewind().map_err(|e| Error::io(&self.tmp, e))?;
                    return self.copy_into_place(file, &self.tmp, target, expect);
                }
            };
            match linked {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) if expect.existing_ok => return Ok(()),
                Err(e) if may_link_otherwise(e) => {
                    tracing::debug!(?way, error = %e, "linking the file failed; next way");
                    refused = e;
                }
                Err(e) => return Err(Error::io(target, e.into())),
            }
        }
        Err(Error::io(target, refused.into()))
    }

    /// Decrypts the sealed file at `path` into place as `target`.
    fn unseal(
        &self,
        path: &Path,
        key: &age::x25519::Identity,
        target: &Path,
        expect: &Expect<'_>,
    ) -> Result<()> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let undecryptable = |e: age::DecryptError| {
            let reason = format!("the sealed file does not decrypt: {e}");
            Error::io(path, io::Error::new(io::ErrorKind::InvalidData, reason))
        };
        let plain = age::Decryptor::new_buffered(BufReader::with_capacity(COPY_BUFFER, file))
            .map_err(undecryptable)?
            .decrypt(std::iter::once(key as &dyn age::Identity))
            .map_err(undecryptable)?;
        self.copy_into_place(plain, path, target, expect)
    }

    /// Copies `from` (named `source` in messages) into a new `tmp/<label>.partial`, checks it
    /// against `expect`, syncs it and gives it the name `target`. The copy is removed
    /// whatever happens.
    fn copy_into_place(
        &self,
        from: impl Read,
        source: &Path,
        target: &Path,
        expect: &Expect<'_>,
    ) -> Result<()> {
        let partial = self.tmp.join(format!("{}{PARTIAL_SUFFIX}", self.label));
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
            if len != expect.size || blake3 != expect.blake3 {
                return Err(expect.mismatch(format!(
                    "the copy holds {len} bytes with blake3 {blake3}, {} says {} bytes with \
                     blake3 {}",
                    expect.promised_by, expect.size, expect.blake3
                )));
            }
            out.finish().map_err(|e| Error::io(&partial, e))?;
            name_copy(&partial, target, expect.existing_ok).map_err(|e| Error::io(target, e))
        })();
        let _ = fs::remove_file(&partial);
        copied
    }
}

impl Drop for ClosedFile {
    fn drop(&mut self) {
        if let Some(Closed::Sealed { path, .. }) = self.closed.take() {
            let _ = fs::remove_file(path);
        }
    }
}

impl std::fmt::Debug for ClosedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key of a sealed file stays out of every message.
        f.debug_struct("ClosedFile")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Gives the synced copy `partial` the name `target` without replacing a file there: a link
/// (the copy is then removed by the caller), or a rename where the file system has no links
/// and nothing is at `target`.
fn name_copy(partial: &Path, target: &Path, existing_ok: bool) -> io::Result<()> {
    match fs::hard_link(partial, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && existing_ok => Ok(()),
        Err(e)
            if Errno::from_io_error(&e).is_some_and(may_link_otherwise)
                && fs::symlink_metadata(target).is_err() =>
        {
            fs::rename(partial, target)
        }
        Err(e) => Err(e),
    }
}

/// A new `0600` file in `dir` that no folder names (`O_TMPFILE`). Opened for reading too, so
/// that commit can copy it when it may not link it.
pub(crate) fn open_unnamed(dir: &Path) -> io::Result<File> {
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
pub(crate) fn lacks_unnamed_files(e: &io::Error) -> bool {
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

/// A new `0600` file at `path` that receives the file encrypted to a fresh key, held only in
/// memory.
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
