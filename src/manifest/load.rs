//! Finding, reading and parsing the manifest; resolving its paths.

use std::path::{Path, PathBuf};

use super::{Manifest, ManifestError, Problem, StoreConfig, VaultAuth};
use crate::json_span;

/// The manifest file name looked for in the current folder.
pub const DEFAULT_MANIFEST: &str = "agentbak.json";

/// The environment variable that names the manifest when `-m` is absent.
pub const ENV_MANIFEST: &str = "AGENTBAK_MANIFEST";

/// The manifest path: `-m` first, then `AGENTBAK_MANIFEST`, then `./agentbak.json`.
pub fn find_manifest_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_MANIFEST) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_MANIFEST),
    }
}

impl Manifest {
    /// Reads, parses, validates and resolves the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (create one with `agentbak init`, or name one with -m/--manifest or AGENTBAK_MANIFEST)"
            } else {
                ""
            };
            ManifestError::single(
                path.to_path_buf(),
                Problem {
                    line: 0,
                    column: 0,
                    field: String::new(),
                    message: format!("cannot read the manifest: {e}{hint}"),
                },
            )
        })?;
        let mut manifest = Manifest::parse(path, &text)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        manifest.resolve_paths(base);
        manifest.validate_paths(path, &text)?;
        Ok(manifest)
    }

    /// Parses and validates manifest text; paths stay as written. `path` only names the file
    /// in errors.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Manifest, ManifestError> {
        let fail = |line: usize, column: usize, field: String, message: String| {
            ManifestError::single(
                path.to_path_buf(),
                Problem {
                    line,
                    column,
                    field,
                    message,
                },
            )
        };
        // Syntax first: serde_json gives the exact position of a syntax error.
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
            fail(
                e.line(),
                e.column(),
                String::new(),
                format!("invalid JSON: {}", strip_position(&e.to_string())),
            )
        })?;
        // Then the model: the path of the failing field is located in the text.
        let manifest: Manifest = serde_path_to_error::deserialize(value).map_err(|e| {
            let mut pointer = to_pointer(e.path());
            let message = strip_position(&e.inner().to_string());
            if let Some(unknown) = unknown_field(&message)
                && !pointer.ends_with(&format!("/{unknown}"))
            {
                pointer.push('/');
                pointer.push_str(&escape_token(&unknown));
            }
            let (line, column) = locate(text, &pointer);
            fail(line, column, pointer, message)
        })?;
        let problems = manifest.validate(text);
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let r = |p: &mut PathBuf| *p = resolve(base, p);
        r(&mut self.state);
        r(&mut self.repository);
        for store in self.stores.values_mut() {
            match store {
                StoreConfig::Vault(v) => {
                    if let Some(p) = &mut v.ca_cert {
                        r(p);
                    }
                    if let Some(c) = &mut v.cache {
                        r(&mut c.path);
                    }
                    match &mut v.auth {
                        Some(VaultAuth::Token {
                            token_file: Some(p),
                        }) => r(p),
                        Some(VaultAuth::Approle {
                            role_id_file,
                            secret_id_file,
                            ..
                        }) => {
                            role_id_file.iter_mut().for_each(r);
                            secret_id_file.iter_mut().for_each(r);
                        }
                        _ => {}
                    }
                }
                StoreConfig::Local(l) => {
                    r(&mut l.path);
                    r(&mut l.identity);
                }
                StoreConfig::Env(_) => {}
            }
        }
    }
}

/// Expands `~` and makes `p` absolute against `base` (the manifest's folder).
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    let expanded = match p.to_str() {
        Some("~") => home(),
        Some(s) if s.starts_with("~/") => home().map(|h| h.join(&s[2..])),
        _ => None,
    };
    let p = expanded.unwrap_or_else(|| p.to_path_buf());
    let joined = if p.is_absolute() { p } else { base.join(p) };
    std::path::absolute(&joined).unwrap_or(joined)
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Line and column of the value at `pointer`, falling back to its nearest ancestor.
pub(super) fn locate(text: &[u8], pointer: &str) -> (usize, usize) {
    let mut p = pointer.to_string();
    loop {
        if let Ok(Some(span)) = json_span::value_span(text, &p) {
            return json_span::line_col(text, span.start);
        }
        match p.rfind('/') {
            Some(i) => p.truncate(i),
            None => return (1, 1),
        }
    }
}

fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

fn to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", escape_token(key))),
            Segment::Enum { variant } => out.push_str(&format!("/{}", escape_token(variant))),
            Segment::Unknown => {}
        }
    }
    out
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    if message.starts_with("unknown variant") {
        return None;
    }
    rest.split_once('`').map(|(f, _)| f.to_string())
}

/// serde_json appends " at line X column Y" (positions in the tree, not the file): drop it.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
