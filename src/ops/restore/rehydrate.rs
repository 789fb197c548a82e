//! `--rehydrate`: resolve every handle of the index, then put the values back into the
//! extracted files.
//!
//! Invariants:
//! - **Resolve first, write after**: [`resolve`] fetches every handle before any file is
//!   touched, and the caller writes nothing when one is unresolved (all or nothing); then
//!   [`check`] proves every value can be written in its file's format (a dotenv value no
//!   quoting makes every loader read alike, an INI value with white space at an end), so a
//!   value that cannot is refused before anything is written.
//! - Ephemeral handles (a location marked `ephemeral`, or any `env:` handle) take the variable
//!   when it is set, else an empty value and a warning; they are never "unresolved".
//! - A file that receives a value is `0600` before the value is written and stays so; it is
//!   rewritten in place without following a link (the extractor creates every file itself, and
//!   `O_NOFOLLOW` refuses a link planted over it).
//! - Reports carry handles, versions and statuses, never a value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::safe_path;
use crate::archive::{Index, IntegrityError, IntegrityProblem};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::redact::{Context, Replacement, check_rehydratable, rehydrate_file};
use crate::secret::Secret;
use crate::store::{ResolveOptions, Status, Stores, VersionChoice, resolve as resolve_handles};

/// Which version of each handle `--rehydrate` fetches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Versions {
    /// The current version (the default): a rotated secret comes back rotated.
    #[default]
    Current,
    /// The version recorded at snapshot time (`--pin`).
    Pinned,
    /// The version before the current one (`--previous`, a rotation grace period); a secret
    /// that has only one version restores it.
    Previous,
}

/// What the index says about one handle.
#[derive(Debug, Clone, Default)]
struct HandleUse {
    snapshot_version: Option<u64>,
    ephemeral: bool,
    files: BTreeSet<String>,
    /// The handles as the redaction wrote them (they may differ from the index's by `{agent}`).
    written_as: BTreeSet<Handle>,
}

/// The rehydration work an index describes: which files get which placeholders back.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Archive path of each secret-bearing file → its replacements.
    files: BTreeMap<String, Vec<Replacement>>,
    handles: BTreeMap<Handle, HandleUse>,
}

impl Plan {
    /// Reads the secret locations of an index; a context that does not parse makes the archive
    /// untrustworthy (exit 5). Only the files `keep` selects (by archive path) are planned: the store is asked for
    /// their handles and no other (`restore --include`). Every context is still parsed: an
    /// unreadable one makes the whole archive untrustworthy.
    pub(crate) fn from_index_selected(
        index: &Index,
        archive: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Plan> {
        let mut plan = Plan::default();
        for loc in &index.secrets {
            let replacement: Replacement =
                serde_json::from_value(loc.context.clone()).map_err(|e| {
                    Error::Integrity(IntegrityError {
                        archive: archive.to_string(),
                        problem: IntegrityProblem::Index(format!(
                            "the secret location in `{}` for {} has an unreadable context: {e}",
                            loc.file, loc.handle
                        )),
                    })
                })?;
            if !keep(&loc.file) {
                continue;
            }
            let used = plan.handles.entry(loc.handle.clone()).or_default();
            used.snapshot_version = used.snapshot_version.or(loc.store_version);
            used.ephemeral |= loc.ephemeral || loc.handle.is_env();
            used.files.insert(loc.file.clone());
            used.written_as.insert(replacement.handle.clone());
            plan.files
                .entry(loc.file.clone())
                .or_default()
                .push(replacement);
        }
        Ok(plan)
    }

    /// Number of files that hold placeholders.
    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The handles of the index, sorted.
    pub(crate) fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.handles.keys()
    }
}

/// One handle's line of the restore report.
#[derive(Debug, Clone, Serialize)]
pub struct HandleReport {
    /// The handle, as the index records it.
    pub handle: Handle,
    /// What the resolver found (`status` and its detail).
    #[serde(flatten)]
    pub status: Status,
    /// The store version seen at snapshot time, if the store was reachable then.
    pub snapshot_version: Option<u64>,
    /// The version restored (fetched or cached).
    pub restored_version: Option<u64>,
    /// Whether the restored version differs from the snapshot's (a rotation since).
    pub rotated: bool,
    /// An ephemeral handle (an `env:` handle or a location marked `ephemeral`).
    pub ephemeral: bool,
    /// An ephemeral handle whose variable was not set: restored as an empty value.
    pub left_empty: bool,
    /// Archive paths of the files that hold it.
    pub files: Vec<String>,
}

impl HandleReport {
    /// Whether the restore can go on with this handle.
    pub fn usable(&self) -> bool {
        self.status.is_resolved() || self.left_empty
    }
}

/// The values to write, keyed by every spelling of each handle.
pub(crate) type Values = HashMap<Handle, Secret>;

/// Resolves every handle of the plan: one report per handle, and the values when all are
/// usable. Env handles always take the current variable (they have no versions); with
/// [`Versions::Previous`], a handle without a previous version takes its current one.
pub(crate) fn resolve(
    plan: &Plan,
    stores: &Stores,
    versions: Versions,
    base: &ResolveOptions,
) -> (Vec<HandleReport>, Values) {
    let handles: Vec<Handle> = plan.handles.keys().cloned().collect();
    let (env, kv): (Vec<Handle>, Vec<Handle>) = handles.into_iter().partition(Handle::is_env);
    let choice = match versions {
        Versions::Current => VersionChoice::Current,
        Versions::Previous => VersionChoice::Previous,
        Versions::Pinned => VersionChoice::Pinned(
            plan.handles
                .iter()
                .filter_map(|(h, u)| u.snapshot_version.map(|v| (h.clone(), v)))
                .collect(),
        ),
    };
    let mut resolutions = resolve_handles(
        stores,
        &kv,
        &ResolveOptions {
            version: choice,
            ..base.clone()
        },
    );
    let current = ResolveOptions {
        version: VersionChoice::Current,
        ..base.clone()
    };
    if versions == Versions::Previous {
        // A secret never rotated has no previous version: its current one is the only valid
        // credential, so it is what the grace period restores.
        let unrotated: Vec<usize> = (0..resolutions.len())
            .filter(|&i| matches!(resolutions[i].status, Status::Missing { .. }))
            .collect();
        let again: Vec<Handle> = unrotated.iter().map(|&i| kv[i].clone()).collect();
        let fallback = resolve_handles(stores, &again, &current);
        for (i, r) in unrotated.into_iter().zip(fallback) {
            if r.status.is_resolved() {
                resolutions[i] = r;
            }
        }
    }
    resolutions.extend(resolve_handles(stores, &env, &current));
    let mut reports = Vec::new();
    let mut values = Values::new();
    for r in resolutions {
        let used = &plan.handles[&r.handle];
        let left_empty = used.ephemeral && matches!(r.status, Status::Missing { .. });
        let restored_version = match &r.status {
            Status::Resolved { version, .. } | Status::FromCache { version, .. } => Some(*version),
            _ => None,
        };
        let value = match (r.value, left_empty) {
            (Some(v), _) => Some(v),
            (None, true) => Some(Secret::new(Vec::new())),
            (None, false) => None,
        };
        if let Some(value) = value {
            for spelling in std::iter::once(&r.handle).chain(&used.written_as) {
                values.insert(spelling.clone(), value.clone());
            }
        }
        reports.push(HandleReport {
            rotated: !r.handle.is_env()
                && restored_version.is_some()
                && used.snapshot_version.is_some()
                && restored_version != used.snapshot_version,
            handle: r.handle,
            status: r.status,
            snapshot_version: used.snapshot_version,
            restored_version,
            ephemeral: used.ephemeral,
            left_empty,
            files: used.files.iter().cloned().collect(),
        });
    }
    reports.sort_by(|a, b| a.handle.cmp(&b.handle));
    (reports, values)
}

/// Checks that every value can be written where the plan puts it (a format that cannot carry
/// a value exactly refuses it), before any file is touched: a restore that would fail half
/// way fails here, with nothing written. Errors name the file and the handle, never a value.
pub(crate) fn check(plan: &Plan, values: &Values) -> Result<()> {
    for (file, replacements) in &plan.files {
        check_rehydratable(file, replacements, values)?;
    }
    Ok(())
}

/// Writes the values into every secret-bearing file below `root`; returns those files'
/// paths relative to `root`, which the caller keeps `0600`.
pub(crate) fn rehydrate(root: &Path, plan: &Plan, values: &Values) -> Result<BTreeSet<PathBuf>> {
    let mut private = BTreeSet::new();
    for (file, replacements) in &plan.files {
        let rel = safe_path::relative(file).map_err(|r| Error::Entry {
            path: file.clone(),
            reason: r.to_string(),
        })?;
        let path = root.join(&rel);
        if replacements
            .iter()
            .any(|r| matches!(r.context, Context::SqliteCell(_)))
        {
            // A database's cells are filled in place, by UPDATE (the restored copy, in the
            // folder beside the target).
            crate::sqlite::rehydrate(&path, &rel.display().to_string(), replacements, values)?;
            private.insert(rel);
            continue;
        }
        let redacted = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let restored = zeroize::Zeroizing::new(rehydrate_file(
            &rel.display().to_string(),
            &redacted,
            replacements,
            values,
        )?);
        let mut out = OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        out.write_all(&restored).map_err(|e| Error::io(&path, e))?;
        private.insert(rel);
    }
    Ok(private)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Locator;
    use crate::redact::{DotenvStyle, IniStyle, Source};

    fn plan(file: &str, handle: &Handle, context: Context, locator: Locator) -> Plan {
        let mut plan = Plan::default();
        plan.files.insert(
            file.to_string(),
            vec![Replacement {
                source: Source::Rule(locator),
                handle: handle.clone(),
                offsets: vec![4],
                context,
            }],
        );
        plan
    }

    #[test]
    fn a_value_its_format_cannot_carry_is_refused_naming_file_and_handle_not_value() {
        let handle = Handle::parse("local:agents/kevin/db#password").unwrap();
        let cases = [
            (
                "state/app.env",
                Context::Dotenv(DotenvStyle::Single),
                Locator::Env("TOKEN".into()),
                "Xk9'Lm${HOME}zz",
            ),
            (
                "state/app.ini",
                Context::Ini(IniStyle::Plain {
                    literal_percent: false,
                }),
                Locator::Ini("db.password".into()),
                " padded-value ",
            ),
        ];
        for (file, context, locator, value) in cases {
            let plan = plan(file, &handle, context, locator);
            let values = Values::from([(handle.clone(), Secret::from(value.to_string()))]);
            let shown = check(&plan, &values).unwrap_err().to_string();
            assert!(
                shown.contains(file) && shown.contains(&handle.to_string()),
                "{shown}"
            );
            assert!(!shown.contains(value.trim()), "{shown}");
            let fine =
                Values::from([(handle.clone(), Secret::from("plain-value-123".to_string()))]);
            assert!(check(&plan, &fine).is_ok());
        }
    }
}
