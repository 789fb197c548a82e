//! The store side of a snapshot: known values from the stores, and the sync check.
//!
//! Known values (SPEC "Snapshot" point 2) are the values at declared locations and, when a
//! store answers, every value each handle's field has had in the versions the store keeps (not
//! deleted or destroyed): the current value under the handle itself, and each older value,
//! once, under the handle pinned to the version where it first appeared (`?version=N`). A stray
//! copy of an old value (an old token left in a log) thus becomes a version-pinned placeholder
//! (`+agentbak:STORE:PATH@N:FIELD+`) and restores exactly as it was, while the declared
//! locations get the current value back. The sync check (point 4) compares each declared value
//! with its store: a value the store holds in no kept version would give the agent a different
//! credential on restore.
//!
//! Cost: one history per distinct secret path (one metadata read, then each kept version
//! once), however many fields of it the manifest names.

use std::collections::BTreeMap;

use crate::handle::Handle;
use crate::secret::Secret;
use crate::store::{ResolveOptions, Status, Stores, resolve_histories};

/// What the stores said about the handles of the manifest.
#[derive(Debug, Default)]
pub struct StoreView {
    /// Every kept value, for the leak gate and stray search: the current one labelled by the
    /// handle, each older one by the handle pinned to the version where it first appeared.
    pub known: Vec<(Handle, Secret)>,
    /// Per handle: the current version and value, and the older values by version.
    versions: BTreeMap<Handle, Held>,
    /// Stores that could not be reached: the snapshot runs degraded.
    pub unreachable: Vec<String>,
    /// Handles a store refused or failed on (403, a missing token): each needs attention.
    pub problems: Vec<String>,
}

#[derive(Debug, Default)]
struct Held {
    current: Option<(u64, Secret)>,
    /// Older values, each once, at the version where it first appeared, oldest first.
    older: Vec<(u64, Secret)>,
    missing: bool,
}

/// How a declared value compares with its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// The store's current version holds it.
    Current(u64),
    /// An older version the store keeps holds it (the version where it first appeared): rotated
    /// since, so a restore gives the new one.
    Previous(u64),
    /// The store does not hold it.
    Unsynced,
    /// The store could not be asked.
    Unknown,
}

impl StoreView {
    /// Fetches every kept value of `handles` (env handles are skipped: the environment is the
    /// runtime layer, not a store of record).
    pub fn fetch(stores: &Stores, handles: &[Handle]) -> StoreView {
        let handles: Vec<Handle> = handles.iter().filter(|h| !h.is_env()).cloned().collect();
        let mut view = StoreView::default();
        if handles.is_empty() {
            return view;
        }
        let options = ResolveOptions {
            // A snapshot must not take a cached value for a live one.
            use_cache: false,
            ..ResolveOptions::default()
        };
        for found in resolve_histories(stores, &handles, &options) {
            let held = view.versions.entry(found.handle.clone()).or_default();
            for older in found.older() {
                let version = older.since.version;
                let pinned = found.handle.at_version(Some(version));
                view.known.push((pinned, older.value.clone()));
                held.older.push((version, older.value.clone()));
            }
            match (&found.status, found.value) {
                (Status::Resolved { version, .. }, Some(value)) => {
                    view.known.push((found.handle.clone(), value.clone()));
                    held.current = Some((*version, value));
                }
                (Status::Missing { .. }, _) => held.missing = true,
                (Status::Unreachable { .. }, _)
                    if !view.unreachable.contains(&found.handle.store) =>
                {
                    view.unreachable.push(found.handle.store.clone());
                }
                (Status::Forbidden { message } | Status::Other { message }, _) => {
                    view.problems
                        .push(format!("{}: cannot check it: {message}", found.handle));
                }
                _ => {}
            }
        }
        view
    }

    /// Labels the current value of `handle` with its version, as an older value is: once a new
    /// value was pushed, it is no longer current.
    pub fn pin_current(&mut self, handle: &Handle) {
        let Some((version, _)) = self.versions.get(handle).and_then(|h| h.current.as_ref()) else {
            return;
        };
        let pinned = handle.at_version(Some(*version));
        for (h, _) in self.known.iter_mut().filter(|(h, _)| h == handle) {
            *h = pinned.clone();
        }
    }

    /// Compares a declared value with what the store holds for its handle: the current value,
    /// then every older kept value.
    pub fn sync(&self, handle: &Handle, value: &Secret) -> Sync {
        let Some(held) = self.versions.get(handle) else {
            return Sync::Unknown;
        };
        if let Some((v, cur)) = &held.current
            && cur == value
        {
            return Sync::Current(*v);
        }
        if let Some((v, _)) = held.older.iter().find(|(_, old)| old == value) {
            return Sync::Previous(*v);
        }
        match &held.current {
            Some(_) => Sync::Unsynced,
            None if held.missing => Sync::Unsynced,
            None => Sync::Unknown,
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
            older: previous
                .map(|v| (2, Secret::from(v.to_string())))
                .into_iter()
                .collect(),
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

    #[test]
    fn every_kept_value_is_known_older_ones_pinned_where_they_appeared() {
        use crate::store::{LocalStore, SecretStore};
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(
            "local",
            &dir.path().join("s.age"),
            &dir.path().join("k"),
            10,
        );
        let path = "agents/kevin/openai";
        store
            .put(path, "api_key", &s("first-value-1"), None)
            .unwrap();
        store.put(path, "org", &s("org-value-123"), None).unwrap();
        store
            .put(path, "api_key", &s("second-value-2"), None)
            .unwrap();
        store
            .put(path, "api_key", &s("third-value-33"), None)
            .unwrap();
        let mut stores = Stores::new("kevin");
        stores.insert(Box::new(store));
        let key = handle();
        let org = Handle::parse("local:agents/kevin/openai#org").unwrap();
        let view = StoreView::fetch(&stores, &[key.clone(), org.clone()]);
        let known: Vec<(String, &str)> = view
            .known
            .iter()
            .map(|(h, v)| (h.placeholder(), v.expose_str().unwrap()))
            .collect();
        assert_eq!(
            known,
            vec![
                (
                    "+agentbak:local:agents/kevin/openai@1:api_key+".to_string(),
                    "first-value-1"
                ),
                (
                    "+agentbak:local:agents/kevin/openai@3:api_key+".to_string(),
                    "second-value-2"
                ),
                (
                    "+agentbak:local:agents/kevin/openai:api_key+".to_string(),
                    "third-value-33"
                ),
                (
                    "+agentbak:local:agents/kevin/openai:org+".to_string(),
                    "org-value-123"
                ),
            ]
        );
        assert_eq!(view.sync(&key, &s("third-value-33")), Sync::Current(4));
        assert_eq!(view.sync(&key, &s("second-value-2")), Sync::Previous(3));
        assert_eq!(view.sync(&key, &s("first-value-1")), Sync::Previous(1));
        assert_eq!(view.sync(&org, &s("org-value-123")), Sync::Current(4));
        assert!(view.unreachable.is_empty() && view.problems.is_empty());
    }
}
