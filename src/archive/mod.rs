//! Archive streams: tar → zstd → optional age, the index inside, the sidecar beside.
//!
//! An archive is a standard GNU tar stream of `state/…` entries followed by
//! `agentbak/index.json`, compressed with zstd (one frame, with its checksum) and, when the
//! manifest names recipients, encrypted with age. Stock tools open it:
//! `age -d -i KEY X.tar.zst.age | zstd -d | tar -x`, and `b3sum` of each file matches the index.
//! `docs/format.md` is the user-facing description.
//!
//! - [`ArchiveWriter`] writes one into any `impl Write`, exposing the raw tar bytes to an
//!   observer (the leak gate) and computing every blake3 while writing.
//! - [`read_archive`] reads one from any `impl Read + Send`: it checks the archive's size and
//!   blake3 against the sidecar, decrypts, decompresses, hands each entry to an [`EntryVisitor`]
//!   (restore's safe extractor, verify's leak scanner), and checks each entry against the
//!   index. [`check_digest`] is the key-less check (size and blake3 only).
//!
//! Invariants: archive code takes streams, never paths; it never prints; every failure that
//! means "this archive cannot be trusted" is an [`IntegrityError`] (exit 5).

mod encryption;
mod frames;
mod index;
mod reader;
mod sidecar;
pub mod tree;
pub mod wellformed;
mod writer;

use std::io::{self, Read, Write};

pub use encryption::{Identity, Recipients};
pub use index::{
    EntryKind, INDEX_FORMAT, INDEX_PATH, Index, IndexEntry, MAX_INDEX_BYTES, STATE_DIR,
    SecretLocation, SnapshotInfo, archive_path, state_relative,
};
pub use reader::{
    ArchiveEntry, EntryData, EntryProblem, EntryVisitor, ReadOptions, ReadReport, SharedBytes,
    check_digest, read_archive,
};
pub use sidecar::{
    ArchiveDigest, Counts, SIDECAR_FORMAT, SIDECAR_FORMAT_PACKS, Sidecar, Stored, TreeRef,
};
pub use writer::{
    ArchiveWriter, Body, Compressor, EntryMeta, WriterOptions, Written, default_threads,
    index_member, tar_header,
};

/// An archive that cannot be trusted: corrupt, truncated, tampered with, or undecryptable.
///
/// Maps to exit code 5. The message names the archive and what was found; it never holds
/// file contents.
#[derive(Debug, thiserror::Error)]
#[error("{archive}: {problem}")]
pub struct IntegrityError {
    /// How the archive was named to the reader (a path or snapshot id).
    pub archive: String,
    /// What is wrong.
    pub problem: IntegrityProblem,
}

/// What is wrong with an archive.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityProblem {
    /// The archive's size or blake3 differs from the sidecar's.
    #[error(
        "the archive does not match its sidecar (expected {expected_size} bytes with blake3 \
         {expected_blake3}, found {size} bytes with blake3 {blake3}): it is corrupt or truncated{}",
        cause.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
    )]
    Digest {
        /// Size promised by the sidecar.
        expected_size: u64,
        /// blake3 promised by the sidecar.
        expected_blake3: String,
        /// Size found.
        size: u64,
        /// blake3 found.
        blake3: String,
        /// The first error met while reading the damaged stream, if any.
        cause: Option<String>,
    },
    /// age refused to decrypt (wrong identity, damaged header or chunk).
    #[error("cannot be decrypted: {0}")]
    Decrypt(String),
    /// The zstd or tar stream is damaged.
    #[error("is damaged: {0}")]
    Stream(String),
    /// An entry that no agentbak archive holds (a path outside `state/`, a hard link, a
    /// device, a duplicate, anything after the index).
    #[error("entry `{path}` refused: {reason}")]
    UnsafeEntry {
        /// The entry's path, lossily decoded.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// The index is missing, too large, or does not parse.
    #[error("index: {0}")]
    Index(String),
    /// The tree of a format-2 snapshot differs from its sidecar, or breaks its rules.
    #[error("tree: {0}")]
    Tree(String),
    /// The entries expand past the bound the caller set (a decompression bomb guard).
    #[error("expands past its bound of {0} bytes")]
    TooLarge(u64),
    /// The index asks for handles the restoring manifest does not declare (a forged index:
    /// see `ops::trust`). Each item is `file: handle`.
    #[error(
        "the index asks for {} handle record{} the manifest does not declare, so restore would \
         fetch a secret nobody asked for (a forged snapshot?): {}",
        .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("; ")
    )]
    Undeclared(Vec<String>),
    /// The snapshot's signature is missing (while signing is configured), invalid, or made
    /// by a key that is not trusted (see `crate::signing`).
    #[error("signature: {0}")]
    Signature(String),
    /// Entries differ from the index.
    #[error("{} entr{} differ from the index: {}", .0.len(),
        if .0.len() == 1 { "y" } else { "ies" },
        .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Entries(Vec<EntryProblem>),
}

/// Lowercase hex of bytes (for digests).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A writer that counts and blake3-hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            count: 0,
        }
    }

    /// The inner writer, the byte count and the digest.
    pub(crate) fn into_parts(self) -> (W, u64, [u8; 32]) {
        (self.inner, self.count, *self.hasher.finalize().as_bytes())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts and blake3-hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            count: 0,
        }
    }

    /// The byte count and hex digest so far.
    pub(crate) fn digest(&self) -> (u64, String) {
        (self.count, self.hasher.finalize().to_hex().to_string())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writer_and_reader_agree_with_blake3() {
        let data = vec![7u8; 100_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, n, digest) = w.into_parts();
        assert_eq!(out, data);
        assert_eq!(n, 100_000);
        assert_eq!(hex(&digest), blake3::hash(&data).to_hex().to_string());
        let mut r = HashingReader::new(data.as_slice());
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(
            r.digest(),
            (100_000, blake3::hash(&data).to_hex().to_string())
        );
    }
}
