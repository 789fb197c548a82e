//! How a value is written in each format, defined once: what redaction and rehydration write
//! (`src/redact`) and what the leak gate searches for (the encodings of SPEC.md "Snapshot"
//! point 3).
//!
//! The text writers here are the only definition of each format's escaping: JSON in every
//! flavour writers use ([`JsonFlavour`]: minimal, `\uXXXX` for non-ASCII in either hex case,
//! `\/`, Go's HTML-safe `\u0026 \u003c \u003e`), YAML double-quoted, single-quoted and block
//! scalars, TOML basic and multi-line basic strings, dotenv double-quoted values (as
//! rehydration writes them, and with `\n` escapes as other tools write them), configparser
//! INI values (`%` doubled) and shell single- and double-quoted words. The redactors call them
//! to write a value, and [`forms`] calls the same functions to list what the gate must find,
//! so a form one writes is a form the other searches for (a property test holds them to it).
//!
//! [`forms`] derives, from one value, the byte strings a search must look for: the raw bytes,
//! every text form above (YAML block bodies for multi-line values at indentations 1 to 8),
//! base64 (standard and URL-safe, each of the three byte alignments, as padding-free cores),
//! hex in both cases and percent-encoding. Invariant: each returned form is kept in a
//! [`Secret`], because it is as sensitive as the value; forms with identical bytes are returned
//! once, under the first encoding that produced them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::secret::Secret;

/// Shortest form [`forms`] returns: the known-value search reads 8-byte words.
const MIN_FORM_LEN: usize = 8;

/// Deepest YAML block indentation whose body [`forms`] lists for a multi-line value.
pub const MAX_BLOCK_INDENT: usize = 8;

/// How a known value was written where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The bytes as they are.
    Raw,
    /// Escaped inside a JSON string (also `\/`, `\uXXXX` in either case, Go's `\u0026`).
    Json,
    /// Inside a YAML double-quoted scalar.
    YamlDouble,
    /// Inside a YAML single-quoted scalar (`'` doubled).
    YamlSingle,
    /// The body of a YAML literal or folded block scalar (a multi-line value, indented).
    YamlBlock,
    /// Inside a TOML basic string.
    TomlBasic,
    /// Inside a TOML multi-line basic string.
    TomlMultiline,
    /// Inside a dotenv double-quoted value.
    DotenvDouble,
    /// A configparser INI value (`%` doubled).
    Ini,
    /// Inside a shell single-quoted word (`'` as `'\''`).
    ShellSingle,
    /// Inside a shell double-quoted word (`\$`, `` \` ``, `\"`, `\\`).
    ShellDouble,
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
            Encoding::YamlBlock => "yaml-block",
            Encoding::TomlBasic => "toml-basic",
            Encoding::TomlMultiline => "toml-multiline",
            Encoding::DotenvDouble => "dotenv-double",
            Encoding::Ini => "ini",
            Encoding::ShellSingle => "shell-single",
            Encoding::ShellDouble => "shell-double",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64-url",
            Encoding::HexLower => "hex",
            Encoding::HexUpper => "hex-upper",
            Encoding::Percent => "percent",
            Encoding::Utf16 => "utf16",
        }
    }
}

/// Every distinct form of `value`, each with the encoding that produced it first. Forms
/// shorter than 8 bytes (a multi-line value's block body can be) are left out.
pub fn forms(value: &[u8]) -> Vec<(Encoding, Secret)> {
    let mut out: Vec<(Encoding, Secret)> = Vec::new();
    let mut push = |enc: Encoding, bytes: Vec<u8>| {
        let s = Secret::new(bytes);
        if s.len() >= MIN_FORM_LEN && !out.iter().any(|(_, o)| o == &s) {
            out.push((enc, s));
        }
    };
    push(Encoding::Raw, value.to_vec());
    if let Ok(text) = std::str::from_utf8(value) {
        for (enc, form) in text_forms(text) {
            push(enc, form.into_bytes());
        }
    }
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

/// Every text form of `text` that a format's writer (ours or another tool's) produces.
fn text_forms(text: &str) -> Vec<(Encoding, String)> {
    let mut out = Vec::with_capacity(40);
    for flavour in JsonFlavour::all() {
        out.push((Encoding::Json, json_body(text, flavour)));
    }
    out.push((Encoding::Json, json_all_unicode(text, false)));
    out.push((Encoding::Json, json_all_unicode(text, true)));
    out.push((Encoding::YamlDouble, yaml_double_body(text)));
    if let Some(single) = yaml_single_body(text) {
        out.push((Encoding::YamlSingle, single));
    }
    if text.trim_end_matches('\n').contains('\n') {
        for indent in 1..=MAX_BLOCK_INDENT {
            for literal in [true, false] {
                out.push((Encoding::YamlBlock, yaml_block_body(text, literal, indent)));
            }
        }
    }
    out.push((Encoding::TomlBasic, toml_basic_body(text)));
    out.push((Encoding::TomlMultiline, toml_multi_basic_body(text, true)));
    out.push((Encoding::TomlMultiline, toml_multi_basic_body(text, false)));
    out.push((Encoding::DotenvDouble, dotenv_double_body(text)));
    out.push((Encoding::DotenvDouble, dotenv_double_escaped_body(text)));
    out.push((Encoding::Ini, ini_body(text)));
    out.push((Encoding::ShellSingle, shell_single_body(text)));
    out.push((Encoding::ShellDouble, shell_double_body(text)));
    out
}

/// The escaping flavour of a JSON string. All `false` is the minimal escaping of serde_json
/// and `JSON.stringify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct JsonFlavour {
    /// Non-ASCII characters and DEL written as `\uXXXX` (Python's `ensure_ascii`).
    pub ascii: bool,
    /// `/` written as `\/` (PHP).
    pub slash: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 written as `\uXXXX` (Go's `json.Marshal`).
    pub html: bool,
    /// Hex digits of `\u` escapes in upper case.
    pub upper_hex: bool,
}

impl JsonFlavour {
    /// Every flavour, the minimal one first.
    pub fn all() -> impl Iterator<Item = JsonFlavour> {
        (0u8..16).map(|bits| JsonFlavour {
            ascii: bits & 1 != 0,
            slash: bits & 2 != 0,
            html: bits & 4 != 0,
            upper_hex: bits & 8 != 0,
        })
    }
}

/// Writes `text` as the body of a JSON string in the given flavour.
pub fn json_body(text: &str, flavour: JsonFlavour) -> String {
    let mut out = String::with_capacity(text.len() * 2 + 8);
    let unicode = |out: &mut String, unit: u16| {
        if flavour.upper_hex {
            out.push_str(&format!("\\u{unit:04X}"));
        } else {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    };
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if flavour.slash => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => unicode(&mut out, c as u16),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if flavour.html => {
                unicode(&mut out, c as u16)
            }
            c if flavour.ascii && (c as u32) >= 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    unicode(&mut out, *unit);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Every character as `\uXXXX` (surrogate pairs beyond the BMP), as some obfuscating or
/// paranoid JSON writers do.
pub fn json_all_unicode(text: &str, upper: bool) -> String {
    let mut out = String::with_capacity(text.len() * 6);
    for unit in text.encode_utf16() {
        if upper {
            out.push_str(&format!("\\u{unit:04X}"));
        } else {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

/// [`json_body`] of bytes (invalid UTF-8 read lossily), for callers that hold bytes.
/// `slash`: also `\/`; `ascii`: non-ASCII as `\uXXXX`.
#[cfg(test)]
pub fn json_escape(value: &[u8], slash: bool, ascii: bool) -> Vec<u8> {
    let flavour = JsonFlavour {
        ascii,
        slash,
        ..JsonFlavour::default()
    };
    json_body(&String::from_utf8_lossy(value), flavour).into_bytes()
}

/// Characters YAML cannot hold literally in a quoted scalar (outside `c-printable`, plus the
/// byte order mark and the Unicode line separators some loaders treat as breaks).
pub fn yaml_needs_escape(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{feff}'
        | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}')
}

/// The body of a YAML double-quoted scalar: any text fits. YAML's own escapes (`\0`, `\a`,
/// `\e`, `\xNN`), which PyYAML and every YAML 1.1/1.2 loader read.
pub fn yaml_double_body(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if yaml_needs_escape(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c if yaml_needs_escape(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The body of a YAML single-quoted scalar, if the value fits one on a single line.
pub fn yaml_single_body(v: &str) -> Option<String> {
    if v.chars()
        .any(|c| c == '\n' || c == '\r' || yaml_needs_escape(c))
    {
        return None;
    }
    Some(v.replace('\'', "''"))
}

/// The body of a YAML block scalar (`|` when `literal`, else `>`) whose content lines are
/// indented by `indent` spaces, from the first content character to the end of the last
/// non-empty line: the header and the final line breaks (the chomping) are the caller's.
/// Whether the value fits a block at all is the caller's question too.
pub fn yaml_block_body(v: &str, literal: bool, indent: usize) -> String {
    let body = v.trim_end_matches('\n');
    let mut lines = body.split('\n');
    let first = lines.next().unwrap_or("");
    let pad = " ".repeat(indent);
    let spaced = |l: &str| l.starts_with([' ', '\t']);
    let mut out = String::with_capacity(body.len() * 2 + 16);
    out.push_str(first);
    let mut prev = first;
    let mut breaks = 0;
    for line in lines {
        breaks += 1;
        if line.is_empty() {
            continue;
        }
        // A folded block turns one break between two unindented lines into a space, so each
        // break the value holds there is written as an empty line.
        let folds = !literal && !spaced(prev) && !spaced(line);
        let written = breaks + usize::from(folds);
        out.push_str(&"\n".repeat(written));
        out.push_str(&pad);
        out.push_str(line);
        prev = line;
        breaks = 0;
    }
    out
}

/// A character TOML strings may not hold literally (tab aside).
pub fn toml_is_control(c: char) -> bool {
    (c as u32) < 0x20 || c == '\u{7f}'
}

fn toml_escape_control(out: &mut String, c: char) {
    match c {
        '\u{8}' => out.push_str("\\b"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\u{c}' => out.push_str("\\f"),
        '\r' => out.push_str("\\r"),
        c => out.push_str(&format!("\\u{:04X}", c as u32)),
    }
}

/// The body of a TOML basic string (`"..."`): any text fits.
pub fn toml_basic_body(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if toml_is_control(c) => toml_escape_control(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// The body of a TOML multi-line basic string: line breaks and tabs stay literal; a quote is
/// escaped where three in a row would close the string, or at the very end. `newline`: the
/// opening delimiter is followed by a line break (which TOML trims), so a value may start with
/// one.
pub fn toml_multi_basic_body(v: &str, newline: bool) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    let chars: Vec<char> = v.chars().collect();
    let mut run = 0;
    for (i, &c) in chars.iter().enumerate() {
        run = if c == '"' { run + 1 } else { 0 };
        let trailing_quotes = chars[i..].iter().all(|c| *c == '"');
        match c {
            '"' if run % 3 == 0 || trailing_quotes => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // A line break right after the opening delimiter would be trimmed.
            '\n' if i == 0 && !newline => out.push_str("\\n"),
            '\n' | '\t' => out.push(c),
            c if toml_is_control(c) => toml_escape_control(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// The body of a dotenv double-quoted value as rehydration writes it: `\\` and `\"`, every
/// other character literal (a line break too). python-dotenv, Docker Compose and bash all read
/// these two escapes and literal characters alike; which values may be written this way at
/// all (no `$` that bash expands, no backquote) is the dotenv redactor's decision.
pub fn dotenv_double_body(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The body of a dotenv double-quoted value with `\n` and `\r` escapes, as python-dotenv's
/// `set_key`, Docker Compose and many generators write it (never written by rehydration:
/// bash reads `\n` as two characters).
pub fn dotenv_double_escaped_body(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// A configparser INI value: `%` doubled, so that the default `BasicInterpolation` reads it
/// back as written.
pub fn ini_body(v: &str) -> String {
    v.replace('%', "%%")
}

/// A shell single-quoted word's body: `'` as `'\''` (close, escaped quote, reopen).
pub fn shell_single_body(v: &str) -> String {
    v.replace('\'', "'\\''")
}

/// A shell double-quoted word's body: `\`, `"`, `$` and `` ` `` escaped by a backslash.
pub fn shell_double_body(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
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
        let v = "a\"b\\c'd\ne$f/é<`";
        let json = |ascii, slash, html| {
            json_body(
                v,
                JsonFlavour {
                    ascii,
                    slash,
                    html,
                    upper_hex: false,
                },
            )
        };
        assert_eq!(json(false, false, false), "a\\\"b\\\\c'd\\ne$f/é<`");
        assert_eq!(
            json(true, true, true),
            "a\\\"b\\\\c'd\\ne$f\\/\\u00e9\\u003c`"
        );
        assert_eq!(json_all_unicode("A/", true), "\\u0041\\u002F");
        assert_eq!(yaml_single_body("it's").unwrap(), "it''s");
        assert_eq!(yaml_single_body("a\nb"), None);
        assert_eq!(yaml_double_body("\u{1b}\u{85}\t"), "\\e\\x85\\t");
        assert_eq!(dotenv_double_body(v), "a\\\"b\\\\c'd\ne$f/é<`");
        assert_eq!(dotenv_double_escaped_body("a\nb\r"), "a\\nb\\r");
        assert_eq!(shell_double_body("a$b`c\"\\"), "a\\$b\\`c\\\"\\\\");
        assert_eq!(shell_single_body("it's"), "it'\\''s");
        assert_eq!(ini_body("50%off"), "50%%off");
        assert_eq!(yaml_block_body("a\nb\n", true, 2), "a\n  b");
        assert_eq!(yaml_block_body("a\nb\n", false, 2), "a\n\n  b");
        assert_eq!(toml_multi_basic_body("a\"\"\"b\"", true), "a\"\"\\\"b\\\"");
        assert_eq!(percent(b"a b/c", b"0123456789ABCDEF", false), b"a%20b%2Fc");
        assert_eq!(percent(b"a b", b"0123456789ABCDEF", true), b"a+b");
        assert_eq!(hex(b"\x01\xab", b"0123456789ABCDEF"), b"01AB");
    }

    #[test]
    fn forms_shorter_than_a_search_word_are_left_out() {
        // The block body of this multi-line value is 5 bytes: the search could not hold it.
        let value = "a\nb\n\n\n\n\n\n";
        assert!(forms(value.as_bytes()).iter().all(|(_, f)| f.len() >= 8));
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
