//! The archive reader: any `impl Read` → (blake3 check) → age → zstd → tar entries.
//!
//! The archive's own size and blake3 are computed over the raw input while it streams; when the
//! caller passes the sidecar's digest, a mismatch is reported as the cause of any failure,
//! since a flipped byte usually surfaces first as a zstd or age error.
//!
//! Each entry under `state/` is handed to an [`EntryVisitor`] together with its content
//! ([`EntryData`]: a reader, or slices of the decompressed frames where they lie). Restore
//! plugs in its safe extractor, verify a leak scanner; the reader hashes what the visitor takes
//! and drains what it leaves. Because the index is the *last* entry, entries
//! are checked against it only at the end: a visitor must treat what it was given as untrusted
//! until [`read_archive`] returns `Ok` and [`ReadReport::ensure_clean`] passes (restore
//! extracts into a fresh folder and renames it into place only then).
//!
//! Refused outright (exit 5): entries outside `state/` other than the index, absolute paths,
//! `.`/`..` or empty segments, hard links, devices, FIFOs, duplicates, anything after the
//! index, an index past [`MAX_INDEX_BYTES`], and more content than `max_bytes`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::ops::{Deref, Range};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use crate::archive::encryption::Identity;
use crate::archive::frames::{self, Piece, piece};
use crate::archive::index::{EntryKind, INDEX_FORMAT, INDEX_PATH, Index, MAX_INDEX_BYTES};
use crate::archive::sidecar::ArchiveDigest;
use crate::archive::{HashingReader, IntegrityError, IntegrityProblem};
use crate::error::{Error, Result};

const AGE_MAGIC: &[u8] = b"age-encryption.org/";
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// How to read an archive.
#[derive(Debug, Default)]
pub struct ReadOptions<'a> {
    /// How errors name the archive (a path or snapshot id).
    pub name: String,
    /// The size and blake3 the sidecar promises; `None` skips the check.
    pub expected: Option<ArchiveDigest>,
    /// The identity for an encrypted archive.
    pub identity: Option<&'a Identity>,
    /// Refuse archives whose entries hold more content bytes than this (restore sets it from
    /// the sidecar's counts plus a margin).
    pub max_bytes: Option<u64>,
}

/// One entry under `state/`, as its tar header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path inside the archive (`state` or `state/…`), already checked to be clean.
    pub path: String,
    /// File, folder or symlink.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Content size (0 for folders and symlinks).
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: i64,
    /// Symlink target as stored (unresolved; the visitor decides whether it is safe).
    pub link: Option<String>,
}

/// Receives each entry under `state/` and its content.
///
/// The visitor may read all, part or none of `data`; the rest is drained and hashed. An error
/// stops the read and is returned as is, unless the stream was damaged, in which case the
/// integrity error is returned instead.
pub trait EntryVisitor {
    /// Called once per entry, in archive order.
    fn visit(&mut self, entry: &ArchiveEntry, data: &mut EntryData<'_>) -> Result<()>;
}

impl<F: FnMut(&ArchiveEntry, &mut EntryData<'_>) -> Result<()>> EntryVisitor for F {
    fn visit(&mut self, entry: &ArchiveEntry, data: &mut EntryData<'_>) -> Result<()> {
        self(entry, data)
    }
}

/// An entry's content as the walk hands it to a visitor: read it ([`Read`], a copy), or take
/// it where it lies, as slices of the decompressed frames ([`EntryData::next_shared`]). Both
/// may be mixed; every byte is hashed once, whichever way it leaves.
pub struct EntryData<'a> {
    pieces: &'a RefCell<Pieces>,
    /// Bytes of the entry not yet handed out.
    left: u64,
    hasher: blake3::Hasher,
    /// Why the stream failed under this entry, if it did.
    failed: Option<String>,
}

impl EntryData<'_> {
    /// The entry's next bytes where they lie, up to the end of the frame that holds them;
    /// `None` once the entry has been handed out whole. A short stream is an error.
    pub fn next_shared(&mut self) -> io::Result<Option<SharedBytes>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.take(usize::MAX).map(Some)
    }

    /// Hands out the rest, hashing it.
    fn drain(&mut self) -> io::Result<()> {
        while self.next_shared()?.is_some() {}
        Ok(())
    }

    /// Up to `max` of the entry's next bytes (at least one), hashed and counted as taken.
    fn take(&mut self, max: usize) -> io::Result<SharedBytes> {
        let max = usize::try_from(self.left).unwrap_or(usize::MAX).min(max);
        let taken = self.pieces.borrow_mut().take_shared(max);
        match taken {
            Ok(bytes) => {
                self.hasher.update(&bytes);
                self.left -= bytes.len() as u64;
                self.pieces.borrow_mut().taken += bytes.len() as u64;
                Ok(bytes)
            }
            Err(e) => {
                if self.failed.is_none() && e.kind() != io::ErrorKind::Interrupted {
                    self.failed = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

impl Read for EntryData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let bytes = self.take(buf.len())?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

/// Bytes of a decompressed frame, shared with whoever else holds some (a scanner thread).
/// The frame goes back to be filled again once the last of them is dropped.
#[derive(Clone)]
pub struct SharedBytes {
    frame: Arc<Frame>,
    range: Range<usize>,
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.frame.data[self.range.clone()]
    }
}

impl std::fmt::Debug for SharedBytes {
    /// The length only: the bytes may be a secret's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.range.len())
    }
}

/// A difference between the archive's entries and its index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// An entry the index does not list.
    #[error("`{path}` is in the archive but not in the index")]
    NotInIndex {
        /// Archive path.
        path: String,
    },
    /// An index entry the archive does not hold.
    #[error("`{path}` is in the index but missing from the archive")]
    Missing {
        /// Archive path.
        path: String,
    },
    /// A field differs between the entry and the index.
    #[error("`{path}`: {field} is {found} in the archive, {indexed} in the index")]
    Differs {
        /// Archive path.
        path: String,
        /// `type`, `mode`, `size`, `mtime`, `blake3` or `link`.
        field: &'static str,
        /// The index's value.
        indexed: String,
        /// The archive's value.
        found: String,
    },
}

/// What a read found.
#[derive(Debug)]
pub struct ReadReport {
    /// The archive's index.
    pub index: Index,
    /// Whether the archive was age-encrypted.
    pub encrypted: bool,
    /// Size of the raw archive in bytes.
    pub size: u64,
    /// blake3 of the raw archive, lowercase hex.
    pub blake3: String,
    /// The entries under `state/` as read, with the blake3 of each file's content.
    pub entries: Vec<(ArchiveEntry, Option<String>)>,
    /// Differences between the entries and the index; empty for a sound archive.
    pub problems: Vec<EntryProblem>,
}

impl ReadReport {
    /// Turns any difference from the index into an [`IntegrityError`] naming them all.
    pub fn ensure_clean(&self, name: &str) -> Result<()> {
        if self.problems.is_empty() {
            return Ok(());
        }
        Err(integrity(
            name,
            IntegrityProblem::Entries(self.problems.clone()),
        ))
    }
}

fn integrity(name: &str, problem: IntegrityProblem) -> Error {
    Error::Integrity(IntegrityError {
        archive: name.to_string(),
        problem,
    })
}

/// Checks an archive's size and blake3 without decrypting it (the key-less `verify`).
pub fn check_digest(input: impl Read, expected: &ArchiveDigest, name: &str) -> Result<()> {
    let mut raw = HashingReader::new(input);
    let copied = io::copy(&mut raw, &mut io::sink());
    let cause = copied.err().map(|e| e.to_string());
    let (size, blake3) = raw.digest();
    if size != expected.size || blake3 != expected.blake3 || cause.is_some() {
        return Err(integrity(
            name,
            IntegrityProblem::Digest {
                expected_size: expected.size,
                expected_blake3: expected.blake3.clone(),
                size,
                blake3,
                cause,
            },
        ));
    }
    Ok(())
}

/// Reads a whole archive; see the module documentation.
///
/// Returns `Err` for an archive that cannot be read to its end or whose digest differs from
/// `options.expected`; differences between entries and the index are in
/// [`ReadReport::problems`] (see [`ReadReport::ensure_clean`]).
///
/// The work is shared by threads: one reads the raw archive ahead and hashes it; one decrypts
/// and hands whole zstd frames to one decompressing thread per core (see the `frames`
/// module); the caller's walks the tar stream, hashes entries and visits them. At most 8 raw
/// pieces of 256 KiB, and a few 2 MiB frames, are in flight.
pub fn read_archive(
    input: impl Read + Send,
    options: &ReadOptions<'_>,
    visitor: &mut dyn EntryVisitor,
) -> Result<ReadReport> {
    // Whether the raw archive is read to its end once decoding stops: always for a digest
    // check, and after a normal end (to hash what follows the stream); not after a failure
    // without one.
    let drain = AtomicBool::new(options.expected.is_some());
    let (walked, opened, raw) = std::thread::scope(|scope| {
        let (raw_tx, raw_rx) = mpsc::sync_channel(PIECES_QUEUE);
        let (raw_spare_tx, raw_spare_rx) = mpsc::sync_channel(PIECES_QUEUE + 1);
        let drain = &drain;
        let reader = scope.spawn(move || read_raw(input, &raw_tx, &raw_spare_rx, drain));
        let (tx, rx) = mpsc::sync_channel(FRAMES_QUEUE);
        let (spare_tx, spare_rx) = mpsc::sync_channel(FRAMES_QUEUE + 1);
        let raw = Pieces::new(raw_rx, raw_spare_tx);
        let decoder = scope.spawn(move || decode(raw, options, &tx, &spare_rx, drain));
        let walked = walk(Pieces::new(rx, spare_tx), options, visitor);
        (
            walked,
            decoder.join().expect("the decoder thread does not panic"),
            reader.join().expect("the reader thread does not panic"),
        )
    });
    // A layer that could not be opened explains any walk failure (it read nothing).
    let result = opened.and_then(|encrypted| {
        walked.map(|mut report| {
            report.encrypted = encrypted;
            report
        })
    });
    let (size, blake3) = (raw.size, raw.blake3);
    if let Some(expected) = &options.expected
        && (size != expected.size || blake3 != expected.blake3 || raw.drained.is_some())
    {
        let cause = match (&result, raw.drained) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(_), d) => d,
        };
        return Err(integrity(
            &options.name,
            IntegrityProblem::Digest {
                expected_size: expected.size,
                expected_blake3: expected.blake3.clone(),
                size,
                blake3,
                cause,
            },
        ));
    }
    let mut report = result?;
    report.size = size;
    report.blake3 = blake3;
    Ok(report)
}

/// Bytes per raw piece handed from the reader thread to the decoder (and the size of the
/// decrypted stream's buffer).
const PIECE: usize = 256 * 1024;

/// Raw pieces in flight at most between the reader and the decoder (2 MiB).
const PIECES_QUEUE: usize = 8;

/// Decompressed frames in flight at most between the decoder and the walk (with 2 MiB frames,
/// 4 MiB); the frames being decompressed are bounded by the decoder.
const FRAMES_QUEUE: usize = 2;

/// What the reader thread found about the raw archive.
struct Raw {
    /// Raw size and blake3.
    size: u64,
    blake3: String,
    /// An error met while hashing the rest of the raw archive.
    drained: Option<String>,
}

/// The reader thread: reads the raw archive in pieces, hashes them, and hands them to the
/// decoder; once the decoder stops taking them, reads and hashes the rest if `drain` says so.
fn read_raw(
    input: impl Read,
    tx: &mpsc::SyncSender<Piece>,
    spare: &mpsc::Receiver<Vec<u8>>,
    drain: &AtomicBool,
) -> Raw {
    let mut input = HashingReader::new(input);
    let mut decoding = true;
    let mut drained = None;
    loop {
        let mut piece = piece(spare, PIECE);
        let n = match input.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if decoding {
                    let _ = tx.send(Err(e));
                } else {
                    drained = Some(e.to_string());
                }
                break;
            }
        };
        // The decoder hung up: it is done (or failed, and said why).
        if decoding && tx.send(Ok((piece, n))).is_err() {
            decoding = false;
            if !drain.load(Ordering::Acquire) {
                break;
            }
        }
    }
    let (size, blake3) = input.digest();
    Raw {
        size,
        blake3,
        drained,
    }
}

/// The decoder thread: decrypts and decompresses the raw pieces into pieces for the walk.
/// Returns whether the archive is encrypted, or why its layers could not be opened.
fn decode(
    raw: Pieces,
    options: &ReadOptions<'_>,
    tx: &mpsc::SyncSender<Piece>,
    spare: &mpsc::Receiver<Vec<u8>>,
    drain: &AtomicBool,
) -> Result<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    open_layers(raw, options).map(|(encrypted, compressed)| {
        // The raw archive's blake3, when checked, covers every byte zstd's checksums would.
        let checksums = options.expected.is_none();
        match frames::decode(compressed, threads, checksums, tx, spare) {
            // Hash what may follow the stream, before the raw pieces are dropped.
            Ok(true) => drain.store(true, Ordering::Release),
            // The walk hung up: it failed, and said why.
            Ok(false) => {}
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        encrypted
    })
}

/// Recognizes the archive by its first bytes and opens its age layer: returns whether it is
/// encrypted, and the zstd stream.
fn open_layers(mut raw: Pieces, options: &ReadOptions<'_>) -> Result<(bool, Box<dyn BufRead>)> {
    let name = options.name.as_str();
    let damaged = |e: io::Error| integrity(name, IntegrityProblem::Stream(e.to_string()));
    let head = raw.fill_buf().map_err(damaged)?;
    let encrypted = head.starts_with(AGE_MAGIC);
    if encrypted {
        let identity = options.identity.ok_or_else(|| Error::Identity {
            origin: name.to_string(),
            reason: "the archive is encrypted: pass --identity FILE (or set AGENTBAK_IDENTITY)"
                .into(),
        })?;
        let decrypt =
            |e: age::DecryptError| integrity(name, IntegrityProblem::Decrypt(e.to_string()));
        let decryptor = age::Decryptor::new_buffered(raw).map_err(decrypt)?;
        let plain = decryptor.decrypt(identity.as_dyn()).map_err(decrypt)?;
        Ok((true, Box::new(io::BufReader::with_capacity(PIECE, plain))))
    } else if head.starts_with(ZSTD_MAGIC) {
        Ok((false, Box::new(raw)))
    } else {
        Err(integrity(
            name,
            IntegrityProblem::Stream("neither an age file nor a zstd stream".into()),
        ))
    }
}

/// A piece's buffer, which goes back to the queue's spares when the last reference to it is
/// dropped: fresh buffers cost page faults.
struct Frame {
    data: Vec<u8>,
    home: mpsc::SyncSender<Vec<u8>>,
}

impl Drop for Frame {
    fn drop(&mut self) {
        let _ = self.home.try_send(std::mem::take(&mut self.data));
    }
}

/// The receiving end of a queue of pieces, as a reader.
struct Pieces {
    rx: mpsc::Receiver<Piece>,
    spare: mpsc::SyncSender<Vec<u8>>,
    /// The piece being read: `piece.data[at..len]` is left.
    piece: Arc<Frame>,
    at: usize,
    len: usize,
    /// The error that ended the stream, returned again on every later read.
    failed: Option<(io::ErrorKind, String)>,
    /// Bytes consumed so far.
    pos: u64,
    /// Bytes that entries took themselves ([`EntryData`]) and the tar walk has not yet moved
    /// past (see [`Plain`]'s `seek`).
    taken: u64,
}

impl Pieces {
    fn new(rx: mpsc::Receiver<Piece>, spare: mpsc::SyncSender<Vec<u8>>) -> Pieces {
        Pieces {
            rx,
            piece: Arc::new(Frame {
                data: Vec::new(),
                home: spare.clone(),
            }),
            spare,
            at: 0,
            len: 0,
            failed: None,
            pos: 0,
            taken: 0,
        }
    }

    /// Up to `max` of the next bytes, where they lie; an error at the stream's end.
    fn take_shared(&mut self, max: usize) -> io::Result<SharedBytes> {
        let n = self.fill_buf()?.len().min(max);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside an entry",
            ));
        }
        let bytes = SharedBytes {
            frame: Arc::clone(&self.piece),
            range: self.at..self.at + n,
        };
        self.consume(n);
        Ok(bytes)
    }
}

impl BufRead for Pieces {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.len {
            if let Some((kind, message)) = &self.failed {
                return Err(io::Error::new(*kind, message.clone()));
            }
            match self.rx.recv() {
                Ok(Ok((piece, len))) => {
                    // The piece read goes back once nobody else holds part of it.
                    self.piece = Arc::new(Frame {
                        data: piece,
                        home: self.spare.clone(),
                    });
                    (self.at, self.len) = (0, len);
                }
                Ok(Err(e)) => self.failed = Some((e.kind(), e.to_string())),
                Err(mpsc::RecvError) => return Ok(&[]),
            }
        }
        Ok(&self.piece.data[self.at..self.len])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.len - self.at);
        self.at += n;
        self.pos += n as u64;
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.fill_buf()?;
        let n = buf.len().min(left.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The decompressed stream as the tar walk reads it: shared with the entries' [`EntryData`],
/// which take their content directly. The walk skips an entry's content by seeking past it;
/// what the entry took already counts as skipped, so nothing is read twice.
struct Plain(Rc<RefCell<Pieces>>);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Seek for Plain {
    /// Forward moves only (`SeekFrom::Current`), which is all the tar walk asks for; returns
    /// the position in the stream.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let mut pieces = self.0.borrow_mut();
        let ahead = match to {
            SeekFrom::Current(n) => u64::try_from(n).ok(),
            _ => None,
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "the stream moves forward"))?;
        let mut skip = ahead.checked_sub(pieces.taken).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "an entry ran past its end")
        })?;
        pieces.taken = 0;
        while skip > 0 {
            let left = pieces.fill_buf()?.len();
            if left == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ends inside an entry",
                ));
            }
            let n = left.min(usize::try_from(skip).unwrap_or(usize::MAX));
            pieces.consume(n);
            skip -= n as u64;
        }
        Ok(pieces.pos)
    }
}

/// The tar walk over the decompressed stream; `encrypted` is filled in by the caller.
fn walk(
    plain: Pieces,
    options: &ReadOptions<'_>,
    visitor: &mut dyn EntryVisitor,
) -> Result<ReadReport> {
    let name = options.name.as_str();
    let damaged = |e: io::Error| integrity(name, IntegrityProblem::Stream(e.to_string()));
    let pieces = Rc::new(RefCell::new(plain));
    let mut archive = tar::Archive::new(Plain(Rc::clone(&pieces)));
    let mut walk = Walk::new(options, visitor);
    for entry in archive.entries_with_seek().map_err(damaged)? {
        let entry = entry.map_err(damaged)?;
        walk.entry(entry, &pieces)?;
    }
    // Past the tar end-of-archive marker: read the zstd frames (and age stream) to their end, so
    // that age's final tag is verified, and the frames' checksums when they are checked.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(damaged)?;
    walk.finish()
}

/// State of one pass over the entries.
struct Walk<'v, 'o> {
    options: &'o ReadOptions<'o>,
    visitor: &'v mut dyn EntryVisitor,
    seen: HashSet<String>,
    entries: Vec<(ArchiveEntry, Option<String>)>,
    index: Option<Index>,
    total: u64,
}

impl<'v, 'o> Walk<'v, 'o> {
    fn new(options: &'o ReadOptions<'o>, visitor: &'v mut dyn EntryVisitor) -> Self {
        Walk {
            options,
            visitor,
            seen: HashSet::new(),
            entries: Vec::new(),
            index: None,
            total: 0,
        }
    }

    fn refuse(&self, path: &str, reason: &str) -> Error {
        integrity(
            &self.options.name,
            IntegrityProblem::UnsafeEntry {
                path: path.to_string(),
                reason: reason.to_string(),
            },
        )
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        pieces: &RefCell<Pieces>,
    ) -> Result<()> {
        let name = self.options.name.clone();
        let damaged = |e: io::Error| integrity(&name, IntegrityProblem::Stream(e.to_string()));
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = clean_path(&raw_path).map_err(|reason| self.refuse(&raw_path, reason))?;
        if self.index.is_some() {
            return Err(self.refuse(&path, "an entry after the index"));
        }
        if !self.seen.insert(path.clone()) {
            return Err(self.refuse(&path, "appears twice"));
        }
        let header = entry.header();
        let mode = header.mode().map_err(damaged)? & 0o7777;
        let mtime = i64::try_from(header.mtime().map_err(damaged)?).unwrap_or(i64::MAX);
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => return Err(self.refuse(&path, "hard links are not allowed")),
            other => {
                return Err(self.refuse(&path, &format!("entry type {other:?} is not allowed")));
            }
        };
        if path == INDEX_PATH {
            if kind != EntryKind::File {
                return Err(self.refuse(&path, "the index is not a file"));
            }
            return self.read_index(&mut entry);
        }
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            0
        };
        let link = match (kind, entry.link_name_bytes()) {
            (EntryKind::Symlink, Some(l)) => Some(
                String::from_utf8(l.into_owned())
                    .map_err(|_| self.refuse(&path, "the link target is not UTF-8"))?,
            ),
            (EntryKind::Symlink, None) => return Err(self.refuse(&path, "a link without target")),
            _ => None,
        };
        self.total = self.total.saturating_add(size);
        if let Some(max) = self.options.max_bytes
            && self.total > max
        {
            return Err(integrity(&name, IntegrityProblem::TooLarge(max)));
        }
        let record = ArchiveEntry {
            path,
            kind,
            mode,
            size,
            mtime,
            link,
        };
        // The content is taken from the stream itself, not through `entry`: the walk seeks
        // past it afterwards (see `Plain`).
        let mut data = EntryData {
            pieces,
            left: size,
            hasher: blake3::Hasher::new(),
            failed: None,
        };
        let visited = self.visitor.visit(&record, &mut data);
        let drained = data.drain();
        if let Some(cause) = data.failed.take() {
            return Err(integrity(&name, IntegrityProblem::Stream(cause)));
        }
        visited?;
        drained.map_err(damaged)?;
        let digest = (kind == EntryKind::File).then(|| data.hasher.finalize().to_hex().to_string());
        self.entries.push((record, digest));
        Ok(())
    }

    fn read_index<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let name = &self.options.name;
        let bad = |msg: String| integrity(name, IntegrityProblem::Index(msg));
        if entry.size() > MAX_INDEX_BYTES {
            return Err(bad(format!("larger than {MAX_INDEX_BYTES} bytes")));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .take(MAX_INDEX_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| integrity(name, IntegrityProblem::Stream(e.to_string())))?;
        // serde's messages quote the offending text (`invalid type: string "…"`, `unknown field
        // `…``): a forged or damaged index could make an error print a secret. The kind and the
        // position are enough to find it.
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            let kind = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "not valid JSON"
                }
                serde_json::error::Category::Data | serde_json::error::Category::Io => {
                    "not the index format"
                }
            };
            bad(format!("{kind} at line {} column {}", e.line(), e.column()))
        })?;
        if index.format != INDEX_FORMAT {
            return Err(bad(format!(
                "format {} is not supported by this agentbak (it reads format {INDEX_FORMAT})",
                index.format
            )));
        }
        self.index = Some(index);
        Ok(())
    }

    fn finish(self) -> Result<ReadReport> {
        let index = self.index.ok_or_else(|| {
            integrity(
                &self.options.name,
                IntegrityProblem::Index(format!(
                    "`{INDEX_PATH}` is missing: the archive is truncated or not made by agentbak"
                )),
            )
        })?;
        let problems = compare(&index, &self.entries);
        Ok(ReadReport {
            index,
            // Filled in by `read_archive`, as are the size and digest.
            encrypted: false,
            size: 0,
            blake3: String::new(),
            entries: self.entries,
            problems,
        })
    }
}

/// Checks a tar path: UTF-8 (lossy decoding would have changed it otherwise), relative, no
/// `.`/`..`/empty segments, and either the index or under `state`. A trailing `/` of a folder
/// is dropped.
fn clean_path(raw: &str) -> std::result::Result<String, &'static str> {
    let path = raw.strip_suffix('/').unwrap_or(raw);
    if raw.contains('\u{FFFD}') || path.contains('\0') {
        return Err("the path is not UTF-8");
    }
    if path.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("`.`, `..` and empty path segments are not allowed");
    }
    if path == INDEX_PATH || path == "state" || path.starts_with("state/") {
        Ok(path.to_string())
    } else {
        Err("only `state/…` and `agentbak/index.json` belong in an agentbak archive")
    }
}

fn compare(index: &Index, entries: &[(ArchiveEntry, Option<String>)]) -> Vec<EntryProblem> {
    let by_path: HashMap<&str, _> = index.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut problems = Vec::new();
    for (entry, digest) in entries {
        let Some(indexed) = by_path.get(entry.path.as_str()) else {
            problems.push(EntryProblem::NotInIndex {
                path: entry.path.clone(),
            });
            continue;
        };
        let mut differs = |field: &'static str, indexed: String, found: String| {
            if indexed != found {
                problems.push(EntryProblem::Differs {
                    path: entry.path.clone(),
                    field,
                    indexed,
                    found,
                });
            }
        };
        differs(
            "type",
            indexed.kind.as_str().into(),
            entry.kind.as_str().into(),
        );
        differs(
            "mode",
            format!("{:o}", indexed.mode),
            format!("{:o}", entry.mode),
        );
        differs("size", indexed.size.to_string(), entry.size.to_string());
        differs("mtime", indexed.mtime.to_string(), entry.mtime.to_string());
        let none = || "none".to_string();
        differs(
            "blake3",
            indexed.blake3.clone().unwrap_or_else(none),
            digest.clone().unwrap_or_else(none),
        );
        differs(
            "link",
            indexed.link.clone().unwrap_or_else(none),
            entry.link.clone().unwrap_or_else(none),
        );
    }
    let present: HashSet<&str> = entries.iter().map(|(e, _)| e.path.as_str()).collect();
    for indexed in &index.entries {
        if !present.contains(indexed.path.as_str()) {
            problems.push(EntryProblem::Missing {
                path: indexed.path.clone(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_accepts_state_and_the_index_only() {
        assert_eq!(clean_path("state/").unwrap(), "state");
        assert_eq!(clean_path("state/a/b.json").unwrap(), "state/a/b.json");
        assert_eq!(clean_path(INDEX_PATH).unwrap(), INDEX_PATH);
        for bad in [
            "/etc/passwd",
            "state/../../x",
            "state/./a",
            "other/file",
            "agentbak/other.json",
            "state//a",
            "stately",
        ] {
            assert!(clean_path(bad).is_err(), "{bad}");
        }
    }

    /// Regression: a forged index made the error quote its text (serde's `invalid type:
    /// string "…"`), which could print a value planted there.
    #[test]
    fn an_invalid_index_is_reported_by_position_without_its_text() {
        let planted = "sk-live-PLANTED0123456789abcdef";
        for index in [
            format!(r#"{{"format": "{planted}"}}"#),
            format!(r#"{{"format": 1, "{planted}": 2}}"#),
            format!(r#"{{"format": 1, "entries": [{planted}]}}"#),
        ] {
            let mut tar = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_size(index.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            tar.append_data(&mut header, INDEX_PATH, index.as_bytes())
                .unwrap();
            let archive = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
            let options = ReadOptions {
                name: "forged".into(),
                ..ReadOptions::default()
            };
            let mut visit = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
            let err = read_archive(&archive[..], &options, &mut visit).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains("PLANTED"), "{text}");
            assert!(text.contains("line 1 column"), "{text}");
        }
    }
}
