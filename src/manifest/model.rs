//! The manifest model: what `agentbak.json` may hold (SPEC.md "The manifest").
//!
//! Every struct denies unknown fields. `schemas/manifest.schema.json` is generated from this
//! model (`crate::schema`): the doc comments here are its descriptions, and the
//! `#[schemars(...)]` attributes add what serde does not state (patterns, ranges, "exactly
//! one locator").

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::handle::Handle;

/// `agentbak.json`: what to back up, where secrets sit in it, and which stores hold them.
/// See docs/manifest.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "agentbak manifest"))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Path or URL of this schema, for editors.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Manifest format version; only `1` exists.
    #[cfg_attr(feature = "schema", schemars(extend("const" = 1)))]
    pub version: u32,
    /// The agent's name; fills `{agent}` in handle paths.
    #[cfg_attr(feature = "schema", schemars(pattern(r"^[A-Za-z0-9._-]+$")))]
    pub agent: String,
    /// The agent's state folder, relative to this file; `~` expands.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub state: PathBuf,
    /// Where snapshots go, relative to this file; `~` expands.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub repository: PathBuf,
    /// How snapshots are stored: `packs` (incremental: each chunk of content stored once;
    /// the default) or `archives` (one self-contained tar + zstd archive per snapshot).
    #[serde(default)]
    pub repository_format: RepositoryFormat,
    /// Gitignore-style globs of files to back up, relative to `state`.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Gitignore-style globs of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Age encryption of archives; absent means unencrypted archives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Named secret stores; the name is the scheme of a handle.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(extend("propertyNames" = {"pattern": "^[a-z][a-z0-9_-]*$"}))
    )]
    pub stores: BTreeMap<String, StoreConfig>,
    /// Where secret values live in the state, each with its handle.
    #[serde(default)]
    pub secrets: Vec<SecretRule>,
    /// Detection settings for the leak gate and `scan`.
    #[serde(default)]
    pub detect: Detect,
    /// Defaults for `prune`, with restic's meaning.
    #[serde(default)]
    pub retention: Retention,
    /// Rotation policy for `verify --check-handles` and `secrets status`.
    #[serde(default)]
    pub rotation: Rotation,
    /// Archive compression.
    #[serde(default)]
    pub compression: Compression,
    /// Snapshot signatures (docs/signing.md); absent means snapshots are not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
    /// Where snapshot stores the secrets it captures (docs/living-agents.md); absent means
    /// `agents/{agent}/captured` in the manifest's first key/value store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
}

/// `capture`: the store and path under which captured secrets live, one field per value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// A key/value store of `stores`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub store: String,
    /// The secret path; `{agent}` is filled with the agent's name.
    #[serde(default = "default_capture_path")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub path: String,
}

impl Manifest {
    /// Where captured secrets go: `(store, path)` with `{agent}` filled. `capture` when set,
    /// else [`DEFAULT_CAPTURE_PATH`] in the first key/value store (by name); `None` when the
    /// manifest has no key/value store, so nothing can be captured.
    pub fn capture_target(&self) -> Option<(String, String)> {
        let (store, path) = match &self.capture {
            Some(c) => (c.store.clone(), c.path.clone()),
            None => {
                let (name, _) = self
                    .stores
                    .iter()
                    .find(|(_, s)| !matches!(s, StoreConfig::Env(_)))?;
                (name.clone(), default_capture_path())
            }
        };
        Some((
            store,
            path.replace(crate::handle::AGENT_TEMPLATE, &self.agent),
        ))
    }
}

/// The default capture path.
pub const DEFAULT_CAPTURE_PATH: &str = "agents/{agent}/captured";

fn default_capture_path() -> String {
    DEFAULT_CAPTURE_PATH.to_string()
}

fn default_include() -> Vec<String> {
    vec!["**".to_string()]
}

/// `encryption`: age recipients of every archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// age recipients (`age1…` X25519) or `ssh-ed25519` / `ssh-rsa` public keys.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1),
            inner(pattern(r"^(age1[0-9a-z]+|ssh-(ed25519|rsa) .+)$"))
        )
    )]
    pub recipients: Vec<String>,
}

/// One entry of `stores`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// HashiCorp Vault or OpenBao, KV version 2.
    Vault(VaultConfig),
    /// The embedded age-encrypted file store.
    Local(LocalConfig),
    /// The process environment.
    Env(EnvConfig),
}

impl StoreConfig {
    /// The `kind` string of this store.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreConfig::Vault(_) => "vault",
            StoreConfig::Local(_) => "local",
            StoreConfig::Env(_) => "env",
        }
    }
}

/// A Vault / OpenBao store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Server address; `VAULT_ADDR` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(pattern(r"^https?://")))]
    pub address: Option<String>,
    /// Mount point of the KV v2 engine.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Namespace; `VAULT_NAMESPACE` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// CA certificate (PEM); `VAULT_CACERT` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Verify the server's TLS certificate.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// Timeout of one request in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1), extend("default" = 10)))]
    pub timeout_s: Option<u64>,
    /// How to log in; a token from `VAULT_TOKEN` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<VaultAuth>,
    /// Encrypted cache of the last values fetched, used only when the vault is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
}

fn default_mount() -> String {
    "secret".to_string()
}

fn default_true() -> bool {
    true
}

/// `auth` of a vault store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// A token from `token_file`, else `VAULT_TOKEN`. Never inline.
    Token {
        /// File holding the token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_file: Option<PathBuf>,
    },
    /// AppRole login.
    Approle {
        /// File holding the role id; `VAULT_ROLE_ID` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_id_file: Option<PathBuf>,
        /// File holding the secret id; `VAULT_SECRET_ID` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_id_file: Option<PathBuf>,
        /// Mount of the AppRole auth method.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "schema", schemars(extend("default" = "approle")))]
        mount: Option<String>,
    },
}

/// `cache` of a vault store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The age-encrypted cache file.
    pub path: PathBuf,
    /// How long a cached value may be used, e.g. `24h`, `30m`, `7d`.
    #[serde(default = "default_ttl")]
    #[cfg_attr(feature = "schema", schemars(pattern(r"^[0-9]+[smhd]$")))]
    pub ttl: String,
}

fn default_ttl() -> String {
    "24h".to_string()
}

/// The embedded local store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The age-encrypted store file.
    pub path: PathBuf,
    /// The age identity that opens it, `0600`, outside state and repository; created on first
    /// use.
    pub identity: PathBuf,
    /// Versions kept per secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 2), extend("default" = 10)))]
    pub max_versions: Option<u32>,
}

/// The environment store; it has no settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {}

/// One entry of `secrets`: where a value lives in the state and which handle it maps to.
/// Exactly one locator (`json`, `yaml`, `toml`, `env`, `ini`, `regex`, `whole_file`, `sqlite`)
/// is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("oneOf" = [
        {"required": ["json"]},
        {"required": ["yaml"]},
        {"required": ["toml"]},
        {"required": ["env"]},
        {"required": ["ini"]},
        {"required": ["regex"]},
        {"required": ["whole_file"]},
        {"required": ["sqlite"]}
    ]))
)]
#[serde(deny_unknown_fields)]
pub struct SecretRule {
    /// File or glob relative to `state`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub file: String,
    /// JSON Pointer into a JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(pattern("^/")))]
    pub json: Option<String>,
    /// JSON Pointer into a YAML file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(pattern("^/")))]
    pub yaml: Option<String>,
    /// JSON Pointer into a TOML file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(pattern("^/")))]
    pub toml: Option<String>,
    /// Key of a dotenv file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub env: Option<String>,
    /// `section.key` of an INI file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub ini: Option<String>,
    /// Regex whose capture group 1 is the value; every match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The whole file is the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("const" = true)))]
    pub whole_file: Option<bool>,
    /// Cells of a SQLite database: a column of a table, in the rows `where` selects (every
    /// row without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteCells>,
    /// The handle the value maps to.
    pub handle: Handle,
    /// Dropped at snapshot; taken from the handle, if set, at restore.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    /// Who rewrites the value: `agent` for tokens the agent refreshes itself (OAuth), which
    /// snapshot stores as a new version on its own.
    #[serde(default, skip_serializing_if = "Owner::is_operator")]
    pub owner: Owner,
}

/// `secrets[].owner`: who changes a secret's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// The operator rotates it in the store (`secrets push`, `--push-secrets`).
    #[default]
    Operator,
    /// The agent rewrites it (an OAuth access or refresh token): every new value the
    /// snapshot reads becomes the handle's new version.
    Agent,
}

impl Owner {
    fn is_operator(&self) -> bool {
        *self == Owner::Operator
    }
}

/// Where a value sits in its file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Locator {
    /// JSON Pointer into a JSON document.
    Json(String),
    /// JSON Pointer into a YAML document.
    Yaml(String),
    /// JSON Pointer into a TOML document.
    Toml(String),
    /// Key of a dotenv file.
    Env(String),
    /// `section.key` of an INI file.
    Ini(String),
    /// Capture group 1 of every match.
    Regex(String),
    /// The whole file.
    WholeFile,
    /// Cells of a SQLite database.
    Sqlite(Box<SqliteCells>),
}

/// `secrets[].sqlite`: the cells of one column of a SQLite table that hold a secret, in the
/// rows whose columns equal every value of `where` (every row when `where` is absent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqliteCells {
    /// The table.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub table: String,
    /// The column that holds the value.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub column: String,
    /// Column → value: the rows whose columns equal all of them (SQL `=`).
    #[serde(default, rename = "where", skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, SqlValue>,
}

/// A value in a `sqlite` locator's `where`: an integer or a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum SqlValue {
    /// An integer.
    Integer(i64),
    /// A text.
    Text(String),
}

impl std::fmt::Display for SqliteCells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)?;
        for (i, (column, value)) in self.filter.iter().enumerate() {
            let sep = if i == 0 { " where" } else { " and" };
            match value {
                SqlValue::Integer(n) => write!(f, "{sep} {column} = {n}")?,
                SqlValue::Text(t) => write!(f, "{sep} {column} = '{}'", t.replace('\'', "''"))?,
            }
        }
        Ok(())
    }
}

impl Locator {
    /// The manifest field name of this locator.
    pub fn field(&self) -> &'static str {
        match self {
            Locator::Json(_) => "json",
            Locator::Yaml(_) => "yaml",
            Locator::Toml(_) => "toml",
            Locator::Env(_) => "env",
            Locator::Ini(_) => "ini",
            Locator::Regex(_) => "regex",
            Locator::WholeFile => "whole_file",
            Locator::Sqlite(_) => "sqlite",
        }
    }
}

impl Locator {
    /// The pointer, key or pattern; `None` for `whole_file` and `sqlite`.
    pub fn text(&self) -> Option<&str> {
        match self {
            Locator::Json(s)
            | Locator::Yaml(s)
            | Locator::Toml(s)
            | Locator::Env(s)
            | Locator::Ini(s)
            | Locator::Regex(s) => Some(s),
            Locator::WholeFile | Locator::Sqlite(_) => None,
        }
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self, self.text()) {
            (Locator::Sqlite(cells), _) => write!(f, "sqlite {cells}"),
            (_, Some(s)) => write!(f, "{} {s}", self.field()),
            (_, None) => f.write_str("whole_file"),
        }
    }
}

impl SecretRule {
    /// Every locator field that is set, in field order.
    pub fn locators(&self) -> Vec<Locator> {
        let mut out = Vec::new();
        let strings = [
            (&self.json, Locator::Json as fn(String) -> Locator),
            (&self.yaml, Locator::Yaml),
            (&self.toml, Locator::Toml),
            (&self.env, Locator::Env),
            (&self.ini, Locator::Ini),
            (&self.regex, Locator::Regex),
        ];
        for (value, make) in strings {
            if let Some(v) = value {
                out.push(make(v.clone()));
            }
        }
        if self.whole_file.is_some() {
            out.push(Locator::WholeFile);
        }
        if let Some(cells) = &self.sqlite {
            out.push(Locator::Sqlite(Box::new(cells.clone())));
        }
        out
    }

    /// The matcher of `file`, as every command applies it: a glob relative to the state folder
    /// in which `*` and `?` stay inside one folder (`**` crosses folders).
    pub fn file_matcher(&self) -> Result<globset::GlobMatcher, globset::Error> {
        Ok(globset::GlobBuilder::new(&self.file)
            .literal_separator(true)
            .build()?
            .compile_matcher())
    }

    /// The regular files under `state` that `file` names, in path order; links are not
    /// followed. A walk error (a folder that cannot be read) is an error, never a silent gap.
    pub fn files_in(&self, state: &std::path::Path) -> Result<Vec<PathBuf>, String> {
        let matcher = self
            .file_matcher()
            .map_err(|e| format!("`{}`: {e}", self.file))?;
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(state)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| format!("{}: {e}", state.display()))?;
            if entry.file_type().is_file()
                && entry
                    .path()
                    .strip_prefix(state)
                    .is_ok_and(|rel| matcher.is_match(rel))
            {
                out.push(entry.into_path());
            }
        }
        Ok(out)
    }

    /// The rule's one locator. Validation guarantees there is exactly one.
    pub fn locator(&self) -> Locator {
        self.locators()
            .into_iter()
            .next()
            .expect("validated manifests have one locator per rule")
    }
}

/// `detect`: detection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// Use the builtin provider rules.
    #[serde(default = "default_true")]
    pub builtin: bool,
    /// What a high-entropy finding does.
    #[serde(default)]
    pub entropy: EntropyAction,
    /// Extra rules.
    #[serde(default)]
    pub rules: Vec<CustomRule>,
    /// Path globs, rule ids, or fingerprints of accepted findings.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(inner(length(min = 1))))]
    pub allow: Vec<String>,
    /// What snapshot does with a secret no rule declares.
    #[serde(default)]
    pub on_unknown: OnUnknown,
}

/// `detect.on_unknown`: what snapshot does with a secret in a text file that no rule declares
/// (a provider-rule hit, a credential-like assignment, an old value of a handle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnUnknown {
    /// Store the value under the capture path and archive a placeholder (exit 3).
    #[default]
    Capture,
    /// Refuse the snapshot (exit 4).
    Refuse,
    /// Archive it as it is and say so (exit 3): for state that must not be changed.
    Warn,
}

impl Default for Detect {
    fn default() -> Self {
        Detect {
            builtin: true,
            entropy: EntropyAction::Warn,
            rules: Vec::new(),
            allow: Vec::new(),
            on_unknown: OnUnknown::default(),
        }
    }
}

/// `detect.entropy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum EntropyAction {
    /// Report, do not block.
    #[default]
    Warn,
    /// Treat as a finding that blocks.
    Block,
    /// Ignore.
    Off,
}

/// A user rule of `detect.rules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Rule id, shown in findings.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub id: String,
    /// Regex; capture group 1, if any, is the secret, else the whole match.
    pub regex: String,
    /// Literal keywords for the prefilter; the regex runs only where one occurs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(inner(length(min = 1))))]
    pub keywords: Option<Vec<String>>,
}

/// `retention`: defaults for `prune`, with restic's meaning.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep the N newest snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot with one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
}

/// `rotation`: how old a current secret version may get.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// Age in days after which a current version is overdue for rotation.
    #[serde(default = "default_max_age")]
    pub max_age_days: u32,
}

fn default_max_age() -> u32 {
    30
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_age_days: default_max_age(),
        }
    }
}

/// How snapshots are stored (docs/format.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RepositoryFormat {
    /// The incremental repository: chunks in packs, a tree per snapshot.
    #[default]
    Packs,
    /// One tar + zstd (+ age) archive per snapshot.
    Archives,
}

/// `compression`: archive compression settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// zstd level, 1 to 19.
    #[serde(default = "default_level")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 19)))]
    pub level: i32,
}

fn default_level() -> i32 {
    3
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            level: default_level(),
        }
    }
}

/// `signing`: how snapshots are signed and which signatures restore and verify trust; exactly
/// one of `key` or `transit` (docs/signing.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// A handle holding an Ed25519 private key (PKCS#8 PEM or OpenSSH); each version of the
    /// handle is a version of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Handle>,
    /// An Ed25519 key of the Vault/OpenBao transit engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<TransitKey>,
    /// Versions of the signing key that no longer count: a snapshot signed by one fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schemars(inner(range(min = 1))))]
    pub revoked: Vec<u64>,
    /// A handle holding a stable Ed25519 identity key that certifies each signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Handle>,
    /// Identity public keys (`ed25519:BASE64` or `ssh-ed25519 AAAA…`) whose certificates are
    /// accepted without reading the signing key from a store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<String>,
}

/// `signing.transit`: a key of the transit secrets engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TransitKey {
    /// The name of a `vault` store of the manifest.
    pub store: String,
    /// The transit key's name (type `ed25519`).
    pub key: String,
    /// The transit engine's mount (default `transit`).
    #[serde(default = "default_transit_mount")]
    pub mount: String,
}

fn default_transit_mount() -> String {
    "transit".to_string()
}
