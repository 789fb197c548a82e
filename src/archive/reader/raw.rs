//! The two threads before the tar walk: the raw read and the decoder.
//!
//! The reader thread reads the raw archive in pieces of [`PIECE`] bytes, hashes every byte
//! (the archive's size and blake3, checked against the sidecar), and hands the pieces on; once
//! decoding stops it reads and hashes the rest when asked to, so that a digest check covers
//! the whole file. The decoder thread recognizes the archive by its first bytes, opens the age
//! layer, and hands whole zstd frames to the `frames` module's decompressing threads.
//!
//! Invariant: an error on either thread travels down the queue to the walk, which reports it;
//! a thread whose receiver hung up stops quietly (the receiver failed, and says why).

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use super::stream::Pieces;
use super::{ReadOptions, integrity};
use crate::archive::frames::{self, Piece, piece};
use crate::archive::{HashingReader, IntegrityProblem};
use crate::error::{Error, Result};

const AGE_MAGIC: &[u8] = b"age-encryption.org/";

const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Bytes per raw piece handed from the reader thread to the decoder (and the size of the
/// decrypted stream's buffer).
pub(super) const PIECE: usize = 256 * 1024;

/// What the reader thread found about the raw archive.
pub(super) struct Raw {
    /// Raw size and blake3.
    pub(super) size: u64,
    pub(super) blake3: String,
    /// An error met while hashing the rest of the raw archive.
    pub(super) drained: Option<String>,
}

/// The reader thread: reads the raw archive in pieces, hashes them, and hands them to the
/// decoder; once the decoder stops taking them, reads and hashes the rest if `drain` says so.
pub(super) fn read_raw(
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
pub(super) fn decode(
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
pub(super) fn open_layers(
    mut raw: Pieces,
    options: &ReadOptions<'_>,
) -> Result<(bool, Box<dyn BufRead>)> {
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
