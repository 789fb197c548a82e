//! UTF-16 text, little- or big-endian, with or without a byte order mark.
//!
//! Only characters below U+0080 are decoded (secrets are ASCII; a BOM or any other character
//! ends a run). A run is at least [`MIN_UNITS`] such characters, and is found when it is 16 or
//! more long. Candidates are found by sampling one 8-byte word in sixteen bytes: four ASCII characters in UTF-16 are a word whose odd
//! (LE) or even (BE) bytes are all zero and whose other bytes are printable or whitespace. A
//! zero word (padding, sparse files) is rejected by its first test, and the word tests cost a
//! few instructions, so binary data and 8-bit text pass at memory speed. Which byte of a unit
//! is the NUL tells the byte order, also for a run whose start an earlier round saw.

use super::{Buf, Window};
use crate::detect::Encoding;

/// Fewest characters of a run worth decoding.
const MIN_UNITS: usize = 8;

const ODD: u64 = 0xff00_ff00_ff00_ff00;
const EVEN: u64 = 0x00ff_00ff_00ff_00ff;

/// A printable ASCII character or whitespace: what a UTF-16 unit with a zero high byte must
/// hold to extend a run.
fn ascii(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t' || b == b'\n' || b == b'\r'
}

/// Whether `word` (the 8 bytes at `p`) may be UTF-16: not zero, and every other byte zero.
pub(super) fn candidate(word: u64) -> bool {
    word != 0 && (word & ODD == 0 || word & EVEN == 0)
}

/// If the 8 bytes at `p` (`word`) are four ASCII characters in UTF-16, decodes their run into
/// `out` and returns where it ends.
pub(super) fn at(w: &Window<'_>, p: usize, word: u64, out: &mut Buf) -> Option<usize> {
    let hay = w.hay;
    // Which byte of each unit is zero: `first` is the offset of the first character byte.
    let first = if word & ODD == 0 { 0 } else { 1 };
    if !(0..4).all(|k| ascii(hay[p + 2 * k + first])) {
        return None;
    }
    // Files start at even stream offsets (a tar entry's content is 512-aligned): a
    // character byte at an even offset is the low byte of a little-endian unit, at an odd
    // one the low byte of a big-endian unit. `lo`: the character's offset in its unit.
    let lo = ((w.base + (p + first) as u64) % 2) as usize;
    let unit = |at: usize| -> bool {
        at + 2 <= hay.len() && hay[at + (1 - lo)] == 0 && ascii(hay[at + lo])
    };
    let mut start = (p + first)
        .checked_sub(lo)
        .filter(|&s| s >= w.from && unit(s))?;
    while start >= w.from + 2 && unit(start - 2) {
        start -= 2;
    }
    let mut end = (p + first - lo) + 2;
    while unit(end) {
        end += 2;
    }
    if (end - start) / 2 >= MIN_UNITS {
        let begun = out.begin(Encoding::Utf16);
        for at in (start..end).step_by(2) {
            out.push(hay[at + lo], at);
        }
        out.end(begun, end);
    }
    Some(end)
}
