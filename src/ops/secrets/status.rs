//! Rotation status of handles: exists, current version, age against `rotation.max_age_days`.
//!
//! Used by `agentbak secrets status` and `verify --check-handles`. A current version
//! is *due* for rotation once 80 % of the maximum age has passed, and *overdue* past it. The
//! env store has no versions, so its handles have no rotation state. Values fetched to prove a
//! handle resolves are dropped here; the report holds none.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::handle::Handle;
use crate::store::{ResolveOptions, Status, Stores, resolve};

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
    /// Age of the resolved version in days (fractional), if versioned and resolved.
    pub age_days: Option<f64>,
    /// Rotation state against the policy.
    pub rotation: Rotation,
    /// The policy's maximum age in days.
    pub max_age_days: u32,
}

/// The status of every handle, resolved now with `opts` (values are dropped at once).
pub fn handle_status(
    stores: &Stores,
    handles: &[Handle],
    max_age_days: u32,
    opts: &ResolveOptions,
    now: DateTime<Utc>,
) -> Vec<HandleStatus> {
    resolve(stores, handles, opts)
        .into_iter()
        .map(|r| {
            let versioned = !r.handle.is_env();
            let (age_days, state) = match &r.status {
                Status::Resolved { created, .. } if versioned => (
                    Some(now.signed_duration_since(*created).num_seconds() as f64 / 86400.0),
                    rotation(*created, now, max_age_days),
                ),
                _ => (None, Rotation::NotApplicable),
            };
            HandleStatus {
                handle: r.handle,
                status: r.status,
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
