//! The known values of one snapshot attempt: what the declared locations hold, what the stores
//! hold, and the detector the leak gate searches with.
//!
//! Declared values are read first (every file a rule names), because they are known values
//! for every other file. The bytes read then are kept ([`Known::take_held`], up to
//! [`MAX_HELD`] in all) and archived as they are, so the gate searches exactly the values the
//! archive's rule files held. A rule file past that budget is read again when it is archived;
//! if its declared values are not those of the first read (the agent rotated a key in
//! between), the values the gate searched for are stale, and the attempt must start over
//! ([`Known::check_unchanged`] says so).

use std::collections::{BTreeMap, HashMap};

use zeroize::Zeroizing;

use super::rules::Rules;
use super::secrets::{self, Sync};
use super::{SnapshotOptions, SnapshotReport, SyncStatus, read_file};
use crate::detect::{Detector, KnownValues};
use crate::error::Result;
use crate::handle::Handle;
use crate::manifest::Manifest;
use crate::ops::walk::{EntryKind, Walk};
use crate::redact::{Rule, StrayMatcher, redact_file};
use crate::secret::Secret;
use crate::store::Stores;

/// How many bytes of rule files one attempt keeps from the first read.
pub const MAX_HELD: usize = 64 * 1024 * 1024;

/// Database files whose copies are kept from the first read to the archive, in bytes: a copy
/// is needed to archive the database anyway, and one kept is one read less and the very
/// cells whose values the gate searches for. Beyond it, a database is copied again.
pub const MAX_HELD_DATABASES: u64 = 4 << 30;

/// The known values of one attempt.
pub(super) struct Known {
    /// Declared and store values, searched for in every text file: stray copies become
    /// placeholders (built once per attempt, not once per file).
    pub stray: StrayMatcher,
    /// The store version that holds each declared value, for the index.
    pub versions: BTreeMap<Handle, u64>,
    declared: Vec<(Handle, Secret)>,
    held: HashMap<String, Zeroizing<Vec<u8>>>,
    /// The copies of databases with declared cells, taken to read those values and kept to
    /// archive (up to [`MAX_HELD_DATABASES`] bytes of database files in all).
    held_databases: HashMap<String, crate::sqlite::Copy>,
    /// A keyed hash of every known value and store version, when a key was given: the
    /// incremental repository reuses a parent's files only under the same one.
    pub fingerprint: Option<[u8; 32]>,
}

/// A rule file whose declared values changed between the two reads.
#[derive(Debug)]
pub(super) struct Changed(pub String);

impl Known {
    /// The bytes of rule file `rel` as the first read saw them, when they were kept.
    pub fn take_held(&mut self, rel: &str) -> Option<Zeroizing<Vec<u8>>> {
        self.held.remove(rel)
    }

    /// The copy of database `rel` the first read took, when it was kept.
    pub fn take_held_database(&mut self, rel: &str) -> Option<crate::sqlite::Copy> {
        self.held_databases.remove(rel)
    }

    /// Whether the values a second read of `rel` found are all declared values of the first.
    pub fn check_unchanged(&self, rel: &str, values: &[(Handle, Secret)]) -> Result<(), Changed> {
        let stale = values.iter().any(|v| !self.declared.contains(v));
        if stale {
            return Err(Changed(rel.to_string()));
        }
        Ok(())
    }
}

/// What a snapshot run reads its known values with.
pub(super) struct Sources<'a> {
    pub m: &'a Manifest,
    pub opts: &'a SnapshotOptions,
    pub rules: &'a Rules,
    pub stores: &'a Stores,
    /// Values captured by earlier runs, each with its handle.
    pub captured: &'a [(Handle, Secret)],
    /// The key of [`Known::fingerprint`] (the incremental repository's chunk-id key).
    pub fingerprint_key: Option<&'a [u8; 32]>,
}

/// Reads the declared values (keeping up to `budget` bytes of rule files), asks the stores,
/// runs the sync check, and builds the gate's detector.
pub(super) fn gather(
    sources: &Sources<'_>,
    walked: &Walk,
    report: &mut SnapshotReport,
    budget: usize,
) -> Result<(Known, Detector)> {
    let Sources {
        m,
        opts,
        rules,
        stores,
        captured,
        fingerprint_key,
    } = *sources;
    let mut declared: Vec<(Handle, Secret)> = Vec::new();
    // The file each declared value was read from.
    let mut from: Vec<String> = Vec::new();
    let mut held = HashMap::new();
    let mut held_bytes = 0;
    let mut held_databases = HashMap::new();
    let mut held_database_bytes = 0;
    let mut matched = vec![false; rules.rules.len()];
    for entry in &walked.entries {
        let EntryKind::File { size } = entry.kind else {
            continue;
        };
        let file_rules = rules.for_file(&entry.rel);
        if file_rules.is_empty() {
            continue;
        }
        for (i, _) in &file_rules {
            matched[*i] = true;
        }
        let only: Vec<Rule> = file_rules.into_iter().map(|(_, r)| r).collect();
        if super::archive::is_captured_database(entry, &only) {
            // Read from a consistent copy, which is kept to be archived: one read, and the
            // very cells whose values the gate searches for.
            let copy = crate::sqlite::Copy::capture(&entry.path, &entry.rel)?;
            let (values, _) = crate::sqlite::declared_values(&entry.rel, &copy, &only)?;
            for (h, v) in values {
                if !declared.iter().any(|(dh, dv)| *dh == h && *dv == v) {
                    partial_check(&declared, &from, &h, &v, &entry.rel)?;
                    declared.push((h, v));
                    from.push(entry.rel.clone());
                }
            }
            if held_database_bytes + size <= MAX_HELD_DATABASES {
                held_database_bytes += size;
                held_databases.insert(entry.rel.clone(), copy);
            }
            continue;
        }
        let bytes = Zeroizing::new(read_file(entry)?);
        let redacted = redact_file(&entry.rel, &bytes, &only, &[])?;
        for (h, v) in redacted.values {
            if !declared.iter().any(|(dh, dv)| *dh == h && *dv == v) {
                partial_check(&declared, &from, &h, &v, &entry.rel)?;
                declared.push((h, v));
                from.push(entry.rel.clone());
            }
        }
        if held_bytes + bytes.len() <= budget {
            held_bytes += bytes.len();
            held.insert(entry.rel.clone(), bytes);
        }
    }
    for (i, (rule, _, _)) in rules.rules.iter().enumerate() {
        if !matched[i] {
            report.warnings.push(format!(
                "secret rule `{}` ({}) matches no file of the state",
                rule.file,
                rule.locator()
            ));
        }
    }

    let view = secrets::StoreView::fetch(stores, &rules.handles());
    for name in &view.unreachable {
        report.degraded.push(format!("store-unreachable:{name}"));
    }
    report.warnings.extend(view.problems.iter().cloned());
    let mut view = view;
    let (versions, pushed) = sync_check(stores, &view, rules, &declared, opts, report)?;
    // A pushed value is the handle's new current version: the value the store held as current
    // until now is an older version, and a copy of it (an old token in a log) must come back as
    // it was, pinned, not as the new one.
    for handle in &pushed {
        view.pin_current(handle);
    }

    let mut values = declared.clone();
    for (h, v) in view.known.into_iter().chain(captured.iter().cloned()) {
        if !values.iter().any(|(kh, kv)| *kh == h && *kv == v) {
            values.push((h, v));
        }
    }
    let fingerprint = fingerprint_key.map(|key| fingerprint(key, &values, &versions));
    let known_values = KnownValues::new(values.iter().map(|(h, v)| (h.to_string(), v.clone())));
    report.too_short = known_values.too_short().to_vec();
    let detector = Detector::new(&m.detect, Some(known_values))?.with_manifest(m);
    Ok((
        Known {
            stray: StrayMatcher::new(&values),
            versions,
            declared,
            held,
            held_databases,
            fingerprint,
        },
        detector,
    ))
}

/// Refuses a handle whose rules read two values, one inside the other: a rule that captures
/// part of a value (a regex group too narrow) would store the part as the handle's value and
/// leave the rest in the archive.
fn partial_check(
    declared: &[(Handle, Secret)],
    from: &[String],
    handle: &Handle,
    value: &Secret,
    rel: &str,
) -> Result<()> {
    let inside = |a: &[u8], b: &[u8]| {
        !a.is_empty() && a.len() < b.len() && b.windows(a.len()).any(|w| w == a)
    };
    for ((h, v), file) in declared.iter().zip(from) {
        if h == handle && (inside(v.expose(), value.expose()) || inside(value.expose(), v.expose()))
        {
            return Err(crate::error::Error::Entry {
                path: rel.to_string(),
                reason: format!(
                    "the rules of {handle} read two different values here and in {file}, one a \
                     part of the other: a rule captures only part of the value (check its regex \
                     group); nothing was stored or written"
                ),
            });
        }
    }
    Ok(())
}

/// The sync check (SPEC "Snapshot" point 4). Returns the store version that holds each
/// declared value, for the index, and the handles whose value it stored as a new version.
fn sync_check(
    stores: &Stores,
    view: &secrets::StoreView,
    rules: &Rules,
    declared: &[(Handle, Secret)],
    opts: &SnapshotOptions,
    report: &mut SnapshotReport,
) -> Result<(BTreeMap<Handle, u64>, Vec<Handle>)> {
    let mut versions = BTreeMap::new();
    let mut pushed = Vec::new();
    for (handle, value) in declared {
        if handle.is_env() || rules.is_ephemeral(handle) {
            continue;
        }
        let (status, version) = match view.sync(handle, value) {
            Sync::Current(v) => ("current", Some(v)),
            Sync::Previous(v) => ("previous", Some(v)),
            Sync::Unknown => ("unknown", None),
            // The agent rewrites its own tokens (OAuth): each new value is the handle's
            // new version, so a restore brings back the newest token the agent had.
            Sync::Unsynced if rules.is_agent_owned(handle) && opts.dry_run => ("unsynced", None),
            Sync::Unsynced
                if (opts.push_secrets || rules.is_agent_owned(handle)) && !opts.dry_run =>
            {
                let store = stores.for_handle(handle)?;
                let address = crate::store::Address::of(handle);
                let v = store.put(&address.path, &address.field, value, None)?;
                pushed.push(handle.clone());
                ("pushed", Some(v))
            }
            Sync::Unsynced => {
                report.warnings.push(format!(
                    "{handle}: the value in the state is not in its store (current or previous); \
                     a restore would give the agent a different credential. Store it with \
                     `agentbak secrets push` or `snapshot --push-secrets`"
                ));
                ("unsynced", None)
            }
        };
        if let Some(v) = version {
            versions.insert(handle.clone(), v);
        }
        report.sync.push(SyncStatus {
            handle: handle.to_string(),
            status: status.to_string(),
            version,
        });
    }
    Ok((versions, pushed))
}

/// A keyed blake3 of the known values with their handles, and of the store versions: equal
/// exactly when the known values and versions are. Keyed so that it confirms no guess.
fn fingerprint(
    key: &[u8; 32],
    values: &[(Handle, Secret)],
    versions: &BTreeMap<Handle, u64>,
) -> [u8; 32] {
    let mut sorted: Vec<(String, &[u8])> = values
        .iter()
        .map(|(h, v)| (h.to_string(), v.expose()))
        .collect();
    sorted.sort();
    let mut hasher = blake3::Hasher::new_keyed(key);
    for (handle, value) in sorted {
        for part in [handle.as_bytes(), value] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    for (handle, version) in versions {
        let handle = handle.to_string();
        hasher.update(&(handle.len() as u64).to_le_bytes());
        hasher.update(handle.as_bytes());
        hasher.update(&version.to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}
