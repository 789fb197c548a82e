//! Each decoder on the encodings real tools write, through the whole engine: a known value
//! and a provider token are found in the decoded text at their original offsets, also when a
//! stream's chunk boundaries fall anywhere in the encoded run.

use std::io::Write;

use ::base64::Engine;
use ::base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::super::stream::StreamScan;
use super::*;
use crate::detect::{Detector, Finding, FindingKind, KnownValues};
use crate::manifest::Detect;
use crate::secret::Secret;

/// A declared value with characters that every encoder escapes differently.
const VALUE: &str = "Qm7&zR2<w9>K/p!x*'(L)~ 4vN";
/// A provider token no precomputed form knows.
const TOKEN: &str = "ghp_R8tK2mQ9vX4wL7nP3sJ6hD1fG5bC0aZyEuIo";

fn detector() -> Detector {
    let known = KnownValues::new([("env:DECLARED".to_string(), Secret::from(VALUE.to_string()))]);
    Detector::new(&Detect::default(), Some(known)).unwrap()
}

fn known_encodings(findings: &[Finding]) -> Vec<&'static str> {
    findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::KnownValue { encoding, .. } => Some(encoding.name()),
            _ => None,
        })
        .collect()
}

/// Scans `doc` whole and in a stream cut every `chunk` bytes; both must find the same.
fn scan_all_ways(d: &Detector, doc: &[u8]) -> Vec<Finding> {
    let whole = d.scan_bytes("f", doc);
    // Tiny chunks put a boundary everywhere in short documents; longer ones take many rounds.
    let chunks: &[usize] = if doc.len() < 4096 {
        &[1, 7, 300]
    } else {
        &[1000, 4096]
    };
    for &chunk in chunks {
        let mut s = StreamScan::with_chunk(d, "f", chunk);
        for piece in doc.chunks(chunk.max(3)) {
            s.write_all(piece).unwrap();
        }
        let streamed = s.finish();
        let key = |f: &Finding| (f.offset, f.length, f.rule.clone());
        assert_eq!(
            whole.iter().map(key).collect::<Vec<_>>(),
            streamed.iter().map(key).collect::<Vec<_>>(),
            "chunk {chunk}"
        );
    }
    whole
}

/// GNU `base64` (76 columns), PEM (64), CRLF, an indented YAML block, and any width.
fn wrap(text: &str, width: usize, eol: &str, indent: &str) -> String {
    text.as_bytes()
        .chunks(width)
        .map(|l| format!("{indent}{}{eol}", std::str::from_utf8(l).unwrap()))
        .collect()
}

fn plaintext() -> String {
    let mut p = String::new();
    for i in 0..40 {
        p.push_str(&format!("line {i}: some configuration text\n"));
    }
    p.push_str(&format!("password = {VALUE}\ngithub = {TOKEN}\n"));
    p.push_str("trailing text that is long enough to wrap onto a few more lines\n");
    p
}

#[test]
fn wrapped_base64_is_decoded_at_every_width_and_line_end() {
    let d = detector();
    let encoded = STANDARD.encode(plaintext());
    for (width, eol, indent) in [
        (76, "\n", ""),
        (64, "\r\n", ""),
        (76, "\r\n", ""),
        (50, "\n", ""),
        (64, "\n", "    "),
    ] {
        let doc = format!("data: |\n{}end\n", wrap(&encoded, width, eol, indent));
        let found = scan_all_ways(&d, doc.as_bytes());
        assert_eq!(known_encodings(&found), ["base64"], "{width} {eol:?}");
        assert!(
            found.iter().any(|f| f.rule == "github-pat"),
            "{width} {eol:?}: {found:?}"
        );
        for f in &found {
            let text = &doc.as_bytes()[f.offset as usize..][..f.length];
            assert!(
                text.iter().all(|b| b.is_ascii()),
                "offset in the encoded text"
            );
            assert!(!f.preview.contains(VALUE) && !f.preview.contains(TOKEN));
        }
    }
}

#[test]
fn a_long_wrapped_block_is_decoded_across_many_stream_rounds() {
    // 60 KiB of base64 before the value: the block outlives the stream's kept tail, so each
    // round carries the block's alignment to the next.
    let d = detector();
    let mut plain = "x".repeat(45_001);
    plain.push_str(&format!(" {VALUE} {TOKEN} "));
    // A width that is not a multiple of 4 puts line starts at every alignment.
    for width in [50, 58, 76] {
        let doc = wrap(&STANDARD.encode(&plain), width, "\n", "");
        for chunk in [4096, 5000, 65536] {
            let mut s = StreamScan::with_chunk(&d, "f", chunk);
            s.write_all(doc.as_bytes()).unwrap();
            let found = s.finish();
            assert_eq!(
                known_encodings(&found),
                ["base64"],
                "{width}, chunk {chunk}"
            );
            assert!(
                found.iter().any(|f| f.rule == "github-pat"),
                "{width} {chunk}"
            );
        }
    }
}

#[test]
fn unwrapped_base64_hides_rule_matches() {
    let d = Detector::builtin();
    for doc in [
        format!("data:\n  url: {}\n", STANDARD.encode(format!("x {TOKEN}"))),
        format!(
            "{{\"v\":\"{}\"}}",
            URL_SAFE_NO_PAD.encode(format!("t={TOKEN};"))
        ),
    ] {
        let found = scan_all_ways(&d, doc.as_bytes());
        assert_eq!(found.len(), 1, "{doc}: {found:?}");
        assert_eq!(found[0].rule, "github-pat");
    }
}

fn utf16(text: &str, be: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if be { &[0xfe, 0xff] } else { &[0xff, 0xfe] });
    }
    for u in text.encode_utf16() {
        out.extend_from_slice(&if be { u.to_be_bytes() } else { u.to_le_bytes() });
    }
    out
}

#[test]
fn utf16_is_decoded_in_either_byte_order_with_or_without_a_bom() {
    let d = detector();
    for be in [false, true] {
        for bom in [false, true] {
            // Files start at even offsets: which byte of a unit is zero gives the byte order.
            let mut doc = b"header\0\x01".to_vec();
            doc.extend(utf16(&plaintext(), be, bom));
            let found = scan_all_ways(&d, &doc);
            assert_eq!(known_encodings(&found), ["utf16"], "be {be} bom {bom}");
            let f = found
                .iter()
                .find(|f| f.rule == "github-pat")
                .expect("token");
            assert_eq!(f.length, 2 * TOKEN.len(), "the length of the encoded form");
            let at = f.offset as usize;
            assert_eq!(&doc[at..at + f.length], &utf16(TOKEN, be, false)[..]);
        }
    }
}

#[test]
fn percent_encoding_of_any_subset_is_decoded() {
    let d = detector();
    // urllib.parse.quote (leaves `/`), encodeURIComponent (leaves `!*'()` and `~`), and
    // an encoder of only `&` and space.
    let quote = VALUE
        .replace('&', "%26")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('!', "%21")
        .replace('*', "%2A")
        .replace('\'', "%27")
        .replace('(', "%28")
        .replace(')', "%29")
        .replace(' ', "%20");
    let component = VALUE
        .replace('&', "%26")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('/', "%2F")
        .replace(' ', "%20");
    let some = VALUE.replace('&', "%26").replace(' ', "%20");
    for encoded in [quote, component, some] {
        let doc = format!("GET /cb?next=x&secret={encoded}&y=1 HTTP/1.1\n");
        let found = scan_all_ways(&d, doc.as_bytes());
        assert_eq!(known_encodings(&found), ["percent"], "{doc}");
        let f = &found[0];
        assert_eq!(
            &doc[f.offset as usize..f.offset as usize + f.length],
            encoded,
            "the original offset and length"
        );
    }
}

#[test]
fn backslash_escapes_are_decoded() {
    let d = detector();
    let go = VALUE
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    let every: String = VALUE
        .chars()
        .map(|c| format!("\\u{:04X}", c as u32))
        .collect();
    let every_lower: String = VALUE
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let hex_bytes: String = VALUE.bytes().map(|b| format!("\\x{b:02x}")).collect();
    for encoded in [go, every, every_lower, hex_bytes] {
        let doc = format!("{{\"msg\": \"ok\", \"secret\": \"{encoded}\"}}\n");
        let found = scan_all_ways(&d, doc.as_bytes());
        assert_eq!(known_encodings(&found), ["json"], "{doc}");
        let f = &found[0];
        assert_eq!(
            &doc[f.offset as usize..f.offset as usize + f.length],
            encoded
        );
    }
    let token: String = TOKEN
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let found = scan_all_ways(&Detector::builtin(), format!("\"{token}\"").as_bytes());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, "github-pat");
}

#[test]
fn ordinary_text_decodes_to_nothing_found() {
    let d = detector();
    let mut doc = String::new();
    for i in 0..200 {
        doc.push_str(&format!(
            "{{\"ts\": {i}, \"msg\": \"caf\\u00e9 50% off %20 user-profile-page-{i}\", \"id\": \"c2Vzc2lvbi1pZC17aX0tYWJjZGVm\"}}\n"
        ));
    }
    assert!(scan_all_ways(&d, doc.as_bytes()).is_empty());
}

#[test]
fn decoded_bytes_map_back_to_their_units() {
    let hay = b"ab %41%42 c";
    let w = Window {
        hay,
        from: 0,
        base: 0,
        carry: None,
        next_from: None,
        reach: 64,
    };
    let d = decode(&w);
    assert_eq!(d.text.bytes(), b"ab AB c\n");
    assert_eq!(d.text.original(&(3..5)), 3..9);
    assert_eq!(d.text.encoding(4), Encoding::Percent);
}
