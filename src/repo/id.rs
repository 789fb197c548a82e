//! Snapshot ids: `20261128T225501Z-3f9a2c1b`, the UTC time of the snapshot and 8 random hex
//! digits.
//!
//! Invariant: the text is fixed-width, so ids sort by time as plain strings (the random part
//! only orders snapshots made in the same second, which no retention rule tells apart).

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const TIME_LEN: usize = 16;

/// A snapshot id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// A new id for a snapshot made at `time`, with a random suffix from the OS.
    pub fn new(time: DateTime<Utc>) -> SnapshotId {
        let mut bytes = [0u8; 4];
        // The suffix only separates snapshots made in the same second; if the OS has no
        // entropy to give, the sub-second time and pid still keep concurrent ids apart.
        let suffix = match getrandom::fill(&mut bytes) {
            Ok(()) => u32::from_be_bytes(bytes),
            Err(_) => time.timestamp_subsec_nanos() ^ std::process::id().rotate_left(16),
        };
        SnapshotId::with_suffix(time, suffix)
    }

    /// The id for `time` with a given suffix (tests and imports).
    pub fn with_suffix(time: DateTime<Utc>, suffix: u32) -> SnapshotId {
        SnapshotId(format!("{}-{suffix:08x}", time.format(TIME_FORMAT)))
    }

    /// Parses an id; `None` when the text is not one.
    pub fn parse(text: &str) -> Option<SnapshotId> {
        let (time, suffix) = text.split_once('-')?;
        let hex_ok = suffix.len() == 8
            && suffix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let time_ok =
            time.len() == TIME_LEN && NaiveDateTime::parse_from_str(time, TIME_FORMAT).is_ok();
        (hex_ok && time_ok).then(|| SnapshotId(text.to_string()))
    }

    /// The time encoded in the id (second precision).
    pub fn time(&self) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(&self.0[..TIME_LEN], TIME_FORMAT)
            .expect("ids are checked when made")
            .and_utc()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let t: DateTime<Utc> = "2026-11-28T22:55:01Z".parse().unwrap();
        let id = SnapshotId::with_suffix(t, 0x3f9a2c1b);
        assert_eq!(id.as_str(), "20261128T225501Z-3f9a2c1b");
        assert_eq!(SnapshotId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.time(), t);
        let later = SnapshotId::with_suffix(t + chrono::Duration::seconds(1), 0);
        assert!(later > id);
        let random = SnapshotId::new(t);
        assert!(random.as_str().starts_with("20261128T225501Z-"));
        assert_eq!(SnapshotId::parse(random.as_str()), Some(random));
    }

    #[test]
    fn parse_refuses_near_misses() {
        for bad in [
            "20261128T225501Z-3f9a2c1",
            "20261128T225501Z-3F9A2C1B",
            "20261328T225501Z-3f9a2c1b",
            "20261128T225501-3f9a2c1b",
            "latest",
            "../20261128T225501Z-3f9a2c1b",
        ] {
            assert_eq!(SnapshotId::parse(bad), None, "{bad}");
        }
    }
}
