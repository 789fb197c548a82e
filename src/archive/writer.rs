//! The archive writer: tar → zstd → optional age → any `impl Write` sink.
//!
//! Entries go under `state/` in the order the caller appends them, and `finish` appends
//! `agentbak/index.json` last. Headers are GNU tar (long paths and link targets use GNU
//! long-name records, which stock GNU and BSD tar read), with the entry's permission bits and
//! mtime kept and the owner normalized to uid/gid 0 with empty names, so that an archive says
//! nothing about the snapshot host's accounts.
//!
//! Invariants:
//! - Every byte of the raw tar stream (headers, contents, padding, the index) passes through
//!   the optional observer *before* it is compressed: the leak gate scans exactly what the
//!   archive holds.
//! - The blake3 and byte count of the final bytes (after compression and encryption) are
//!   computed while writing, so the sidecar never needs a second read of the file.
//! - Each file's blake3 is computed while its content is appended, and the index records it.
//! - Whatever the caller appends, the tar stream stays well-formed: a file that yields fewer
//!   bytes than declared is padded with zeros and reported as [`Error::Entry`].

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::archive::encryption::Recipients;
use crate::archive::frames::FrameEncoder;
use crate::archive::index::{
    EntryKind, INDEX_FORMAT, INDEX_PATH, Index, IndexEntry, SecretLocation, SnapshotInfo,
    archive_path,
};
use crate::archive::sidecar::Counts;
use crate::archive::{HashingWriter, hex};
use crate::error::{Error, Result};

/// How to write an archive.
#[derive(Debug)]
pub struct WriterOptions<'r> {
    /// zstd level, 1 to 19 (the manifest's `compression.level`).
    pub level: i32,
    /// zstd worker threads; 0 compresses on the calling thread.
    pub threads: u32,
    /// age recipients; `None` writes an unencrypted archive.
    pub recipients: Option<&'r Recipients>,
    /// How errors name the archive (usually the temporary file's path).
    pub name: String,
}

impl Default for WriterOptions<'_> {
    fn default() -> Self {
        WriterOptions {
            level: 3,
            threads: default_threads(),
            recipients: None,
            name: "<archive>".to_string(),
        }
    }
}

/// One worker per core: what `zstd -T0` does.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Permission bits and modification time of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// Permission bits; anything above `0o7777` is dropped.
    pub mode: u32,
    /// Seconds since the Unix epoch; times before it are stored as 0.
    pub mtime: i64,
}

/// What [`ArchiveWriter::finish`] hands back.
#[derive(Debug)]
pub struct Written<W> {
    /// The sink, flushed, for the caller to sync and close.
    pub sink: W,
    /// Number of bytes written to the sink.
    pub size: u64,
    /// blake3 of the bytes written to the sink, lowercase hex.
    pub blake3: String,
    /// The index that was appended as the last entry.
    pub index: Index,
    /// Counts for the sidecar.
    pub counts: Counts,
}

/// The bottom of the stack: plain or age-encrypted, into the hashing sink.
enum Encrypt<W: Write> {
    Plain(HashingWriter<W>),
    Age(age::stream::StreamWriter<HashingWriter<W>>),
}

impl<W: Write> Write for Encrypt<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encrypt::Plain(w) => w.write(buf),
            Encrypt::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encrypt::Plain(w) => w.flush(),
            Encrypt::Age(w) => w.flush(),
        }
    }
}

impl<W: Write> Encrypt<W> {
    fn finish(self) -> io::Result<HashingWriter<W>> {
        match self {
            Encrypt::Plain(w) => Ok(w),
            Encrypt::Age(w) => w.finish(),
        }
    }
}

/// Where the tar stream goes: the compressor of an archive, or the chunker of the incremental
/// repository, which stores file contents as chunks and keeps nothing else of the stream.
pub trait Body: Write {
    /// What [`ArchiveWriter::finish`] hands back with the index.
    type Closed;
    /// Reads once from `reader` into the body, shows what was read to `observe`, and takes it
    /// into the stream; returns the bytes read (0 at its end).
    fn write_from(
        &mut self,
        reader: &mut dyn Read,
        observe: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize>;
    /// The next `size` bytes written are the content of a file.
    fn begin_content(&mut self, _size: u64) -> io::Result<()> {
        Ok(())
    }
    /// The file's content is complete.
    fn end_content(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Ends the stream.
    fn close(self) -> io::Result<Self::Closed>;
}

/// The body of an archive: zstd frames, then age, into a hashing sink.
pub struct Compressor<W: Write>(FrameEncoder<Encrypt<W>>);

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Body for Compressor<W> {
    /// The sink, with the size and blake3 of every byte written to it.
    type Closed = (W, u64, [u8; 32]);

    fn write_from(
        &mut self,
        reader: &mut dyn Read,
        observe: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        self.0.write_from(&mut { reader }, |piece| observe(piece))
    }

    fn close(self) -> io::Result<Self::Closed> {
        let encrypt = self.0.finish()?;
        let mut hashed = encrypt.finish()?;
        hashed.flush()?;
        let (sink, size, digest) = hashed.into_parts();
        Ok((sink, size, digest))
    }
}

/// Copies every byte the tar builder writes to the observer, then to the body.
struct Tee<'o, B> {
    inner: B,
    observer: Option<&'o mut dyn Write>,
}

impl<B: Body> Tee<'_, B> {
    /// Reads once from `reader` into the body, and shows it to the observer.
    fn write_from(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        let observer = &mut self.observer;
        self.inner.write_from(reader, &mut |piece| match observer {
            Some(observer) => observer.write_all(piece),
            None => Ok(()),
        })
    }
}

impl<B: Write> Write for Tee<'_, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(observer) = self.observer.as_mut() {
            observer.write_all(&buf[..n])?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        if let Some(observer) = self.observer.as_mut() {
            observer.flush()?;
        }
        self.inner.flush()
    }
}

/// Streams an archive into a sink. See the module documentation for the invariants.
pub struct ArchiveWriter<'o, B: Body> {
    tar: tar::Builder<Tee<'o, B>>,
    entries: Vec<IndexEntry>,
    seen: HashSet<String>,
    counts: Counts,
    name: String,
}

impl<'o, W: Write> ArchiveWriter<'o, Compressor<W>> {
    /// Starts an archive. `observer`, if given, receives the raw tar stream (the leak gate).
    pub fn new(
        sink: W,
        options: &WriterOptions<'_>,
        observer: Option<&'o mut dyn Write>,
    ) -> Result<Self> {
        let name = options.name.clone();
        let io_err = |e| Error::io(&name, e);
        let sink = HashingWriter::new(sink);
        let encrypt = match options.recipients {
            None => Encrypt::Plain(sink),
            Some(recipients) => {
                let encryptor =
                    age::Encryptor::with_recipients(recipients.as_dyn()).map_err(|e| {
                        Error::Recipient {
                            recipient: String::new(),
                            reason: e.to_string(),
                        }
                    })?;
                Encrypt::Age(encryptor.wrap_output(sink).map_err(io_err)?)
            }
        };
        let zstd = FrameEncoder::new(encrypt, options.level, options.threads);
        Ok(ArchiveWriter::with_body(Compressor(zstd), observer, name))
    }

    /// Appends the index as the last entry, closes the tar, zstd and age streams, and returns
    /// the sink with the size and blake3 of everything written to it.
    ///
    /// Each secret location must name a file entry that was appended.
    pub fn finish(self, info: SnapshotInfo, secrets: Vec<SecretLocation>) -> Result<Written<W>> {
        let ((sink, size, digest), index, counts) = self.close(info, secrets)?;
        Ok(Written {
            sink,
            size,
            blake3: hex(&digest),
            index,
            counts,
        })
    }
}

impl<'o, B: Body> ArchiveWriter<'o, B> {
    /// Starts a tar stream into `body`; `observer`, if given, sees every byte of it first.
    pub fn with_body(body: B, observer: Option<&'o mut dyn Write>, name: String) -> Self {
        ArchiveWriter {
            tar: tar::Builder::new(Tee {
                inner: body,
                observer,
            }),
            entries: Vec::new(),
            seen: HashSet::new(),
            counts: Counts::default(),
            name,
        }
    }

    /// The body, for what it keeps beside the stream (the chunker's chunk lists).
    pub fn body_mut(&mut self) -> &mut B {
        &mut self.tar.get_mut().inner
    }

    /// Records a file appended to an earlier snapshot, unchanged since: its entry goes into
    /// the index, nothing into the stream (the incremental repository takes its chunks from
    /// the parent snapshot).
    pub fn record_unread(
        &mut self,
        relative: &str,
        meta: EntryMeta,
        size: u64,
        blake3: String,
    ) -> Result<()> {
        let path = self.claim(relative)?;
        self.counts.files += 1;
        self.counts.bytes += size;
        self.record(path, EntryKind::File, meta, size).blake3 = Some(blake3);
        Ok(())
    }

    fn claim(&mut self, relative: &str) -> Result<String> {
        let path = archive_path(relative).ok_or_else(|| Error::Entry {
            path: relative.to_string(),
            reason: "not a clean relative path (absolute, `..`, `.` or empty segment)".into(),
        })?;
        if !self.seen.insert(path.clone()) {
            return Err(Error::Entry {
                path,
                reason: "appended twice".into(),
            });
        }
        Ok(path)
    }

    fn header(kind: tar::EntryType, meta: EntryMeta, size: u64) -> tar::Header {
        tar_header(kind, meta, size)
    }

    /// Appends a regular file at `relative` (to the state folder) with `size` bytes from
    /// `data`, and returns its index entry (with the blake3 of what was written).
    ///
    /// If `data` ends early the entry is padded with zeros; if it holds more, only `size`
    /// bytes are taken. Either way the entry is recorded (the archive stays consistent) and
    /// [`Error::Entry`] reports the change, so the caller can re-read or give up.
    pub fn append_file(
        &mut self,
        relative: &str,
        meta: EntryMeta,
        size: u64,
        data: impl Read,
    ) -> Result<&IndexEntry> {
        let path = self.start_file(relative, meta, size)?;
        let mut reader = ExactReader::new(data, size);
        self.begin_content(size)?;
        // Read straight into the compressor's frame; the observer sees each piece there.
        let tee = self.tar.get_mut();
        loop {
            match tee.write_from(&mut reader) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(Error::io(&self.name, e)),
            }
        }
        let (digest, got, longer) = reader.finish().map_err(|e| Error::io(&path, e))?;
        self.end_content()?;
        self.end_file(path, meta, size, digest)?;
        if got != size || longer {
            let had = if longer {
                "more".to_string()
            } else {
                got.to_string()
            };
            return Err(Error::Entry {
                path: self.entries.last().expect("just pushed").path.clone(),
                reason: format!("changed while being read: declared {size} bytes, read {had}"),
            });
        }
        Ok(self.entries.last().expect("just pushed"))
    }

    /// Appends a regular file whose content is `data`, written as one piece; see
    /// [`ArchiveWriter::append_file`].
    pub fn append_bytes(
        &mut self,
        relative: &str,
        meta: EntryMeta,
        data: &[u8],
    ) -> Result<&IndexEntry> {
        let size = data.len() as u64;
        let path = self.start_file(relative, meta, size)?;
        self.begin_content(size)?;
        self.tar
            .get_mut()
            .write_all(data)
            .map_err(|e| Error::io(&self.name, e))?;
        self.end_content()?;
        let digest = blake3::hash(data).to_hex().to_string();
        self.end_file(path, meta, size, digest)?;
        Ok(self.entries.last().expect("just pushed"))
    }

    /// Writes the header (and any long-name records) of a file of `size` bytes, whose content
    /// the caller writes next, straight into the stream: tar's own copy goes 8 KiB at a time
    /// through a buffer, and every piece costs a call into the compressor and the observer.
    fn start_file(&mut self, relative: &str, meta: EntryMeta, size: u64) -> Result<String> {
        let path = self.claim(relative)?;
        let mut header = Self::header(tar::EntryType::Regular, meta, size);
        // With no data, `append_data` writes the header and no padding.
        self.tar
            .append_data(&mut header, &path, io::empty())
            .map_err(|e| Error::io(&self.name, e))?;
        Ok(path)
    }

    fn begin_content(&mut self, size: u64) -> Result<()> {
        self.tar
            .get_mut()
            .inner
            .begin_content(size)
            .map_err(|e| Error::io(&self.name, e))
    }

    fn end_content(&mut self) -> Result<()> {
        self.tar
            .get_mut()
            .inner
            .end_content()
            .map_err(|e| Error::io(&self.name, e))
    }

    /// Records an entry in the index as the archive holds it.
    fn record(
        &mut self,
        path: String,
        kind: EntryKind,
        meta: EntryMeta,
        size: u64,
    ) -> &mut IndexEntry {
        self.entries.push(IndexEntry {
            path,
            kind,
            mode: meta.mode & 0o7777,
            size,
            mtime: meta.mtime.max(0),
            blake3: None,
            link: None,
        });
        self.entries.last_mut().expect("just pushed")
    }

    /// Pads the content of the file just written to a whole tar block and records it.
    fn end_file(&mut self, path: String, meta: EntryMeta, size: u64, digest: String) -> Result<()> {
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        self.tar
            .get_mut()
            .write_all(&[0; BLOCK as usize][..pad as usize])
            .map_err(|e| Error::io(&self.name, e))?;
        self.counts.files += 1;
        self.counts.bytes += size;
        self.record(path, EntryKind::File, meta, size).blake3 = Some(digest);
        Ok(())
    }

    /// Appends a folder; `""` is the state folder itself.
    pub fn append_dir(&mut self, relative: &str, meta: EntryMeta) -> Result<()> {
        let path = self.claim(relative)?;
        let mut header = Self::header(tar::EntryType::Directory, meta, 0);
        self.tar
            .append_data(&mut header, &path, io::empty())
            .map_err(|e| Error::io(&self.name, e))?;
        self.counts.dirs += 1;
        self.record(path, EntryKind::Dir, meta, 0);
        Ok(())
    }

    /// Appends a symbolic link whose target is stored exactly as given, never resolved.
    pub fn append_symlink(&mut self, relative: &str, meta: EntryMeta, target: &Path) -> Result<()> {
        let link = target.to_str().ok_or_else(|| Error::Entry {
            path: relative.to_string(),
            reason: "the link target is not UTF-8".into(),
        })?;
        if link.is_empty() || link.contains('\0') {
            return Err(Error::Entry {
                path: relative.to_string(),
                reason: "the link target is empty or holds a NUL byte".into(),
            });
        }
        let path = self.claim(relative)?;
        let mut header = Self::header(tar::EntryType::Symlink, meta, 0);
        self.tar
            .append_link(&mut header, &path, link)
            .map_err(|e| Error::io(&self.name, e))?;
        self.counts.symlinks += 1;
        self.record(path, EntryKind::Symlink, meta, 0).link = Some(link.to_string());
        Ok(())
    }

    /// The entries appended so far.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Appends the index as the last entry and closes the stream; returns what the body
    /// closed into, the index and the counts.
    ///
    /// Each secret location must name a file entry that was appended.
    pub fn close(
        mut self,
        info: SnapshotInfo,
        secrets: Vec<SecretLocation>,
    ) -> Result<(B::Closed, Index, Counts)> {
        for location in &secrets {
            let is_file = self
                .entries
                .iter()
                .any(|e| e.path == location.file && e.kind == EntryKind::File);
            if !is_file {
                return Err(Error::Entry {
                    path: location.file.clone(),
                    reason: format!(
                        "secret location for `{}` names no file entry of the archive",
                        location.handle
                    ),
                });
            }
        }
        self.counts.secrets = secrets.len() as u64;
        let index = Index {
            format: INDEX_FORMAT,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            agent: info.agent,
            snapshot_id: info.snapshot_id,
            created_at: info.created_at,
            entries: std::mem::take(&mut self.entries),
            secrets,
        };
        let (mut header, json) = index_member(&index);
        let name = self.name.clone();
        let io_err = |e| Error::io(&name, e);
        self.tar
            .append_data(&mut header, INDEX_PATH, json.as_slice())
            .map_err(io_err)?;
        let tee = self.tar.into_inner().map_err(io_err)?;
        let closed = tee.inner.close().map_err(io_err)?;
        Ok((closed, index, self.counts))
    }
}

/// The GNU header agentbak writes for an entry: its kind, permission bits, mtime and size,
/// owned by uid/gid 0 with empty names.
pub fn tar_header(kind: tar::EntryType, meta: EntryMeta, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(meta.mode & 0o7777);
    header.set_mtime(meta.mtime.max(0) as u64);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    header
}

/// The last entry of an archive, `agentbak/index.json`: its header and its bytes (pretty JSON
/// with a final newline, `0600`, the snapshot's time).
pub fn index_member(index: &Index) -> (tar::Header, Vec<u8>) {
    let mut json = serde_json::to_vec_pretty(index).expect("an index always serializes");
    json.push(b'\n');
    let meta = EntryMeta {
        mode: 0o600,
        mtime: index.created_at.timestamp(),
    };
    let header = tar_header(tar::EntryType::Regular, meta, json.len() as u64);
    (header, json)
}

/// A tar block.
const BLOCK: u64 = 512;

/// Yields exactly `size` bytes from `inner` (zero-padded if it ends early) and hashes them.
struct ExactReader<R> {
    inner: R,
    left: u64,
    got: u64,
    ended: bool,
    hasher: blake3::Hasher,
}

impl<R: Read> ExactReader<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactReader {
            inner,
            left: size,
            got: 0,
            ended: false,
            hasher: blake3::Hasher::new(),
        }
    }

    /// The hex digest, the bytes really read, and whether the source had more.
    fn finish(mut self) -> io::Result<(String, u64, bool)> {
        let mut probe = [0u8; 1];
        let longer = !self.ended
            && loop {
                match self.inner.read(&mut probe) {
                    Ok(n) => break n > 0,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
        Ok((
            self.hasher.finalize().to_hex().to_string(),
            self.got,
            longer,
        ))
    }
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = if self.ended {
            0
        } else {
            self.inner.read(&mut buf[..want])?
        };
        let n = match read {
            0 => {
                // The source ended early: pad, so the tar header's size stays true.
                self.ended = true;
                buf[..want].fill(0);
                want
            }
            n => {
                self.got += n as u64;
                n
            }
        };
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}
