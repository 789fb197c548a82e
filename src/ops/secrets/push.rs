//! `secrets push`: values that the state holds at declared locations and the store lacks
//! become new versions.
//!
//! "Lacks" means the value is neither the current nor the previous version of its handle (a
//! state that still holds the previous value is mid-rotation, not out of sync). Ephemeral
//! rules, env handles and pinned handles are never pushed.
//!
//! Values are read with the redaction engine's parsers (`redact::values_at`), so every locator
//! works as in a snapshot. Values are held in zeroized buffers and reported masked only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ExitCode;
use crate::handle::Handle;
use crate::manifest::{Manifest, SecretRule};
use crate::secret::Secret;
use crate::store::sealed::read_zeroized;
use crate::store::{Address, StoreErrorKind, Stores};
use serde::Serialize;

/// What happened to one handle.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PushOutcome {
    /// Stored as a new version.
    Pushed {
        /// The new version.
        version: u64,
        /// A masked preview of the value.
        preview: String,
    },
    /// The store already holds it as its current or previous version.
    InStore {
        /// That version.
        version: u64,
    },
    /// Not pushed, and why (ephemeral, env handle, unsupported locator, value not found).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Could not be pushed.
    Failed {
        /// Why.
        message: String,
    },
}

/// One handle's push report.
#[derive(Debug, Clone, Serialize)]
pub struct PushItem {
    /// The handle.
    pub handle: Handle,
    /// The state files its value was read from, relative to the state folder.
    pub files: Vec<PathBuf>,
    /// What happened.
    #[serde(flatten)]
    pub outcome: PushOutcome,
}

/// Pushes every declared value the store lacks; with `dry_run`, reports without writing.
pub fn push(manifest: &Manifest, stores: &Stores, dry_run: bool) -> Vec<PushItem> {
    let mut found: BTreeMap<Handle, (Vec<PathBuf>, Vec<Secret>)> = BTreeMap::new();
    let mut items = Vec::new();
    for rule in &manifest.secrets {
        let handle = rule.handle.with_agent(&manifest.agent);
        let skip = |reason: &str| PushItem {
            handle: rule.handle.clone(),
            files: Vec::new(),
            outcome: PushOutcome::Skipped {
                reason: reason.into(),
            },
        };
        if rule.ephemeral {
            items.push(skip("ephemeral: re-issued, never stored"));
        } else if handle.is_env() {
            items.push(skip("env handles are read from the environment"));
        } else if Address::of(&handle).version.is_some() {
            items.push(skip(
                "pinned handle: a new version would not be the one it names",
            ));
        } else {
            match read_values(&manifest.state, rule) {
                Ok(values) if values.is_empty() => {
                    items.push(skip("no value at the declared location in the state"));
                }
                Ok(values) => {
                    let entry = found.entry(handle).or_default();
                    for (file, value) in values {
                        entry.0.push(file);
                        entry.1.push(value);
                    }
                }
                Err(message) => items.push(PushItem {
                    handle: rule.handle.clone(),
                    files: Vec::new(),
                    outcome: PushOutcome::Failed { message },
                }),
            }
        }
    }
    for (handle, (files, values)) in found {
        let outcome = push_one(stores, &handle, &values, dry_run);
        items.push(PushItem {
            handle,
            files,
            outcome,
        });
    }
    items
}

fn push_one(stores: &Stores, handle: &Handle, values: &[Secret], dry_run: bool) -> PushOutcome {
    let value = &values[0];
    if values.iter().any(|v| v != value) {
        return PushOutcome::Failed {
            message: "the state holds different values for this handle; make them agree first"
                .into(),
        };
    }
    let store = match stores.for_handle(handle) {
        Ok(s) => s,
        Err(e) => {
            return PushOutcome::Failed {
                message: e.to_string(),
            };
        }
    };
    let a = Address::of(handle);
    let current = match store.read(&a.path, None) {
        Ok(v) => Some(v),
        Err(e) if e.kind == StoreErrorKind::Missing => None,
        Err(e) => {
            return PushOutcome::Failed {
                message: e.to_string(),
            };
        }
    };
    if let Some(cur) = &current {
        if cur.fields.get(&a.field) == Some(value) {
            return PushOutcome::InStore {
                version: cur.version,
            };
        }
        let previous = store.metadata(&a.path).ok().and_then(|m| m.previous());
        if let Some(p) = previous
            && let Ok(prev) = store.read(&a.path, Some(p))
            && prev.fields.get(&a.field) == Some(value)
        {
            return PushOutcome::InStore { version: p };
        }
    }
    let preview = value.masked();
    if dry_run {
        return PushOutcome::Pushed {
            version: 0,
            preview,
        };
    }
    match store.put(&a.path, &a.field, value, None) {
        Ok(version) => PushOutcome::Pushed { version, preview },
        Err(e) => PushOutcome::Failed {
            message: e.to_string(),
        },
    }
}

/// The values at the rule's locator in every state file its `file` names.
fn read_values(state: &Path, rule: &SecretRule) -> Result<Vec<(PathBuf, Secret)>, String> {
    let locator = rule.locator();
    let mut out = Vec::new();
    for path in rule.files_in(state)? {
        let rel = path.strip_prefix(state).unwrap_or(&path).to_path_buf();
        let bytes = read_zeroized(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let values = crate::redact::values_at(&rel.display().to_string(), &bytes, &locator)
            .map_err(|e| e.to_string())?;
        out.extend(values.into_iter().map(|v| (rel.clone(), v)));
    }
    Ok(out)
}

/// The exit code of a push: 1 when any handle could not be pushed, else 0.
pub fn exit_code(items: &[PushItem]) -> ExitCode {
    if items
        .iter()
        .any(|i| matches!(i.outcome, PushOutcome::Failed { .. }))
    {
        ExitCode::Error
    } else {
        ExitCode::Success
    }
}
