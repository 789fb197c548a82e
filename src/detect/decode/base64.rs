//! Base64 runs, on one line or wrapped at any width.
//!
//! A run is at least [`MIN_RUN`] characters of the standard or URL-safe alphabet (both are
//! read, `-` as `+` and `_` as `/`), ended by up to two `=`. A block wraps when a line holding
//! [`MIN_LINE`] or more characters ends at a line break (LF or CRLF) and the next line, after
//! any indentation, continues with characters: every line but the last must be as wide as the
//! first, the last may be shorter (a line that is wider starts a new run: the first was a word
//! that happened to be base64).
//!
//! Candidates are found by sampling one 8-byte word in sixteen bytes: a run of 23 or more
//! characters holds a whole sampled word (shorter ones are left to the precomputed forms). A word test throws out any word holding a byte below `+`
//! (space, quote, line break, NUL and other controls) or above 0x7f, which is nearly every
//! word of prose, JSON, logs and binary data; survivors are checked byte by byte.

use super::{Buf, Carry, Window, is_text};
use crate::detect::Encoding;

/// Fewest characters of a run worth decoding (12 bytes).
pub(super) const MIN_RUN: usize = 16;

/// Fewest characters of a line that can wrap onto the next.
const MIN_LINE: usize = 16;

/// Most indentation skipped at the start of a continuation line.
const MAX_INDENT: usize = 64;

const BAD: u8 = 0xff;

/// Each byte's 6-bit value, or `BAD`.
static TABLE: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

fn is_b64(b: u8) -> bool {
    TABLE[b as usize] != BAD
}

/// Bits of [`CLASS`]: not base64, uppercase, lowercase.
const NOT: u8 = 0x80;
const UPPER: u8 = 1;
const LOWER: u8 = 2;

static CLASS: [u8; 256] = {
    let mut t = [NOT; 256];
    let mut i = 0;
    while i < 256 {
        if TABLE[i] != BAD {
            t[i] = if (i as u8).is_ascii_uppercase() {
                UPPER
            } else if (i as u8).is_ascii_lowercase() {
                LOWER
            } else {
                0
            };
        }
        i += 1;
    }
    t
};

/// The end of the run of base64 characters from `at`, and the classes of letters in it: eight
/// bytes per step while they are all base64 (one OR of eight table entries), then byte by byte.
fn run_end(hay: &[u8], mut at: usize, classes: &mut u8) -> usize {
    while let Some(eight) = hay.get(at..at + 8) {
        let c = eight.iter().fold(0u8, |acc, &b| acc | CLASS[b as usize]);
        if c & NOT != 0 {
            break;
        }
        *classes |= c;
        at += 8;
    }
    while at < hay.len() && CLASS[hay[at] as usize] & NOT == 0 {
        *classes |= CLASS[hay[at] as usize];
        at += 1;
    }
    at
}

/// Whether a word holds a byte below `+` or above 0x7f: then it is not 8 base64 characters.
fn rejects(word: u64) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The classic "has a byte less than n" test (n = 0x2b), exact for bytes below 0x80.
    let below = word.wrapping_sub(LOW * 0x2b) & !word & HIGH;
    below != 0 || word & HIGH != 0
}

/// The state of a region's base64 decoding: the lines of the run being decoded (reused from
/// run to run) and where a block in progress stands at `w.next_from`.
#[derive(Default)]
pub(super) struct State {
    lines: Vec<(usize, usize)>,
    pub carry: Option<Carry>,
}

/// Decodes the block an earlier round left in progress at `w.from`, if any; returns where the
/// search for new runs starts.
pub(super) fn resume(w: &Window<'_>, bufs: (&mut Buf, &mut Buf), st: &mut State) -> usize {
    let hay = w.hay;
    if let Some(c) = w.carry
        && let Some(at) =
            c.at.checked_sub(w.base)
                .and_then(|a| usize::try_from(a).ok())
        && at >= w.from
        && at < hay.len()
        && is_b64(hay[at])
    {
        let run = Run {
            start: at,
            phase: c.phase,
            width: c.width,
            in_line: c.in_line,
        };
        return run.decode(w, bufs, &mut st.lines, &mut st.carry);
    }
    w.from
}

/// Whether `word` may be 8 base64 characters (see [`rejects`]).
pub(super) fn candidate(word: u64) -> bool {
    !rejects(word)
}

/// If the 8 bytes at `p` are base64 characters, decodes their run into `text` (or `bin` when it
/// decodes to binary) and returns where it ends.
pub(super) fn at(
    w: &Window<'_>,
    p: usize,
    bufs: (&mut Buf, &mut Buf),
    st: &mut State,
) -> Option<usize> {
    let hay = w.hay;
    if !hay[p..p + 8].iter().all(|&b| is_b64(b)) {
        return None;
    }
    let mut start = p;
    while start > w.from && is_b64(hay[start - 1]) {
        start -= 1;
    }
    let run = Run {
        start,
        phase: 0,
        width: 0,
        in_line: 0,
    };
    Some(run.decode(w, bufs, &mut st.lines, &mut st.carry))
}

/// A run to decode from `start`, which is `phase` characters into a 4-character group and
/// `in_line` characters into a line of a block `width` wide (0: not known yet).
struct Run {
    start: usize,
    phase: u8,
    width: usize,
    in_line: usize,
}

impl Run {
    /// Decodes the run; returns where it ends.
    fn decode<'b>(
        self,
        w: &Window<'_>,
        bufs: (&'b mut Buf, &'b mut Buf),
        lines: &mut Vec<(usize, usize)>,
        carry_out: &mut Option<Carry>,
    ) -> usize {
        let hay = w.hay;
        let resumed = self.phase != 0 || self.width != 0 || self.in_line != 0;
        // The lines of the run: (first character, end).
        lines.clear();
        let mut width = self.width;
        let mut at = self.start;
        let mut first_in_line = self.in_line;
        let mut classes = 0u8;
        let end = loop {
            let e = run_end(hay, at, &mut classes);
            lines.push((at, e));
            let len = first_in_line + (e - at);
            first_in_line = 0;
            if width == 0 {
                width = len;
            }
            // Padding ends a run; so does a short line or a line of another width.
            let mut pad = e;
            while pad < hay.len() && pad < e + 2 && hay[pad] == b'=' {
                pad += 1;
            }
            if pad > e || len != width || width < MIN_LINE {
                break pad;
            }
            let Some(next) = continuation(hay, e) else {
                break e;
            };
            let mut ignored = 0;
            let ne = run_end(hay, next, &mut ignored);
            if ne - next > width {
                break e;
            }
            at = next;
        };
        let chars: usize = lines.iter().map(|(s, e)| e - s).sum();
        // A run that does not mix upper- and lowercase letters is not the base64 of 12 or more
        // bytes in practice (hex digests, UUIDs, paths, identifiers): it is not decoded.
        if !resumed && (chars < MIN_RUN || classes & (UPPER | LOWER) != UPPER | LOWER) {
            return end;
        }
        // Where the next round starts decoding, if inside this run: the block's state there.
        if let Some(next) = w.next_from
            && (self.start < next || resumed)
        {
            let mut index = usize::from(self.phase);
            for (li, &(s, e)) in lines.iter().enumerate() {
                let i = next.max(s);
                if i < e {
                    let before = if li == 0 { self.in_line } else { 0 };
                    *carry_out = Some(Carry {
                        at: w.base + i as u64,
                        phase: ((index + (i - s)) % 4) as u8,
                        width,
                        in_line: before + (i - s),
                    });
                    break;
                }
                index += e - s;
            }
        }
        let skip = (4 - usize::from(self.phase)) % 4;
        let positions = || lines.iter().flat_map(|&(s, e)| s..e).skip(skip);
        // Text or binary, judged on the first 48 bytes: decoding twice is cheaper than moving
        // a long binary run from one buffer to the other. A one-line run of binary (an image,
        // a digest, a key's bytes) is left alone: rules look for text, and the precomputed
        // base64 forms already find a known value in it at any alignment.
        let mut head = [0u8; 48];
        let mut n = 0;
        let mut group = positions()
            .take(64)
            .map(|i| u32::from(TABLE[hay[i] as usize]));
        while let (Some(a), Some(b), Some(c), Some(d)) =
            (group.next(), group.next(), group.next(), group.next())
        {
            let v = (a << 18) | (b << 12) | (c << 6) | d;
            head[n..n + 3].copy_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
            n += 3;
        }
        let (text, bin) = bufs;
        let head_is_text = is_text(&head[..n]);
        zeroize::Zeroize::zeroize(&mut head);
        let out = if head_is_text {
            text
        } else if lines.len() > 1 {
            bin
        } else {
            return end;
        };
        let begun = out.begin(Encoding::Base64);
        out.reserve(chars / 4 * 3 + 3);
        emit(hay, positions(), out);
        out.end(begun, end);
        end
    }
}

/// Decodes the characters at `positions` (whole groups, then a partial one) into `out`.
fn emit(hay: &[u8], positions: impl Iterator<Item = usize>, out: &mut Buf) {
    let mut group = [0u8; 4];
    let mut pos = [0usize; 4];
    let mut n = 0;
    for i in positions {
        group[n] = TABLE[hay[i] as usize];
        pos[n] = i;
        n += 1;
        if n == 4 {
            let v = (u32::from(group[0]) << 18)
                | (u32::from(group[1]) << 12)
                | (u32::from(group[2]) << 6)
                | u32::from(group[3]);
            out.push((v >> 16) as u8, pos[0]);
            out.push((v >> 8) as u8, pos[1]);
            out.push(v as u8, pos[2]);
            n = 0;
        }
    }
    if n >= 2 {
        let v = (u32::from(group[0]) << 18)
            | (u32::from(group[1]) << 12)
            | (u32::from(group[2]) << 6)
            | u32::from(group[3]);
        out.push((v >> 16) as u8, pos[0]);
        if n == 3 {
            out.push((v >> 8) as u8, pos[1]);
        }
    }
}

/// If a line break at `e` is followed by an indented continuation, where it starts.
fn continuation(hay: &[u8], e: usize) -> Option<usize> {
    let mut i = e;
    if hay.get(i) == Some(&b'\r') {
        i += 1;
    }
    if hay.get(i) != Some(&b'\n') {
        return None;
    }
    i += 1;
    let indent_end = (i + MAX_INDENT).min(hay.len());
    while i < indent_end && (hay[i] == b' ' || hay[i] == b'\t') {
        i += 1;
    }
    (i < hay.len() && is_b64(hay[i])).then_some(i)
}
