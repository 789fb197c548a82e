//! The resolver: many handles in, one status (and maybe a value) per handle out.
//!
//! What restore and verify rely on:
//! - **One fetch per distinct (store, path, version)**: handles that name different fields of
//!   one secret share a request.
//! - **Bounded concurrency** (default 16 worker threads) over the synchronous store API.
//! - **Retries only where they can help**: connection errors, timeouts, 429, 5xx and a sealed
//!   vault are retried with exponential backoff and jitter, a bounded number of times; 403 and
//!   404 never are (a retry storm on a missing reference is how accounts get locked).
//! - **One deadline** for the whole run: no attempt starts, and no backoff sleeps, past it. An
//!   attempt already in flight is bounded by the store's own request timeout.
//! - **Never a silent empty value**: every handle gets a [`Status`]; only `Resolved` and
//!   `FromCache` carry a value.
//! - The cache of a store is read only when the store could not answer, and written (one
//!   locked write per store) with what was fetched.

use crate::error::ExitCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::cache::CacheKey;
use super::{
    Address, Change, FieldValue, PathHistory, SecretStore, SecretVersion, StoreError,
    StoreErrorKind, Stores,
};
use crate::handle::Handle;
use crate::secret::Secret;

/// Which version of each handle to fetch.
#[derive(Debug, Clone, Default)]
pub enum VersionChoice {
    /// The current version (a handle with `?version=N` still gets version N).
    #[default]
    Current,
    /// The version recorded per handle (e.g. at snapshot time); handles not in the map get
    /// the current version.
    Pinned(BTreeMap<Handle, u64>),
    /// The newest live version before the current one: the rotation grace version.
    Previous,
}

/// Retry settings for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Backoff before the second attempt; doubled each time.
    pub base: Duration,
    /// Upper bound of one backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The backoff after `attempt` failed attempts: exponential, capped, with "equal jitter"
    /// (half fixed, half random) so that many clients do not retry in lockstep.
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let half = exp / 2;
        let spread = half.as_micros().max(1) as u64;
        half + Duration::from_micros(random % spread)
    }
}

/// Options of one resolver run.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Which versions to fetch.
    pub version: VersionChoice,
    /// The deadline of the whole run, from its start.
    pub deadline: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Whether stores' caches may serve values when a store cannot answer.
    pub use_cache: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            version: VersionChoice::Current,
            deadline: Duration::from_secs(60),
            concurrency: 16,
            retry: RetryPolicy::default(),
            use_cache: true,
        }
    }
}

/// The outcome for one handle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Fetched from the store.
    Resolved {
        /// The version fetched.
        version: u64,
        /// When that version was written.
        created: DateTime<Utc>,
    },
    /// The store could not answer; the value comes from its cache.
    FromCache {
        /// The version cached.
        version: u64,
        /// When it was fetched.
        fetched_at: DateTime<Utc>,
        /// Why the store was not used.
        reason: String,
    },
    /// No such secret, version or field (also soft-deleted and destroyed versions).
    Missing {
        /// Detail.
        message: String,
    },
    /// The credentials do not allow it.
    Forbidden {
        /// Detail.
        message: String,
    },
    /// The store did not answer in time (down, sealed, overloaded) and no cache could help.
    Unreachable {
        /// Detail.
        message: String,
    },
    /// Anything else (KV v1 mount, unknown store, a corrupt local file).
    Other {
        /// Detail.
        message: String,
    },
}

impl Status {
    /// Whether a value came with it.
    pub fn is_resolved(&self) -> bool {
        matches!(self, Status::Resolved { .. } | Status::FromCache { .. })
    }

    /// The exit code a command that needed this value exits with: 0 resolved, 3 from the
    /// cache, 1 for a store that failed otherwise (misconfigured, a lost write race), 6 for a
    /// value that is missing, forbidden or unreachable.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Status::Resolved { .. } => ExitCode::Success,
            Status::FromCache { .. } => ExitCode::Warnings,
            Status::Other { .. } => ExitCode::Error,
            Status::Missing { .. } | Status::Forbidden { .. } | Status::Unreachable { .. } => {
                ExitCode::Unresolved
            }
        }
    }

    /// A short label: `resolved`, `from_cache`, `missing`, `forbidden`, `unreachable`, `other`.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Resolved { .. } => "resolved",
            Status::FromCache { .. } => "from_cache",
            Status::Missing { .. } => "missing",
            Status::Forbidden { .. } => "forbidden",
            Status::Unreachable { .. } => "unreachable",
            Status::Other { .. } => "other",
        }
    }

    fn from_error(e: &StoreError) -> Status {
        let message = e.to_string();
        match e.kind {
            StoreErrorKind::Missing => Status::Missing { message },
            StoreErrorKind::Forbidden => Status::Forbidden { message },
            StoreErrorKind::Sealed | StoreErrorKind::Unavailable | StoreErrorKind::Unreachable => {
                Status::Unreachable { message }
            }
            StoreErrorKind::KvV1 | StoreErrorKind::Conflict | StoreErrorKind::Other => {
                Status::Other { message }
            }
        }
    }
}

/// One handle's outcome. `value` is `Some` exactly when the status is resolved or from cache.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The handle as given.
    pub handle: Handle,
    /// What happened.
    pub status: Status,
    /// The value, if resolved.
    pub value: Option<Secret>,
    /// Requests made for this handle's secret (shared with handles of the same secret).
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct JobKey {
    store: String,
    path: String,
    want: CacheKey,
}

struct Outcome {
    result: Result<SecretVersion, StoreError>,
    cached_at: Option<(DateTime<Utc>, String)>,
    attempts: u32,
}

/// Resolves one handle (a run of one).
pub fn resolve_one(stores: &Stores, handle: &Handle, opts: &ResolveOptions) -> Resolution {
    resolve(stores, std::slice::from_ref(handle), opts)
        .pop()
        .expect("one resolution per handle")
}

/// Resolves every handle; the result has one [`Resolution`] per handle, in order.
pub fn resolve(stores: &Stores, handles: &[Handle], opts: &ResolveOptions) -> Vec<Resolution> {
    let deadline = Instant::now() + opts.deadline;
    let wanted: Vec<(JobKey, Address)> = handles
        .iter()
        .map(|h| job_for(&h.with_agent(stores.agent()), h, &opts.version))
        .collect();
    let mut keys: Vec<JobKey> = wanted.iter().map(|(k, _)| k.clone()).collect();
    keys.sort();
    keys.dedup();

    let mut outcomes = run_jobs(stores, &keys, opts, deadline);
    if opts.use_cache {
        apply_caches(stores, &keys, &mut outcomes);
    }

    wanted
        .into_iter()
        .zip(handles)
        .map(|((key, address), handle)| {
            let i = keys
                .binary_search(&key)
                .expect("every job key was collected");
            finish(handle, &address, &outcomes[i])
        })
        .collect()
}

fn job_for(filled: &Handle, original: &Handle, choice: &VersionChoice) -> (JobKey, Address) {
    let address = Address::of(filled);
    let want = match (address.version, choice) {
        (Some(v), _) => CacheKey::Version(v),
        (None, VersionChoice::Current) => CacheKey::Current,
        (None, VersionChoice::Previous) => CacheKey::Previous,
        (None, VersionChoice::Pinned(map)) => match map.get(original).or_else(|| map.get(filled)) {
            Some(v) => CacheKey::Version(*v),
            None => CacheKey::Current,
        },
    };
    let key = JobKey {
        store: filled.store.clone(),
        path: address.path.clone(),
        want,
    };
    (key, address)
}

fn run_jobs(
    stores: &Stores,
    keys: &[JobKey],
    opts: &ResolveOptions,
    deadline: Instant,
) -> Vec<Outcome> {
    crate::pool::map_with(
        keys,
        opts.concurrency,
        || super::jitter_seed() | 1,
        |rng, key| match stores.get(&key.store) {
            Some(store) => fetch(store, key, &opts.retry, deadline, rng),
            None => Outcome {
                result: Err(StoreError::new(
                    &key.store,
                    "",
                    StoreErrorKind::Other,
                    "no such store in the manifest's `stores`",
                )),
                cached_at: None,
                attempts: 0,
            },
        },
    )
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn fetch_once(store: &dyn SecretStore, key: &JobKey) -> Result<SecretVersion, StoreError> {
    match key.want {
        CacheKey::Current => store.read(&key.path, None),
        CacheKey::Version(v) => store.read(&key.path, Some(v)),
        CacheKey::Previous => {
            let meta = store.metadata(&key.path)?;
            let v = meta.previous().ok_or_else(|| {
                StoreError::new(
                    store.name(),
                    &key.path,
                    StoreErrorKind::Missing,
                    format!("no live version before the current one ({})", meta.current),
                )
            })?;
            store.read(&key.path, Some(v))
        }
    }
}

fn fetch(
    store: &dyn SecretStore,
    key: &JobKey,
    retry: &RetryPolicy,
    deadline: Instant,
    rng: &mut u64,
) -> Outcome {
    let (result, attempts) = with_retries(store, &key.path, retry, deadline, rng, || {
        fetch_once(store, key)
    });
    Outcome {
        result,
        cached_at: None,
        attempts,
    }
}

/// Runs `request` until it succeeds, fails for good, runs out of attempts or meets the
/// deadline; returns the last result and the attempts made.
fn with_retries<T>(
    store: &dyn SecretStore,
    path: &str,
    retry: &RetryPolicy,
    deadline: Instant,
    rng: &mut u64,
    request: impl Fn() -> Result<T, StoreError>,
) -> (Result<T, StoreError>, u32) {
    let mut attempts = 0;
    loop {
        if Instant::now() >= deadline {
            let last = if attempts == 0 {
                "the run's deadline passed before this secret was fetched".to_string()
            } else {
                "the run's deadline passed".to_string()
            };
            let e = StoreError::new(store.name(), path, StoreErrorKind::Unreachable, last);
            return (Err(e), attempts);
        }
        attempts += 1;
        let result = request();
        let retry_it = match &result {
            Err(e) if e.kind.is_transient() && attempts < retry.attempts.max(1) => {
                let pause = retry.backoff(attempts, xorshift(rng));
                let left = deadline.saturating_duration_since(Instant::now());
                if pause < left {
                    tracing::debug!(store = store.name(), path = %path, attempts, kind = e.kind.label(), "retrying");
                    std::thread::sleep(pause);
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !retry_it {
            return (result, attempts);
        }
    }
}

/// Serves transient failures from caches, and records successes into them.
fn apply_caches(stores: &Stores, keys: &[JobKey], outcomes: &mut [Outcome]) {
    let now = Utc::now();
    let mut to_record: BTreeMap<&str, Vec<(String, CacheKey, &SecretVersion)>> = BTreeMap::new();
    for (key, outcome) in keys.iter().zip(outcomes.iter_mut()) {
        let Some(cache) = stores.cache(&key.store) else {
            continue;
        };
        let failure = match &outcome.result {
            Err(e) if e.kind.is_transient() => e.to_string(),
            _ => continue,
        };
        match cache.lookup(&key.path, key.want, now) {
            Ok(Some(hit)) => {
                outcome.result = Ok(hit.secret);
                outcome.cached_at = Some((hit.fetched_at, failure));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cache unreadable"),
        }
    }
    for (key, outcome) in keys.iter().zip(outcomes.iter()) {
        if let (Ok(secret), None) = (&outcome.result, &outcome.cached_at)
            && stores.cache(&key.store).is_some()
        {
            to_record.entry(key.store.as_str()).or_default().push((
                key.path.clone(),
                key.want,
                secret,
            ));
        }
    }
    for (store, fetched) in to_record {
        if let Some(cache) = stores.cache(store)
            && let Err(e) = cache.record(&fetched, now)
        {
            tracing::warn!(error = %e, "cannot update the cache");
        }
    }
}

fn finish(handle: &Handle, address: &Address, outcome: &Outcome) -> Resolution {
    let (status, value) = match &outcome.result {
        Err(e) => (Status::from_error(e), None),
        Ok(secret) => match (secret.fields.get(&address.field), &outcome.cached_at) {
            (None, _) => (
                Status::Missing {
                    message: format!(
                        "store `{}`, `{}`: version {} has no field `{}`",
                        handle.store, address.path, secret.version, address.field
                    ),
                },
                None,
            ),
            (Some(v), None) => (
                Status::Resolved {
                    version: secret.version,
                    created: secret.created,
                },
                Some(v.clone()),
            ),
            (Some(v), Some((fetched_at, reason))) => (
                Status::FromCache {
                    version: secret.version,
                    fetched_at: *fetched_at,
                    reason: reason.clone(),
                },
                Some(v.clone()),
            ),
        },
    };
    Resolution {
        handle: handle.clone(),
        status,
        value,
        attempts: outcome.attempts,
    }
}

/// One handle's values across the versions its store keeps (see [`resolve_histories`]).
#[derive(Debug, Clone)]
pub struct HandleHistory {
    /// The handle as given.
    pub handle: Handle,
    /// The current value's outcome, as [`resolve`] with [`VersionChoice::Current`] gives it.
    pub status: Status,
    /// The current value, if resolved.
    pub value: Option<Secret>,
    /// Every value the field has had in the versions the store keeps, oldest to newest, each
    /// with the version where it first appeared; the last is the current value when the current
    /// version holds the field. Empty for env and pinned handles, and when the store could not
    /// answer.
    pub values: Vec<FieldValue>,
    /// Where the current value was first written (per field: a sibling's rotation does not
    /// move it). `None` when not known.
    pub changed: Option<Change>,
}

impl HandleHistory {
    /// The older values: every value of [`HandleHistory::values`] that differs from the
    /// current one, once each (at the version where it first appeared), oldest first.
    pub fn older(&self) -> Vec<&FieldValue> {
        let mut out: Vec<&FieldValue> = Vec::new();
        for v in &self.values {
            let is_current = self.value.as_ref() == Some(&v.value);
            if !is_current && !out.iter().any(|o| o.value == v.value) {
                out.push(v);
            }
        }
        out
    }
}

/// Resolves the current value of every handle together with every value its field had in the
/// versions the store keeps (not deleted or destroyed): one history per distinct (store, path),
/// that is one metadata read and each kept version once, however many fields are asked, with
/// the retries, concurrency and deadline of [`resolve`]. Env and pinned handles have no
/// history: they resolve as [`resolve`] resolves them. With `use_cache`, a store that cannot
/// answer serves the current value from its cache (no history then); `opts.version` is not
/// used.
pub fn resolve_histories(
    stores: &Stores,
    handles: &[Handle],
    opts: &ResolveOptions,
) -> Vec<HandleHistory> {
    let deadline = Instant::now() + opts.deadline;
    let filled: Vec<Handle> = handles
        .iter()
        .map(|h| h.with_agent(stores.agent()))
        .collect();
    let with_history =
        |h: &Handle| matches!(&h.target, crate::handle::Target::Kv { version: None, .. });
    let mut keys: Vec<(String, String)> = filled
        .iter()
        .filter(|h| with_history(h))
        .map(|h| (h.store.clone(), Address::of(h).path))
        .collect();
    keys.sort();
    keys.dedup();
    let fetched = crate::pool::map_with(
        &keys,
        opts.concurrency,
        || super::jitter_seed() | 1,
        |rng, (store, path)| match stores.get(store) {
            Some(st) => with_retries(st, path, &opts.retry, deadline, rng, || st.history(path)).0,
            None => Err(StoreError::new(
                store,
                "",
                StoreErrorKind::Other,
                "no such store in the manifest's `stores`",
            )),
        },
    );
    if opts.use_cache {
        record_currents(stores, &keys, &fetched);
    }
    let plain: Vec<Handle> = handles
        .iter()
        .zip(&filled)
        .filter(|(_, f)| !with_history(f))
        .map(|(h, _)| h.clone())
        .collect();
    let current = ResolveOptions {
        version: VersionChoice::Current,
        deadline: deadline.saturating_duration_since(Instant::now()),
        ..opts.clone()
    };
    let mut plain = resolve(stores, &plain, &current).into_iter();
    handles
        .iter()
        .zip(&filled)
        .map(|(handle, f)| {
            if !with_history(f) {
                let r = plain.next().expect("one resolution per plain handle");
                return HandleHistory {
                    handle: r.handle,
                    status: r.status,
                    value: r.value,
                    values: Vec::new(),
                    changed: None,
                };
            }
            let address = Address::of(f);
            let i = keys
                .binary_search(&(f.store.clone(), address.path.clone()))
                .expect("every history key was collected");
            match &fetched[i] {
                Ok(history) => from_history(handle, &address, history),
                Err(e) => from_failure(stores, handle, &address, e, opts.use_cache),
            }
        })
        .collect()
}

fn from_history(handle: &Handle, address: &Address, history: &PathHistory) -> HandleHistory {
    let values = history.field(&address.field);
    let missing = |message: String| HandleHistory {
        handle: handle.clone(),
        status: Status::Missing { message },
        value: None,
        values: values.clone(),
        changed: None,
    };
    let Some(current) = history.current() else {
        return missing(format!(
            "store `{}`, `{}`: the current version {} was deleted or destroyed",
            handle.store, address.path, history.meta.current
        ));
    };
    let Some(value) = current.fields.get(&address.field) else {
        return missing(format!(
            "store `{}`, `{}`: version {} has no field `{}`",
            handle.store, address.path, current.version, address.field
        ));
    };
    HandleHistory {
        handle: handle.clone(),
        status: Status::Resolved {
            version: current.version,
            created: current.created,
        },
        value: Some(value.clone()),
        changed: history.last_changed(&address.field),
        values,
    }
}

fn from_failure(
    stores: &Stores,
    handle: &Handle,
    address: &Address,
    e: &StoreError,
    use_cache: bool,
) -> HandleHistory {
    let mut out = HandleHistory {
        handle: handle.clone(),
        status: Status::from_error(e),
        value: None,
        values: Vec::new(),
        changed: None,
    };
    if !(use_cache && e.kind.is_transient()) {
        return out;
    }
    let Some(cache) = stores.cache(&handle.store) else {
        return out;
    };
    match cache.lookup(&address.path, CacheKey::Current, Utc::now()) {
        Ok(Some(hit)) => {
            if let Some(v) = hit.secret.fields.get(&address.field) {
                out.status = Status::FromCache {
                    version: hit.secret.version,
                    fetched_at: hit.fetched_at,
                    reason: e.to_string(),
                };
                out.value = Some(v.clone());
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cache unreadable"),
    }
    out
}

/// Records the current version of every history fetched into its store's cache, as
/// [`resolve`] records what it fetches.
fn record_currents(
    stores: &Stores,
    keys: &[(String, String)],
    fetched: &[Result<PathHistory, StoreError>],
) {
    let now = Utc::now();
    let mut to_record: BTreeMap<&str, Vec<(String, CacheKey, &SecretVersion)>> = BTreeMap::new();
    for ((store, path), result) in keys.iter().zip(fetched) {
        if let Ok(history) = result
            && let Some(current) = history.current()
            && stores.cache(store).is_some()
        {
            to_record.entry(store.as_str()).or_default().push((
                path.clone(),
                CacheKey::Current,
                current,
            ));
        }
    }
    for (store, fetched) in to_record {
        if let Some(cache) = stores.cache(store)
            && let Err(e) = cache.record(&fetched, now)
        {
            tracing::warn!(error = %e, "cannot update the cache");
        }
    }
}

#[cfg(test)]
mod tests;
