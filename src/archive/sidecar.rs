//! The sidecar: `<id>.json` next to each archive in the repository.
//!
//! A plain (never encrypted) summary that `list`, `prune` and a key-less `verify` can read
//! without opening the archive: who, when, which tags, how big, and the archive's blake3 and
//! size, which catch bit rot and truncation without the decryption identity.
//!
//! Invariant: like the index, a sidecar never holds a secret value or a hash of one.
//! `schemas/sidecar.schema.json` is generated from it (`crate::schema`); `tests/it/archive.rs`
//! validates a real one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The format version of the sidecar of a snapshot written as one archive.
pub const SIDECAR_FORMAT: u32 = 1;

/// The format version of the sidecar of a snapshot in the incremental repository.
pub const SIDECAR_FORMAT_PACKS: u32 = 2;

/// `<repository>/snapshots/<id>.json`: a plain summary of one snapshot and the size and
/// blake3 of its archive. Never a secret value. See docs/format.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "agentbak snapshot sidecar"))]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Sidecar format version: [`SIDECAR_FORMAT`] (one archive) or [`SIDECAR_FORMAT_PACKS`]
    /// (the incremental repository).
    #[cfg_attr(feature = "schema", schemars(extend("enum" = [1, 2])))]
    pub format: u32,
    /// The snapshot id; also this file's name.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::SNAPSHOT_ID))
    )]
    pub id: String,
    /// The agent's name.
    pub agent: String,
    /// The host that made the snapshot.
    pub host: String,
    /// When the snapshot was made (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Tags given with `--tag`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Version of agentbak that wrote it.
    pub tool_version: String,
    /// The archive's file name in the same folder (`<id>.tar.zst` or `<id>.tar.zst.age`).
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::ARCHIVE_NAME))
    )]
    pub archive: String,
    /// Size of the archive file in bytes.
    pub size: u64,
    /// blake3 of the archive file, lowercase hex.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::BLAKE3))
    )]
    pub blake3: String,
    /// What the archive holds.
    pub counts: Counts,
    /// Whether the archive is age-encrypted.
    pub encrypted: bool,
    /// Conditions under which the snapshot was made that deserve attention, e.g.
    /// `store-unreachable:vault`. Empty for a normal snapshot.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(inner(pattern(crate::archive::wellformed::DEGRADED)))
    )]
    pub degraded: Vec<String>,
    /// Format 2 (the incremental repository): the tree's chunks, size and blake3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeRef>,
    /// Format 2: what the snapshot added to the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Stored>,
    /// Format 2: which chunk-id key made the ids (16 hex digits of a keyed hash of a fixed
    /// text; never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_key: Option<String>,
    /// The snapshot's Ed25519 signature, when the manifest configures `signing`: over every
    /// other field of this sidecar, so over the archive's blake3 too (docs/signing.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::signing::Signature>,
}

/// The tree of a format-2 snapshot (see `archive::tree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TreeRef {
    /// Its chunk ids, in order.
    pub chunks: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// blake3 of the tree's JSON, lowercase hex.
    #[cfg_attr(
        feature = "schema",
        schemars(pattern(crate::archive::wellformed::BLAKE3))
    )]
    pub blake3: String,
}

/// What a format-2 snapshot added to its repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Stored {
    /// Chunks the snapshot refers to (tree and content).
    pub chunks: u64,
    /// Chunks it added.
    pub new_chunks: u64,
    /// Their size before compression.
    pub new_bytes: u64,
    /// Their size as stored.
    pub stored_bytes: u64,
    /// Pack files it added.
    pub packs: u64,
    /// Files taken from the parent snapshot without being read.
    pub reused_files: u64,
}

/// Entry and secret counts of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Regular files.
    pub files: u64,
    /// Folders.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Sum of the file sizes, after redaction.
    pub bytes: u64,
    /// Secret locations in the index.
    pub secrets: u64,
}

/// Size and blake3 of an archive file: what the sidecar promises and the reader checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveDigest {
    /// Size in bytes.
    pub size: u64,
    /// blake3, lowercase hex.
    pub blake3: String,
}

impl Sidecar {
    /// The size and blake3 the archive must have.
    pub fn digest(&self) -> ArchiveDigest {
        ArchiveDigest {
            size: self.size,
            blake3: self.blake3.clone(),
        }
    }

    /// The size and blake3 of the archive stream, when the archive is a file (format 1); a
    /// format-2 snapshot's stream is rebuilt, and checked through its tree instead.
    pub fn content_digest(&self) -> Option<ArchiveDigest> {
        (self.format == SIDECAR_FORMAT).then(|| self.digest())
    }

    /// Parses a sidecar; the error says what is wrong with it (it has no secrets to hide).
    pub fn from_json(bytes: &[u8]) -> Result<Sidecar, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The JSON a signature covers: this sidecar without its signature.
    pub fn unsigned_json(&self) -> Vec<u8> {
        let unsigned = Sidecar {
            signature: None,
            ..self.clone()
        };
        unsigned.to_json()
    }

    /// The sidecar as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a sidecar always serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_round_trips_and_refuses_unknown_fields() {
        let sidecar = Sidecar {
            format: SIDECAR_FORMAT,
            id: "20261128T225501Z-3f9a2c1b".into(),
            agent: "kevin".into(),
            host: "box".into(),
            created_at: "2026-11-28T22:55:01Z".parse().unwrap(),
            tags: vec!["nightly".into()],
            tool_version: "0.1.0".into(),
            archive: "20261128T225501Z-3f9a2c1b.tar.zst".into(),
            size: 10,
            blake3: "00".repeat(32),
            counts: Counts::default(),
            encrypted: false,
            degraded: vec!["store-unreachable:vault".into()],
            tree: None,
            stored: None,
            chunk_key: None,
            signature: None,
        };
        let json = sidecar.to_json();
        assert_eq!(Sidecar::from_json(&json).unwrap(), sidecar);
        let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        value["extra"] = serde_json::json!(1);
        assert!(Sidecar::from_json(value.to_string().as_bytes()).is_err());
    }
}
