//! Streaming scans with bounded memory and no blind spot at chunk boundaries.
//!
//! A [`StreamScan`] buffers what it is given and scans in chunks of [`CHUNK`] bytes. Between
//! chunks it keeps a tail: the longest known-value pattern minus one byte (so a value split
//! across two writes is still found), and for rules a lookahead of the longest rule match (a
//! match that could still grow is left for the next chunk) plus look-behind context. Each
//! match is reported once: known values when they end in new bytes, rule matches when their
//! secret starts in the settled range. Line and column numbers are tracked across discarded
//! bytes, so findings carry absolute positions in the stream.
//!
//! A caller that reads into buffers of its own can hand them over whole
//! ([`StreamScan::write_owned`]) instead of having them copied: the tail is copied into the
//! room left before the new bytes ([`StreamScan::headroom`]), and the buffer it replaces is
//! handed back to be filled again. Bytes that must stay where they are (shared decompressed
//! frames) are scanned in place ([`StreamScan::write_shared`]): only the seam with the kept
//! tail is copied.

use std::io::{self, Write};
use std::ops::Range;

use super::decode::Carry;
use super::engine::{Decoding, Region};
use super::{Detector, Finding};

/// Bytes scanned per round.
pub const CHUNK: usize = 256 * 1024;

/// Bytes of context kept before the settled point (line starts, assignment names).
const TAIL_BACK: usize = 4096;

/// A scan that is fed bytes through [`Write`] and returns its findings at [`StreamScan::finish`].
///
/// Memory holds at most one chunk of new bytes, the rules' lookahead, a little look-behind
/// context, and the longest known-value pattern.
///
/// `flush` settles everything up to the last complete line (for log monitors), and
/// [`StreamScan::take_findings`] hands over what has been found so far.
pub struct StreamScan<'d> {
    detector: &'d Detector,
    chunk: usize,
    path: String,
    /// `buf[start..]` are the bytes kept; the indices below count from `buf[start]`.
    buf: Vec<u8>,
    start: usize,
    /// Absolute stream offset of `buf[start]`.
    base: u64,
    /// Rule matches whose secret starts before this index were reported.
    settled: usize,
    /// Known values ending before this index were reported.
    known_done: usize,
    /// Newlines before `buf[0]`, and characters between the last of them and `buf[0]`.
    lines_before: usize,
    col_before: usize,
    binary: Option<bool>,
    findings: Vec<Finding>,
    /// Stream offsets of the matches reported that end after the settled point: a later
    /// round must not report their bytes again under another rule.
    reported: Vec<Range<u64>>,
    /// A base64 block the last round decoded up to where this one starts decoding.
    carry: Option<Carry>,
}

impl std::fmt::Debug for StreamScan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScan")
            .field("path", &self.path)
            .field("offset", &self.position())
            .field("findings", &self.findings.len())
            .finish_non_exhaustive()
    }
}

/// How far a round may settle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Leave a lookahead for matches that may still grow.
    Chunk,
    /// Up to the last newline: a complete line cannot grow.
    Lines,
    /// Everything: the stream has ended.
    End,
}

impl<'d> StreamScan<'d> {
    pub(crate) fn new(detector: &'d Detector, path: &str) -> StreamScan<'d> {
        StreamScan::with_chunk(detector, path, CHUNK)
    }

    /// A stream that scans every `chunk` bytes: tests use tiny chunks to put boundaries
    /// everywhere.
    pub(crate) fn with_chunk(detector: &'d Detector, path: &str, chunk: usize) -> StreamScan<'d> {
        StreamScan {
            chunk,
            detector,
            path: path.to_string(),
            buf: Vec::new(),
            start: 0,
            base: 0,
            settled: 0,
            known_done: 0,
            lines_before: 0,
            col_before: 0,
            binary: None,
            findings: Vec::new(),
            reported: Vec::new(),
            carry: None,
        }
    }

    /// Findings found so far, handed over (a later call returns only newer ones).
    pub fn take_findings(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.findings)
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.base + self.kept().len() as u64
    }

    /// The capacity of the scan's own buffer (what it ever copied at once).
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The bytes kept: the tail of earlier rounds and what has not been scanned yet.
    fn kept(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Bytes a buffer handed to [`StreamScan::write_owned`] should leave free before its data:
    /// the most a round keeps for the next (see [`Detector::stream_headroom`]).
    pub fn headroom(&self) -> usize {
        headroom(self.detector)
    }

    /// Takes `piece[at..at + n]` as the next bytes of the stream without copying them when
    /// `at` leaves room for the kept tail (see [`StreamScan::headroom`]): the tail is copied
    /// in front of them, `piece` becomes the scan's buffer, and the buffer it replaces is
    /// returned, to be filled again. Otherwise the bytes are copied as by `write`, and `piece`
    /// itself is returned. Pieces shorter than half a chunk are copied too: the buffer of a
    /// small file would otherwise outlive the piece it came in. The returned buffer's length
    /// is unspecified.
    pub fn write_owned(&mut self, mut piece: Vec<u8>, at: usize, n: usize) -> Vec<u8> {
        let tail = self.kept().len();
        if at < tail || piece.len() < at + n || n < self.chunk / 2 {
            io::Write::write_all(self, &piece[at..at + n]).expect("a scan writes to memory");
            return piece;
        }
        piece[at - tail..at].copy_from_slice(self.kept());
        piece.truncate(at + n);
        let old = std::mem::replace(&mut self.buf, piece);
        self.start = at - tail;
        if self.kept().len() - self.known_done >= self.chunk {
            self.round(Settle::Chunk);
        }
        old
    }

    /// Takes `data` as the next bytes of the stream and scans it where it lies, for a caller
    /// whose bytes sit in buffers it cannot give away (shared decompressed frames): only the
    /// seam with the kept tail ([`StreamScan::headroom`] bytes of `data`) and the new tail are
    /// copied. Data shorter than half a chunk, or than twice the seam, is copied as by `write`.
    /// The findings are those of any other way of writing the same bytes.
    pub fn write_shared(&mut self, data: &[u8]) {
        let seam = self.headroom();
        if data.len() < self.chunk / 2 || data.len() < 2 * seam {
            io::Write::write_all(self, data).expect("a scan writes to memory");
            return;
        }
        if self.binary.is_none() {
            // Decided on the stream's first bytes, as a round over a copy would.
            let kept = self.kept();
            let head = &data[..data.len().min(8192_usize.saturating_sub(kept.len()))];
            self.binary = Some(is_binary(kept) || is_binary(head));
        }
        // The seam: the kept bytes and the start of `data`, as one round. It settles so far
        // into `data` (a headroom covers the lookahead, the look-behind and the longest known
        // value) that nothing from before `data` is kept after it.
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(&data[..seam]);
        self.round(Settle::Chunk);
        debug_assert!(self.kept().len() <= seam && data[..seam].ends_with(self.kept()));
        let mut from = seam - self.kept().len();
        // The rest in place, a chunk per round: `data[from..]` is what is kept.
        while from + self.known_done < data.len() {
            let end = (from + self.known_done + self.chunk).min(data.len());
            from += self.round_in(&data[from..end], Settle::Chunk);
        }
        self.buf.clear();
        self.buf.extend_from_slice(&data[from..]);
        self.start = 0;
    }

    /// Ends the stream and returns every finding not yet taken, in offset order.
    pub fn finish(mut self) -> Vec<Finding> {
        self.round(Settle::End);
        // A known value is reported when its bytes arrive, a rule match once it can no longer
        // grow: a round may report them out of order.
        self.findings.sort_by_key(|f| (f.offset, f.length));
        self.findings
    }

    /// Scans `data` as the stream's whole content without copying it (for `scan_bytes`).
    pub(crate) fn scan_final(&mut self, data: &[u8]) {
        debug_assert!(self.buf.is_empty() && self.base == 0);
        let binary = is_binary(data);
        self.binary = Some(binary);
        let region = Region {
            hay: data,
            rule_from: 0,
            rule_to: data.len(),
            known_new_from: 0,
            binary,
            reported: &[],
            decode: Some(Decoding {
                base: 0,
                carry: None,
                last: true,
            }),
        };
        self.report(data, &region);
        self.base = data.len() as u64;
    }

    fn round(&mut self, settle: Settle) {
        let buf = std::mem::take(&mut self.buf);
        let drop = self.round_in(&buf[self.start..], settle);
        self.buf = buf;
        self.start += drop;
    }

    /// A round over `hay`, the kept bytes wherever they lie; returns how many of its first
    /// bytes no later round needs (see [`StreamScan::discard`]).
    fn round_in(&mut self, hay: &[u8], settle: Settle) -> usize {
        let len = hay.len();
        let binary = *self.binary.get_or_insert_with(|| is_binary(hay));
        let settle_to = match settle {
            Settle::End => len,
            Settle::Chunk => len.saturating_sub(self.detector.rule_lookahead()),
            Settle::Lines => memchr::memrchr(b'\n', hay).map_or(0, |p| p + 1),
        }
        .max(self.settled);
        let reported: Vec<Range<usize>> = self
            .reported
            .iter()
            .map(|r| offset(r.start, self.base)..offset(r.end, self.base))
            .collect();
        let region = Region {
            hay,
            rule_from: self.settled,
            rule_to: settle_to,
            known_new_from: self.known_done,
            binary,
            reported: &reported,
            decode: Some(Decoding {
                base: self.base,
                carry: self.carry,
                last: settle == Settle::End,
            }),
        };
        self.report(hay, &region);
        self.settled = settle_to;
        let settled = self.base + settle_to as u64;
        self.reported.retain(|r| r.end > settled);
        self.known_done = len;
        self.discard(hay)
    }

    /// Scans a region and appends its findings with absolute positions.
    fn report(&mut self, hay: &[u8], region: &Region<'_>) {
        let (hits, carry) = self.detector.hits(region);
        self.carry = carry;
        let mut line = self.lines_before;
        let mut line_start: Option<usize> = None;
        let mut counted = 0;
        for hit in hits {
            for p in memchr::memchr_iter(b'\n', &hay[counted..hit.start]) {
                line += 1;
                line_start = Some(counted + p + 1);
            }
            counted = hit.start;
            let column = match line_start {
                Some(s) => chars(&hay[s..hit.start]) + 1,
                None => self.col_before + chars(&hay[..hit.start]) + 1,
            };
            let at = (self.base + hit.start as u64, line + 1, column);
            self.reported.push(at.0..self.base + hit.end as u64);
            if let Some(f) = self.detector.finding(hay, &hit, &self.path, at) {
                self.findings.push(f);
            }
        }
    }

    /// Drops the first bytes of `hay` (the kept bytes) that no later round needs, keeping line
    /// and column counts; returns how many.
    fn discard(&mut self, hay: &[u8]) -> usize {
        let keep_known = self.detector.known_keep();
        let drop = self
            .settled
            .saturating_sub(TAIL_BACK)
            .min(self.known_done.saturating_sub(keep_known));
        if drop == 0 {
            return 0;
        }
        let gone = &hay[..drop];
        match memchr::memrchr(b'\n', gone) {
            Some(p) => {
                self.lines_before += memchr::memchr_iter(b'\n', gone).count();
                self.col_before = chars(&gone[p + 1..]);
            }
            None => self.col_before += chars(gone),
        }
        self.base += drop as u64;
        self.settled -= drop;
        self.known_done -= drop;
        drop
    }
}

impl Write for StreamScan<'_> {
    /// Takes at most one chunk per call, so memory stays bounded whatever the caller writes.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let room = self
            .chunk
            .saturating_sub(self.buf.len() - self.known_done)
            .max(1);
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() - self.known_done >= self.chunk {
            self.round(Settle::Chunk);
        }
        Ok(n)
    }

    /// Settles every complete line written so far: a log monitor calls it when the writer
    /// pauses, then takes the findings.
    fn flush(&mut self) -> io::Result<()> {
        self.round(Settle::Lines);
        Ok(())
    }
}

/// What a stream over `detector` keeps between rounds at most: look-behind context and the
/// rules' lookahead, or the longest known-value pattern.
pub(super) fn headroom(detector: &Detector) -> usize {
    (TAIL_BACK + detector.rule_lookahead()).max(detector.known_keep())
}

/// `at`, a stream offset at or after `base` in practice, as an index from `base` (0 if before).
fn offset(at: u64, base: u64) -> usize {
    usize::try_from(at.saturating_sub(base)).unwrap_or(usize::MAX)
}

/// A NUL byte in the first 8 KiB marks a binary file (git's heuristic).
fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(8192)]).is_some()
}

/// Number of UTF-8 characters (continuation bytes not counted).
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}
