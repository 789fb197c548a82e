//! Every form in which a known value can appear in a file: the encodings of SPEC.md "Snapshot"
//! point 3.
//!
//! [`forms`] derives, from one value, the byte strings a search must look for: the raw bytes,
//! the value as JSON, YAML (single- and double-quoted), TOML basic and dotenv double-quoted
//! strings escape it, base64 (standard and URL-safe, each of the three byte alignments, as
//! padding-free cores), hex in both cases and percent-encoding. Invariant: each returned form
//! is kept in a [`Secret`], because it is as sensitive as the value; forms with identical bytes
//! are returned once, under the first encoding that produced them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::secret::Secret;

/// How a known value was written where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The bytes as they are.
    Raw,
    /// Escaped inside a JSON string (also `\/` and `\uXXXX` styles).
    Json,
    /// Inside a YAML double-quoted scalar.
    YamlDouble,
    /// Inside a YAML single-quoted scalar (`'` doubled).
    YamlSingle,
    /// Inside a TOML basic string.
    TomlBasic,
    /// Inside a dotenv double-quoted value.
    DotenvDouble,
    /// Base64, standard alphabet, any alignment.
    Base64,
    /// Base64, URL-safe alphabet, any alignment.
    Base64Url,
    /// Lowercase hex.
    HexLower,
    /// Uppercase hex.
    HexUpper,
    /// Percent-encoded (URL or form encoding).
    Percent,
    /// UTF-16, either byte order (found by the decoders).
    Utf16,
}

impl Encoding {
    /// The name shown in findings, e.g. `base64-url`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Json => "json",
            Encoding::YamlDouble => "yaml-double",
            Encoding::YamlSingle => "yaml-single",
            Encoding::TomlBasic => "toml-basic",
            Encoding::DotenvDouble => "dotenv-double",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64-url",
            Encoding::HexLower => "hex",
            Encoding::HexUpper => "hex-upper",
            Encoding::Percent => "percent",
            Encoding::Utf16 => "utf16",
        }
    }
}

/// Every distinct form of `value`, each with the encoding that produced it first.
pub fn forms(value: &[u8]) -> Vec<(Encoding, Secret)> {
    let mut out: Vec<(Encoding, Secret)> = Vec::new();
    let mut push = |enc: Encoding, bytes: Vec<u8>| {
        let s = Secret::new(bytes);
        if !s.is_empty() && !out.iter().any(|(_, o)| o == &s) {
            out.push((enc, s));
        }
    };
    push(Encoding::Raw, value.to_vec());
    push(Encoding::Json, json_escape(value, false, false));
    push(Encoding::Json, json_escape(value, true, false));
    push(Encoding::Json, json_escape(value, false, true));
    push(Encoding::YamlDouble, yaml_double_escape(value));
    push(Encoding::YamlSingle, yaml_single_escape(value));
    push(Encoding::TomlBasic, json_escape(value, false, false));
    push(Encoding::DotenvDouble, dotenv_double_escape(value));
    for align in 0..3 {
        push(Encoding::Base64, base64_core(value, align, false));
        push(Encoding::Base64Url, base64_core(value, align, true));
    }
    push(Encoding::HexLower, hex(value, b"0123456789abcdef"));
    push(Encoding::HexUpper, hex(value, b"0123456789ABCDEF"));
    push(
        Encoding::Percent,
        percent(value, b"0123456789ABCDEF", false),
    );
    push(
        Encoding::Percent,
        percent(value, b"0123456789abcdef", false),
    );
    push(Encoding::Percent, percent(value, b"0123456789ABCDEF", true));
    push(Encoding::Percent, percent_all(value));
    out
}

/// JSON string escaping. `slash`: also `\/` (PHP, some Java encoders). `ascii`: non-ASCII
/// characters as `\uXXXX` (Python's `json.dumps` default), surrogate pairs included.
pub fn json_escape(value: &[u8], slash: bool, ascii: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    let text = String::from_utf8_lossy(value);
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' if slash => out.extend_from_slice(b"\\/"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// YAML double-quoted scalar escaping (YAML 1.2 §5.7): like JSON, `/` is not escaped.
fn yaml_double_escape(value: &[u8]) -> Vec<u8> {
    json_escape(value, false, false)
}

/// YAML single-quoted scalar: the only escape is `''` for `'`.
fn yaml_single_escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"''");
        } else {
            out.push(b);
        }
    }
    out
}

/// dotenv double-quoted value as python-dotenv, Node's dotenv and Docker Compose read it:
/// `\\`, `\"`, `\n` and `\$`.
fn dotenv_double_escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'$' => out.extend_from_slice(b"\\$"),
            b => out.push(b),
        }
    }
    out
}

/// The base64 characters that depend only on `value` when it starts `align` bytes into a
/// 3-byte group: the characters that mix in unknown neighbouring bytes are cut off, so the core
/// matches wherever the value sits in a longer base64 text, padded or not.
pub fn base64_core(value: &[u8], align: usize, url: bool) -> Vec<u8> {
    let mut shifted = vec![0u8; align];
    shifted.extend_from_slice(value);
    let engine = if url {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    let text = engine.encode(&shifted);
    // Character k covers bits [6k, 6k+6); the value covers bits [8a, 8a+8n).
    let first = (8 * align).div_ceil(6);
    let last = (8 * (align + value.len())) / 6; // exclusive
    if last <= first {
        return Vec::new();
    }
    text.as_bytes()[first..last].to_vec()
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for &b in value {
        out.push(digits[(b >> 4) as usize]);
        out.push(digits[(b & 15) as usize]);
    }
    out
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set. `form`: spaces as `+`
/// (`application/x-www-form-urlencoded`).
fn percent(value: &[u8], digits: &[u8; 16], form: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else if form && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', digits[(b >> 4) as usize], digits[(b & 15) as usize]]);
        }
    }
    out
}

/// Every byte as `%XX`, as some encoders do for all but letters and digits, or for everything.
fn percent_all(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn base64_cores_are_found_at_every_alignment_and_alphabet() {
        let value = b"p4ss/w0rd+?>value~~";
        for prefix_len in 0..6 {
            for suffix_len in 0..4 {
                let mut doc = vec![b'Z'; prefix_len];
                doc.extend_from_slice(value);
                doc.extend(std::iter::repeat_n(b'\xff', suffix_len));
                for (url, engine) in [
                    (false, &base64::engine::general_purpose::STANDARD),
                    (true, &base64::engine::general_purpose::URL_SAFE),
                ] {
                    let text = engine.encode(&doc);
                    let core = base64_core(value, prefix_len % 3, url);
                    assert!(core.len() >= 20, "core too short: {}", core.len());
                    assert!(
                        has(text.as_bytes(), &core),
                        "prefix {prefix_len} suffix {suffix_len} url {url}"
                    );
                }
            }
        }
    }

    #[test]
    fn escapes_follow_each_format() {
        let v = "a\"b\\c'd\ne$f/é";
        assert_eq!(
            json_escape(v.as_bytes(), false, false),
            "a\\\"b\\\\c'd\\ne$f/é".as_bytes()
        );
        assert_eq!(
            json_escape(v.as_bytes(), true, true),
            "a\\\"b\\\\c'd\\ne$f\\/\\u00e9".as_bytes()
        );
        assert_eq!(
            yaml_single_escape(v.as_bytes()),
            "a\"b\\c''d\ne$f/é".as_bytes()
        );
        assert_eq!(
            dotenv_double_escape(v.as_bytes()),
            "a\\\"b\\\\c'd\\ne\\$f/é".as_bytes()
        );
        assert_eq!(percent(b"a b/c", b"0123456789ABCDEF", false), b"a%20b%2Fc");
        assert_eq!(percent(b"a b", b"0123456789ABCDEF", true), b"a+b");
        assert_eq!(hex(b"\x01\xab", b"0123456789ABCDEF"), b"01AB");
    }

    #[test]
    fn identical_forms_are_kept_once() {
        let all = forms(b"plainvalue123456");
        let raws = all
            .iter()
            .filter(|(_, s)| s.expose() == b"plainvalue123456");
        assert_eq!(raws.count(), 1);
        assert_eq!(all[0].0, Encoding::Raw);
    }
}
