//! The repository: atomic commit with private permissions, listing with orphans, cleaning of
//! leftovers, `latest`, the sidecar schema, and the lock as the binary sees it (exit 7, stale
//! takeover).

use std::os::unix::fs::PermissionsExt;

use crate::repo_support::{ids, make_snapshot, manifest};
use agentbak::archive::{ReadOptions, read_archive};
use agentbak::repo::{OrphanKind, Repository, SnapshotId};
use assert_cmd::Command;
use predicates::prelude::*;

fn agentbak(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("agentbak").unwrap();
    cmd.env_remove("AGENTBAK_MANIFEST")
        .env_remove("RUST_LOG")
        .current_dir(dir);
    cmd
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn commit_makes_a_private_complete_snapshot_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_create(&dir.path().join("backups")).unwrap();
    let sidecar = make_snapshot(&repo, "2026-11-28T22:55:01Z", &["nightly"]);
    assert!(sidecar.id.starts_with("20261128T225501Z-"));
    let archive = repo.archive_path(&sidecar);
    let marker = repo.sidecar_path(&sidecar.id);
    assert_eq!(mode(&archive), 0o600);
    assert_eq!(mode(&marker), 0o600);
    for folder in [
        repo.root().to_path_buf(),
        repo.snapshots_dir(),
        repo.tmp_dir(),
    ] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    assert_eq!(std::fs::read_dir(repo.tmp_dir()).unwrap().count(), 0);
    let listing = repo.list().unwrap();
    assert_eq!(listing.snapshots, vec![sidecar.clone()]);
    assert!(listing.orphans.is_empty());
    let options = ReadOptions {
        name: sidecar.id.clone(),
        expected: Some(sidecar.digest()),
        ..ReadOptions::default()
    };
    let mut ignore =
        |_: &agentbak::archive::ArchiveEntry, _: &mut agentbak::archive::EntryData<'_>| Ok(());
    let report = read_archive(repo.open_archive(&sidecar).unwrap(), &options, &mut ignore).unwrap();
    report.ensure_clean(&sidecar.id).unwrap();
    assert_eq!(report.index.snapshot_id, sidecar.id);
}

#[test]
fn the_sidecar_validates_against_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_create(dir.path()).unwrap();
    let sidecar = make_snapshot(&repo, "2026-11-28T22:55:01Z", &["a", "b"]);
    let text = std::fs::read(repo.sidecar_path(&sidecar.id)).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/sidecar.schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = value.clone();
    bad["blake3"] = "not-a-hash".into();
    bad["surprise"] = 1.into();
    assert!(validator.iter_errors(&bad).count() >= 2);
}

#[test]
fn an_uncommitted_archive_leaves_nothing_and_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_create(dir.path()).unwrap();
    let lock = repo.lock(None, "test").unwrap();
    let id = SnapshotId::new(chrono::Utc::now());
    let mut pending = repo.begin(&lock, &id, true).unwrap();
    std::io::Write::write_all(pending.file(), b"half an archive").unwrap();
    // The archive being written has no name (see the unit tests of `repo::pending`).
    assert_eq!(std::fs::read_dir(repo.tmp_dir()).unwrap().count(), 0);
    drop(pending);
    assert_eq!(std::fs::read_dir(repo.tmp_dir()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(repo.snapshots_dir()).unwrap().count(), 0);
    // What a killed run leaves behind is cleaned by the next locked run.
    std::fs::write(repo.tmp_dir().join("x.tar.zst.partial"), b"killed").unwrap();
    let removed = repo.clean_tmp(&lock).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(std::fs::read_dir(repo.tmp_dir()).unwrap().count(), 0);
    assert!(repo.list().unwrap().snapshots.is_empty());
}

#[test]
fn orphans_are_reported_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_create(&dir.path().join("backups")).unwrap();
    let kept = make_snapshot(&repo, "2026-11-01T00:00:00Z", &[]);
    let lost_sidecar = make_snapshot(&repo, "2026-11-02T00:00:00Z", &[]);
    let lost_archive = make_snapshot(&repo, "2026-11-03T00:00:00Z", &[]);
    std::fs::remove_file(repo.sidecar_path(&lost_sidecar.id)).unwrap();
    std::fs::remove_file(repo.archive_path(&lost_archive)).unwrap();
    std::fs::write(repo.snapshots_dir().join("notes.txt"), b"hi").unwrap();
    let listing = repo.list().unwrap();
    assert_eq!(listing.snapshots, vec![kept.clone()]);
    let kinds: Vec<(String, OrphanKind)> = listing
        .orphans
        .iter()
        .map(|o| (o.file.clone(), o.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                lost_sidecar.archive.clone(),
                OrphanKind::ArchiveWithoutSidecar
            ),
            (
                format!("{}.json", lost_archive.id),
                OrphanKind::SidecarWithoutArchive
            ),
            ("notes.txt".into(), OrphanKind::Unknown),
        ]
    );
    assert_eq!(repo.resolve(&listing, "latest").unwrap().id, kept.id);

    // The binary: the table lists only the complete snapshot, stderr names the orphans.
    manifest(dir.path(), "{}");
    agentbak(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout(
            predicate::str::contains(&kept.id)
                .and(predicate::str::contains(&lost_sidecar.id).not())
                .and(predicate::str::contains("1 snapshot")),
        )
        .stderr(predicate::str::contains("archive without sidecar"));
    let out = agentbak(dir.path())
        .args(["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(doc["snapshots"][0]["id"], kept.id.as_str());
    assert_eq!(doc["orphans"].as_array().unwrap().len(), 3);
    assert_eq!(doc["orphans"][0]["problem"], "archive-without-sidecar");
}

#[test]
fn list_shows_every_column_newest_last() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), "{}");
    agentbak(dir.path())
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("0 snapshots"));
    let repo = Repository::open_or_create(&dir.path().join("backups")).unwrap();
    let older = make_snapshot(&repo, "2026-11-02T08:00:00Z", &["nightly", "pre-migration"]);
    let newer = make_snapshot(&repo, "2026-11-03T08:00:00Z", &[]);
    let out = agentbak(dir.path())
        .arg("list")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].ends_with("ENCRYPTED"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&older.id) && lines[2].starts_with(&newer.id),
        "{text}"
    );
    assert!(lines[1].contains("2026-11-02 08:00:00Z"), "{text}");
    assert!(lines[1].contains("nightly,pre-migration"), "{text}");
    assert!(lines[1].trim_end().ends_with("no"), "{text}");
    assert!(lines[1].contains(" B "), "{text}");
}

#[test]
fn resolve_takes_latest_ids_and_unique_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_create(dir.path()).unwrap();
    let a = make_snapshot(&repo, "2026-11-01T00:00:00Z", &[]);
    let b = make_snapshot(&repo, "2026-11-01T00:00:07Z", &[]);
    let listing = repo.list().unwrap();
    assert_eq!(ids(&repo), vec![a.id.clone(), b.id.clone()]);
    assert_eq!(repo.resolve(&listing, "latest").unwrap().id, b.id);
    assert_eq!(repo.resolve(&listing, &a.id).unwrap().id, a.id);
    assert_eq!(repo.resolve(&listing, "20261101T000007Z").unwrap().id, b.id);
    let ambiguous = repo.resolve(&listing, "20261101T").unwrap_err();
    assert!(ambiguous.to_string().contains("several"));
    let missing = repo
        .resolve(&listing, "20250101T000000Z-00000000")
        .unwrap_err();
    assert!(missing.to_string().contains("agentbak list"), "{missing}");
}

#[test]
fn a_held_lock_makes_the_second_run_exit_7() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), r#"{"keep_last": 1}"#);
    let repo = Repository::open_or_create(&dir.path().join("backups")).unwrap();
    make_snapshot(&repo, "2026-11-01T00:00:00Z", &[]);
    make_snapshot(&repo, "2026-11-02T00:00:00Z", &[]);
    let held = repo.lock(None, "snapshot").unwrap();
    agentbak(dir.path()).arg("prune").assert().code(7).stderr(
        predicate::str::contains("locked").and(predicate::str::contains(format!(
            "pid {}",
            std::process::id()
        ))),
    );
    assert_eq!(ids(&repo).len(), 2, "a locked-out prune deletes nothing");
    drop(held);
    agentbak(dir.path()).arg("prune").assert().success();
    assert_eq!(ids(&repo).len(), 1);
}

#[test]
fn a_stale_lock_of_a_dead_pid_is_taken_over_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), r#"{"keep_last": 5}"#);
    let repo = Repository::open_or_create(&dir.path().join("backups")).unwrap();
    make_snapshot(&repo, "2026-11-01T00:00:00Z", &[]);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = serde_json::json!({
        "pid": dead,
        "host": agentbak::repo::host_name(),
        "started_at": "2026-11-01T00:00:00Z",
        "command": "snapshot",
    });
    std::fs::write(repo.root().join("lock"), stale.to_string()).unwrap();
    agentbak(dir.path()).arg("prune").assert().success().stderr(
        predicate::str::contains("stale lock").and(predicate::str::contains(format!("pid {dead}"))),
    );
    // A clean finish leaves an empty lock file: the next run has nothing to take over.
    assert_eq!(std::fs::read(repo.root().join("lock")).unwrap(), b"");
}
