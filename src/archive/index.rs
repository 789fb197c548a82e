//! The index: `agentbak/index.json`, the last entry of every archive.
//!
//! The index lists every entry of the archive (path, type, mode, size, mtime, the blake3 of a
//! file's content, a symlink's target) and every secret location that was redacted (file,
//! locator, handle, the store version seen at snapshot time, and an opaque `context` object
//! the redaction engine needs to put the value back).
//!
//! Invariant: the index never holds a secret value nor anything derived from one (no hash of a
//! value). The only hashes are of file contents *after* redaction, which are what the archive
//! stores anyway. `schemas/index.schema.json` is generated from this model (`crate::schema`);
//! `tests/it/archive.rs` validates a real index against it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::handle::Handle;
use crate::manifest::Locator;

/// The format version of the index written by this release.
pub const INDEX_FORMAT: u32 = 1;

/// The path of the index inside the archive.
pub const INDEX_PATH: &str = "agentbak/index.json";

/// The folder inside the archive that holds the agent's state.
pub const STATE_DIR: &str = "state";

/// The largest index the reader accepts, so that a forged archive cannot make it allocate
/// without bound (an index of a million entries is about 200 MiB; this is well past any real
/// agent state).
pub const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;

/// `agentbak/index.json`, the last entry of every archive: every entry and every redacted
/// secret location. Never a secret value, never a hash of one. See docs/format.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "agentbak archive index"))]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Index format version ([`INDEX_FORMAT`], the only one).
    #[cfg_attr(feature = "schema", schemars(extend("const" = 1)))]
    pub format: u32,
    /// Version of agentbak that wrote the archive.
    pub tool_version: String,
    /// The agent's name from the manifest.
    pub agent: String,
    /// The snapshot id: the UTC time of the snapshot and 8 random hex digits; sorts by time.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::SNAPSHOT_ID))
    )]
    pub snapshot_id: String,
    /// When the snapshot was made (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Every entry under `state/`, in archive order.
    pub entries: Vec<IndexEntry>,
    /// Every redacted secret location.
    pub secrets: Vec<SecretLocation>,
}

/// Facts about the snapshot that the caller supplies to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The agent's name.
    pub agent: String,
    /// The snapshot id.
    pub snapshot_id: String,
    /// When the snapshot was made.
    pub created_at: DateTime<Utc>,
}

/// The type of an archive entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link, stored as a link and never followed.
    Symlink,
}

impl EntryKind {
    /// The lowercase name used in the index and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One entry of the archive as the index records it: a file has a `blake3`, a symlink a
/// `link`, a folder neither; folders and symlinks have size 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("allOf" = [
        {
            "if": {"properties": {"type": {"const": "file"}}},
            "then": {"required": ["blake3"], "not": {"required": ["link"]}}
        },
        {
            "if": {"properties": {"type": {"const": "symlink"}}},
            "then": {
                "required": ["link"],
                "not": {"required": ["blake3"]},
                "properties": {"size": {"const": 0}}
            }
        },
        {
            "if": {"properties": {"type": {"const": "dir"}}},
            "then": {
                "not": {"anyOf": [{"required": ["blake3"]}, {"required": ["link"]}]},
                "properties": {"size": {"const": 0}}
            }
        }
    ]))
)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The path inside the archive: `state`, or `state/` followed by the path relative to the
    /// state folder, `/`-separated, without `.` or `..` segments.
    #[cfg_attr(
        feature = "schema",
        schemars(
            pattern(crate::archive::wellformed::ARCHIVE_PATH),
            extend("not" = {"pattern": crate::archive::wellformed::DOT_SEGMENT})
        )
    )]
    pub path: String,
    /// File, folder or symlink.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits (`0o7777` at most).
    #[cfg_attr(feature = "schema", schemars(range(max = crate::archive::wellformed::MAX_MODE)))]
    pub mode: u32,
    /// Content size in bytes; 0 for folders and symlinks.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub mtime: i64,
    /// blake3 of the content, lowercase hex (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::BLAKE3))
    )]
    pub blake3: Option<String>,
    /// The symlink's target as stored, never resolved (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub link: Option<String>,
}

/// One redacted secret location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretLocation {
    /// The file inside the archive (`state/...`).
    #[cfg_attr(
        feature = "schema",
        schemars(
            pattern(crate::archive::wellformed::ARCHIVE_PATH),
            extend("not" = {"pattern": crate::archive::wellformed::DOT_SEGMENT})
        )
    )]
    pub file: String,
    /// Where the value sat in its file, as in the manifest; absent for a stray occurrence of a
    /// known value, which no declared rule located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<Locator>,
    /// The handle the value maps to.
    pub handle: Handle,
    /// The store version seen at snapshot time, when the store was reachable and versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub store_version: Option<u64>,
    /// Whether the value was dropped as ephemeral rather than mapped to a stored value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    /// What the redaction engine needs for rehydration (quoting style, occurrence, …); opaque
    /// to the archive layer. Never a value or a hash of one.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object")))]
    pub context: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Index {
    /// The entry at an archive path, if any.
    pub fn entry(&self, path: &str) -> Option<&IndexEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Number of file entries.
    pub fn file_count(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count() as u64
    }

    /// Sum of the sizes of all file entries.
    pub fn file_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Turns a path relative to the state folder into its archive path (`state/...`).
///
/// Accepts `/`-separated relative paths without `.`/`..` segments, empty segments or NUL
/// bytes; the empty string names the state folder itself. Returns `None` otherwise, so that a
/// bad path can never be written into an archive.
pub fn archive_path(relative: &str) -> Option<String> {
    if relative.is_empty() {
        return Some(STATE_DIR.to_string());
    }
    let ok = !relative.contains('\0')
        && relative
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    ok.then(|| format!("{STATE_DIR}/{relative}"))
}

/// The path relative to the state folder of an archive path, if it is under `state`.
pub fn state_relative(archive_path: &str) -> Option<&str> {
    if archive_path == STATE_DIR {
        return Some("");
    }
    archive_path.strip_prefix("state/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_refuse_escapes() {
        assert_eq!(archive_path("").as_deref(), Some("state"));
        assert_eq!(archive_path("a/b.json").as_deref(), Some("state/a/b.json"));
        for bad in ["../x", "a/../b", "/etc/passwd", "a//b", "./a", "a/", "a\0b"] {
            assert_eq!(archive_path(bad), None, "{bad}");
        }
        assert_eq!(state_relative("state/a/b"), Some("a/b"));
        assert_eq!(state_relative("state"), Some(""));
        assert_eq!(state_relative("agentbak/index.json"), None);
    }

    #[test]
    fn secret_location_round_trips_with_its_locator_and_context() {
        let loc = SecretLocation {
            file: "state/.env".into(),
            locator: Some(Locator::Env("GITHUB_TOKEN".into())),
            handle: Handle::parse("vault:agents/kevin/github#token").unwrap(),
            store_version: Some(3),
            ephemeral: false,
            context: serde_json::json!({"quote": "double"}),
        };
        let text = serde_json::to_string(&loc).unwrap();
        assert!(
            text.contains(r#""locator":{"env":"GITHUB_TOKEN"}"#),
            "{text}"
        );
        let back: SecretLocation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, loc);
    }
}
