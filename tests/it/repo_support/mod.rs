//! Shared by tests/it/repo.rs and tests/it/prune.rs: real snapshots made through the library API
//! (lock, begin, archive writer, commit), and a manifest pointing at the repository.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use agentbak::archive::{
    ArchiveWriter, EntryMeta, SIDECAR_FORMAT, Sidecar, SnapshotInfo, WriterOptions,
};
use agentbak::repo::{Repository, SnapshotId, host_name};
use chrono::{DateTime, Utc};

/// Commits a one-file snapshot made at `time` with `tags`; returns its sidecar.
pub fn make_snapshot(repo: &Repository, time: &str, tags: &[&str]) -> Sidecar {
    let created_at: DateTime<Utc> = time.parse().unwrap();
    let id = SnapshotId::new(created_at);
    let lock = repo.lock(None, "test").unwrap();
    let mut pending = repo.begin(&lock, &id, false).unwrap();
    let archive = pending.archive_name().to_string();
    let options = WriterOptions::default();
    let mut writer = ArchiveWriter::new(pending.file(), &options, None).unwrap();
    let meta = EntryMeta {
        mode: 0o600,
        mtime: created_at.timestamp(),
    };
    let data = format!("state at {time}\n");
    writer
        .append_file("memory.md", meta, data.len() as u64, data.as_bytes())
        .unwrap();
    let info = SnapshotInfo {
        agent: "kevin".into(),
        snapshot_id: id.to_string(),
        created_at,
    };
    let written = writer.finish(info, vec![]).unwrap();
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        id: id.to_string(),
        agent: "kevin".into(),
        host: host_name(),
        created_at,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        archive,
        size: written.size,
        blake3: written.blake3,
        counts: written.counts,
        encrypted: false,
        degraded: vec![],
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
    };
    pending.commit(&sidecar).unwrap();
    sidecar
}

/// Writes `agentbak.json` in `dir` with `./backups` as repository and `retention` as given.
pub fn manifest(dir: &Path, retention: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let path = dir.join("agentbak.json");
    let text = format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
             "retention": {retention} }}"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The ids of the snapshots in the repository, oldest first.
pub fn ids(repo: &Repository) -> Vec<String> {
    repo.list()
        .unwrap()
        .snapshots
        .into_iter()
        .map(|s| s.id)
        .collect()
}
