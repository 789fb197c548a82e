//! `secrets push`: values that the state holds at declared locations and the store lacks
//! become new versions.
//!
//! "Lacks" means the value is in no version the store keeps of its handle's field (a state that
//! still holds an older value is mid-rotation, not out of sync: pushing it would undo the
//! rotation). Ephemeral rules, env handles and pinned handles are never pushed.
//!
//! Every field of one secret path is written in one new version (`put_fields`): an import of a
//! secret with several fields starts at version 1, and one path is read once (its history),
//! however many fields the manifest names in it.
//!
//! Values are read with the redaction engine's parsers (`redact::values_at`), so every locator
//! works as in a snapshot. Values are held in zeroized buffers and reported masked only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ExitCode;
use crate::handle::Handle;
use crate::manifest::{Locator, Manifest, SecretRule};
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
    /// The store already holds it as its current or an older kept version.
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
    // Handles grouped by secret path: one history read and one write per path.
    let mut by_path: BTreeMap<(String, String), Vec<Found>> = BTreeMap::new();
    for (handle, (files, values)) in found {
        let key = (handle.store.clone(), Address::of(&handle).path);
        by_path
            .entry(key)
            .or_default()
            .push((handle, files, values));
    }
    for ((_, path), group) in by_path {
        let outcomes = push_path(stores, &path, &group, dry_run);
        for ((handle, files, _), outcome) in group.into_iter().zip(outcomes) {
            items.push(PushItem {
                handle,
                files,
                outcome,
            });
        }
    }
    items
}

/// A handle to push, the state files its value was read from, and the values read.
type Found = (Handle, Vec<PathBuf>, Vec<Secret>);

/// The outcome of each handle of one secret path (all in one store), in order.
fn push_path(stores: &Stores, path: &str, group: &[Found], dry_run: bool) -> Vec<PushOutcome> {
    let failed = |message: String| vec![PushOutcome::Failed { message }; group.len()];
    let store = match stores.for_handle(&group[0].0) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    let history = match store.history(path) {
        Ok(h) => Some(h),
        Err(e) if e.kind == StoreErrorKind::Missing => None,
        Err(e) => return failed(e.to_string()),
    };
    let mut outcomes: Vec<Option<PushOutcome>> = Vec::with_capacity(group.len());
    let mut to_write: BTreeMap<String, Secret> = BTreeMap::new();
    for (handle, _, values) in group {
        let value = &values[0];
        if values.iter().any(|v| v != value) {
            outcomes.push(Some(PushOutcome::Failed {
                message: "the state holds different values for this handle; make them agree first"
                    .into(),
            }));
            continue;
        }
        let field = Address::of(handle).field;
        let current = history.as_ref().and_then(|h| h.current());
        if let Some(cur) = current
            && cur.fields.get(&field) == Some(value)
        {
            outcomes.push(Some(PushOutcome::InStore {
                version: cur.version,
            }));
            continue;
        }
        let older = history
            .as_ref()
            .and_then(|h| h.field(&field).into_iter().find(|v| v.value == *value));
        if let Some(old) = older {
            outcomes.push(Some(PushOutcome::InStore {
                version: old.since.version,
            }));
            continue;
        }
        match to_write.get(&field) {
            // Two rules of one handle are one handle; two values for one field cannot both be
            // written.
            Some(other) if other != value => {
                outcomes.push(Some(PushOutcome::Failed {
                    message: "another rule gives this field a different value".into(),
                }));
                continue;
            }
            _ => {}
        }
        to_write.insert(field, value.clone());
        outcomes.push(None);
    }
    let written = if to_write.is_empty() || dry_run {
        Ok(0)
    } else {
        store
            .put_fields(path, &to_write, None)
            .map_err(|e| e.to_string())
    };
    outcomes
        .into_iter()
        .zip(group)
        .map(|(outcome, (_, _, values))| match (outcome, &written) {
            (Some(o), _) => o,
            (None, Ok(version)) => PushOutcome::Pushed {
                version: *version,
                preview: values[0].masked(),
            },
            (None, Err(message)) => PushOutcome::Failed {
                message: message.clone(),
            },
        })
        .collect()
}

/// The values at the rule's locator in every state file its `file` names.
fn read_values(state: &Path, rule: &SecretRule) -> Result<Vec<(PathBuf, Secret)>, String> {
    let locator = rule.locator();
    let mut out = Vec::new();
    for path in rule.files_in(state)? {
        let rel = path.strip_prefix(state).unwrap_or(&path).to_path_buf();
        let display = rel.display().to_string();
        let values = match &locator {
            Locator::Sqlite(cells) => crate::sqlite::values_in_file(&path, &display, cells),
            _ => {
                let bytes = read_zeroized(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                crate::redact::values_at(&display, &bytes, &locator)
            }
        }
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
