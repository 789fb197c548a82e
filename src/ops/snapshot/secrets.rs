//! The store side of a snapshot: known values from the stores, and the sync check.
//!
//! Known values (SPEC "Snapshot" point 2) are the values at declared locations and, when a
//! store answers, the current and previous versions of every handle. The sync check (point 4)
//! compares each declared value with its store: a value the store holds neither as current nor
//! as previous version would give the agent a different credential on restore.

use std::collections::BTreeMap;

use crate::handle::Handle;
use crate::secret::Secret;
use crate::store::{ResolveOptions, Status, Stores, VersionChoice, resolve};

/// What the stores said about the handles of the manifest.
#[derive(Debug, Default)]
pub struct StoreView {
    /// Current and previous values, labelled by handle, for the leak gate and stray search.
    pub known: Vec<(Handle, Secret)>,
    /// Per handle: (current version, current value, previous version, previous value).
    versions: BTreeMap<Handle, Held>,
    /// Stores that could not be reached: the snapshot runs degraded.
    pub unreachable: Vec<String>,
    /// Handles a store refused or failed on (403, a missing token): each needs attention.
    pub problems: Vec<String>,
}

#[derive(Debug, Default)]
struct Held {
    current: Option<(u64, Secret)>,
    previous: Option<(u64, Secret)>,
    missing: bool,
}

/// How a declared value compares with its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// The store's current version holds it.
    Current(u64),
    /// The store's previous version holds it (rotated since; a restore gives the new one).
    Previous(u64),
    /// The store does not hold it.
    Unsynced,
    /// The store could not be asked.
    Unknown,
}

impl StoreView {
    /// Fetches the current and previous values of `handles` (env handles are skipped: the
    /// environment is the runtime layer, not a store of record).
    pub fn fetch(stores: &Stores, handles: &[Handle]) -> StoreView {
        let handles: Vec<Handle> = handles.iter().filter(|h| !h.is_env()).cloned().collect();
        let mut view = StoreView::default();
        if handles.is_empty() {
            return view;
        }
        let options = |version| ResolveOptions {
            version,
            // A snapshot must not take a cached value for a live one.
            use_cache: false,
            ..ResolveOptions::default()
        };
        let current = resolve(stores, &handles, &options(VersionChoice::Current));
        let previous = resolve(stores, &handles, &options(VersionChoice::Previous));
        for (now, before) in current.into_iter().zip(previous) {
            let held = view.versions.entry(now.handle.clone()).or_default();
            match (&now.status, now.value) {
                (Status::Resolved { version, .. }, Some(value)) => {
                    view.known.push((now.handle.clone(), value.clone()));
                    held.current = Some((*version, value));
                }
                (Status::Missing { .. }, _) => held.missing = true,
                (Status::Unreachable { .. }, _)
                    if !view.unreachable.contains(&now.handle.store) =>
                {
                    view.unreachable.push(now.handle.store.clone());
                }
                (Status::Forbidden { message } | Status::Other { message }, _) => {
                    view.problems
                        .push(format!("{}: cannot check it: {message}", now.handle));
                }
                _ => {}
            }
            if let (Status::Resolved { version, .. }, Some(value)) = (&before.status, before.value)
            {
                view.known.push((before.handle.clone(), value.clone()));
                held.previous = Some((*version, value));
            }
        }
        view
    }

    /// Compares a declared value with what the store holds for its handle.
    pub fn sync(&self, handle: &Handle, value: &Secret) -> Sync {
        let Some(held) = self.versions.get(handle) else {
            return Sync::Unknown;
        };
        match (&held.current, &held.previous) {
            (Some((v, cur)), _) if cur == value => Sync::Current(*v),
            (_, Some((v, prev))) if prev == value => Sync::Previous(*v),
            (Some(_), _) => Sync::Unsynced,
            (None, _) if held.missing => Sync::Unsynced,
            (None, _) => Sync::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_with(current: Option<&str>, previous: Option<&str>, missing: bool) -> StoreView {
        let mut view = StoreView::default();
        let held = Held {
            current: current.map(|v| (3, Secret::from(v.to_string()))),
            previous: previous.map(|v| (2, Secret::from(v.to_string()))),
            missing,
        };
        view.versions.insert(handle(), held);
        view
    }

    fn handle() -> Handle {
        Handle::parse("local:agents/kevin/openai#api_key").unwrap()
    }

    fn s(v: &str) -> Secret {
        Secret::from(v.to_string())
    }

    #[test]
    fn sync_compares_with_current_then_previous() {
        let view = view_with(Some("new-value-123"), Some("old-value-123"), false);
        assert_eq!(view.sync(&handle(), &s("new-value-123")), Sync::Current(3));
        assert_eq!(view.sync(&handle(), &s("old-value-123")), Sync::Previous(2));
        assert_eq!(view.sync(&handle(), &s("other-value-1")), Sync::Unsynced);
    }

    #[test]
    fn a_missing_secret_is_unsynced_and_an_unasked_one_unknown() {
        assert_eq!(
            view_with(None, None, true).sync(&handle(), &s("x")),
            Sync::Unsynced
        );
        assert_eq!(
            view_with(None, None, false).sync(&handle(), &s("x")),
            Sync::Unknown
        );
        let other = Handle::parse("local:agents/kevin/github#token").unwrap();
        assert_eq!(
            view_with(Some("a"), None, false).sync(&other, &s("a")),
            Sync::Unknown
        );
    }
}
