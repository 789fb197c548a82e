//! Decoders: the encoded runs of a buffer, decoded, so that known values and provider rules are
//! also searched in what a file says once decoded (TruffleHog's approach).
//!
//! Precomputed forms (`encode.rs`) find a known value in the few encodings a tool writes it in
//! whole; they cannot follow an encoder that wraps lines, encodes another subset of characters
//! or another text encoding, and rules never see inside an encoding at all. Here each buffer
//! region also goes through four decoders, each of which only looks at what it can cheaply tell
//! is a candidate, so that ordinary text is read about once:
//!
//! - `base64`: runs of at least 24 base64 characters (standard or URL-safe alphabet), including
//!   blocks wrapped at any width with LF or CRLF and indented lines (PEM, MIME, `base64`,
//!   Python's `encodebytes`, YAML block scalars). Found by sampling one 8-byte word in sixteen
//!   bytes with a word test that rejects any word holding a space, quote, line break or
//!   control byte.
//! - `utf16`: UTF-16 LE or BE text of 16 or more ASCII characters, with or without a BOM,
//!   found by the NUL byte in every other position of a sampled word.
//! - `percent`: text around `%XX` escapes, whatever subset of characters was encoded.
//! - `escape`: text around `\uXXXX` and `\xXX` escapes (JSON with any or every character
//!   escaped, in either case; Go's `\u0026`; Python and YAML `\x`), with the other backslash
//!   escapes of those strings decoded too.
//!
//! The decoded bytes of a region go into two buffers (text, and binary: base64 runs that
//! decode to non-text), in [`Zeroizing`] memory because they hold secrets. Each decoded byte
//! remembers where its unit starts in the region, so a match in decoded text is reported at
//! its original offset and with its original length. A base64 block longer than a stream's
//! kept tail is decoded piecewise: a round records the alignment of the block where the next
//! round starts decoding ([`Carry`]).

mod base64;
mod escape;
mod percent;
mod utf16;

use std::ops::Range;

use zeroize::Zeroizing;

use super::Encoding;

/// Distance between the words sampled for base64 and UTF-16 candidates.
const STRIDE: usize = 16;

/// Bytes before the first new byte of a round that a round decodes again: context for a
/// rule's keyword before its secret (the prefilter's reach, escaped up to six times).
pub(crate) const DECODE_BACK: usize = 1024;

/// Decoded bytes, each with the offset in the scanned buffer where its unit starts.
pub(crate) struct Buf {
    bytes: Zeroizing<Vec<u8>>,
    /// `map[i]`: where the unit that gave `bytes[i]` starts; one more entry than `bytes`: the
    /// end of the last unit.
    map: Vec<usize>,
    /// (first decoded byte, encoding) of each span, in order.
    spans: Vec<(usize, Encoding)>,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: Zeroizing::new(Vec::new()),
            map: vec![0],
            spans: Vec::new(),
        }
    }

    /// The decoded bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes of the scanned buffer that decoded to `r`.
    pub(crate) fn original(&self, r: &Range<usize>) -> Range<usize> {
        self.map[r.start]..self.map[r.end].max(self.map[r.start] + 1)
    }

    /// The encoding of the span holding decoded byte `at`.
    pub(crate) fn encoding(&self, at: usize) -> Encoding {
        let i = self.spans.partition_point(|(s, _)| *s <= at);
        self.spans[i.saturating_sub(1)].1
    }

    /// Starts a span: returns its first decoded index.
    fn begin(&mut self, enc: Encoding) -> usize {
        self.spans.push((self.bytes.len(), enc));
        self.bytes.len()
    }

    /// Adds one decoded byte whose unit starts at `at`.
    fn push(&mut self, b: u8, at: usize) {
        // `map` ends with the previous unit's end; this unit's start replaces it.
        *self.map.last_mut().expect("map is never empty") = at;
        push_zeroized(&mut self.bytes, b);
        self.map.push(at);
    }

    /// Ends the span begun at `from` whose encoded text ends at `end`: a line break separates
    /// it from the next one, so no match joins two spans. An empty span is dropped.
    fn end(&mut self, from: usize, end: usize) {
        if self.bytes.len() == from {
            self.spans.pop();
            return;
        }
        *self.map.last_mut().expect("map is never empty") = end;
        push_zeroized(&mut self.bytes, b'\n');
        self.map.push(end);
    }

    /// Room for `n` more decoded bytes (a zeroized buffer must not grow by reallocation).
    fn reserve(&mut self, n: usize) {
        if self.bytes.capacity() - self.bytes.len() < n {
            let mut grown = Zeroizing::new(Vec::with_capacity(
                (self.bytes.len() + n).max(2 * self.bytes.capacity()),
            ));
            grown.extend_from_slice(&self.bytes);
            self.bytes = grown;
        }
        self.map.reserve(n);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Pushes `b` without leaving a copy behind: a `Vec` that grows frees its old buffer as it is,
/// so the bytes move to a new zeroized buffer, and the old one is wiped when it drops.
fn push_zeroized(bytes: &mut Zeroizing<Vec<u8>>, b: u8) {
    if bytes.len() == bytes.capacity() {
        let mut grown = Zeroizing::new(Vec::with_capacity((bytes.capacity() * 2).max(256)));
        grown.extend_from_slice(bytes);
        *bytes = grown;
    }
    bytes.push(b);
}

/// Where a base64 block that a round decoded up to the next round's start stands there: the
/// stream offset of its next character, its position in a 4-character group, the width of the
/// block's lines (0: one line) and how many characters of the current line came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Carry {
    pub at: u64,
    pub phase: u8,
    pub width: usize,
    pub in_line: usize,
}

/// What a region's decoders read.
pub(crate) struct Window<'a> {
    pub hay: &'a [u8],
    /// Decode from here (candidates starting before it were decoded by an earlier round).
    pub from: usize,
    /// Stream offset of `hay[0]`.
    pub base: u64,
    /// A base64 block in progress at `from`, from the previous round.
    pub carry: Option<Carry>,
    /// Where the next round will start decoding, if there is one: record a [`Carry`] there.
    pub next_from: Option<usize>,
    /// How far around an escape the text is decoded.
    pub reach: usize,
}

/// The decoded text of a region.
pub(crate) struct Decoded {
    pub text: Buf,
    pub bin: Buf,
    pub carry: Option<Carry>,
}

/// Runs every decoder over `w.hay[w.from..]`.
pub(crate) fn decode(w: &Window<'_>) -> Decoded {
    let mut d = Decoded {
        text: Buf::new(),
        bin: Buf::new(),
        carry: None,
    };
    if w.from >= w.hay.len() {
        return d;
    }
    // One pass samples one 8-byte word in sixteen bytes for both base64 and UTF-16 (a run of
    // 23 bytes or more holds a whole sampled word); a word is a candidate for at most one of
    // them (UTF-16 words hold NUL bytes, base64 words none).
    let mut b64 = base64::State::default();
    let mut p = base64::resume(w, (&mut d.text, &mut d.bin), &mut b64);
    let hay = w.hay;
    while p + 8 <= hay.len() {
        let word = u64::from_le_bytes(hay[p..p + 8].try_into().expect("8 bytes"));
        let end = if base64::candidate(word) {
            base64::at(w, p, (&mut d.text, &mut d.bin), &mut b64)
        } else if utf16::candidate(word) {
            utf16::at(w, p, word, &mut d.text)
        } else {
            None
        };
        p = end.map_or(p + STRIDE, |e| e.max(p + STRIDE));
    }
    d.carry = b64.carry;
    percent::decode(w, &mut d.text);
    escape::decode(w, &mut d.text);
    d
}

/// Whether decoded bytes read as text: no NUL, and few other control bytes.
fn is_text(bytes: &[u8]) -> bool {
    let odd = bytes
        .iter()
        .filter(|&&b| b < 0x09 || (0x0e..0x20).contains(&b) || b == 0x7f)
        .count();
    !bytes.contains(&0) && odd * 16 <= bytes.len()
}

/// The value of an ASCII hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The start of a span around escapes at `first..last_end`: `reach` bytes before, not past a
/// line break or `from`.
fn span_start(hay: &[u8], from: usize, first: usize, reach: usize) -> usize {
    let lo = first.saturating_sub(reach).max(from);
    memchr::memrchr(b'\n', &hay[lo..first]).map_or(lo, |p| lo + p + 1)
}

/// The end of a span: `reach` bytes after `last_end`, not past a line break.
fn span_end(hay: &[u8], last_end: usize, reach: usize) -> usize {
    let hi = (last_end + reach).min(hay.len());
    memchr::memchr(b'\n', &hay[last_end..hi]).map_or(hi, |p| last_end + p)
}

/// Escapes found by `next` (each returning the escape's range from a position) grouped into
/// spans of text to decode: escapes closer than `reach` on one line share a span.
fn clusters(
    hay: &[u8],
    from: usize,
    reach: usize,
    mut next: impl FnMut(usize) -> Option<Range<usize>>,
    mut each: impl FnMut(Range<usize>),
) {
    let mut pos = from;
    while let Some(first) = next(pos) {
        let start = span_start(hay, from, first.start, reach);
        let mut last_end = first.end;
        let mut end = span_end(hay, last_end, reach);
        while let Some(e) = next(last_end).filter(|e| e.start < end) {
            last_end = e.end;
            end = span_end(hay, last_end, reach);
        }
        each(start..end);
        pos = end.max(last_end);
    }
}

#[cfg(test)]
mod tests;
