//! Secret stores and the resolver: where handles are turned into values.
//!
//! A [`SecretStore`] holds versioned key/value secrets (Vault/OpenBao KV v2, the embedded
//! age-encrypted [`LocalStore`]) or reads the process environment ([`EnvStore`]). [`Stores`]
//! holds every store of a manifest by name; [`resolve`] fetches many handles at once with
//! de-duplication, bounded concurrency, retries and one deadline, and reports a [`Status`] per
//! handle, consulting a store's [`cache::Cache`] only when the store cannot be reached.
//!
//! Invariants:
//! - Values travel only as [`Secret`]. No error, status, log line or `Debug` output of this
//!   module holds a value: errors carry the store name, the path and a message built from
//!   metadata (versions, HTTP status, server error strings), never from a response body.
//! - The trait is synchronous; tokio lives only inside the Vault store (a runtime owned by it),
//!   so the rest of the crate stays sync.
//! - A missing value is an error ([`StoreErrorKind::Missing`]), never an empty string.

pub mod cache;
mod env;
mod local;
mod resolver;
pub(crate) mod sealed;
mod vault;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::handle::{Handle, Target};
use crate::manifest::{Manifest, StoreConfig};
use crate::secret::Secret;

pub use cache::Cache;
pub use env::EnvStore;
pub use local::LocalStore;
pub use resolver::{
    HandleHistory, Resolution, ResolveOptions, RetryPolicy, Status, VersionChoice, resolve,
    resolve_histories, resolve_one,
};
pub use vault::VaultStore;

/// The field name under which the env store returns a variable's value.
pub const ENV_FIELD: &str = "value";

/// One field of a secret at one version.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The value.
    pub value: Secret,
    /// The store's version number (`0` for the unversioned env store).
    pub version: u64,
    /// When this version was written (for the env store: when it was read).
    pub created: DateTime<Utc>,
}

/// Every field of a secret at one version: what one store request returns.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// Field name to value.
    pub fields: BTreeMap<String, Secret>,
    /// The store's version number (`0` for the env store).
    pub version: u64,
    /// When this version was written.
    pub created: DateTime<Utc>,
}

impl SecretVersion {
    /// One field of this version, or `None` when the version lacks it.
    pub fn field(&self, field: &str) -> Option<Versioned> {
        self.fields.get(field).map(|value| Versioned {
            value: value.clone(),
            version: self.version,
            created: self.created,
        })
    }
}

/// Metadata of one version of a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VersionMeta {
    /// The version number.
    pub version: u64,
    /// When it was written.
    pub created: DateTime<Utc>,
    /// When it was soft-deleted, if it was.
    pub deleted: Option<DateTime<Utc>>,
    /// Whether its data was destroyed for good.
    pub destroyed: bool,
}

impl VersionMeta {
    /// Whether the version can still be read.
    pub fn is_live(&self) -> bool {
        self.deleted.is_none() && !self.destroyed
    }
}

/// Metadata of a secret: its versions, oldest first, and which one is current.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretMeta {
    /// The secret's path.
    pub path: String,
    /// The current (newest) version number.
    pub current: u64,
    /// Every version the store still knows, oldest first.
    pub versions: Vec<VersionMeta>,
    /// Per field, where its current value was first written, for stores that record it (the
    /// local store). Empty for stores that do not (KV v2): [`PathHistory::last_changed`] then
    /// compares the field across the versions the store keeps.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, Change>,
}

/// Where a field's value was first written: a version and its created time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The version that first held the value.
    pub version: u64,
    /// When that version was written.
    pub created: DateTime<Utc>,
}

/// One value a field has had: the value and where it first appeared.
#[derive(Debug, Clone)]
pub struct FieldValue {
    /// The value.
    pub value: Secret,
    /// The version where the value first appeared (the first of a run of versions holding it).
    pub since: Change,
}

/// Every readable version of a secret and its metadata: what [`SecretStore::history`] returns.
#[derive(Debug, Clone)]
pub struct PathHistory {
    /// The secret's metadata (versions, current, per-field changes where the store keeps them).
    pub meta: SecretMeta,
    /// Every version that could be read (not deleted, destroyed or pruned), oldest first.
    pub versions: Vec<SecretVersion>,
}

impl PathHistory {
    /// The current version, when it can be read (a deleted current version cannot).
    pub fn current(&self) -> Option<&SecretVersion> {
        self.versions
            .last()
            .filter(|v| v.version == self.meta.current)
    }

    /// The values `field` has had across the readable versions, oldest to newest: one entry
    /// per run of consecutive readable versions that hold the same value. A value that comes
    /// back after another (or after a version without the field) is a new entry.
    pub fn field(&self, field: &str) -> Vec<FieldValue> {
        let mut out: Vec<FieldValue> = Vec::new();
        let mut open = false;
        for v in &self.versions {
            match v.fields.get(field) {
                Some(value) if open && out.last().is_some_and(|l| l.value == *value) => {}
                Some(value) => {
                    out.push(FieldValue {
                        value: value.clone(),
                        since: Change {
                            version: v.version,
                            created: v.created,
                        },
                    });
                    open = true;
                }
                None => open = false,
            }
        }
        out
    }

    /// Where the current value of `field` was first written, or `None` when the current
    /// version cannot be read or lacks the field. The store's own record wins; without one,
    /// the field is compared across the readable versions (so for a value older than every
    /// version the store keeps, the oldest kept version: the age is then a lower bound).
    pub fn last_changed(&self, field: &str) -> Option<Change> {
        let current = self.current()?;
        current.fields.get(field)?;
        if let Some(c) = self.meta.changed.get(field)
            && c.version <= current.version
        {
            return Some(*c);
        }
        // The current version is the last readable one and holds the field: the last run is
        // the current value's.
        self.field(field).last().map(|f| f.since)
    }
}

impl SecretMeta {
    /// Metadata of one version.
    pub fn version(&self, v: u64) -> Option<&VersionMeta> {
        self.versions.iter().find(|m| m.version == v)
    }

    /// The newest readable version older than the current one: the rotation grace version.
    pub fn previous(&self) -> Option<u64> {
        self.versions
            .iter()
            .filter(|m| m.version < self.current && m.is_live())
            .map(|m| m.version)
            .max()
    }
}

/// What went wrong, as far as a caller needs to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreErrorKind {
    /// No such secret, version or field (HTTP 404, including soft-deleted and destroyed
    /// versions). Never retried.
    Missing,
    /// The credentials do not allow it (HTTP 403, no token). Never retried.
    Forbidden,
    /// The server is sealed. Retried.
    Sealed,
    /// The server answered but cannot serve now (HTTP 429, 5xx, standby). Retried.
    Unavailable,
    /// No answer: connection refused or reset, timeout, DNS. Retried.
    Unreachable,
    /// The mount is a KV version 1 engine; agentbak needs version 2.
    KvV1,
    /// A check-and-set write lost against a concurrent writer.
    Conflict,
    /// Anything else: a bad configuration, an unreadable local file.
    Other,
}

impl StoreErrorKind {
    /// Whether another attempt may succeed: the store did not answer, or answered "not now".
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            StoreErrorKind::Sealed | StoreErrorKind::Unavailable | StoreErrorKind::Unreachable
        )
    }

    /// A short lowercase label for reports.
    pub fn label(self) -> &'static str {
        match self {
            StoreErrorKind::Missing => "missing",
            StoreErrorKind::Forbidden => "forbidden",
            StoreErrorKind::Sealed => "sealed",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Unreachable => "unreachable",
            StoreErrorKind::KvV1 => "kv v1 mount",
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::Other => "error",
        }
    }
}

/// An error of a store: which store, which path, what kind, and a message. Never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct StoreError {
    /// The store's name in the manifest.
    pub store: String,
    /// The secret path (or variable name) involved; empty for store-wide errors.
    pub path: String,
    /// What went wrong.
    pub kind: StoreErrorKind,
    /// Detail for people: a server error string, a hint. Never holds a value.
    pub message: String,
}

impl StoreError {
    /// Builds an error.
    pub fn new(
        store: &str,
        path: &str,
        kind: StoreErrorKind,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError {
            store: store.to_string(),
            path: path.to_string(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store `{}`", self.store)?;
        if !self.path.is_empty() {
            write!(f, ", `{}`", self.path)?;
        }
        write!(f, ": {}", self.kind.label())?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// A secret store. Implementations are cheap to share between threads; every method may block
/// on I/O (network or disk) but never longer than the store's own timeout.
pub trait SecretStore: Send + Sync {
    /// The store's name in the manifest (the scheme of its handles).
    fn name(&self) -> &str;

    /// The store's kind: `vault`, `local` or `env`.
    fn kind(&self) -> &'static str;

    /// Every field of `path` at the current (`None`) or a given version, in one request.
    fn read(&self, path: &str, version: Option<u64>) -> Result<SecretVersion, StoreError>;

    /// One field of `path` at the current (`None`) or a given version, with its version number
    /// and created time. A field the version lacks is [`StoreErrorKind::Missing`].
    fn get(&self, path: &str, field: &str, version: Option<u64>) -> Result<Versioned, StoreError> {
        let read = self.read(path, version)?;
        read.field(field).ok_or_else(|| {
            StoreError::new(
                self.name(),
                path,
                StoreErrorKind::Missing,
                format!("version {} has no field `{field}`", read.version),
            )
        })
    }

    /// The versions of `path`, their created times, and which were deleted or destroyed.
    fn metadata(&self, path: &str) -> Result<SecretMeta, StoreError>;

    /// Every readable version of `path`, oldest first, with its metadata: one metadata read,
    /// then each live version once. What field histories, "last changed" and the known values
    /// of a snapshot are computed from ([`PathHistory`]). Stores override it to need fewer
    /// requests (the local store decrypts its file once).
    fn history(&self, path: &str) -> Result<PathHistory, StoreError> {
        let meta = self.metadata(path)?;
        let mut versions = Vec::new();
        for m in meta.versions.iter().filter(|m| m.is_live()) {
            match self.read(path, Some(m.version)) {
                Ok(v) => versions.push(v),
                // Deleted or pruned between the two requests: not a kept version any more.
                Err(e) if e.kind == StoreErrorKind::Missing => {}
                Err(e) => return Err(e),
            }
        }
        Ok(PathHistory { meta, versions })
    }

    /// Writes a new version of `path` in which `field` holds `value` and every other field keeps
    /// its current value. With `cas`, the write happens only if the current version is `cas`
    /// (`0`: only if the secret does not exist yet); otherwise [`StoreErrorKind::Conflict`].
    /// Returns the new version number.
    fn put(
        &self,
        path: &str,
        field: &str,
        value: &Secret,
        cas: Option<u64>,
    ) -> Result<u64, StoreError> {
        let one = BTreeMap::from([(field.to_string(), value.clone())]);
        self.put_fields(path, &one, cas)
    }

    /// Writes one new version of `path` in which every field of `fields` holds its value and
    /// every other field keeps its current value: several fields, one version (an import of a
    /// secret starts at version 1). `cas` and the result as for [`SecretStore::put`].
    fn put_fields(
        &self,
        path: &str,
        fields: &BTreeMap<String, Secret>,
        cas: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Every secret path under `prefix` (`""` for all), recursively, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// The store's transit engine, for stores that have one (Vault/OpenBao).
    fn transit(&self) -> Option<&dyn Transit> {
        None
    }
}

/// The Vault/OpenBao transit engine: signatures by a key that never leaves the server.
pub trait Transit {
    /// Signs `message` with the Ed25519 key `name` of the engine at `mount`: the key version
    /// used and the 64-byte signature, base64.
    fn sign(&self, mount: &str, name: &str, message: &[u8]) -> Result<(u64, String), StoreError>;

    /// The public keys of every version of key `name`, and the oldest version the engine still
    /// accepts (`min_decryption_version`).
    fn public_keys(&self, mount: &str, name: &str) -> Result<TransitKeys, StoreError>;
}

/// A transit key's public keys by version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitKeys {
    /// Version to the public key, base64 of its 32 bytes.
    pub keys: BTreeMap<u64, String>,
    /// Versions below this one are retired by the engine.
    pub min_version: u64,
}

/// Where a handle points inside its store: path, field and pinned version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// The secret path (or, for the env store, the variable name).
    pub path: String,
    /// The field (for the env store, [`ENV_FIELD`]).
    pub field: String,
    /// A pinned version, if the handle has one.
    pub version: Option<u64>,
}

impl Address {
    /// The address a handle names.
    pub fn of(handle: &Handle) -> Address {
        match &handle.target {
            Target::Kv {
                path,
                version,
                field,
            } => Address {
                path: path.clone(),
                field: field.clone(),
                version: *version,
            },
            Target::Env { name } => Address {
                path: name.clone(),
                field: ENV_FIELD.to_string(),
                version: None,
            },
        }
    }
}

/// Every store of a manifest, by name, with the caches of those that have one.
pub struct Stores {
    agent: String,
    stores: BTreeMap<String, Box<dyn SecretStore>>,
    caches: BTreeMap<String, Cache>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("agent", &self.agent)
            .field("stores", &self.stores.keys().collect::<Vec<_>>())
            .field("caches", &self.caches.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Stores {
    /// An empty set of stores for `agent` (whose name fills `{agent}` in handle paths).
    pub fn new(agent: &str) -> Stores {
        Stores {
            agent: agent.to_string(),
            stores: BTreeMap::new(),
            caches: BTreeMap::new(),
        }
    }

    /// Builds every store of a validated manifest. No network traffic happens here: Vault
    /// logins and token look-ups wait for the first request, so a command that touches only the
    /// local store works while the vault is down.
    pub fn from_manifest(m: &Manifest) -> Result<Stores, Error> {
        let mut stores = Stores::new(&m.agent);
        for (name, config) in &m.stores {
            let store: Box<dyn SecretStore> = match config {
                StoreConfig::Vault(v) => {
                    if let Some(c) = &v.cache {
                        stores.caches.insert(name.clone(), Cache::new(name, c)?);
                    }
                    Box::new(VaultStore::new(name, v)?)
                }
                StoreConfig::Local(l) => Box::new(LocalStore::new(name, l)),
                StoreConfig::Env(_) => Box::new(EnvStore::new(name)),
            };
            stores.stores.insert(name.clone(), store);
        }
        Ok(stores)
    }

    /// Adds (or replaces) a store under its name.
    pub fn insert(&mut self, store: Box<dyn SecretStore>) {
        self.stores.insert(store.name().to_string(), store);
    }

    /// Gives the store `name` a cache.
    pub fn set_cache(&mut self, name: &str, cache: Cache) {
        self.caches.insert(name.to_string(), cache);
    }

    /// The store called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn SecretStore> {
        self.stores.get(name).map(|s| s.as_ref())
    }

    /// The cache of the store called `name`, if it has one.
    pub fn cache(&self, name: &str) -> Option<&Cache> {
        self.caches.get(name)
    }

    /// Store names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// The agent name that fills `{agent}`.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The store a handle points into, or an [`StoreErrorKind::Other`] error naming it.
    pub fn for_handle(&self, handle: &Handle) -> Result<&dyn SecretStore, StoreError> {
        self.get(&handle.store).ok_or_else(|| {
            StoreError::new(
                &handle.store,
                "",
                StoreErrorKind::Other,
                "no such store in the manifest's `stores`",
            )
        })
    }
}

/// A small, non-cryptographic random number for retry jitter and temporary file names.
pub(crate) fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(versions: &[(u64, bool, bool)]) -> SecretMeta {
        SecretMeta {
            path: "p".into(),
            current: versions.iter().map(|v| v.0).max().unwrap_or(0),
            versions: versions
                .iter()
                .map(|&(version, deleted, destroyed)| VersionMeta {
                    version,
                    created: Utc::now(),
                    deleted: deleted.then(Utc::now),
                    destroyed,
                })
                .collect(),
            changed: BTreeMap::new(),
        }
    }

    #[test]
    fn previous_skips_deleted_and_destroyed_versions() {
        assert_eq!(
            meta(&[(1, false, false), (2, false, false), (3, false, false)]).previous(),
            Some(2)
        );
        assert_eq!(
            meta(&[(1, false, false), (2, true, false), (3, false, false)]).previous(),
            Some(1)
        );
        assert_eq!(
            meta(&[(1, false, true), (2, true, false), (3, false, false)]).previous(),
            None
        );
        assert_eq!(meta(&[(1, false, false)]).previous(), None);
    }

    fn version(v: u64, fields: &[(&str, &str)]) -> SecretVersion {
        SecretVersion {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), Secret::from(v.to_string())))
                .collect(),
            version: v,
            created: DateTime::from_timestamp(v as i64 * 1000, 0).unwrap(),
        }
    }

    #[test]
    fn last_changed_is_per_field_and_the_stores_record_wins() {
        let mut history = PathHistory {
            meta: meta(&[(1, false, false), (2, false, false), (3, false, false)]),
            versions: vec![
                version(1, &[("user", "u"), ("pass", "p1")]),
                version(2, &[("user", "u"), ("pass", "p2")]),
                version(3, &[("user", "u"), ("pass", "p2"), ("new", "n")]),
            ],
        };
        let at = |c: Option<Change>| c.map(|c| c.version);
        assert_eq!(at(history.last_changed("user")), Some(1));
        assert_eq!(at(history.last_changed("pass")), Some(2));
        assert_eq!(at(history.last_changed("new")), Some(3));
        assert_eq!(at(history.last_changed("absent")), None);
        // The local store remembers a change older than every kept version.
        history.meta.changed.insert(
            "user".into(),
            Change {
                version: 0,
                created: DateTime::from_timestamp(5, 0).unwrap(),
            },
        );
        assert_eq!(at(history.last_changed("user")), Some(0));
        // A deleted current version: nothing is current.
        history.versions.pop();
        assert_eq!(at(history.last_changed("pass")), None);
        assert!(history.current().is_none());
    }

    #[test]
    fn only_unanswered_or_busy_stores_are_retried() {
        use StoreErrorKind::*;
        for k in [Sealed, Unavailable, Unreachable] {
            assert!(k.is_transient(), "{k:?}");
        }
        for k in [Missing, Forbidden, KvV1, Conflict, Other] {
            assert!(!k.is_transient(), "{k:?}");
        }
    }

    #[test]
    fn errors_name_store_path_and_kind() {
        let e = StoreError::new(
            "vault",
            "agents/kevin/openai",
            StoreErrorKind::Forbidden,
            "permission denied",
        );
        assert_eq!(
            e.to_string(),
            "store `vault`, `agents/kevin/openai`: forbidden: permission denied"
        );
    }

    #[test]
    fn env_handles_address_the_variable() {
        let a = Address::of(&Handle::parse("env:SESSION_TOKEN").unwrap());
        assert_eq!(a.path, "SESSION_TOKEN");
        assert_eq!(a.field, ENV_FIELD);
        let b = Address::of(&Handle::parse("vault:a/b?version=4#f").unwrap());
        assert_eq!(
            (b.path.as_str(), b.field.as_str(), b.version),
            ("a/b", "f", Some(4))
        );
    }
}
