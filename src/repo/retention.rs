//! Retention: which snapshots `prune` keeps, with restic's `forget` semantics.
//!
//! Snapshots are walked newest first. Each `keep_*` rule is a bucket with a count: a snapshot
//! is kept by a rule when its time falls in a different period (hour, day, ISO week, month,
//! year; `keep_last` treats every snapshot as its own period) than the last snapshot that rule
//! kept, and the rule still has count left; keeping uses one count. As in restic, the oldest
//! snapshot is also kept by every rule that still has count left when the walk reaches it, so
//! that history is as long as the counts allow. A snapshot with any `keep_tags` tag is kept
//! without using a count. Periods are computed in UTC (snapshot ids are UTC).
//!
//! Two rules of agentbak on top: the newest snapshot is never removed, whatever the policy;
//! and an empty policy removes nothing (as restic's does).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

use super::{Listing, Repository};
use crate::archive::Sidecar;
use crate::error::Result;
use crate::manifest::Retention;

/// A retention policy: the manifest's `retention`, with command-line flags applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the N newest snapshots.
    pub last: u32,
    /// Keep the newest snapshot of each of the last N hours.
    pub hourly: u32,
    /// … days.
    pub daily: u32,
    /// … ISO weeks.
    pub weekly: u32,
    /// … months.
    pub monthly: u32,
    /// … years.
    pub yearly: u32,
    /// Keep every snapshot carrying one of these tags.
    pub tags: BTreeSet<String>,
}

impl From<&Retention> for Policy {
    fn from(r: &Retention) -> Self {
        Policy {
            last: r.keep_last.unwrap_or(0),
            hourly: r.keep_hourly.unwrap_or(0),
            daily: r.keep_daily.unwrap_or(0),
            weekly: r.keep_weekly.unwrap_or(0),
            monthly: r.keep_monthly.unwrap_or(0),
            yearly: r.keep_yearly.unwrap_or(0),
            tags: r.keep_tags.iter().cloned().collect(),
        }
    }
}

impl Policy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.tags.is_empty()
    }
}

/// What the policy decided for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot id.
    pub id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Whether it stays.
    pub keep: bool,
    /// Why it stays (`last`, `daily`, `tag nightly`, `newest`, …); empty when removed.
    pub reasons: Vec<String>,
}

type Bucketer = fn(DateTime<Utc>, usize) -> i64;

fn hour(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 1_000_000
        + i64::from(t.month()) * 10_000
        + i64::from(t.day()) * 100
        + i64::from(t.hour())
}
fn day(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 10_000 + i64::from(t.month()) * 100 + i64::from(t.day())
}
fn week(t: DateTime<Utc>, _: usize) -> i64 {
    let w = t.iso_week();
    i64::from(w.year()) * 100 + i64::from(w.week())
}
fn month(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 100 + i64::from(t.month())
}
fn year(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year())
}
fn every(_: DateTime<Utc>, nr: usize) -> i64 {
    nr as i64
}

/// Applies `policy` to `snapshots` (any order); returns one decision per snapshot, newest
/// first.
pub fn plan(snapshots: &[Sidecar], policy: &Policy) -> Vec<Decision> {
    let mut list: Vec<&Sidecar> = snapshots.iter().collect();
    list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let mut buckets: [(u32, Bucketer, Option<i64>, &str); 6] = [
        (policy.last, every, None, "last"),
        (policy.hourly, hour, None, "hourly"),
        (policy.daily, day, None, "daily"),
        (policy.weekly, week, None, "weekly"),
        (policy.monthly, month, None, "monthly"),
        (policy.yearly, year, None, "yearly"),
    ];
    let oldest = list.len().saturating_sub(1);
    let mut out = Vec::with_capacity(list.len());
    for (nr, snapshot) in list.iter().enumerate() {
        let mut reasons = Vec::new();
        if policy.is_empty() {
            reasons.push("policy is empty".to_string());
        }
        for tag in &snapshot.tags {
            if policy.tags.contains(tag) {
                reasons.push(format!("tag {tag}"));
            }
        }
        for (count, bucket, last, reason) in buckets.iter_mut() {
            if *count == 0 {
                continue;
            }
            let period = bucket(snapshot.created_at, nr);
            if Some(period) != *last || nr == oldest {
                *last = Some(period);
                *count -= 1;
                reasons.push((*reason).to_string());
            }
        }
        if nr == 0 && reasons.is_empty() {
            reasons.push("newest".to_string());
        }
        out.push(Decision {
            id: snapshot.id.clone(),
            created_at: snapshot.created_at,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    out
}

/// What `prune` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// One decision per snapshot, newest first.
    pub decisions: Vec<Decision>,
    /// Ids removed (or to be removed).
    pub removed: Vec<String>,
    /// Files in `snapshots/` that are not complete snapshots; reported, never touched.
    pub orphans: Vec<super::Orphan>,
    /// Leftovers of unfinished runs cleaned from `tmp/` (not in a dry run).
    pub cleaned: Vec<String>,
    /// The garbage collection of the incremental repository, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<super::gc::GcReport>,
}

/// Applies `policy` to `agent`'s snapshots under the repository lock: cleans `tmp/`, removes every snapshot
/// the policy does not keep (sidecar first, then archive or refs file), collects the
/// incremental repository's garbage (`gc`), and reports.
pub fn prune(
    repo: &Repository,
    agent: &str,
    policy: &Policy,
    dry_run: bool,
    wait: Option<std::time::Duration>,
    gc: &super::gc::GcOptions<'_>,
) -> Result<PruneReport> {
    let lock = repo.lock(wait, "prune")?;
    let cleaned = if dry_run {
        Vec::new()
    } else {
        repo.clean_tmp(&lock)?
            .into_iter()
            .map(|p| p.display().to_string())
            .collect()
    };
    // Only this agent's snapshots: another agent's are never counted nor removed.
    let Listing { snapshots, orphans } = repo.list_for(agent)?;
    let decisions = plan(&snapshots, policy);
    let mut removed = Vec::new();
    for decision in decisions.iter().filter(|d| !d.keep) {
        if !dry_run {
            let sidecar = snapshots
                .iter()
                .find(|s| s.id == decision.id)
                .expect("decisions come from the listing");
            repo.remove(&lock, sidecar)?;
            tracing::info!(id = %decision.id, "removed snapshot");
        }
        removed.push(decision.id.clone());
    }
    // In a dry run the removed snapshots are still listed: their chunks count as live, so
    // the collection reported is a lower bound.
    let gc = super::gc::collect(repo, &lock, gc)?;
    Ok(PruneReport {
        dry_run,
        decisions,
        removed,
        orphans,
        cleaned,
        gc,
    })
}

/// Removes the named snapshots of `agent` (ids, unique id prefixes or `latest`) under the
/// repository lock, sidecar first, then archive (restic's `forget ID`): for a snapshot that
/// `verify` found holding a secret, or one made by mistake. Every name is resolved before
/// anything is removed, so one unknown name removes nothing. Returns the ids, oldest first.
pub fn forget(
    repo: &Repository,
    agent: &str,
    wanted: &[String],
    dry_run: bool,
) -> Result<Vec<String>> {
    let lock = repo.lock(None, "forget")?;
    let listing = repo.list_for(agent)?;
    let mut chosen: Vec<&Sidecar> = Vec::new();
    for w in wanted {
        let sidecar = repo.resolve(&listing, w)?;
        if !chosen.iter().any(|c| c.id == sidecar.id) {
            chosen.push(sidecar);
        }
    }
    chosen.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    for sidecar in &chosen {
        if !dry_run {
            repo.remove(&lock, sidecar)?;
            tracing::info!(id = %sidecar.id, "removed snapshot");
        }
    }
    Ok(chosen.iter().map(|s| s.id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Counts, SIDECAR_FORMAT};

    fn snap(time: &str, tags: &[&str]) -> Sidecar {
        let created_at: DateTime<Utc> = time.parse().unwrap();
        let id = crate::repo::SnapshotId::with_suffix(created_at, 0).to_string();
        Sidecar {
            format: SIDECAR_FORMAT,
            archive: format!("{id}.tar.zst"),
            id,
            agent: "kevin".into(),
            host: "h".into(),
            created_at,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tool_version: "0".into(),
            size: 0,
            blake3: String::new(),
            counts: Counts::default(),
            encrypted: false,
            degraded: vec![],
            tree: None,
            stored: None,
            chunk_key: None,
            signature: None,
        }
    }

    /// The times of the kept snapshots, newest first.
    fn kept(snapshots: &[Sidecar], policy: &Policy) -> Vec<String> {
        plan(snapshots, policy)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.created_at.format("%Y-%m-%dT%H:%M").to_string())
            .collect()
    }

    /// Two snapshots a day, at 06:00 and 18:00, for `days` days from 2026-01-01.
    fn twice_daily(days: i64) -> Vec<Sidecar> {
        let start: DateTime<Utc> = "2026-01-01T06:00:00Z".parse().unwrap();
        (0..days * 2)
            .map(|i| {
                let t = start + chrono::Duration::hours(12 * i);
                snap(&t.to_rfc3339(), &[])
            })
            .collect()
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let s = twice_daily(3);
        let policy = Policy {
            last: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&s, &policy), ["2026-01-03T18:00", "2026-01-03T06:00"]);
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day() {
        let s = twice_daily(5);
        let policy = Policy {
            daily: 3,
            ..Policy::default()
        };
        assert_eq!(
            kept(&s, &policy),
            ["2026-01-05T18:00", "2026-01-04T18:00", "2026-01-03T18:00"]
        );
    }

    #[test]
    fn counts_left_keep_the_oldest_too_as_restic_does() {
        let s = twice_daily(2);
        let policy = Policy {
            daily: 5,
            ..Policy::default()
        };
        assert_eq!(
            kept(&s, &policy),
            ["2026-01-02T18:00", "2026-01-01T18:00", "2026-01-01T06:00"]
        );
    }

    #[test]
    fn weekly_uses_iso_weeks_and_monthly_months() {
        // 2026-01-04 is a Sunday (ISO week 1), 2026-01-05 a Monday (week 2); Saturday
        // 2026-01-31 and Sunday 2026-02-01 share week 5, though not a month.
        let s = [
            snap("2026-01-03T12:00:00Z", &[]),
            snap("2026-01-04T12:00:00Z", &[]),
            snap("2026-01-05T12:00:00Z", &[]),
            snap("2026-01-31T12:00:00Z", &[]),
            snap("2026-02-01T12:00:00Z", &[]),
        ];
        let weekly = Policy {
            weekly: 3,
            ..Policy::default()
        };
        assert_eq!(
            kept(&s, &weekly),
            ["2026-02-01T12:00", "2026-01-05T12:00", "2026-01-04T12:00"]
        );
        let monthly = Policy {
            monthly: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&s, &monthly), ["2026-02-01T12:00", "2026-01-31T12:00"]);
    }

    #[test]
    fn rules_combine_and_tags_use_no_count() {
        let mut s = twice_daily(4);
        s.push(snap("2025-06-01T00:00:00Z", &["release"]));
        let policy = Policy {
            last: 1,
            daily: 2,
            tags: ["release".to_string()].into(),
            ..Policy::default()
        };
        let decisions = plan(&s, &policy);
        let newest = &decisions[0];
        assert_eq!(newest.reasons, ["last", "daily"]);
        let tagged = decisions.last().unwrap();
        assert!(tagged.keep);
        assert_eq!(tagged.reasons, ["tag release"]);
        assert_eq!(
            kept(&s, &policy),
            ["2026-01-04T18:00", "2026-01-03T18:00", "2025-06-01T00:00"]
        );
    }

    #[test]
    fn the_newest_is_never_removed_and_empty_keeps_all() {
        let s = [
            snap("2026-01-01T00:00:00Z", &[]),
            snap("2026-01-02T00:00:00Z", &["x"]),
        ];
        let only_tags = Policy {
            tags: ["nope".to_string()].into(),
            ..Policy::default()
        };
        let d = plan(&s, &only_tags);
        assert!(d[0].keep && d[0].reasons == ["newest"]);
        assert!(!d[1].keep);
        assert!(plan(&s, &Policy::default()).iter().all(|d| d.keep));
    }
}
