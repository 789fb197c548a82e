//! UTF-16 text, little- or big-endian, with or without a byte order mark.
//!
//! Only characters below U+0080 are decoded (secrets are ASCII; a BOM or any other character
//! ends a run). A run is at least [`MIN_UNITS`] such characters. Candidates are found by
//! sampling one 8-byte word in eight: four ASCII characters in UTF-16 are a word whose odd
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

/// Decodes every run in `w.hay[w.from..]` into `out`.
pub(super) fn decode(w: &Window<'_>, out: &mut Buf) {
    let hay = w.hay;
    let mut p = w.from;
    while p + 8 <= hay.len() {
        let word = u64::from_le_bytes(hay[p..p + 8].try_into().expect("8 bytes"));
        // Which byte of each unit is zero: `lo` is the offset of the character byte.
        let lo = if word == 0 {
            None
        } else if word & ODD == 0 {
            Some(0)
        } else if word & EVEN == 0 {
            Some(1)
        } else {
            None
        };
        let Some(first) = lo.filter(|&lo| (0..4).all(|k| ascii(hay[p + 2 * k + lo]))) else {
            p += 8;
            continue;
        };
        // Files start at even stream offsets (a tar entry's content is 512-aligned): a
        // character byte at an even offset is the low byte of a little-endian unit, at an odd
        // one the low byte of a big-endian unit. `lo`: the character's offset in its unit.
        let lo = ((w.base + (p + first) as u64) % 2) as usize;
        let unit = |at: usize| -> bool {
            at + 2 <= hay.len() && hay[at + (1 - lo)] == 0 && ascii(hay[at + lo])
        };
        let Some(mut start) = (p + first)
            .checked_sub(lo)
            .filter(|&s| s >= w.from && unit(s))
        else {
            p += 8;
            continue;
        };
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
        p = end;
    }
}
