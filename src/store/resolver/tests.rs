//! Resolver behaviour against an in-memory store that fails on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::*;
use crate::store::{SecretMeta, SecretStore, SecretVersion, StoreError, VersionMeta};

/// A store of `path` → versions, failing the first `fail` reads with `kind`.
struct Fake {
    data: BTreeMap<String, Vec<BTreeMap<String, Secret>>>,
    fail: Mutex<(u32, Option<StoreErrorKind>)>,
    reads: Arc<AtomicU32>,
    metas: Arc<AtomicU32>,
}

/// Versions of one path, oldest first; each a list of (field, value).
type Versions<'a> = &'a [&'a [(&'a str, &'a str)]];

impl Fake {
    fn new(paths: &[(&str, Versions<'_>)]) -> Fake {
        let data = paths
            .iter()
            .map(|(p, versions)| {
                let vs = versions
                    .iter()
                    .map(|fields| {
                        fields
                            .iter()
                            .map(|(k, v)| (k.to_string(), Secret::from(v.to_string())))
                            .collect()
                    })
                    .collect();
                (p.to_string(), vs)
            })
            .collect();
        Fake {
            data,
            fail: Mutex::new((0, None)),
            reads: Arc::new(AtomicU32::new(0)),
            metas: Arc::new(AtomicU32::new(0)),
        }
    }

    fn failing(self, n: u32, kind: StoreErrorKind) -> Fake {
        *self.fail.lock().unwrap() = (n, Some(kind));
        self
    }
}

impl SecretStore for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn kind(&self) -> &'static str {
        "local"
    }
    fn read(&self, path: &str, version: Option<u64>) -> Result<SecretVersion, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        {
            let mut fail = self.fail.lock().unwrap();
            if let (n @ 1.., Some(kind)) = *fail {
                fail.0 = n - 1;
                return Err(StoreError::new("fake", path, kind, "injected"));
            }
        }
        let versions = self
            .data
            .get(path)
            .ok_or_else(|| StoreError::new("fake", path, StoreErrorKind::Missing, "none"))?;
        let v = version.unwrap_or(versions.len() as u64);
        let fields = versions
            .get((v as usize).wrapping_sub(1))
            .ok_or_else(|| StoreError::new("fake", path, StoreErrorKind::Missing, "no version"))?;
        Ok(SecretVersion {
            fields: fields.clone(),
            version: v,
            created: Utc::now(),
        })
    }
    fn metadata(&self, path: &str) -> Result<SecretMeta, StoreError> {
        self.metas.fetch_add(1, Ordering::SeqCst);
        let versions = self
            .data
            .get(path)
            .ok_or_else(|| StoreError::new("fake", path, StoreErrorKind::Missing, "none"))?;
        Ok(SecretMeta {
            path: path.into(),
            current: versions.len() as u64,
            versions: (1..=versions.len() as u64)
                .map(|version| VersionMeta {
                    version,
                    created: Utc::now(),
                    deleted: None,
                    destroyed: false,
                })
                .collect(),
            changed: BTreeMap::new(),
        })
    }
    fn put_fields(
        &self,
        _: &str,
        _: &BTreeMap<String, Secret>,
        _: Option<u64>,
    ) -> Result<u64, StoreError> {
        unreachable!("the resolver never writes")
    }
    fn list(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.data.keys().cloned().collect())
    }
}

fn stores(fake: Fake) -> Stores {
    let mut s = Stores::new("kevin");
    s.insert(Box::new(fake));
    s
}

fn h(s: &str) -> Handle {
    Handle::parse(s).unwrap()
}

fn fast() -> ResolveOptions {
    ResolveOptions {
        retry: RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        ..ResolveOptions::default()
    }
}

#[test]
fn fields_of_one_secret_share_one_request() {
    let fake = Fake::new(&[("agents/kevin/db", &[&[("user", "u"), ("pass", "p")]])]);
    let reads = fake.reads.clone();
    let s = stores(fake);
    let out = resolve(
        &s,
        &[
            h("fake:agents/{agent}/db#user"),
            h("fake:agents/kevin/db#pass"),
            h("fake:agents/kevin/db#user"),
        ],
        &fast(),
    );
    assert!(out.iter().all(|r| r.status.is_resolved()), "{out:?}");
    assert_eq!(out[0].value.as_ref().unwrap().expose(), b"u");
    assert_eq!(out[1].value.as_ref().unwrap().expose(), b"p");
    assert_eq!(out[0].handle, h("fake:agents/{agent}/db#user"));
    assert!(out.iter().all(|r| r.attempts == 1));
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

#[test]
fn transient_failures_are_retried_and_missing_ones_are_not() {
    let s = stores(Fake::new(&[("p", &[&[("f", "v")]])]).failing(2, StoreErrorKind::Unavailable));
    let r = resolve_one(&s, &h("fake:p#f"), &fast());
    assert!(
        matches!(r.status, Status::Resolved { version: 1, .. }),
        "{r:?}"
    );
    assert_eq!(r.attempts, 3);

    let s = stores(Fake::new(&[]).failing(1, StoreErrorKind::Forbidden));
    let r = resolve_one(&s, &h("fake:p#f"), &fast());
    assert!(matches!(r.status, Status::Forbidden { .. }), "{r:?}");
    assert_eq!(r.attempts, 1);
    assert!(r.value.is_none());

    let s = stores(Fake::new(&[]));
    let r = resolve_one(&s, &h("fake:p#f"), &fast());
    assert!(matches!(r.status, Status::Missing { .. }), "{r:?}");
    assert_eq!(r.attempts, 1);
}

#[test]
fn retries_are_bounded() {
    let s = stores(Fake::new(&[("p", &[&[("f", "v")]])]).failing(100, StoreErrorKind::Unreachable));
    let r = resolve_one(&s, &h("fake:p#f"), &fast());
    assert!(matches!(r.status, Status::Unreachable { .. }), "{r:?}");
    assert_eq!(r.attempts, 4);
}

#[test]
fn a_missing_field_is_missing_never_empty() {
    let s = stores(Fake::new(&[("p", &[&[("f", "v")]])]));
    let r = resolve_one(&s, &h("fake:p#other"), &fast());
    assert!(
        matches!(&r.status, Status::Missing { message } if message.contains("no field `other`")),
        "{r:?}"
    );
    assert!(r.value.is_none());
}

#[test]
fn version_choices() {
    let s = stores(Fake::new(&[(
        "p",
        &[&[("f", "one")], &[("f", "two")], &[("f", "three")]],
    )]));
    let value =
        |r: &Resolution| String::from_utf8(r.value.as_ref().unwrap().expose().to_vec()).unwrap();
    assert_eq!(value(&resolve_one(&s, &h("fake:p#f"), &fast())), "three");
    assert_eq!(
        value(&resolve_one(&s, &h("fake:p?version=1#f"), &fast())),
        "one"
    );
    let prev = ResolveOptions {
        version: VersionChoice::Previous,
        ..fast()
    };
    assert_eq!(value(&resolve_one(&s, &h("fake:p#f"), &prev)), "two");
    let pinned = ResolveOptions {
        version: VersionChoice::Pinned(BTreeMap::from([(h("fake:p#f"), 1)])),
        ..fast()
    };
    assert_eq!(value(&resolve_one(&s, &h("fake:p#f"), &pinned)), "one");
}

#[test]
fn unknown_store_is_other() {
    let s = stores(Fake::new(&[]));
    let r = resolve_one(&s, &h("nope:p#f"), &fast());
    assert!(matches!(r.status, Status::Other { .. }), "{r:?}");
}

#[test]
fn the_deadline_stops_retries() {
    let s =
        stores(Fake::new(&[("p", &[&[("f", "v")]])]).failing(1000, StoreErrorKind::Unreachable));
    let opts = ResolveOptions {
        deadline: Duration::from_millis(50),
        retry: RetryPolicy {
            attempts: 1000,
            base: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        ..ResolveOptions::default()
    };
    let r = resolve_one(&s, &h("fake:p#f"), &opts);
    assert!(matches!(r.status, Status::Unreachable { .. }), "{r:?}");
    // 50 ms of 5–10 ms pauses: far fewer than the 1000 attempts allowed.
    assert!(r.attempts < 20, "{}", r.attempts);
}

#[test]
fn backoff_grows_and_is_capped_with_jitter() {
    let p = RetryPolicy {
        attempts: 10,
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    for random in [0, 7, u64::MAX] {
        let b1 = p.backoff(1, random);
        assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
        let b3 = p.backoff(3, random);
        assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
        let b9 = p.backoff(9, random);
        assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_secs(1));
    }
}

#[test]
fn debug_of_resolutions_holds_no_value() {
    let s = stores(Fake::new(&[("p", &[&[("f", "value-that-must-not-show")]])]));
    let r = resolve(&s, &[h("fake:p#f")], &fast());
    let shown = format!("{r:?} {r:#?}");
    assert!(!shown.contains("value-that-must-not-show"), "{shown}");
}

fn text(s: &Secret) -> &str {
    s.expose_str().unwrap()
}

#[test]
fn histories_read_each_path_once_whatever_the_fields() {
    let fake = Fake::new(&[
        (
            "agents/kevin/db",
            &[
                &[("user", "u1"), ("pass", "p1")],
                &[("user", "u1"), ("pass", "p2")],
                &[("user", "u1"), ("pass", "p3")],
            ],
        ),
        ("agents/kevin/other", &[&[("k", "v")]]),
    ]);
    let (reads, metas) = (fake.reads.clone(), fake.metas.clone());
    let s = stores(fake);
    let out = resolve_histories(
        &s,
        &[
            h("fake:agents/{agent}/db#user"),
            h("fake:agents/kevin/db#pass"),
            h("fake:agents/kevin/other#k"),
        ],
        &fast(),
    );
    // One metadata read per path, each version once: 2 + (3 + 1).
    assert_eq!(metas.load(Ordering::SeqCst), 2);
    assert_eq!(reads.load(Ordering::SeqCst), 4);
    assert_eq!(out[0].handle, h("fake:agents/{agent}/db#user"));
    assert!(matches!(out[0].status, Status::Resolved { version: 3, .. }));
    let pass: Vec<(&str, u64)> = out[1]
        .values
        .iter()
        .map(|v| (text(&v.value), v.since.version))
        .collect();
    assert_eq!(pass, vec![("p1", 1), ("p2", 2), ("p3", 3)]);
    // Per field: the password changed at 3, the user never since 1.
    assert_eq!(out[1].changed.map(|c| c.version), Some(3));
    assert_eq!(out[0].changed.map(|c| c.version), Some(1));
    assert_eq!(out[0].values.len(), 1);
    assert!(out[0].older().is_empty());
    let older: Vec<(&str, u64)> = out[1]
        .older()
        .iter()
        .map(|v| (text(&v.value), v.since.version))
        .collect();
    assert_eq!(older, vec![("p1", 1), ("p2", 2)]);
}

#[test]
fn a_value_that_comes_back_is_current_not_older() {
    let s = stores(Fake::new(&[(
        "p",
        &[&[("f", "a")], &[("f", "b")], &[("g", "x")], &[("f", "a")]],
    )]));
    let out = resolve_histories(&s, &[h("fake:p#f")], &fast());
    let all: Vec<(&str, u64)> = out[0]
        .values
        .iter()
        .map(|v| (text(&v.value), v.since.version))
        .collect();
    // A version without the field ends a run: `a` at 4 is a new change.
    assert_eq!(all, vec![("a", 1), ("b", 2), ("a", 4)]);
    assert_eq!(out[0].changed.map(|c| c.version), Some(4));
    let older: Vec<&str> = out[0].older().iter().map(|v| text(&v.value)).collect();
    assert_eq!(older, vec!["b"]);
}

#[test]
fn pinned_and_failing_handles_in_a_history_run() {
    let s = stores(Fake::new(&[("p", &[&[("f", "one")], &[("f", "two")]])]));
    let out = resolve_histories(&s, &[h("fake:p?version=1#f"), h("fake:p#nope")], &fast());
    assert_eq!(text(out[0].value.as_ref().unwrap()), "one");
    assert!(out[0].values.is_empty());
    assert!(
        matches!(&out[1].status, Status::Missing { message } if message.contains("no field `nope`")),
        "{:?}",
        out[1].status
    );
    assert!(out[1].value.is_none());

    let s = stores(Fake::new(&[("p", &[&[("f", "v")]])]).failing(100, StoreErrorKind::Unreachable));
    let out = resolve_histories(&s, &[h("fake:p#f")], &fast());
    assert!(
        matches!(out[0].status, Status::Unreachable { .. }),
        "{out:?}"
    );
}
