//! `agentbak init`: write a manifest for an agent, make its local store, and with `--discover`
//! find the secrets of its state and write a rule and handle for each (SPEC "Commands").
//!
//! Invariants:
//! - An existing manifest is never overwritten without `force`; the new one is written to a
//!   temporary file, loaded back through the manifest loader (so `init` cannot write a
//!   manifest that later commands refuse), then renamed into place.
//! - The local store and its identity live outside the state and the repository (under
//!   `$XDG_DATA_HOME` and `$XDG_CONFIG_HOME`), so no backup of either holds the key to it.
//! - Discovered values travel in [`Secret`](crate::secret::Secret)s and are written only to
//!   the store (`import`); the report holds masked previews.

pub mod discover;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::detect::Detector;
use crate::error::{Error, ExitCode, Report, Result};
use crate::manifest::{Detect, Locator, Manifest, SqlValue, SqliteCells, real_path};
use crate::ops::secrets::push::{PushItem, push};
use crate::store::LocalStore;
use crate::store::Stores;

pub use discover::{Attention, Discovered, Discovery};

/// The manifest's JSON Schema, copied next to every manifest `init` writes.
pub const SCHEMA: &str = include_str!("../../../schemas/manifest.schema.json");

/// The file name of that copy, as `$schema` names it.
pub const SCHEMA_FILE: &str = "agentbak.schema.json";

/// Which store new handles point into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreChoice {
    /// The embedded age-encrypted file store.
    Local,
    /// Vault or OpenBao KV v2.
    Vault,
}

/// What `init` does.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where the manifest goes.
    pub manifest: PathBuf,
    /// The agent's state folder.
    pub state: PathBuf,
    /// The agent's name; default: the name of the state folder's parent.
    pub agent: Option<String>,
    /// The store new handles point into.
    pub store: StoreChoice,
    /// Find secrets in the state.
    pub discover: bool,
    /// Store the values found.
    pub import: bool,
    /// Overwrite an existing manifest.
    pub force: bool,
}

/// The store `init` configured.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSetup {
    /// Its name in the manifest.
    pub name: String,
    /// Its kind.
    pub kind: StoreChoice,
    /// The local store's file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The local store's identity: keep a copy of it outside this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// True when `init` created the local store (false: it existed and was kept).
    pub created: bool,
    /// The Vault address written to the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One discovered secret, as reported (masked).
#[derive(Debug, Clone, Serialize)]
pub struct FoundRow {
    /// The file, relative to the state folder.
    pub file: String,
    /// The locator, as written in the manifest (`json /openai/api_key`).
    pub locator: String,
    /// The handle.
    pub handle: String,
    /// What made it a secret: a rule id, or `key name`.
    pub reason: String,
    /// A masked preview.
    pub preview: String,
    /// The same value was found earlier; it shares that handle.
    pub shared: bool,
    /// An ephemeral rule (values that change between snapshots).
    pub ephemeral: bool,
}

/// What `init` did.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The manifest written.
    pub manifest: PathBuf,
    /// The schema copy beside it.
    pub schema: PathBuf,
    /// The agent's name.
    pub agent: String,
    /// The store new handles point into.
    pub store: StoreSetup,
    /// Files inspected by `--discover`.
    pub files: usize,
    /// Secrets found, one per rule.
    pub found: Vec<FoundRow>,
    /// Exclusions written (caches, temporary files).
    pub exclude: Vec<String>,
    /// What needs a person's attention.
    pub attention: Vec<Attention>,
    /// With `--import`: what happened to each handle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<Vec<PushItem>>,
}

impl Report for InitReport {
    /// 3 when something needs attention, 1 when an import failed, else 0.
    fn exit_code(&self) -> ExitCode {
        let attention = if self.attention.is_empty() {
            ExitCode::Success
        } else {
            ExitCode::Warnings
        };
        let imported = self
            .imported
            .as_deref()
            .map_or(ExitCode::Success, crate::ops::secrets::push::exit_code);
        attention.worst(imported)
    }
}

/// Writes the manifest (and with `discover`, its rules), prepares the store, and with
/// `import` stores the values found.
pub fn init(opts: &InitOptions) -> Result<InitReport> {
    let (manifest_path, base, state) = places(opts)?;
    let agent = agent_name(opts.agent.as_deref(), &state)?;
    let repository = repository_for(&base, &state, &agent);
    let (store, store_json) = store_setup(opts.store, &agent, &state, &repository)?;

    let mut discovery = Discovery::default();
    if opts.discover {
        let detector = Detector::new(&Detect::default(), None)?;
        discovery = discover::discover(&state, &store.name, &detector)?;
        let found = std::mem::take(&mut discovery.found);
        discovery.found = discover::check(&state, found, &mut discovery.attention);
    }

    let text = manifest_text(&ManifestParts {
        agent: &agent,
        state: &relative(&base, &state),
        repository: &relative(&base, &repository),
        exclude: &discovery.exclude,
        store: &store.name,
        store_json: &store_json,
        found: &discovery.found,
    });
    let manifest = write_manifest(&manifest_path, &text)?;
    let schema = base.join(SCHEMA_FILE);
    write_atomic(&schema, SCHEMA.as_bytes())?;

    let mut store = store;
    if opts.store == StoreChoice::Local
        && let Some(crate::manifest::StoreConfig::Local(config)) = manifest.stores.get("local")
    {
        store.created = LocalStore::new("local", config).create()?;
    }
    let imported = if opts.import {
        let stores = Stores::from_manifest(&manifest)?;
        Some(push(&manifest, &stores, false))
    } else {
        None
    };

    let found = discovery
        .found
        .iter()
        .map(|d| FoundRow {
            file: d.file.clone(),
            locator: d.locator.to_string(),
            handle: d.handle.to_string(),
            reason: d.reason.clone(),
            preview: d.value.masked(),
            shared: d.shared,
            ephemeral: d.ephemeral,
        })
        .collect();
    Ok(InitReport {
        manifest: manifest_path,
        schema,
        agent,
        store,
        files: discovery.files,
        found,
        exclude: discovery.exclude,
        attention: discovery.attention,
        imported,
    })
}

/// The manifest's path (its folder resolved), that folder, and the state folder; refuses an
/// existing manifest without `force`, and folders that do not exist.
fn places(opts: &InitOptions) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let manifest_path = absolute(&opts.manifest)?;
    if manifest_path.exists() && !opts.force {
        return Err(Error::Usage(format!(
            "{} exists; `init --force` replaces it",
            manifest_path.display()
        )));
    }
    let (base, name) = match (manifest_path.parent(), manifest_path.file_name()) {
        (Some(dir), Some(name)) => (dir.canonicalize().ok().filter(|d| d.is_dir()), name),
        _ => (None, std::ffi::OsStr::new("")),
    };
    let Some(base) = base else {
        return Err(Error::Usage(format!(
            "{}: the manifest's folder does not exist",
            manifest_path.display()
        )));
    };
    let state = opts
        .state
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: the state folder does not exist (--state DIR)",
                opts.state.display()
            ))
        })?;
    Ok((base.join(name), base, state))
}

/// The agent's name: the one given (which must be a valid handle path segment), else the
/// state folder's parent's name, sanitized.
fn agent_name(given: Option<&str>, state: &Path) -> Result<String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && s != "."
            && s != ".."
    };
    if let Some(name) = given {
        return if valid(name) {
            Ok(name.to_string())
        } else {
            Err(Error::Usage(format!(
                "--agent `{name}`: use letters, digits, `.`, `_` and `-` (it becomes part of handle paths)"
            )))
        };
    }
    let derived: String = state
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let derived = derived.trim_matches('-').to_string();
    Ok(if valid(&derived) {
        derived
    } else {
        "agent".into()
    })
}

/// `./backups` beside the manifest, unless that is the state, inside it (a repository inside
/// the state would back itself up) or holds it: then `<agent>-backups` beside the state.
/// Compared with symlinks resolved, as the manifest check compares them.
fn repository_for(base: &Path, state: &Path, agent: &str) -> PathBuf {
    let beside = base.join("backups");
    let (real_beside, real_state) = (real_path(&beside), real_path(state));
    if real_beside.starts_with(&real_state) || real_state.starts_with(&real_beside) {
        state
            .parent()
            .unwrap_or(state)
            .join(format!("{agent}-backups"))
    } else {
        beside
    }
}

/// The store entry of the manifest, and what the report says about it.
fn store_setup(
    choice: StoreChoice,
    agent: &str,
    state: &Path,
    repository: &Path,
) -> Result<(StoreSetup, String)> {
    match choice {
        StoreChoice::Local => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let xdg = |var: &str, fallback: &str| -> Result<PathBuf> {
                match std::env::var_os(var).filter(|v| !v.is_empty()) {
                    Some(dir) => Ok(PathBuf::from(dir)),
                    None => home.as_ref().map(|h| h.join(fallback)).ok_or_else(|| {
                        Error::Usage(format!(
                            "neither {var} nor HOME is set: no place for the local store"
                        ))
                    }),
                }
            };
            let path = xdg("XDG_DATA_HOME", ".local/share")?
                .join("agentbak")
                .join(format!("{agent}.store.age"));
            let identity = xdg("XDG_CONFIG_HOME", ".config")?
                .join("agentbak")
                .join(format!("{agent}.store.key"));
            for p in [&path, &identity] {
                let real = real_path(p);
                if real.starts_with(real_path(state)) || real.starts_with(real_path(repository)) {
                    return Err(Error::Usage(format!(
                        "{}: the local store and its identity must live outside the state and \
                         the repository; set XDG_DATA_HOME and XDG_CONFIG_HOME elsewhere",
                        p.display()
                    )));
                }
            }
            let shown = |p: &Path| match home.as_ref().and_then(|h| p.strip_prefix(h).ok()) {
                Some(rest) => format!("~/{}", rest.display()),
                None => p.display().to_string(),
            };
            let json = format!(
                r#"{{ "kind": "local", "path": {}, "identity": {} }}"#,
                json_str(&shown(&path)),
                json_str(&shown(&identity))
            );
            Ok((
                StoreSetup {
                    name: "local".into(),
                    kind: choice,
                    path: Some(path),
                    identity: Some(identity),
                    created: false,
                    address: None,
                },
                json,
            ))
        }
        StoreChoice::Vault => {
            let address = std::env::var("VAULT_ADDR")
                .ok()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "http://127.0.0.1:8200".into());
            let json = format!(
                r#"{{ "kind": "vault", "address": {}, "mount": "secret" }}"#,
                json_str(&address)
            );
            Ok((
                StoreSetup {
                    name: "vault".into(),
                    kind: choice,
                    path: None,
                    identity: None,
                    created: false,
                    address: Some(address),
                },
                json,
            ))
        }
    }
}

struct ManifestParts<'a> {
    agent: &'a str,
    state: &'a str,
    repository: &'a str,
    exclude: &'a [String],
    store: &'a str,
    store_json: &'a str,
    found: &'a [Discovered],
}

/// The manifest as a person would write it: one line per store and per rule.
fn manifest_text(p: &ManifestParts<'_>) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(
        out,
        r#"  "$schema": {},"#,
        json_str(&format!("./{SCHEMA_FILE}"))
    );
    let _ = writeln!(out, r#"  "version": 1,"#);
    let _ = writeln!(out, r#"  "agent": {},"#, json_str(p.agent));
    let _ = writeln!(out, r#"  "state": {},"#, json_str(p.state));
    let _ = writeln!(out, r#"  "repository": {},"#, json_str(p.repository));
    if !p.exclude.is_empty() {
        let list: Vec<String> = p.exclude.iter().map(|e| json_str(e)).collect();
        let _ = writeln!(out, r#"  "exclude": [{}],"#, list.join(", "));
    }
    let _ = writeln!(out, r#"  "stores": {{"#);
    let _ = writeln!(out, r#"    {}: {},"#, json_str(p.store), p.store_json);
    let _ = writeln!(out, r#"    "env": {{ "kind": "env" }}"#);
    let _ = writeln!(out, "  }},");
    let _ = writeln!(
        out,
        r#"  "capture": {{ "store": {}, "path": {} }},"#,
        json_str(p.store),
        json_str(crate::manifest::DEFAULT_CAPTURE_PATH)
    );
    let rules: Vec<String> = p
        .found
        .iter()
        .map(|d| format!("    {}", rule_json(d)))
        .collect();
    if rules.is_empty() {
        let _ = writeln!(out, r#"  "secrets": [],"#);
    } else {
        let _ = writeln!(out, "  \"secrets\": [\n{}\n  ],", rules.join(",\n"));
    }
    let _ = writeln!(
        out,
        r#"  "retention": {{ "keep_last": 10, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6 }}"#
    );
    out.push_str("}\n");
    out
}

/// One `secrets` entry on one line, as a person would write it:
/// `{ "file": "config.json", "json": "/api_key", "handle": "local:agents/{agent}/config#api_key" }`.
pub(crate) fn rule_json(d: &Discovered) -> String {
    let locator = match (&d.locator, d.locator.text()) {
        (Locator::Sqlite(cells), _) => format!(r#""sqlite": {}"#, sqlite_json(cells)),
        (_, Some(text)) => format!("{}: {}", json_str(d.locator.field()), json_str(text)),
        (_, None) => r#""whole_file": true"#.to_string(),
    };
    let ephemeral = if d.ephemeral {
        r#", "ephemeral": true"#
    } else {
        ""
    };
    format!(
        r#"{{ "file": {}, {locator}, "handle": {}{ephemeral} }}"#,
        json_str(&d.file),
        json_str(&d.handle.to_string())
    )
}

/// A `sqlite` locator as a person writes it:
/// `{ "table": "settings", "column": "value", "where": { "key": "OPENAI_API_KEY" } }`.
fn sqlite_json(cells: &SqliteCells) -> String {
    let mut out = format!(
        r#"{{ "table": {}, "column": {}"#,
        json_str(&cells.table),
        json_str(&cells.column)
    );
    if !cells.filter.is_empty() {
        let pairs: Vec<String> = cells
            .filter
            .iter()
            .map(|(column, value)| match value {
                SqlValue::Integer(n) => format!("{}: {n}", json_str(column)),
                SqlValue::Text(t) => format!("{}: {}", json_str(column), json_str(t)),
            })
            .collect();
        let _ = write!(out, r#", "where": {{ {} }}"#, pairs.join(", "));
    }
    out.push_str(" }");
    out
}

/// Checks `text` with the manifest parser, puts it at `path`, and loads it back as every
/// later command will (paths resolved, `~` expanded).
fn write_manifest(path: &Path, text: &str) -> Result<Manifest> {
    let bug = |e: crate::manifest::ManifestError| {
        Error::Usage(format!(
            "init made a manifest that does not load (a bug; please report it): {e}"
        ))
    };
    Manifest::parse(path, text.as_bytes()).map_err(bug)?;
    write_atomic(path, text.as_bytes())?;
    Manifest::load(path).map_err(bug)
}

/// Writes through a temporary file in the same folder and a rename (`0644`: a manifest and a
/// schema hold no secret).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::store::sealed::write_file_atomic(path, bytes, 0o644).map_err(|e| Error::io(path, e))
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// `./rel` when `target` is under `base`, else the absolute path.
fn relative(base: &Path, target: &Path) -> String {
    match target.strip_prefix(base) {
        Ok(rest) if rest.as_os_str().is_empty() => ".".into(),
        Ok(rest) => format!("./{}", rest.display()),
        Err(_) => target.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_come_from_the_flag_or_the_state_parent() {
        let state = Path::new("/home/u/Kevin Bot/state");
        assert_eq!(agent_name(None, state).unwrap(), "kevin-bot");
        assert_eq!(agent_name(Some("k.2"), state).unwrap(), "k.2");
        assert!(agent_name(Some("a/b"), state).is_err());
        assert_eq!(agent_name(None, Path::new("/state")).unwrap(), "agent");
    }

    #[test]
    fn the_repository_never_sits_inside_the_state() {
        let r = repository_for(Path::new("/a"), Path::new("/a/state"), "k");
        assert_eq!(r, Path::new("/a/backups"));
        let r = repository_for(Path::new("/a/state"), Path::new("/a/state"), "k");
        assert_eq!(r, Path::new("/a/k-backups"));
    }

    #[test]
    fn the_repository_never_holds_the_state() {
        // A state folder named `backups`, or one kept inside a folder of that name.
        let r = repository_for(Path::new("/a"), Path::new("/a/backups"), "k");
        assert_eq!(r, Path::new("/a/k-backups"));
        let r = repository_for(Path::new("/a"), Path::new("/a/backups/k"), "k");
        assert_eq!(r, Path::new("/a/backups/k-backups"));
    }
}
