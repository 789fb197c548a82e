//! Capture: a secret that no rule declares is stored and archived as a placeholder, so the
//! backup happens and the secret stays out of it (`detect.on_unknown: capture`,
//! docs/living-agents.md).
//!
//! A snapshot attempt whose leak gate reports findings in text files does not stop there:
//! each such file is redacted again, its findings are read back from the redacted bytes (the
//! exact bytes the gate saw), and each value is stored as a field of the secret at the
//! manifest's capture path (`Manifest::capture_target`). The attempt then starts over with
//! those values known: the stray search replaces them wherever they sit, in any form, and the
//! gate searches for them in every other file. A value captured by an earlier run is known
//! from the start (its field is read with the store's other values), so a steady state costs
//! one pass, and only a run that captures something new costs two.
//!
//! Invariants:
//! - a captured value keeps its field across runs: the field is `<rule>-<id>`, where the id is
//!   a keyed blake3 of the value. The key is random, lives in the store next to the captured
//!   secret (`<capture path>-key`), and never in the repository: the repository alone cannot
//!   confirm a guess of a value, and holds no plain hash of one;
//! - what is stored is the finding's bytes as the file held them, so a restore with
//!   `--rehydrate` gives the file back byte for byte;
//! - what cannot be captured (a finding in a binary file or in a file name, a store that
//!   refuses the write) keeps refusing the snapshot, with what to do about it.

use std::collections::{BTreeMap, BTreeSet};

use std::io::Read;

use zeroize::Zeroizing;

use crate::detect::{Detector, Finding};
use crate::error::{Error, Result};
use crate::handle::{Handle, Target};
use crate::manifest::Manifest;
use crate::secret::Secret;
use crate::store::{SecretStore, StoreErrorKind, Stores};

/// The field of the key secret that holds the id key.
const KEY_FIELD: &str = "key";

/// Domain of the keyed ids, so the key can never serve another purpose.
const ID_CONTEXT: &[u8] = b"agentbak 2026 captured-secret id v1\0";

/// The capture path of a manifest and what it holds.
pub(super) struct Capture {
    store: String,
    path: String,
    /// The id key, read or created on the first capture.
    key: Option<Zeroizing<[u8; 32]>>,
    /// Every captured value the store holds, by handle.
    held: Vec<(Handle, Secret)>,
}

impl Capture {
    /// The manifest's capture path, with the values captured so far; `None` when the
    /// manifest has no key/value store (nothing can be captured). A capture secret that
    /// does not exist yet holds nothing; one that cannot be read is a warning, and the
    /// snapshot goes on without its values (the gate then finds them and captures them anew).
    pub fn load(m: &Manifest, stores: &Stores, warnings: &mut Vec<String>) -> Option<Capture> {
        let (store, path) = m.capture_target()?;
        let mut capture = Capture {
            store,
            path,
            key: None,
            held: Vec::new(),
        };
        let Some(s) = stores.get(&capture.store) else {
            return Some(capture);
        };
        match s.read(&capture.path, None) {
            Ok(read) => {
                for (field, value) in read.fields {
                    capture.held.push((capture.handle(&field), value));
                }
            }
            Err(e) if e.kind == StoreErrorKind::Missing => {}
            Err(e) => warnings.push(format!(
                "captured secrets could not be read ({e}); new copies of them are captured again"
            )),
        }
        Some(capture)
    }

    /// The captured values the store holds, each with its handle: known values of the run.
    pub fn held(&self) -> &[(Handle, Secret)] {
        &self.held
    }

    /// Whether `handle` names a captured secret.
    pub fn owns(&self, handle: &Handle) -> bool {
        match &handle.target {
            Target::Kv { path, .. } => handle.store == self.store && *path == self.path,
            Target::Env { .. } => false,
        }
    }

    fn handle(&self, field: &str) -> Handle {
        Handle {
            store: self.store.clone(),
            target: Target::Kv {
                path: self.path.clone(),
                version: None,
                field: field.to_string(),
            },
        }
    }

    fn store<'s>(&self, stores: &'s Stores) -> Result<&'s dyn SecretStore> {
        stores.get(&self.store).ok_or_else(|| Error::Entry {
            path: self.path.clone(),
            reason: format!("the capture store `{}` is not configured", self.store),
        })
    }

    /// The incremental repository's chunk-id key, derived from the id key (which is read from
    /// the store, or made and written there): never in the repository.
    pub fn chunk_key(&mut self, stores: &Stores) -> Result<[u8; 32]> {
        self.key(stores).map(super::packs::chunk_key)
    }

    /// The id key: read from the store, or made and written there on the first capture.
    fn key(&mut self, stores: &Stores) -> Result<&[u8; 32]> {
        if self.key.is_none() {
            let store = self.store(stores)?;
            let key_path = format!("{}-key", self.path);
            let read = |store: &dyn SecretStore| read_key(store, &self.path);
            let key = match read(store)? {
                Some(key) => key,
                None => {
                    let mut fresh = Zeroizing::new([0u8; 32]);
                    getrandom::fill(fresh.as_mut_slice()).map_err(|e| Error::Entry {
                        path: key_path.clone(),
                        reason: format!("no randomness for the capture key: {e}"),
                    })?;
                    let text = Secret::from(hex(fresh.as_slice()));
                    match store.put(&key_path, KEY_FIELD, &text, Some(0)) {
                        Ok(_) => fresh,
                        // Another run made it first: use theirs.
                        Err(e) if e.kind == StoreErrorKind::Conflict => {
                            read(store)?.ok_or_else(|| Error::from(e))?
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            self.key = Some(key);
        }
        Ok(self.key.as_deref().expect("just set"))
    }

    /// Stores `values` (each found by `rule`), unless held already, and returns how many were
    /// new. The new values are written as fields of one new version; the store keeps the
    /// other fields.
    pub fn add(&mut self, stores: &Stores, values: Vec<(String, Secret)>) -> Result<usize> {
        let mut fields = BTreeMap::new();
        let mut new = Vec::new();
        for (rule, value) in values {
            if self.held.iter().chain(&new).any(|(_, v)| *v == value) {
                continue;
            }
            let field = format!("{}-{}", slug(&rule), self.id(stores, &value)?);
            fields.insert(field.clone(), value.clone());
            new.push((self.handle(&field), value));
        }
        if !fields.is_empty() {
            self.store(stores)?
                .put_fields(&self.path, &fields, None)
                .map_err(Error::from)?;
        }
        let n = new.len();
        self.held.extend(new);
        Ok(n)
    }

    /// The keyed id of a value: 12 hex digits.
    fn id(&mut self, stores: &Stores, value: &Secret) -> Result<String> {
        let key = self.key(stores)?;
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(ID_CONTEXT);
        hasher.update(value.expose());
        Ok(hasher.finalize().to_hex()[..12].to_string())
    }
}

/// The id key of the capture path `path` in `store` (at `<path>-key`), when one was made; for
/// readers such as `check`, which must not make one.
pub(crate) fn read_key(store: &dyn SecretStore, path: &str) -> Result<Option<Zeroizing<[u8; 32]>>> {
    match store.get(&format!("{path}-key"), KEY_FIELD, None) {
        Ok(v) => parse_key(v.value.expose()).map(Some),
        Err(e) if e.kind == StoreErrorKind::Missing => Ok(None),
        Err(e) => Err(Error::from(e)),
    }
}

fn parse_key(text: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let bad = || Error::Entry {
        path: "capture key".to_string(),
        reason: "the capture key in the store is not 64 hex digits".to_string(),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    if text.len() != 64 {
        return Err(bad());
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A rule id as a field name: lowercase letters, digits and `-`, at most 40 characters.
fn slug(rule: &str) -> String {
    let mut out: String = rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if out.is_empty() {
        out.push_str("secret");
    }
    out
}

/// The values of the blocking findings of one file's redacted bytes: each finding's span, as
/// the redacted file holds it, labelled with its rule. The file is scanned again rather than
/// read at the gate's offsets, so the spans are those of these bytes.
pub(super) fn values_in(
    detector: &Detector,
    rel: &str,
    redacted: &[u8],
    out: &mut Vec<(String, Secret)>,
) -> usize {
    let mut n = 0;
    let blocking = detector
        .scan_bytes(rel, redacted)
        .into_iter()
        .filter(|f| f.severity == crate::detect::Severity::Error);
    for f in blocking {
        if let Some(value) = span(redacted, &f) {
            n += 1;
            out.push((f.rule.clone(), value));
        }
    }
    n
}

fn span(bytes: &[u8], f: &Finding) -> Option<Secret> {
    let start = usize::try_from(f.offset).ok()?;
    let end = start.checked_add(f.length)?;
    (f.length > 0 && end <= bytes.len()).then(|| Secret::from_slice(&bytes[start..end]))
}

/// Spans of findings gathered from a stream, to be read in a second pass over the same bytes.
#[derive(Default)]
pub(super) struct Spans {
    /// (offset, length, rule), sorted by offset.
    spans: BTreeMap<u64, (usize, String)>,
}

impl Spans {
    /// Remembers where each finding lies.
    pub fn extend(&mut self, findings: &[Finding]) {
        for f in findings.iter().filter(|f| f.length > 0) {
            self.spans.insert(f.offset, (f.length, f.rule.clone()));
        }
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Reads every span's bytes from a second pass over the same stream.
    pub fn read(&self, mut stream: impl Read) -> std::io::Result<Vec<(String, Secret)>> {
        let mut out = Vec::new();
        let mut pos = 0u64;
        let mut sink = std::io::sink();
        for (&offset, (len, rule)) in &self.spans {
            if offset < pos {
                continue; // overlaps the span before it
            }
            std::io::copy(&mut stream.by_ref().take(offset - pos), &mut sink)?;
            let mut value = Zeroizing::new(vec![0u8; *len]);
            stream.read_exact(&mut value)?;
            pos = offset + *len as u64;
            out.push((rule.clone(), Secret::from_slice(&value)));
        }
        Ok(out)
    }
}

/// The text files among the findings' paths (each once, sorted): those whose findings can be
/// captured.
pub(super) fn capturable_files(findings: &[Finding], text_files: &BTreeSet<String>) -> Vec<String> {
    let mut files: Vec<String> = findings
        .iter()
        .filter(|f| text_files.contains(&f.path))
        .map(|f| f.path.clone())
        .collect();
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_field_names() {
        assert_eq!(slug("github-pat"), "github-pat");
        assert_eq!(slug("Generic Assignment!"), "generic-assignment-");
        assert_eq!(slug(""), "secret");
        assert!(Handle::parse(&format!("local:a/b#{}-0123456789ab", slug("x.y"))).is_ok());
    }

    #[test]
    fn a_key_is_64_hex_digits() {
        let key = parse_key(&[b'a'; 64]).unwrap();
        assert_eq!(key[0], 0xaa);
        assert!(parse_key(b"abc").is_err());
        assert!(parse_key(&[b'z'; 64]).is_err());
    }

    #[test]
    fn spans_are_read_from_a_second_pass() {
        let data = b"aaaa SECRET1 bbbb SECRET22 cc";
        let finding = |offset: u64, length: usize| Finding {
            rule: "r".into(),
            path: "p".into(),
            line: 1,
            column: 1,
            offset,
            length,
            severity: crate::detect::Severity::Error,
            preview: String::new(),
            fingerprint: String::new(),
            kind: crate::detect::FindingKind::Rule,
            commit: None,
        };
        let mut spans = Spans::default();
        spans.extend(&[finding(18, 8), finding(5, 7)]);
        let got = spans.read(&data[..]).unwrap();
        let values: Vec<&[u8]> = got.iter().map(|(_, v)| v.expose()).collect();
        assert_eq!(values, [b"SECRET1".as_slice(), b"SECRET22".as_slice()]);
    }
}
