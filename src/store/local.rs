//! The embedded local store: one age-encrypted file of versioned secrets, for one host.
//!
//! The document maps path → versions (like KV v2: each version holds every field of the
//! secret, with its created time), keeping the newest `max_versions` (default 10, at least 2 so
//! that the current and previous versions survive a rotation). Reads decrypt the file; writes
//! are a locked read-modify-write of the whole file ([`super::sealed`]), so concurrent writers
//! on one host never lose an update. The identity is created on first write.
//!
//! Per field, the document records where the field's current value was first written (format
//! 2): rotating one field of a secret writes a new version of the whole secret, and without
//! this record its siblings would look rotated too, or, once the versions that held their
//! first write are pruned, younger than they are. A file of format 1 (no record) is read, and
//! the record is filled from the kept versions at its next write.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::sealed::{SealedFile, SealedValue, from_micros, from_plain, to_micros, to_plain};
use super::{
    Change, PathHistory, SecretMeta, SecretStore, SecretVersion, StoreError, StoreErrorKind,
    VersionMeta,
};
use crate::manifest::LocalConfig;
use crate::secret::Secret;

const DEFAULT_MAX_VERSIONS: usize = 10;
/// The format written. Format 1 (without per-field records) is still read.
const FORMAT: u32 = 2;
const READABLE_FORMATS: [u32; 2] = [1, 2];

/// The embedded age-encrypted store.
#[derive(Debug)]
pub struct LocalStore {
    name: String,
    file: SealedFile,
    path: std::path::PathBuf,
    max_versions: usize,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Doc {
    format: u32,
    secrets: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Entry {
    current: u64,
    versions: BTreeMap<u64, Version>,
    /// Per field of the current version: where its value was first written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    changed: BTreeMap<String, FieldChange>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct FieldChange {
    version: u64,
    created_us: i64,
}

impl Entry {
    fn meta(&self, path: &str) -> SecretMeta {
        SecretMeta {
            path: path.to_string(),
            current: self.current,
            versions: self
                .versions
                .iter()
                .map(|(v, ver)| VersionMeta {
                    version: *v,
                    created: from_micros(ver.created_us),
                    deleted: None,
                    destroyed: false,
                })
                .collect(),
            changed: self
                .changed
                .iter()
                .map(|(k, c)| {
                    let change = Change {
                        version: c.version,
                        created: from_micros(c.created_us),
                    };
                    (k.clone(), change)
                })
                .collect(),
        }
    }

    /// Version `v`, which the entry holds.
    fn version(&self, v: u64) -> SecretVersion {
        let found = &self.versions[&v];
        SecretVersion {
            fields: found
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            version: v,
            created: from_micros(found.created_us),
        }
    }

    /// Where each field of the current version got its value, for fields without a record
    /// (a file of format 1): compared across the kept versions.
    fn backfill(&mut self, path: &str) {
        let Some(current) = self.versions.get(&self.current) else {
            return;
        };
        let missing: Vec<String> = current
            .fields
            .keys()
            .filter(|f| !self.changed.contains_key(*f))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let history = PathHistory {
            meta: self.meta(path),
            versions: self.versions.keys().map(|v| self.version(*v)).collect(),
        };
        for field in missing {
            if let Some(c) = history.last_changed(&field) {
                let record = FieldChange {
                    version: c.version,
                    created_us: to_micros(c.created),
                };
                self.changed.insert(field, record);
            }
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Version {
    created_us: i64,
    fields: BTreeMap<String, SealedValue>,
}

impl LocalStore {
    /// A local store as configured in the manifest (paths already resolved).
    pub fn new(name: &str, config: &LocalConfig) -> LocalStore {
        LocalStore::open(
            name,
            &config.path,
            &config.identity,
            config
                .max_versions
                .map(|n| n.max(2) as usize)
                .unwrap_or(DEFAULT_MAX_VERSIONS),
        )
    }

    /// A local store at `path`, opened by `identity`, keeping `max_versions` per secret (≥ 2).
    pub fn open(name: &str, path: &Path, identity: &Path, max_versions: usize) -> LocalStore {
        LocalStore {
            name: name.to_string(),
            file: SealedFile::new(path, identity),
            path: path.to_path_buf(),
            max_versions: max_versions.max(2),
        }
    }

    /// Creates the identity (`0600`) and an empty store when they do not exist yet; an
    /// existing store is left as it is. Returns whether the store file was created.
    pub fn create(&self) -> Result<bool, StoreError> {
        self.file
            .update(|plain| match plain {
                Some(_) => Ok((None, false)),
                None => {
                    let doc = Doc {
                        format: FORMAT,
                        ..Doc::default()
                    };
                    Ok((Some(to_plain(&doc)?), true))
                }
            })
            .map_err(|e| self.err("", StoreErrorKind::Other, e))
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, path: &str, kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError::new(&self.name, path, kind, message)
    }

    fn load(&self, path: &str) -> Result<Doc, StoreError> {
        let plain = self
            .file
            .read()
            .map_err(|e| self.err(path, StoreErrorKind::Other, e))?;
        match plain {
            None => Ok(Doc::default()),
            Some(p) => self.parse(&p, path),
        }
    }

    fn parse(&self, plain: &[u8], path: &str) -> Result<Doc, StoreError> {
        let doc: Doc =
            from_plain(plain, &self.path).map_err(|e| self.err(path, StoreErrorKind::Other, e))?;
        if !READABLE_FORMATS.contains(&doc.format) {
            return Err(self.err(
                path,
                StoreErrorKind::Other,
                format!(
                    "{}: unknown store format {}; a newer agentbak wrote it",
                    self.path.display(),
                    doc.format
                ),
            ));
        }
        Ok(doc)
    }

    fn entry<'d>(&self, doc: &'d Doc, path: &str) -> Result<&'d Entry, StoreError> {
        doc.secrets
            .get(path)
            .ok_or_else(|| self.missing(path, "no such secret".into()))
    }

    fn missing(&self, path: &str, what: String) -> StoreError {
        self.err(path, StoreErrorKind::Missing, what)
    }
}

impl SecretStore for LocalStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn read(&self, path: &str, version: Option<u64>) -> Result<SecretVersion, StoreError> {
        let doc = self.load(path)?;
        let entry = self.entry(&doc, path)?;
        let v = version.unwrap_or(entry.current);
        if !entry.versions.contains_key(&v) {
            let why = if v < entry.versions.keys().next().copied().unwrap_or(0) {
                format!(
                    "version {v} was pruned (max_versions {})",
                    self.max_versions
                )
            } else {
                format!("no version {v} (current is {})", entry.current)
            };
            return Err(self.missing(path, why));
        }
        Ok(entry.version(v))
    }

    fn metadata(&self, path: &str) -> Result<SecretMeta, StoreError> {
        let doc = self.load(path)?;
        Ok(self.entry(&doc, path)?.meta(path))
    }

    fn history(&self, path: &str) -> Result<PathHistory, StoreError> {
        // One decryption of the file for the metadata and every version.
        let doc = self.load(path)?;
        let entry = self.entry(&doc, path)?;
        Ok(PathHistory {
            meta: entry.meta(path),
            versions: entry.versions.keys().map(|v| entry.version(*v)).collect(),
        })
    }

    fn put_fields(
        &self,
        path: &str,
        new: &BTreeMap<String, Secret>,
        cas: Option<u64>,
    ) -> Result<u64, StoreError> {
        let outcome = self.file.update(|plain| {
            let mut doc = match plain {
                Some(p) => self.parse(p, path).map_err(|e| e.message)?,
                None => Doc::default(),
            };
            doc.format = FORMAT;
            let entry = doc.secrets.entry(path.to_string()).or_default();
            if let Some(expected) = cas
                && expected != entry.current
            {
                return Ok((None, Err(entry.current)));
            }
            entry.backfill(path);
            let mut fields = entry
                .versions
                .get(&entry.current)
                .map(|v| v.fields.clone())
                .unwrap_or_default();
            let next = entry.current + 1;
            let created_us = to_micros(Utc::now());
            for (field, value) in new {
                let same = fields.get(field).is_some_and(|old| old.0 == *value);
                if !same || !entry.changed.contains_key(field) {
                    let record = FieldChange {
                        version: next,
                        created_us,
                    };
                    entry.changed.insert(field.clone(), record);
                }
                fields.insert(field.clone(), SealedValue(value.clone()));
            }
            entry.versions.insert(next, Version { created_us, fields });
            entry.current = next;
            while entry.versions.len() > self.max_versions {
                entry.versions.pop_first();
            }
            Ok((Some(to_plain(&doc)?), Ok(next)))
        });
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(current)) => Err(self.err(
                path,
                StoreErrorKind::Conflict,
                format!(
                    "check-and-set expected version {}, the current is {current}",
                    cas.unwrap_or_default()
                ),
            )),
            Err(e) => Err(self.err(path, StoreErrorKind::Other, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let doc = self.load(prefix)?;
        Ok(doc
            .secrets
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, max: usize) -> LocalStore {
        LocalStore::open("local", &dir.join("s.age"), &dir.join("s.key"), max)
    }

    fn s(v: &str) -> Secret {
        Secret::from(v.to_string())
    }

    #[test]
    fn create_makes_identity_and_empty_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(
            "local",
            &dir.path().join("s.age"),
            &dir.path().join("k"),
            10,
        );
        assert!(store.create().unwrap());
        assert!(dir.path().join("k").exists());
        assert_eq!(store.list("").unwrap(), Vec::<String>::new());
        store
            .put("a", "f", &Secret::from_slice(b"value-1234"), None)
            .unwrap();
        assert!(!store.create().unwrap(), "an existing store is kept");
        assert_eq!(store.list("").unwrap(), vec!["a".to_string()]);
    }

    #[test]
    fn put_keeps_other_fields_and_numbers_versions() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 10);
        assert_eq!(st.put("a/b", "user", &s("u1"), None).unwrap(), 1);
        assert_eq!(st.put("a/b", "pass", &s("p1"), None).unwrap(), 2);
        let cur = st.read("a/b", None).unwrap();
        assert_eq!(cur.version, 2);
        assert_eq!(cur.fields["user"].expose(), b"u1");
        assert_eq!(cur.fields["pass"].expose(), b"p1");
        let v1 = st.read("a/b", Some(1)).unwrap();
        assert!(!v1.fields.contains_key("pass"));
        assert_eq!(st.list("").unwrap(), vec!["a/b".to_string()]);
    }

    #[test]
    fn missing_paths_versions_and_fields_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 10);
        assert_eq!(
            st.get("nope", "f", None).unwrap_err().kind,
            StoreErrorKind::Missing
        );
        st.put("p", "f", &s("v"), None).unwrap();
        assert_eq!(
            st.get("p", "other", None).unwrap_err().kind,
            StoreErrorKind::Missing
        );
        assert_eq!(
            st.get("p", "f", Some(9)).unwrap_err().kind,
            StoreErrorKind::Missing
        );
    }

    #[test]
    fn old_versions_are_pruned_to_max_versions() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 3);
        for i in 1..=5 {
            st.put("p", "f", &s(&format!("v{i}")), None).unwrap();
        }
        let meta = st.metadata("p").unwrap();
        assert_eq!(
            meta.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(meta.previous(), Some(4));
        let err = st.read("p", Some(1)).unwrap_err();
        assert!(err.message.contains("pruned"), "{err}");
    }

    #[test]
    fn check_and_set_refuses_a_stale_version() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 10);
        assert_eq!(st.put("p", "f", &s("a"), Some(0)).unwrap(), 1);
        let err = st.put("p", "f", &s("b"), Some(0)).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Conflict);
        assert_eq!(st.put("p", "f", &s("b"), Some(1)).unwrap(), 2);
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
        pairs.iter().map(|(k, v)| (k.to_string(), s(v))).collect()
    }

    #[test]
    fn several_fields_are_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 10);
        let v = st
            .put_fields(
                "a",
                &fields(&[("user", "u1"), ("pass", "p1"), ("k", "x")]),
                None,
            )
            .unwrap();
        assert_eq!(v, 1, "an import starts at version 1");
        assert_eq!(st.read("a", None).unwrap().fields.len(), 3);
        let v = st
            .put_fields("a", &fields(&[("pass", "p2"), ("k", "y")]), Some(1))
            .unwrap();
        assert_eq!(v, 2);
        assert_eq!(st.read("a", None).unwrap().fields["user"].expose(), b"u1");
    }

    #[test]
    fn a_siblings_rotation_does_not_move_a_fields_change_even_past_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 3);
        st.put_fields("a", &fields(&[("user", "u"), ("pass", "p0")]), None)
            .unwrap();
        for i in 1..=5 {
            st.put("a", "pass", &s(&format!("p{i}")), None).unwrap();
        }
        // Writing the same value again is not a change either.
        st.put("a", "user", &s("u"), None).unwrap();
        let history = st.history("a").unwrap();
        assert_eq!(
            history
                .versions
                .iter()
                .map(|v| v.version)
                .collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert_eq!(history.last_changed("user").map(|c| c.version), Some(1));
        assert_eq!(history.last_changed("pass").map(|c| c.version), Some(6));
        let meta = st.metadata("a").unwrap();
        assert_eq!(meta.changed["user"].version, 1);
    }

    #[test]
    fn a_format_1_store_is_read_and_upgraded_with_its_changes_backfilled() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), 10);
        let v = |fields: &[(&str, &str)], us| Version {
            created_us: us,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), SealedValue(s(v))))
                .collect(),
        };
        let old = Doc {
            format: 1,
            secrets: BTreeMap::from([(
                "a".to_string(),
                Entry {
                    current: 2,
                    versions: BTreeMap::from([
                        (1, v(&[("user", "u"), ("pass", "p1")], 1_000_000)),
                        (2, v(&[("user", "u"), ("pass", "p2")], 2_000_000)),
                    ]),
                    changed: BTreeMap::new(),
                },
            )]),
        };
        st.file
            .update(|_| Ok((Some(to_plain(&old).map_err(|e| e.to_string())?), ())))
            .unwrap();
        assert_eq!(st.read("a", None).unwrap().version, 2);
        st.put("a", "pass", &s("p3"), None).unwrap();
        let meta = st.metadata("a").unwrap();
        assert_eq!(meta.changed["user"].version, 1);
        assert_eq!(meta.changed["pass"].version, 3);
        let plain = st.file.read().unwrap().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(doc["format"], 2);
    }
}
