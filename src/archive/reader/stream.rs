//! The decompressed stream, shared by the tar walk and the entries it hands out.
//!
//! The decoder's pieces (decompressed zstd frames) arrive on a queue; [`Pieces`] reads them
//! in order. The tar walk reads headers through [`Plain`]; a visitor takes an entry's content
//! through [`EntryData`], as a copy or as [`SharedBytes`] where it lies in a piece, which
//! keeps the piece's buffer alive ([`RecycledBuf`]) until the last of them is dropped.
//!
//! Invariants: every byte of an entry is handed out once and hashed once, whichever way it
//! leaves; bytes an entry took bypass tar, which then seeks past them ([`Plain`]'s `seek`
//! and the contract it checks).

use std::cell::RefCell;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::ops::{Deref, Range};
use std::rc::Rc;
use std::sync::{Arc, mpsc};

use crate::archive::frames::Piece;

/// An entry's content as the walk hands it to a visitor: read it ([`Read`], a copy), or take
/// it where it lies, as slices of the decompressed frames ([`EntryData::next_shared`]). Both
/// may be mixed; every byte is hashed once, whichever way it leaves.
pub struct EntryData<'a> {
    pub(super) pieces: &'a RefCell<Pieces>,
    /// Bytes of the entry not yet handed out.
    pub(super) left: u64,
    pub(super) hasher: blake3::Hasher,
    /// Why the stream failed under this entry, if it did.
    pub(super) failed: Option<String>,
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
    pub(super) fn drain(&mut self) -> io::Result<()> {
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
    buf: Arc<RecycledBuf>,
    range: Range<usize>,
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf.data[self.range.clone()]
    }
}

impl std::fmt::Debug for SharedBytes {
    /// The length only: the bytes may be a secret's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.range.len())
    }
}

/// A piece's buffer (a raw piece, or a decompressed frame), which goes back to its queue's
/// spares when the last reference to it is dropped: fresh buffers cost page faults.
pub(super) struct RecycledBuf {
    data: Vec<u8>,
    home: mpsc::SyncSender<Vec<u8>>,
}

impl Drop for RecycledBuf {
    fn drop(&mut self) {
        let _ = self.home.try_send(std::mem::take(&mut self.data));
    }
}

/// The receiving end of a queue of pieces, as a reader.
pub(super) struct Pieces {
    rx: mpsc::Receiver<Piece>,
    spare: mpsc::SyncSender<Vec<u8>>,
    /// The piece being read: `piece.data[at..len]` is left.
    piece: Arc<RecycledBuf>,
    at: usize,
    len: usize,
    /// The error that ended the stream, returned again on every later read.
    failed: Option<(io::ErrorKind, String)>,
    /// Bytes consumed so far.
    pos: u64,
    /// Bytes that entries took themselves ([`EntryData`]) and the tar walk has not yet moved
    /// past (see [`Plain`]'s `seek`).
    taken: u64,
    /// Bytes tar read itself through [`Plain`] since the walk last called
    /// [`Pieces::allow_tar`], and how many it may read before that call comes again.
    tar_read: u64,
    tar_budget: u64,
}

/// What tar may read itself for one entry: its header and the GNU long-name and PAX records
/// before it. tar reads such a record whole into memory, before the walk sees the entry, and
/// the sidecar's byte bound does not count it: without this bound, a 512 MiB long name (16 KiB
/// of zstd) made a restore take 1.5 GB of memory. Real records are a few KiB (`PATH_MAX` is 4
/// KiB).
pub(super) const HEADER_BUDGET: u64 = 1 << 20;

impl Pieces {
    /// Lets tar read up to `budget` more bytes itself (see [`HEADER_BUDGET`]).
    pub(super) fn allow_tar(&mut self, budget: u64) {
        self.tar_read = 0;
        self.tar_budget = budget;
    }

    pub(super) fn new(rx: mpsc::Receiver<Piece>, spare: mpsc::SyncSender<Vec<u8>>) -> Pieces {
        Pieces {
            rx,
            piece: Arc::new(RecycledBuf {
                data: Vec::new(),
                home: spare.clone(),
            }),
            spare,
            at: 0,
            len: 0,
            failed: None,
            pos: 0,
            taken: 0,
            tar_read: 0,
            tar_budget: HEADER_BUDGET,
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
            buf: Arc::clone(&self.piece),
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
                    self.piece = Arc::new(RecycledBuf {
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
///
/// # The contract with `tar`
///
/// With `entries_with_seek`, tar counts the bytes it reads itself and, before each header,
/// calls `seek(SeekFrom::Current(header - counted))`, then takes the position `seek` returns
/// as its count (tar 0.4, `EntriesFields::skip`). The bytes an entry took through
/// [`EntryData`] are in neither count, so that seek asks to move `taken` bytes too far, and
/// `seek` moves `ahead - taken`. This is right only while tar reads nothing between an
/// entry's content and its next seek, and seeks forward from its own count: in debug builds
/// `read` asserts that no taken bytes are pending, and `seek` that it lands on a 512-byte
/// block (where every tar header starts); the test `tar_seeks_past_what_entries_took` fails
/// if tar moves through the stream another way.
pub(super) struct Plain(pub(super) Rc<RefCell<Pieces>>);

/// tar's block size: headers start at multiples of it.
const BLOCK: u64 = 512;

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pieces = self.0.borrow_mut();
        debug_assert_eq!(
            pieces.taken, 0,
            "tar reads before seeking past what an entry took (see `Plain`)"
        );
        let left = pieces.tar_budget.saturating_sub(pieces.tar_read);
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a header with its long-name or PAX records is larger than {} bytes",
                    pieces.tar_budget
                ),
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = pieces.read(&mut buf[..want])?;
        pieces.tar_read += n as u64;
        Ok(n)
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
        debug_assert_eq!(
            pieces.pos % BLOCK,
            0,
            "tar seeks to a header, at a block boundary (see `Plain`)"
        );
        Ok(pieces.pos)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// [`Plain`], checking every call tar makes against the contract `Plain`'s `seek` relies
    /// on, in any build.
    struct Watched {
        plain: Plain,
        seeks: Rc<Cell<usize>>,
    }

    impl Read for Watched {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let taken = self.plain.0.borrow().taken;
            assert_eq!(taken, 0, "tar read {taken} bytes an entry took");
            self.plain.read(buf)
        }
    }

    impl Seek for Watched {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            let taken = self.plain.0.borrow().taken;
            match to {
                SeekFrom::Current(n) if u64::try_from(n).is_ok_and(|n| n >= taken) => {}
                other => panic!("tar seeks {other:?} with {taken} bytes taken"),
            }
            let pos = self.plain.seek(to)?;
            assert_eq!(pos % BLOCK, 0, "tar seeks to a header");
            self.seeks.set(self.seeks.get() + 1);
            Ok(pos)
        }
    }

    /// Regression guard for `Plain`'s `seek` (issue 18): it moves `ahead - taken` because tar
    /// skips to each header with a `Current` seek computed from the bytes it read itself.
    /// Entries taken whole, in part or not at all, long names (whose records tar reads
    /// itself), PAX headers and odd sizes; the stream arrives in pieces that end anywhere.
    #[test]
    fn tar_seeks_past_what_entries_took() {
        let long = format!("state/{}/file.txt", "deep".repeat(40));
        let contents: Vec<(String, Vec<u8>)> = vec![
            ("state/a".into(), (0..1000u32).map(|i| i as u8).collect()),
            ("state/empty".into(), Vec::new()),
            (long, b"a name past the ustar limit".to_vec()),
            (
                "state/b".into(),
                (0..5000u32).map(|i| (i * 7) as u8).collect(),
            ),
            ("state/c".into(), vec![b'c'; 512]),
            ("state/d".into(), vec![b'd'; 3]),
        ];
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("comment", &b"x"[..])])
            .unwrap();
        for (path, data) in &contents {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            builder
                .append_data(&mut header, path, data.as_slice())
                .unwrap();
        }
        let stream = builder.into_inner().unwrap();
        let (tx, rx) = mpsc::sync_channel(stream.len() / 700 + 1);
        for piece in stream.chunks(700) {
            tx.send(Ok((piece.to_vec(), piece.len()))).unwrap();
        }
        drop(tx);
        let (spare_tx, _spare_rx) = mpsc::sync_channel(4);
        let pieces = Rc::new(RefCell::new(Pieces::new(rx, spare_tx)));
        let seeks = Rc::new(Cell::new(0));
        let watched = Watched {
            plain: Plain(Rc::clone(&pieces)),
            seeks: Rc::clone(&seeks),
        };
        let mut archive = tar::Archive::new(watched);
        let mut seen = Vec::new();
        for (k, entry) in archive.entries_with_seek().unwrap().enumerate() {
            let entry = entry.unwrap();
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let want = &contents.iter().find(|(p, _)| *p == path).unwrap().1;
            let before = seeks.get();
            let mut data = EntryData {
                pieces: &pieces,
                left: entry.size(),
                hasher: blake3::Hasher::new(),
                failed: None,
            };
            // None, half, all, in turn.
            let take = [0, want.len() / 2, want.len()][k % 3];
            let mut got = vec![0; take];
            data.read_exact(&mut got).unwrap();
            assert_eq!(got, want[..take], "{path}");
            seen.push((path, take));
            assert_eq!(seeks.get(), before, "no seek while an entry is read");
        }
        let names: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        let want: Vec<&str> = contents.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, want);
        assert!(seen.iter().any(|(_, t)| *t > 0), "some entries were taken");
        // One seek before each header (the end-of-archive block's included).
        assert!(seeks.get() > contents.len(), "{} seeks", seeks.get());
        // Past the end-of-archive blocks: the rest reads to the stream's end.
        io::copy(&mut archive.into_inner(), &mut io::sink()).unwrap();
        assert_eq!(pieces.borrow().pos, stream.len() as u64);
    }
}
