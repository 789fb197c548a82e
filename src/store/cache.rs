//! The offline cache of a vault store (`stores.X.cache`): the last values fetched.
//!
//! Invariants (SPEC "stores"):
//! - It is consulted only when the store could not answer (unreachable, sealed, overloaded),
//!   never when it answered 403 or 404: a revoked or deleted secret must not come back from a
//!   cache.
//! - An entry older than `ttl` (by its fetch time) is ignored, and dropped at the next write.
//! - It is an age-encrypted file like the local store; its identity is `<path>.key` next to it
//!   (`0600`), created with the file. Results served from it are marked from-cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sealed::{SealedFile, SealedValue, from_micros, from_plain, to_micros, to_plain};
use super::{SecretVersion, StoreError, StoreErrorKind};
use crate::error::Error;
use crate::manifest::CacheConfig;

const FORMAT: u32 = 1;

/// Which version a cached entry answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheKey {
    /// The version that was current when fetched.
    Current,
    /// The version before the current one, when fetched.
    Previous,
    /// An explicit version.
    Version(u64),
}

impl CacheKey {
    fn label(self) -> String {
        match self {
            CacheKey::Current => "current".into(),
            CacheKey::Previous => "previous".into(),
            CacheKey::Version(v) => format!("v{v}"),
        }
    }
}

/// A value set served from the cache, with when it was fetched.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The secret as it was fetched.
    pub secret: SecretVersion,
    /// When it was fetched from the store.
    pub fetched_at: DateTime<Utc>,
}

/// The cache file of one store.
#[derive(Debug, Clone)]
pub struct Cache {
    store: String,
    path: PathBuf,
    file: SealedFile,
    ttl: Duration,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Doc {
    format: u32,
    /// `path` → key label → entry.
    entries: BTreeMap<String, BTreeMap<String, Entry>>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Entry {
    version: u64,
    created_us: i64,
    fetched_us: i64,
    fields: BTreeMap<String, SealedValue>,
}

impl Cache {
    /// The cache a store's `cache` setting describes.
    pub fn new(store: &str, config: &CacheConfig) -> Result<Cache, Error> {
        let ttl = crate::manifest::parse_ttl(&config.ttl).ok_or_else(|| {
            Error::Usage(format!(
                "store `{store}`: cache ttl `{}` is not a duration such as `24h`",
                config.ttl
            ))
        })?;
        Ok(Cache::open(store, &config.path, ttl))
    }

    /// A cache file at `path` with its identity at `<path>.key`.
    pub fn open(store: &str, path: &Path, ttl: Duration) -> Cache {
        let mut key = path.as_os_str().to_owned();
        key.push(".key");
        Cache {
            store: store.to_string(),
            path: path.to_path_buf(),
            file: SealedFile::new(path, Path::new(&key)),
            ttl,
        }
    }

    /// The time-to-live of entries.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn err(&self, message: String) -> StoreError {
        StoreError::new(&self.store, "", StoreErrorKind::Other, message)
    }

    fn fresh(&self, fetched_us: i64, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(from_micros(fetched_us));
        age.to_std().map(|a| a <= self.ttl).unwrap_or(true)
    }

    /// The cached answer for `path` at `key`, if one was fetched within the TTL.
    pub fn lookup(
        &self,
        path: &str,
        key: CacheKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Cached>, StoreError> {
        let Some(plain) = self.file.read().map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let doc: Doc = from_plain(&plain, &self.path).map_err(|e| self.err(e))?;
        let Some(by_key) = doc.entries.get(path) else {
            return Ok(None);
        };
        let mut candidates: Vec<&Entry> = by_key.get(&key.label()).into_iter().collect();
        if let CacheKey::Version(v) = key {
            // A pinned version is the same data whichever way it was fetched.
            candidates.extend(by_key.values().filter(|e| e.version == v));
        }
        Ok(candidates
            .into_iter()
            .filter(|e| self.fresh(e.fetched_us, now))
            .max_by_key(|e| e.fetched_us)
            .map(|e| Cached {
                secret: SecretVersion {
                    fields: e
                        .fields
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                    version: e.version,
                    created: from_micros(e.created_us),
                },
                fetched_at: from_micros(e.fetched_us),
            }))
    }

    /// Records freshly fetched secrets (one locked write for the batch) and drops expired
    /// entries.
    pub fn record(
        &self,
        fetched: &[(String, CacheKey, &SecretVersion)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if fetched.is_empty() {
            return Ok(());
        }
        self.file
            .update(|plain| {
                let mut doc: Doc = match plain {
                    Some(p) => from_plain(p, &self.path)?,
                    None => Doc::default(),
                };
                doc.format = FORMAT;
                for (path, key, secret) in fetched {
                    doc.entries.entry(path.clone()).or_default().insert(
                        key.label(),
                        Entry {
                            version: secret.version,
                            created_us: to_micros(secret.created),
                            fetched_us: to_micros(now),
                            fields: secret
                                .fields
                                .iter()
                                .map(|(k, v)| (k.clone(), SealedValue(v.clone())))
                                .collect(),
                        },
                    );
                }
                for by_key in doc.entries.values_mut() {
                    by_key.retain(|_, e| self.fresh(e.fetched_us, now));
                }
                doc.entries.retain(|_, by_key| !by_key.is_empty());
                Ok((Some(to_plain(&doc)?), ()))
            })
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn secret(v: &str, version: u64) -> SecretVersion {
        SecretVersion {
            fields: BTreeMap::from([("k".to_string(), Secret::from(v.to_string()))]),
            version,
            created: Utc::now(),
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open("vault", &dir.path().join("c.age"), Duration::from_secs(60));
        let t0 = Utc::now();
        let s = secret("value-1", 3);
        cache
            .record(&[("a/b".into(), CacheKey::Current, &s)], t0)
            .unwrap();
        let hit = cache.lookup("a/b", CacheKey::Current, t0).unwrap().unwrap();
        assert_eq!(hit.secret.version, 3);
        assert_eq!(hit.secret.fields["k"].expose(), b"value-1");
        // The pinned version is found through the entry fetched as current.
        assert!(
            cache
                .lookup("a/b", CacheKey::Version(3), t0)
                .unwrap()
                .is_some()
        );
        assert!(
            cache
                .lookup("a/b", CacheKey::Previous, t0)
                .unwrap()
                .is_none()
        );
        let later = t0 + chrono::Duration::seconds(61);
        assert!(
            cache
                .lookup("a/b", CacheKey::Current, later)
                .unwrap()
                .is_none()
        );
    }
}
