//! Backslash-escaped text around `\uXXXX` and `\xXX` escapes: JSON with any or every
//! character escaped, in either case (Go's `json.Marshal` writes `&`, `<`, `>` as `\u0026`,
//! `\u003c`, `\u003e`), JavaScript, Python and YAML `\x`.
//!
//! Candidates are backslashes followed by `u` and four hex digits or `x` and two (found with
//! `memchr`); the text around a group of them, up to the reach or a line break, is decoded as
//! a JSON string would be, with `\x` and `\'` too: a surrogate pair becomes its character, a
//! lone surrogate U+FFFD, an unknown escape stays as written.

use std::ops::Range;

use super::{Buf, Window, clusters, hex};
use crate::detect::Encoding;

/// The value of `n` hex digits at `at`.
fn hex_at(hay: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = hay.get(at..at + n)?;
    digits
        .iter()
        .try_fold(0u32, |v, &d| Some((v << 4) | u32::from(hex(d)?)))
}

/// The `\u` or `\x` escape at or after `from`.
fn next(hay: &[u8], from: usize) -> Option<Range<usize>> {
    let mut i = from;
    while let Some(p) = memchr::memchr(b'\\', hay.get(i..)?) {
        let at = i + p;
        match hay.get(at + 1) {
            Some(b'u') if hex_at(hay, at + 2, 4).is_some() => return Some(at..at + 6),
            Some(b'x') if hex_at(hay, at + 2, 2).is_some() => return Some(at..at + 4),
            // An escaped backslash is not the start of an escape after it.
            Some(b'\\') => i = at + 2,
            _ => i = at + 1,
        }
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
            let begun = out.begin(Encoding::Json);
            decode_span(hay, span.clone(), out);
            out.end(begun, span.end);
        },
    );
}

fn decode_span(hay: &[u8], span: Range<usize>, out: &mut Buf) {
    let mut i = span.start;
    let end = span.end;
    let mut utf8 = [0u8; 4];
    while i < end {
        if hay[i] != b'\\' || i + 1 >= end {
            out.push(hay[i], i);
            i += 1;
            continue;
        }
        let at = i;
        let (c, len): (Option<char>, usize) = match hay[i + 1] {
            b'u' if i + 6 <= end && hex_at(hay, i + 2, 4).is_some() => {
                let unit = hex_at(hay, i + 2, 4).expect("checked");
                if (0xd800..0xdc00).contains(&unit)
                    && i + 12 <= end
                    && hay[i + 6] == b'\\'
                    && hay[i + 7] == b'u'
                    && let Some(low) =
                        hex_at(hay, i + 8, 4).filter(|l| (0xdc00..0xe000).contains(l))
                {
                    let c = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                    (char::from_u32(c), 12)
                } else {
                    (Some(char::from_u32(unit).unwrap_or('\u{fffd}')), 6)
                }
            }
            b'x' if i + 4 <= end && hex_at(hay, i + 2, 2).is_some() => {
                // A raw byte, as Python's bytes and YAML's `\x` mean it.
                out.push(hex_at(hay, i + 2, 2).expect("checked") as u8, at);
                i += 4;
                continue;
            }
            b'n' => (Some('\n'), 2),
            b't' => (Some('\t'), 2),
            b'r' => (Some('\r'), 2),
            b'b' => (Some('\u{8}'), 2),
            b'f' => (Some('\u{c}'), 2),
            b'0' => (Some('\0'), 2),
            b @ (b'"' | b'\'' | b'\\' | b'/') => (Some(char::from(b)), 2),
            _ => (None, 1),
        };
        match c {
            Some(c) => {
                for &b in c.encode_utf8(&mut utf8).as_bytes() {
                    out.push(b, at);
                }
            }
            None => out.push(hay[i], at),
        }
        i += len;
    }
}
