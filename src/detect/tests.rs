//! Engine tests: known values in every encoding and across every chunk boundary,
//! placeholders, allowlists, positions, and the secrecy of every output.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::stream::StreamScan;
use super::*;
use crate::manifest::{CustomRule, Detect};
use crate::secret::Secret;

const VALUE: &str = "Zx9-q\"w/E+r\\t y$Lp'0mN8%vB2";

fn known(values: &[(&str, &str)]) -> KnownValues {
    KnownValues::new(
        values
            .iter()
            .map(|(l, v)| (l.to_string(), Secret::from(v.to_string()))),
    )
}

fn detector_with(values: &[(&str, &str)]) -> Detector {
    Detector::new(&Detect::default(), Some(known(values))).unwrap()
}

fn known_hits(findings: &[Finding]) -> Vec<(String, &'static str)> {
    findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::KnownValue { label, encoding } => Some((label.clone(), encoding.name())),
            _ => None,
        })
        .collect()
}

/// The value written in each supported form, inside text a file of that format would hold.
fn planted_documents(value: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let v = String::from_utf8(value.to_vec()).unwrap();
    let json = String::from_utf8(encode::json_escape(value, false, false)).unwrap();
    let mut docs = vec![
        ("raw", format!("token {v} end").into_bytes()),
        ("json", format!("{{\"k\": \"{json}\"}}").into_bytes()),
        (
            "yaml-single",
            format!("k: '{}'", v.replace('\'', "''")).into_bytes(),
        ),
        (
            "dotenv",
            format!(
                "K=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('$', "\\$")
            )
            .into_bytes(),
        ),
        (
            "hex",
            format!("x={}", hex_of(value).to_lowercase()).into_bytes(),
        ),
        ("hex-upper", format!("x={}", hex_of(value)).into_bytes()),
        (
            "percent",
            format!("https://h/?p={}", percent_of(value)).into_bytes(),
        ),
    ];
    for prefix in ["", "a", "ab", "abc"] {
        let mut data = prefix.as_bytes().to_vec();
        data.extend_from_slice(value);
        data.extend_from_slice(b"tail");
        docs.push(("base64", STANDARD.encode(&data).into_bytes()));
        docs.push(("base64-url", URL_SAFE.encode(&data).into_bytes()));
    }
    docs
}

fn hex_of(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02X}")).collect()
}

fn percent_of(v: &[u8]) -> String {
    v.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn known_value_is_found_in_every_encoding() {
    let d = detector_with(&[("vault:agents/kevin/x#v", VALUE)]);
    for (what, doc) in planted_documents(VALUE.as_bytes()) {
        let found = d.scan_bytes("doc", &doc);
        let hits = known_hits(&found);
        assert!(
            hits.iter().any(|(l, _)| l == "vault:agents/kevin/x#v"),
            "{what}: not found in {:?}",
            String::from_utf8_lossy(&doc)
        );
    }
}

#[test]
fn known_value_straddling_every_boundary_of_a_small_buffer_is_found() {
    let value = "kV7#pQ2-zR9!mW4x";
    let d = detector_with(&[("env:TOKEN", value)]);
    let chunk = 32;
    for offset in 0..(2 * chunk + 4) {
        let mut data = vec![b'.'; offset];
        data.extend_from_slice(value.as_bytes());
        data.extend(std::iter::repeat_n(b'.', 3 * chunk));
        for write_size in [1, 7, chunk, 1000] {
            let mut s = StreamScan::with_chunk(&d, "f", chunk);
            for piece in data.chunks(write_size) {
                s.write_all(piece).unwrap();
            }
            let found = s.finish();
            let offsets: Vec<u64> = found.iter().map(|f| f.offset).collect();
            assert_eq!(
                offsets,
                vec![offset as u64],
                "offset {offset} writes {write_size}"
            );
        }
    }
}

/// Known values are read at every second position when all forms are 9 bytes or longer, and
/// at every position when one is exactly 8: both kinds are found at odd and even offsets.
#[test]
fn known_values_are_found_at_every_parity_with_and_without_an_8_byte_form() {
    for values in [
        vec![("env:LONG", "kV7#pQ2-zR9!mW4x")],
        vec![("env:SHORT", "Zq8#vN3!"), ("env:LONG", "kV7#pQ2-zR9!mW4x")],
    ] {
        let d = detector_with(&values);
        for (_, value) in &values {
            for offset in 0..6 {
                let mut data = vec![b'.'; offset];
                data.extend_from_slice(value.as_bytes());
                data.extend_from_slice(b"....");
                let found = d.scan_bytes("f", &data);
                let offsets: Vec<u64> = found.iter().map(|f| f.offset).collect();
                assert_eq!(offsets, vec![offset as u64], "{value} at {offset}");
            }
        }
    }
}

/// The sampling stride grows with the shortest form (up to 16 positions per sample): every
/// form of values of every length is found at every offset around the sampling grid.
#[test]
fn every_form_is_found_at_every_offset_whatever_the_stride() {
    let alphabet = b"kV7#pQ2-zR9!mW4x/Y+b5~L8=Jc3%tE6@";
    for len in [8, 9, 10, 12, 15, 16, 22, 23, 24, 31] {
        let value = String::from_utf8(alphabet[..len].to_vec()).unwrap();
        let d = detector_with(&[("env:V", &value)]);
        for (encoding, form) in super::encode::forms(value.as_bytes()) {
            for offset in 0..=17 {
                let mut data = vec![b' '; offset];
                data.extend_from_slice(form.expose());
                data.extend_from_slice(b" ");
                let found = d.scan_bytes("f", &data);
                assert!(
                    found.iter().any(|f| f.offset == offset as u64),
                    "length {len}, {} form at {offset}",
                    encoding.name()
                );
            }
        }
    }
}

#[test]
fn rule_match_straddling_chunk_boundaries_is_found_once() {
    let token = "ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789";
    let d = Detector::builtin();
    let chunk = 1024;
    for offset in (0..(3 * chunk)).step_by(37).chain(chunk - 20..chunk + 5) {
        let mut data = "x\n".repeat(offset).into_bytes();
        data.truncate(offset);
        data.extend_from_slice(format!("token {token}\n").as_bytes());
        data.extend(std::iter::repeat_n(b'y', 20_000));
        let mut s = StreamScan::with_chunk(&d, "f", chunk);
        for piece in data.chunks(333) {
            s.write_all(piece).unwrap();
        }
        let found: Vec<Finding> = s.finish();
        assert_eq!(found.len(), 1, "offset {offset}: {found:?}");
        assert_eq!(found[0].offset, offset as u64 + 6);
        assert_eq!(found[0], d.scan_bytes("f", &data)[0]);
    }
}

#[test]
fn positions_are_lines_and_character_columns_across_chunks() {
    let d = Detector::builtin();
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("line {i} é ok\n"));
    }
    text.push_str("é k=ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789\n");
    let whole = d.scan_bytes("f", text.as_bytes());
    let mut s = StreamScan::with_chunk(&d, "f", 100);
    s.write_all(text.as_bytes()).unwrap();
    let streamed = s.finish();
    assert_eq!(whole, streamed);
    assert_eq!((whole[0].line, whole[0].column), (3001, 5));
    assert_eq!(whole[0].rule, "github-pat");
}

#[test]
fn placeholders_are_never_findings() {
    let d = Detector::new(
        &Detect {
            entropy: crate::manifest::EntropyAction::Block,
            rules: vec![CustomRule {
                id: "anything-after-key".into(),
                regex: "key=(\\S+)".into(),
                keywords: None,
            }],
            ..Detect::default()
        },
        Some(known(&[(
            "vault:agents/kevin/openai#api_key",
            "agents/kevin/openai",
        )])),
    )
    .unwrap();
    let text = "key=+agentbak:vault:agents/kevin/openai:api_key+\n\
        password: \"+agentbak:vault:agents/kevin/db@2:password+\"\n\
        url=postgres://app:+agentbak:env:DB_PASSWORD+@db/app\n\
        Authorization: Bearer +agentbak:env:SESSION_TOKEN+\n";
    let found = d.scan_bytes("f", text.as_bytes());
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn inline_allow_and_manifest_allowlist_silence_rules_not_known_values() {
    let value = "Q7w-E9r!T2y#U4iO";
    let config = Detect {
        allow: vec!["docs/**".into()],
        ..Detect::default()
    };
    let d = Detector::new(&config, Some(known(&[("env:K", value)]))).unwrap();
    let text = format!(
        "t=ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789 # agentbak:allow\nv={value} # agentbak:allow\n"
    );
    let found = d.scan_bytes("src/a.txt", text.as_bytes());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, KNOWN_VALUE_RULE);
    let docs = d.scan_bytes("docs/a.md", b"t=ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789\n");
    assert!(docs.is_empty());
}

#[test]
fn findings_and_debug_hold_no_value() {
    let token = "ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789";
    let value = "s3cr3t-Value-0f-the-Agent";
    let d = detector_with(&[("vault:a/b#c", value)]);
    let text = format!("{token}\n{value}\n{}\n", STANDARD.encode(value));
    let found = d.scan_bytes("f", text.as_bytes());
    assert_eq!(found.len(), 3, "{found:?}");
    let shown = format!("{found:?} {} {d:?}", serde_json::to_string(&found).unwrap());
    for secret in [token, value, &STANDARD.encode(value)] {
        assert!(!shown.contains(secret), "value leaked: {shown}");
        assert!(!shown.contains(&secret[4..secret.len() - 2]));
    }
}

#[test]
fn short_values_are_reported_as_unverifiable() {
    let d = detector_with(&[("env:PIN", "1234"), ("env:K", "long-enough-1")]);
    assert_eq!(d.known().unwrap().too_short(), ["env:PIN".to_string()]);
    assert!(d.scan_bytes("f", b"1234 1234 1234").is_empty());
}

#[test]
fn binary_files_get_known_values_and_tokens_but_no_generic_rules() {
    let value = "binary-embedded-value-77";
    let d = detector_with(&[("env:B", value)]);
    let mut data = vec![0u8, 1, 2, 3];
    data.extend_from_slice(value.as_bytes());
    data.extend_from_slice(b"\0ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789\0password=Xk9#mQ2!vL\0");
    let rules: Vec<String> = d
        .scan_bytes("f.bin", &data)
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(rules, vec!["known-value", "github-pat"]);
}

#[test]
fn bad_custom_regex_is_an_error_naming_the_rule() {
    let config = Detect {
        rules: vec![CustomRule {
            id: "broken".into(),
            regex: "(".into(),
            keywords: None,
        }],
        ..Detect::default()
    };
    let err = Detector::new(&config, None).unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}

#[test]
fn entropy_action_sets_severity_or_disables() {
    let text = b"session_cookie = \"Qm9vZ2xlLWJhc2UtNjQtc2Vzc2lvbi1jb29raWU9eHl6\"\n";
    let warn = Detector::builtin().scan_bytes("f", text);
    assert_eq!(warn.len(), 1);
    assert_eq!(
        (warn[0].severity, &warn[0].kind),
        (Severity::Warn, &FindingKind::Entropy)
    );
    let off = Detect {
        entropy: crate::manifest::EntropyAction::Off,
        ..Detect::default()
    };
    assert!(
        Detector::new(&off, None)
            .unwrap()
            .scan_bytes("f", text)
            .is_empty()
    );
}

/// `lines` log lines with `tokens=` on each, a GitHub token after every `token_every`-th and
/// an assignment of `value` after every `value_every`-th.
fn planted_log(lines: usize, token_every: usize, value_every: usize, value: &str) -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..lines {
        data.extend_from_slice(format!("line {i} tokens={i} note=\"state\"\n").as_bytes());
        if i % token_every == 13 {
            data.extend_from_slice(b"token ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789\n");
        }
        if i % value_every == 5 {
            data.extend_from_slice(format!("pass={value}\n").as_bytes());
        }
    }
    data
}

/// Buffers handed over whole find what copied writes find, at the same lines and offsets,
/// with pieces of every size, with and without room for the tail, and mixed with writes.
/// (Regression: with chunks shorter than the rules' lookahead, a known value was reported
/// again by the assignment rule in a later round, and out of offset order.)
#[test]
fn owned_pieces_find_what_copied_writes_find() {
    let value = "kV7#pQ2-zR9!mW4x";
    let d = detector_with(&[("env:TOKEN", value)]);
    let data = planted_log(400, 97, 89, value);
    let expected = d.scan_bytes("f", &data);
    assert!(expected.len() >= 8, "{expected:?}");
    for chunk in [64, 1000, 4096] {
        for size in [1, 100, 999, 5000] {
            let mut s = StreamScan::with_chunk(&d, "f", chunk);
            let room = s.headroom();
            let mut handed_over = 0;
            for (k, piece) in data.chunks(size).enumerate() {
                match k % 3 {
                    // A plain write between owned pieces.
                    2 => s.write_all(piece).unwrap(),
                    // No room before the data: copied.
                    1 => {
                        let back = s.write_owned(piece.to_vec(), 0, piece.len());
                        assert_eq!(&back[..piece.len()], piece);
                    }
                    _ => {
                        let mut buf = vec![0xAA; room + piece.len() + 7];
                        buf[room..room + piece.len()].copy_from_slice(piece);
                        let given = buf.as_ptr();
                        let back = s.write_owned(buf, room, piece.len());
                        handed_over += usize::from(back.as_ptr() != given);
                    }
                }
            }
            // Pieces of less than half a chunk are copied.
            assert_eq!(
                handed_over > 0,
                size >= chunk / 2,
                "chunk {chunk} size {size}"
            );
            assert_eq!(s.finish(), expected, "chunk {chunk} size {size}");
        }
    }
}

/// Data scanned where it lies finds what copied writes find, at the same lines and offsets,
/// with pieces of every size and chunks shorter and longer than the seam, mixed with writes;
/// pieces long enough are not copied whole.
#[test]
fn shared_pieces_find_what_copied_writes_find() {
    let value = "kV7#pQ2-zR9!mW4x";
    let d = detector_with(&[("env:TOKEN", value)]);
    let data = planted_log(6000, 397, 389, value);
    let expected = d.scan_bytes("f", &data);
    assert!(expected.len() >= 30, "{expected:?}");
    let seam = StreamScan::new(&d, "f").headroom();
    for chunk in [64, 4096, 65536] {
        for size in [999, 2 * seam, 2 * seam + 1, 50_000, data.len()] {
            for mixed in [false, true] {
                let mut s = StreamScan::with_chunk(&d, "f", chunk);
                for (k, piece) in data.chunks(size).enumerate() {
                    if mixed && k % 2 == 1 {
                        s.write_all(piece).unwrap();
                    } else {
                        s.write_shared(piece);
                    }
                }
                if !mixed && size >= 2 * seam && size >= chunk / 2 {
                    // Only the seams and the tails were copied.
                    assert!(s.buffer_capacity() <= 3 * seam, "chunk {chunk} size {size}");
                }
                let tag = format!("chunk {chunk} size {size} mixed {mixed}");
                assert_eq!(s.finish(), expected, "{tag}");
            }
        }
    }
}

/// A shared piece decides whether the stream is binary on its first 8 KiB, as a copy does.
#[test]
fn shared_pieces_tell_binary_as_copies_do() {
    let d = Detector::builtin();
    for nul_at in [100, 8191, 8192, 9000] {
        let mut data = b"api_key = \"Zx81qWv0Lm3nPq7RsT2uVw9yBc4dEf6G\"\n".repeat(2000);
        data[nul_at] = 0;
        let expected = d.scan_bytes("f", &data);
        for head in [0, 10, 5000, 8192] {
            let mut s = StreamScan::new(&d, "f");
            s.write_all(&data[..head]).unwrap();
            s.write_shared(&data[head..]);
            assert_eq!(s.finish(), expected, "NUL at {nul_at}, head {head}");
        }
    }
}
