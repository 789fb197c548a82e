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
//! index, an index past [`MAX_INDEX_BYTES`](crate::archive::MAX_INDEX_BYTES), more content than
//! `max_bytes`, and a header whose long-name or PAX records pass 1 MiB (tar reads those whole,
//! outside `max_bytes`; see `stream::HEADER_BUDGET`).
//!
//! The reader is four parts: this module (the options, the report, and [`read_archive`],
//! which starts the threads), `raw` (the raw-read thread and the decoder thread that opens
//! the age and zstd layers), `stream` (the decompressed stream, shared by the tar walk and the
//! entries' [`EntryData`]), and `walk` (the tar walk: the checks on each entry, the index, the
//! comparison of the two).

mod raw;
mod stream;
mod walk;

use std::io::{self, Read};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use crate::archive::encryption::Identity;
use crate::archive::index::{EntryKind, Index};
use crate::archive::sidecar::ArchiveDigest;
use crate::archive::{HashingReader, IntegrityError, IntegrityProblem};
use crate::error::{Error, Result};

use stream::Pieces;
pub use stream::{EntryData, SharedBytes};

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
    #[error("`{path}`: {field} {}", match values {
        Some((found, indexed)) => format!("is {found} in the archive, {indexed} in the index"),
        None => "differs between the archive and the index".to_string(),
    })]
    Differs {
        /// Archive path.
        path: String,
        /// `type`, `mode`, `size`, `mtime`, `blake3` or `link`.
        field: &'static str,
        /// The archive's and the index's value, for the fields whose values are numbers or
        /// names agentbak writes (type, mode, size, mtime). A digest or a link target is
        /// text a forged index chooses, and could hold a secret: not shown.
        values: Option<(String, String)>,
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

pub(super) fn integrity(name: &str, problem: IntegrityProblem) -> Error {
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
        return Err(digest_differs(name, expected, size, blake3, cause));
    }
    Ok(())
}

/// The error for an archive whose `size` or `blake3` is not what its sidecar says, or that
/// could not be read to its end (`cause`).
fn digest_differs(
    name: &str,
    expected: &ArchiveDigest,
    size: u64,
    blake3: String,
    cause: Option<String>,
) -> Error {
    integrity(
        name,
        IntegrityProblem::Digest {
            expected_size: expected.size,
            expected_blake3: expected.blake3.clone(),
            size,
            blake3,
            cause,
        },
    )
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
        let reader = scope.spawn(move || raw::read_raw(input, &raw_tx, &raw_spare_rx, drain));
        let (tx, rx) = mpsc::sync_channel(FRAMES_QUEUE);
        let (spare_tx, spare_rx) = mpsc::sync_channel(FRAMES_QUEUE + 1);
        let raw = Pieces::new(raw_rx, raw_spare_tx);
        let decoder = scope.spawn(move || raw::decode(raw, options, &tx, &spare_rx, drain));
        let walked = walk::walk(Pieces::new(rx, spare_tx), options, visitor);
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
        return Err(digest_differs(&options.name, expected, size, blake3, cause));
    }
    let mut report = result?;
    report.size = size;
    report.blake3 = blake3;
    Ok(report)
}

/// Raw pieces in flight at most between the reader and the decoder (2 MiB).
const PIECES_QUEUE: usize = 8;

/// Decompressed frames in flight at most between the decoder and the walk (with 2 MiB frames,
/// 4 MiB); the frames being decompressed are bounded by the decoder.
const FRAMES_QUEUE: usize = 2;
