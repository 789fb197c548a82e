//! `init --discover`: find the secrets of a state folder and the rule that locates each.
//!
//! Two passes over the files, in path order:
//! 1. **Structured files and keys.** A file whose name says JSON, YAML, TOML, dotenv or INI is
//!    parsed by its redactor, which lists every string value with its locator
//!    ([`Redactor::keys`](crate::redact::Redactor::keys)). A value is a secret when a detection
//!    rule fires inside it, or when its key reads like a credential (`api_key`, `token`,
//!    `password`, …) and the value is random enough to be one. A PEM private key file is a
//!    whole-file secret.
//! 2. **Everything else that is text** (logs, notes): each finding of a detection rule becomes
//!    a `regex` rule anchored on the words before it on its line (`Bearer (…)`, `api_key=(…)`),
//!    unless its value was found in pass 1: snapshots replace known values wherever they sit.
//!    A regex that captures several different values (a token that rotates through a log) gets
//!    an ephemeral `env:` handle, since no one stored version fits them all.
//!
//! Every proposed rule is checked with the redaction engine before it is kept: its locator
//! must find exactly the value that was discovered. The same value found in several places
//! gets one handle. Values stay in [`Secret`]s; the report shows masked previews only.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use regex::bytes::Regex;
use zeroize::Zeroizing;

use crate::detect::{Detector, Finding, looks_random};
use crate::error::{Error, Result};
use crate::handle::{AGENT_TEMPLATE, Handle};
use crate::manifest::Locator;
use crate::ops::walk::{Entry, EntryKind, walk};
use crate::redact::{Format, is_binary, values_at};
use crate::secret::Secret;

/// Files larger than this are not read (state files with secrets are small; a large file is
/// still scanned by every snapshot's leak gate).
const MAX_FILE: u64 = 16 << 20;

/// Folder names that hold caches, never state worth a backup.
const CACHE_DIRS: &[&str] = &[
    ".cache",
    "cache",
    "caches",
    "__pycache__",
    "node_modules",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
];

/// File name endings of editor and temporary files.
const TEMP_SUFFIXES: &[&str] = &[".tmp", ".swp", ".pyc", "~"];

/// Symbols a token may hold besides letters and digits (RFC 6750 `b64token`).
const TOKEN_SYMBOLS: &[u8] = b"-._~+/=";

/// Words that make a key name a credential's.
const SECRET_KEY_WORDS: &[&str] = &[
    "apikey",
    "api_key",
    "api-key",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "private_key",
    "privatekey",
    "credential",
    "access_key",
    "auth",
    "bearer",
    "session",
    "signing_key",
    "client_secret",
    "webhook",
];

/// A secret found in the state, with the rule that locates it.
#[derive(Debug)]
pub struct Discovered {
    /// The file, relative to the state folder.
    pub file: String,
    /// Where the value sits in it.
    pub locator: Locator,
    /// The handle the rule maps it to (with `{agent}` in its path).
    pub handle: Handle,
    /// The value found (for `--import`); several for an ephemeral rule.
    pub value: Secret,
    /// True for a rule whose values change between snapshots (an `env:` handle).
    pub ephemeral: bool,
    /// What made it a secret: a rule id, or `key name`.
    pub reason: String,
    /// True when an earlier rule has the same value, hence the same handle.
    pub shared: bool,
}

/// Something discovery saw but could not turn into a rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attention {
    /// The file, relative to the state folder.
    pub file: String,
    /// 1-based line, when there is one.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

/// The result of [`discover`].
#[derive(Debug, Default)]
pub struct Discovery {
    /// One rule per secret location, in file order.
    pub found: Vec<Discovered>,
    /// Cache folders and temporary files to leave out (`exclude` globs).
    pub exclude: Vec<String>,
    /// Things a person should look at.
    pub attention: Vec<Attention>,
    /// Files read.
    pub files: usize,
}

/// A value seen in pass 1 or 2, before it has a handle.
struct Candidate {
    file: String,
    locator: Locator,
    value: Secret,
    reason: String,
    /// The words that name it (a key, a pointer, a regex anchor), for the handle's field.
    name: String,
    ephemeral: bool,
}

/// Finds the secrets of `state` and proposes a rule and handle for each. `store` names the
/// store the handles point into.
pub fn discover(state: &Path, store: &str, detector: &Detector) -> Result<Discovery> {
    let walked = walk(state, &["**".to_string()], &[])?;
    let mut out = Discovery::default();
    let mut cache_dirs: Vec<String> = Vec::new();
    let mut temp_globs: BTreeSet<String> = BTreeSet::new();
    let mut texts: Vec<(String, Zeroizing<Vec<u8>>, Vec<Finding>)> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();

    for entry in &walked.entries {
        if !inspect(entry, &mut cache_dirs, &mut temp_globs, &mut out.attention) {
            continue;
        }
        // State files hold the secrets: their bytes live in zeroized memory.
        let bytes =
            Zeroizing::new(std::fs::read(&entry.path).map_err(|e| Error::io(&entry.path, e))?);
        out.files += 1;
        let findings = detector.scan_bytes(&entry.rel, &bytes);
        if is_binary(&bytes) {
            if let Some(f) = findings.first() {
                out.attention.push(Attention {
                    file: entry.rel.clone(),
                    line: None,
                    message: format!(
                        "a binary file holds what looks like a secret ({}, at byte {}): a \
                         snapshot cannot edit it; exclude the file or keep the secret elsewhere",
                        f.rule, f.offset
                    ),
                });
            }
            continue;
        }
        if let Some(c) = whole_file_key(&entry.rel, &bytes, &findings) {
            candidates.push(c);
            continue;
        }
        let rest = match structured(&entry.rel, &bytes, &findings, &mut candidates) {
            Ok(rest) => rest,
            Err(attention) => {
                out.attention.push(attention);
                findings
            }
        };
        if !rest.is_empty() {
            texts.push((entry.rel.clone(), bytes, rest));
        }
    }

    let known: Vec<Secret> = candidates.iter().map(|c| c.value.clone()).collect();
    for (file, bytes, findings) in &texts {
        from_text(
            file,
            bytes,
            findings,
            &known,
            &mut candidates,
            &mut out.attention,
        );
    }

    out.exclude = cache_dirs.iter().map(|d| format!("{d}/**")).collect();
    out.exclude.extend(temp_globs);
    out.found = name_handles(candidates, store);
    Ok(out)
}

/// Whether discovery reads `entry`: a regular file of at most [`MAX_FILE`] bytes, outside
/// cache folders, not a temporary file. Cache folders and temporary files found are noted for
/// `exclude`; a file too large to read is noted for attention.
fn inspect(
    entry: &Entry,
    cache_dirs: &mut Vec<String>,
    temp_globs: &mut BTreeSet<String>,
    attention: &mut Vec<Attention>,
) -> bool {
    if cache_dirs
        .iter()
        .any(|d| entry.rel.starts_with(&format!("{d}/")))
    {
        return false;
    }
    let name = entry.rel.rsplit('/').next().unwrap_or(&entry.rel);
    match entry.kind {
        EntryKind::Dir if CACHE_DIRS.contains(&name) => {
            cache_dirs.push(entry.rel.clone());
            false
        }
        EntryKind::File { size } => {
            if let Some(suffix) = TEMP_SUFFIXES.iter().find(|s| name.ends_with(**s)) {
                temp_globs.insert(format!("**/*{suffix}"));
                return false;
            }
            if size > MAX_FILE {
                attention.push(Attention {
                    file: entry.rel.clone(),
                    line: None,
                    message: format!(
                        "larger than {} MiB: not inspected (each snapshot's leak gate still scans it)",
                        MAX_FILE >> 20
                    ),
                });
                return false;
            }
            true
        }
        _ => false,
    }
}

/// A PEM private key file: the whole file is the secret.
fn whole_file_key(rel: &str, bytes: &[u8], findings: &[Finding]) -> Option<Candidate> {
    let text = std::str::from_utf8(bytes).ok()?;
    let trimmed = text.trim();
    let pem = trimmed.starts_with("-----BEGIN ")
        && trimmed.ends_with("-----")
        && trimmed.contains("PRIVATE KEY-----");
    if !pem || !findings.iter().any(|f| f.rule == "private-key") {
        return None;
    }
    Some(Candidate {
        file: rel.to_string(),
        locator: Locator::WholeFile,
        value: Secret::from_slice(bytes),
        reason: "private-key".into(),
        name: "private_key".into(),
        ephemeral: false,
    })
}

/// Pass 1 for a structured file: every string value that is a secret becomes a candidate.
/// Returns the findings that sit outside every string value (in a comment, say), for pass 2;
/// a file that does not parse is returned as an [`Attention`], and pass 2 takes all its
/// findings.
fn structured(
    rel: &str,
    bytes: &[u8],
    findings: &[Finding],
    out: &mut Vec<Candidate>,
) -> std::result::Result<Vec<Finding>, Attention> {
    let Some(format) = Format::of_path(rel) else {
        return Ok(findings.to_vec());
    };
    // `is_binary` looks at the first block only: a later invalid byte makes it plain text.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(findings.to_vec());
    };
    let unparsed = |line, message: String| Attention {
        file: rel.to_string(),
        line,
        message,
    };
    let redactor = format.redactor();
    let keys = redactor.keys(text).map_err(|e| match e {
        crate::redact::FormatError::Parse { line, column, .. } => unparsed(
            Some(line),
            format!("not valid {format} (column {column}): its findings get regex rules"),
        ),
        _ => unparsed(None, format!("not readable as {format}")),
    })?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let sites = redactor
        .locate(text, &refs)
        .map_err(|_| unparsed(None, format!("not readable as {format}")))?;
    let mut covered = vec![false; findings.len()];
    for (key, sites) in keys.iter().zip(sites) {
        let Some(first) = sites.first() else { continue };
        let value = &first.value;
        if value.is_empty() {
            continue;
        }
        let mut reason = None;
        for (i, f) in findings.iter().enumerate() {
            let start = f.offset as usize;
            let inside = sites
                .iter()
                .any(|s| start >= s.range.start && start < s.range.end.max(s.range.start + 1));
            if inside {
                covered[i] = true;
                reason.get_or_insert_with(|| f.rule.clone());
            }
        }
        let leaf = last_token(format, key);
        if reason.is_none() && secret_key(&leaf) && looks_random(value.expose(), false) {
            reason = Some("key name".into());
        }
        let Some(reason) = reason else { continue };
        out.push(Candidate {
            file: rel.to_string(),
            locator: locator(format, key),
            value: value.clone(),
            reason,
            name: field_name(format, key),
            ephemeral: false,
        });
    }
    Ok(findings
        .iter()
        .zip(covered)
        .filter(|(_, c)| !c)
        .map(|(f, _)| f.clone())
        .collect())
}

/// Pass 2 for one text file: a regex rule per finding whose value pass 1 did not find.
fn from_text(
    rel: &str,
    bytes: &[u8],
    findings: &[Finding],
    known: &[Secret],
    out: &mut Vec<Candidate>,
    attention: &mut Vec<Attention>,
) {
    let mut patterns: Vec<String> = Vec::new();
    for f in findings {
        let start = f.offset as usize;
        let Some(value) = bytes.get(start..start + f.length) else {
            continue;
        };
        if known.iter().any(|k| k.expose() == value) {
            continue;
        }
        let Some((anchor, pattern)) = anchored_pattern(bytes, start, value) else {
            attention.push(Attention {
                file: rel.to_string(),
                line: Some(f.line),
                message: format!(
                    "{} finding with no words before it on its line to anchor a rule: \
                     add a `regex` rule by hand",
                    f.rule
                ),
            });
            continue;
        };
        if patterns.contains(&pattern) {
            continue;
        }
        let re = Regex::new(&pattern).expect("an escaped anchor and a class compile");
        // One pass: the distinct values the rule would capture, and whether it captures exactly
        // this finding.
        let mut distinct: BTreeSet<&[u8]> = BTreeSet::new();
        let mut exact = false;
        for m in re.captures_iter(bytes).filter_map(|c| c.get(1)) {
            exact |= m.start() == start && m.as_bytes() == value;
            distinct.insert(m.as_bytes());
        }
        if !exact {
            attention.push(Attention {
                file: rel.to_string(),
                line: Some(f.line),
                message: format!(
                    "{} finding that no simple rule captures exactly: add a `regex` rule by hand",
                    f.rule
                ),
            });
            continue;
        }
        patterns.push(pattern.clone());
        out.push(Candidate {
            file: rel.to_string(),
            locator: Locator::Regex(pattern),
            value: Secret::from_slice(value),
            reason: f.rule.clone(),
            name: anchor,
            ephemeral: distinct.len() > 1,
        });
    }
}

/// A regex that captures `value` at `start` from the words before it on its line:
/// `Bearer ([A-Za-z0-9._-]+)`. Returns the anchor's last word and the pattern.
fn anchored_pattern(bytes: &[u8], start: usize, value: &[u8]) -> Option<(String, String)> {
    let line_start = bytes[..start]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let before = std::str::from_utf8(&bytes[line_start..start]).ok()?;
    // The separator between the word and the value (`: `, `=`, `="`, ` `), then the word.
    let word_end = before
        .trim_end_matches([' ', '\t', ':', '=', '"', '\''])
        .len();
    let word_start = before[..word_end]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[word_start..word_end];
    if word.is_empty() || word.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // The characters of a token (RFC 6750's b64token), so that tomorrow's value, with other
    // symbols, still matches; only the value's own symbols when a token character follows it
    // (`token=abc.` at the end of a sentence).
    let after = bytes.get(start + value.len()).copied();
    let broad = after.is_none_or(|b| !(b.is_ascii_alphanumeric() || TOKEN_SYMBOLS.contains(&b)));
    let mut class = String::from("A-Za-z0-9");
    let mut symbols: Vec<char> = std::str::from_utf8(value)
        .ok()?
        .chars()
        .filter(|c| !c.is_ascii_alphanumeric())
        .chain(b"-_".iter().map(|b| *b as char))
        .chain(TOKEN_SYMBOLS.iter().map(|b| *b as char).filter(|_| broad))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    if symbols.iter().any(|c| !c.is_ascii_graphic()) {
        return None;
    }
    for c in symbols {
        // Inside a class `-`, `]`, `^`, `&&`, `~~` mean something: escape what is meta.
        if regex_syntax::is_meta_character(c) {
            class.push('\\');
        }
        class.push(c);
    }
    let pattern = format!(
        r"{}{}([{class}]+)",
        word_boundary(word),
        regex::escape(&before[word_start..])
    );
    Some((word.to_string(), pattern))
}

/// `\b` before a word that starts with a word character, so `key=` does not match `monkey=`.
fn word_boundary(word: &str) -> &'static str {
    if word.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        r"\b"
    } else {
        ""
    }
}

/// Gives every candidate its handle: the same value gets the same handle; otherwise
/// `STORE:agents/{agent}/<file path without extension>#<key>`, numbered when taken.
fn name_handles(candidates: Vec<Candidate>, store: &str) -> Vec<Discovered> {
    // Values stay in `Secret`s (zeroized); a state has tens of secrets, so a list will do.
    let mut by_value: Vec<(Secret, Handle)> = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        let (handle, shared) = if c.ephemeral {
            let name = env_name(&c.name);
            let text = format!("env:{name}");
            taken.insert(text.clone());
            (
                Handle::parse(&text).expect("an env name is a valid handle"),
                false,
            )
        } else if let Some((_, h)) = by_value.iter().find(|(v, _)| *v == c.value) {
            (h.clone(), true)
        } else {
            let path = handle_path(&c.file);
            let field = sanitize(&c.name, false);
            let base = format!("{store}:agents/{AGENT_TEMPLATE}/{path}#{field}");
            let mut text = base.clone();
            let mut n = 2;
            while taken.contains(&text) {
                text = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(text.clone());
            let handle = Handle::parse(&text).expect("sanitized segments make a valid handle");
            by_value.push((c.value.clone(), handle.clone()));
            (handle, false)
        };
        out.push(Discovered {
            file: c.file,
            locator: c.locator,
            handle,
            value: c.value,
            ephemeral: c.ephemeral,
            reason: c.reason,
            shared,
        });
    }
    out
}

/// Checks each rule with the redaction engine: its locator, read from `state`, must give back
/// exactly the discovered value. A rule that does not is dropped with an [`Attention`].
pub fn check(
    state: &Path,
    found: Vec<Discovered>,
    attention: &mut Vec<Attention>,
) -> Vec<Discovered> {
    let mut files: HashMap<String, Zeroizing<Vec<u8>>> = HashMap::new();
    let mut kept = Vec::with_capacity(found.len());
    for d in found {
        let bytes = files.entry(d.file.clone()).or_insert_with(|| {
            Zeroizing::new(std::fs::read(state.join(&d.file)).unwrap_or_default())
        });
        let ok = match values_at(&d.file, bytes, &d.locator) {
            Ok(values) if d.ephemeral => values.contains(&d.value),
            Ok(values) => !values.is_empty() && values.iter().all(|v| *v == d.value),
            Err(_) => false,
        };
        if ok {
            kept.push(d);
        } else {
            attention.push(Attention {
                file: d.file.clone(),
                line: None,
                message: format!(
                    "a secret at {} that its rule does not read back exactly: add a rule by hand",
                    d.locator
                ),
            });
        }
    }
    kept
}

fn locator(format: Format, key: &str) -> Locator {
    match format {
        Format::Json => Locator::Json(key.into()),
        Format::Yaml => Locator::Yaml(key.into()),
        Format::Toml => Locator::Toml(key.into()),
        Format::Dotenv => Locator::Env(key.into()),
        Format::Ini => Locator::Ini(key.into()),
    }
}

/// The last name in a locator: a pointer's last non-index token, a dotenv key, an INI key.
fn last_token(format: Format, key: &str) -> String {
    match format {
        Format::Json | Format::Yaml | Format::Toml => crate::json_span::pointer_tokens(key)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|t| t.parse::<usize>().is_err())
            .unwrap_or_default(),
        Format::Dotenv => key.to_string(),
        Format::Ini => key.rsplit('.').next().unwrap_or(key).to_string(),
    }
}

/// The handle field for a locator: a pointer's tokens joined by `_`, or the key.
fn field_name(format: Format, key: &str) -> String {
    match format {
        Format::Json | Format::Yaml | Format::Toml => crate::json_span::pointer_tokens(key)
            .unwrap_or_default()
            .join("_"),
        Format::Dotenv | Format::Ini => key.to_string(),
    }
}

/// Whether a key name reads like a credential's.
fn secret_key(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| lower.contains(w))
}

/// The handle path of a state file: its path without the extension, each segment sanitized
/// (`config/credentials.json` → `config/credentials`, `.env` → `env`).
fn handle_path(file: &str) -> String {
    let without_ext = match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => stem,
        _ => file,
    };
    without_ext
        .split('/')
        .map(|s| sanitize(s, true))
        .collect::<Vec<_>>()
        .join("/")
}

/// Keeps letters, digits, `_`, `-` (and `.` inside a field); everything else becomes `_`.
/// Path segments are lowercased and lose leading dots.
fn sanitize(s: &str, segment: bool) -> String {
    let s = if segment {
        s.trim_start_matches('.').to_ascii_lowercase()
    } else {
        s.to_string()
    };
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || (c == '.' && !segment) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_matches('_').to_string();
    if out.is_empty() || out == "." || out == ".." {
        "value".into()
    } else {
        out
    }
}

/// The environment variable of an ephemeral handle: the anchor word in upper case, ending in
/// `_TOKEN` unless it names a kind of credential already.
fn env_name(word: &str) -> String {
    let mut name: String = word
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if !["TOKEN", "KEY", "SECRET", "PASSWORD"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        name.push_str("_TOKEN");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_paths_and_fields_are_valid_segments() {
        assert_eq!(handle_path("config/credentials.json"), "config/credentials");
        assert_eq!(handle_path(".env"), "env");
        assert_eq!(handle_path("keys/id_rsa"), "keys/id_rsa");
        assert_eq!(handle_path("a b/.hidden.yaml"), "a_b/hidden");
        assert_eq!(
            field_name(Format::Json, "/openai/api~1key"),
            "openai_api/key"
        );
        assert_eq!(sanitize("openai_api/key", false), "openai_api_key");
        assert_eq!(last_token(Format::Yaml, "/providers/0"), "providers");
        assert_eq!(env_name("Bearer"), "BEARER_TOKEN");
        assert_eq!(env_name("api-key"), "API_KEY");
    }

    #[test]
    fn an_anchor_is_the_word_before_the_value() {
        let line: &[u8] = b"12:00 GET /v1 Authorization: Bearer abc.DEF-123_x~y^z end";
        let value: &[u8] = b"abc.DEF-123_x~y^z";
        let start = line.windows(value.len()).position(|w| w == value).unwrap();
        let (word, pattern) = anchored_pattern(line, start, value).unwrap();
        assert_eq!(word, "Bearer");
        assert!(pattern.starts_with(r"\bBearer "), "{pattern}");
        let re = Regex::new(&pattern).unwrap();
        let got = re.captures(line).unwrap().get(1).unwrap();
        assert_eq!((got.start(), got.as_bytes()), (start, value));
        // `key=` is a word: it does not match inside `monkey=`.
        let (_, pattern) = anchored_pattern(b"key=s3cr3t-value", 4, b"s3cr3t-value").unwrap();
        assert!(
            !Regex::new(&pattern)
                .unwrap()
                .is_match(b"monkey=s3cr3t-value")
        );
        // Regression: a multi-byte character before the word (it used to slice inside it).
        let line = "café·token=s3cr3t-value-0123".as_bytes();
        let start = line.len() - "s3cr3t-value-0123".len();
        let (word, _) = anchored_pattern(line, start, b"s3cr3t-value-0123").unwrap();
        assert_eq!(word, "token");
        // No word before the value: no anchor.
        assert!(anchored_pattern(b"sk-abc", 0, b"sk-abc").is_none());
        assert!(anchored_pattern(b"2026 sk-abc", 5, b"sk-abc").is_none());
    }
}
