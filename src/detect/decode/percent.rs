//! Percent-encoded text, whatever subset of characters was encoded (`urllib.parse.quote`
//! leaves `/`, `encodeURIComponent` leaves `!*'()`, form encoding, everything).
//!
//! Candidates are the `%` bytes followed by two hex digits (found with `memchr`); the text
//! around a group of them, up to the reach or a line break, is decoded (`%XX` to its byte,
//! everything else as it is). `+` stays `+`: it is a literal in most of what is encoded this
//! way (base64, tokens); the precomputed forms cover form encoding's spaces.

use std::ops::Range;

use super::{Buf, Window, clusters, hex};
use crate::detect::Encoding;

/// The escape at or after `from`.
fn next(hay: &[u8], from: usize) -> Option<Range<usize>> {
    let mut i = from;
    while let Some(p) = memchr::memchr(b'%', hay.get(i..)?) {
        let at = i + p;
        if at + 2 < hay.len() && hex(hay[at + 1]).is_some() && hex(hay[at + 2]).is_some() {
            return Some(at..at + 3);
        }
        i = at + 1;
    }
    None
}

/// Decodes the text around every escape in `w.hay[w.from..]` into `out`.
pub(super) fn decode(w: &Window<'_>, out: &mut Buf) {
    let hay = w.hay;
    clusters(
        hay,
        w.from,
        w.reach,
        |from| next(hay, from),
        |span| {
            let begun = out.begin(Encoding::Percent);
            let mut i = span.start;
            while i < span.end {
                if hay[i] == b'%'
                    && i + 2 < span.end
                    && let (Some(h), Some(l)) = (hex(hay[i + 1]), hex(hay[i + 2]))
                {
                    out.push((h << 4) | l, i);
                    i += 3;
                } else {
                    out.push(hay[i], i);
                    i += 1;
                }
            }
            out.end(begun, span.end);
        },
    );
}
