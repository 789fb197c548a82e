//! The known values of a manifest: the values at its declared locations, read from the state.
//!
//! Supported locators: `whole_file`, `env` (a dotenv key), `regex` (group 1 of every match)
//! and `json` (a JSON Pointer to a string). `yaml`, `toml` and `ini` values are read by the
//! redaction engine (`redact/`), which this module should call once it lands; until then such
//! rules are listed in [`KnownFromManifest::notes`] so a report says what was not searched.
//! Invariant: values go straight into [`Secret`]s and are labelled by their handle.

use std::path::{Path, PathBuf};

use globset::Glob;

use crate::detect::KnownValues;
use crate::manifest::{Locator, Manifest};
use crate::secret::Secret;

/// Known values read from a manifest's state, and what could not be read.
#[derive(Debug)]
pub struct KnownFromManifest {
    /// The values, labelled by handle.
    pub values: KnownValues,
    /// Rules whose values were not read, and why.
    pub notes: Vec<String>,
}

/// Largest file read for a value: a secret file is small; a huge one is not a value.
const MAX_VALUE_FILE: u64 = 16 * 1024 * 1024;

/// Reads every declared value from the manifest's state folder.
pub fn known_values(manifest: &Manifest) -> KnownFromManifest {
    let mut values: Vec<(String, Secret)> = Vec::new();
    let mut notes = Vec::new();
    for (index, rule) in manifest.secrets.iter().enumerate() {
        let label = rule.handle.with_agent(&manifest.agent).to_string();
        let locator = rule.locator();
        if matches!(
            locator,
            Locator::Yaml(_) | Locator::Toml(_) | Locator::Ini(_)
        ) {
            notes.push(format!(
                "secrets[{index}] ({label}): {} values are not read by scan yet",
                locator.field()
            ));
            continue;
        }
        let files = match matching_files(&manifest.state, &rule.file) {
            Ok(files) => files,
            Err(reason) => {
                notes.push(format!("secrets[{index}] ({label}): {reason}"));
                continue;
            }
        };
        for file in files {
            match read_values(&file, &locator) {
                Ok(found) => values.extend(found.into_iter().map(|v| (label.clone(), v))),
                Err(e) => notes.push(format!("{}: {e}", file.display())),
            }
        }
    }
    KnownFromManifest {
        values: KnownValues::new(values),
        notes,
    }
}

/// Files under `state` that `pattern` names (a path or a glob).
fn matching_files(state: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    if !pattern.contains(['*', '?', '[', '{']) {
        let path = state.join(pattern);
        return Ok(if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        });
    }
    let glob = Glob::new(pattern)
        .map_err(|e| format!("bad glob `{pattern}`: {e}"))?
        .compile_matcher();
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(state)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_file()
            && let Ok(rel) = entry.path().strip_prefix(state)
            && glob.is_match(rel)
        {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

fn read_values(path: &Path, locator: &Locator) -> std::io::Result<Vec<Secret>> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_VALUE_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_VALUE_FILE} bytes; not read for values"
        )));
    }
    let content = Secret::new(std::fs::read(path)?);
    let bytes = content.expose();
    let mut out = Vec::new();
    match locator {
        Locator::WholeFile => {
            out.push(content.clone());
            // A store usually holds the value without the file's final newline.
            let trimmed = bytes
                .strip_suffix(b"\n")
                .map(|b| b.strip_suffix(b"\r").unwrap_or(b));
            if let Some(t) = trimmed {
                out.push(Secret::from_slice(t));
            }
        }
        Locator::Env(key) => out.extend(dotenv_value(bytes, key)),
        Locator::Regex(pattern) => {
            let re = regex::bytes::Regex::new(pattern).map_err(std::io::Error::other)?;
            for c in re.captures_iter(bytes) {
                if let Some(m) = c.get(1) {
                    out.push(Secret::from_slice(m.as_bytes()));
                }
            }
        }
        Locator::Json(pointer) => {
            let doc: serde_json::Value =
                serde_json::from_slice(bytes).map_err(std::io::Error::other)?;
            if let Some(serde_json::Value::String(s)) = doc.pointer(pointer) {
                out.push(Secret::from_slice(s.as_bytes()));
            }
        }
        Locator::Yaml(_) | Locator::Toml(_) | Locator::Ini(_) => {}
    }
    Ok(out)
}

/// The value of `key` in a dotenv text: `KEY=v`, `export KEY=v`, single quotes (literal),
/// double quotes (with `\n`, `\"`, `\\`, `\$`), or bare up to a ` #` comment.
pub(crate) fn dotenv_value(text: &[u8], key: &str) -> Option<Secret> {
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        let line = line
            .strip_prefix(b"export ")
            .unwrap_or(line)
            .trim_ascii_start();
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        if line[..eq].trim_ascii() != key.as_bytes() {
            continue;
        }
        let raw = line[eq + 1..].trim_ascii_start();
        let value = match raw.first() {
            Some(b'\'') => raw[1..]
                .split(|&b| b == b'\'')
                .next()
                .unwrap_or(b"")
                .to_vec(),
            Some(b'"') => unescape_double(&raw[1..]),
            _ => {
                let end = raw.windows(2).position(|w| w == b" #").unwrap_or(raw.len());
                raw[..end].trim_ascii_end().to_vec()
            }
        };
        return Some(Secret::new(value));
    }
    None
}

fn unescape_double(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        match b {
            b'"' => break,
            b'\\' => match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(&c) => out.push(c),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_forms() {
        let text = b"# c\nexport A=plain-value # note\nB='single $x'\nC=\"dq \\\"x\\\" \\$y\"\n";
        let get = |k| dotenv_value(text, k).map(|s| s.expose().to_vec());
        assert_eq!(get("A").unwrap(), b"plain-value");
        assert_eq!(get("B").unwrap(), b"single $x");
        assert_eq!(get("C").unwrap(), b"dq \"x\" $y");
        assert!(get("D").is_none());
    }
}
