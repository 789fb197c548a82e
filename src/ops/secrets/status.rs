//! Rotation status of handles: exists, current version, age against `rotation.max_age_days`.
//!
//! Used by `agentbak secrets status` and `verify --check-handles`. Age is per field: it counts
//! from the version where the field's current value was first written, not from the secret's
//! current version, so rotating one field of a secret leaves its siblings' age alone (the
//! local store records each field's change; for KV v2 the field is compared across the kept
//! versions, see [`crate::store::PathHistory::last_changed`]). A value is *due* for rotation
//! once 80 % of the maximum age has passed, and *overdue* past it. The env store has no
//! versions, so its handles have no rotation state. Values fetched to prove a handle resolves
//! are dropped here; the report holds none.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::handle::Handle;
use crate::store::{Change, ResolveOptions, Status, Stores, resolve_histories};

/// Where a version stands against the rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// Younger than 80 % of the maximum age.
    Ok,
    /// At least 80 % of the maximum age: rotate soon.
    Due,
    /// Older than the maximum age.
    Overdue,
    /// Not versioned (env store), or not resolved.
    NotApplicable,
}

impl Rotation {
    /// The label used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Rotation::Ok => "ok",
            Rotation::Due => "due",
            Rotation::Overdue => "overdue",
            Rotation::NotApplicable => "-",
        }
    }
}

/// The rotation state of a version created at `created`, at `now`.
pub fn rotation(created: DateTime<Utc>, now: DateTime<Utc>, max_age_days: u32) -> Rotation {
    let age = now.signed_duration_since(created);
    let max = chrono::Duration::days(i64::from(max_age_days));
    if age > max {
        Rotation::Overdue
    } else if age * 5 >= max * 4 {
        Rotation::Due
    } else {
        Rotation::Ok
    }
}

/// One handle's status report. Holds no value.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HandleStatus {
    /// The handle as the manifest writes it.
    pub handle: Handle,
    /// Whether and how it resolved now.
    #[serde(flatten)]
    pub status: Status,
    /// The version where the field's current value was first written (a sibling field's
    /// rotation does not move it), if versioned and resolved.
    pub changed_version: Option<u64>,
    /// When that version was written.
    pub changed_at: Option<DateTime<Utc>>,
    /// Age of the field's current value in days (fractional), from `changed_at`, if versioned
    /// and resolved.
    pub age_days: Option<f64>,
    /// Rotation state against the policy.
    pub rotation: Rotation,
    /// The policy's maximum age in days.
    pub max_age_days: u32,
}

/// The status of every handle, resolved now with `opts` (values are dropped at once). One
/// history per secret path gives each field's last change; `opts.version` is not used (a
/// status is of the current value, or of the version a handle pins).
pub fn handle_status(
    stores: &Stores,
    handles: &[Handle],
    max_age_days: u32,
    opts: &ResolveOptions,
    now: DateTime<Utc>,
) -> Vec<HandleStatus> {
    resolve_histories(stores, handles, opts)
        .into_iter()
        .map(|r| {
            let versioned = !r.handle.is_env();
            let changed = match &r.status {
                Status::Resolved { version, created } if versioned => {
                    // A pinned handle has no history: its age is its version's.
                    Some(r.changed.unwrap_or(Change {
                        version: *version,
                        created: *created,
                    }))
                }
                _ => None,
            };
            let (age_days, state) = match changed {
                Some(c) => (
                    Some(now.signed_duration_since(c.created).num_seconds() as f64 / 86400.0),
                    rotation(c.created, now, max_age_days),
                ),
                None => (None, Rotation::NotApplicable),
            };
            HandleStatus {
                handle: r.handle,
                status: r.status,
                changed_version: changed.map(|c| c.version),
                changed_at: changed.map(|c| c.created),
                age_days,
                rotation: state,
                max_age_days,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_80_percent_overdue_past_the_max() {
        let now = Utc::now();
        let days = |d: i64| now - chrono::Duration::days(d);
        assert_eq!(rotation(days(0), now, 30), Rotation::Ok);
        assert_eq!(rotation(days(23), now, 30), Rotation::Ok);
        assert_eq!(rotation(days(24), now, 30), Rotation::Due);
        assert_eq!(rotation(days(30), now, 30), Rotation::Due);
        assert_eq!(rotation(days(31), now, 30), Rotation::Overdue);
    }
}
