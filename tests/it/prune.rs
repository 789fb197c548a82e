//! `agentbak prune` end to end: restic's retention over real snapshots at fixed times, the
//! manifest's `retention` as default and flags that replace it, `--dry-run`, `--json`, the
//! newest never removed, and removal leaving no orphan.

use crate::repo_support::{ids, make_snapshot, manifest};
use agentbak::repo::Repository;
use assert_cmd::Command;
use predicates::prelude::*;

fn agentbak(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("agentbak").unwrap();
    cmd.env_remove("AGENTBAK_MANIFEST")
        .env_remove("RUST_LOG")
        .current_dir(dir);
    cmd
}

/// Six snapshots: two a day on 2026-11-01..03 at 06:00 and 18:00; the last is tagged.
fn six(dir: &std::path::Path) -> (Repository, Vec<String>) {
    let repo = Repository::open_or_create(&dir.join("backups")).unwrap();
    let mut made = Vec::new();
    for day in 1..=3 {
        for hour in [6, 18] {
            let time = format!("2026-11-0{day}T{hour:02}:00:00Z");
            let tags: &[&str] = if day == 1 && hour == 6 {
                &["release"]
            } else {
                &[]
            };
            made.push(make_snapshot(&repo, &time, tags).id);
        }
    }
    (repo, made)
}

#[test]
fn dry_run_reports_and_deletes_nothing_then_prune_deletes() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), "{}");
    let (repo, made) = six(dir.path());
    let out = agentbak(dir.path())
        .args(["prune", "--keep-last", "2", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "would remove 4 of 6 snapshots (dry run)",
        ))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("keep    {}  (last)", made[5])),
        "{text}"
    );
    assert_eq!(ids(&repo), made, "a dry run deletes nothing");
    agentbak(dir.path())
        .args(["prune", "--keep-last", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 4 of 6 snapshots"));
    assert_eq!(ids(&repo), made[4..].to_vec());
    let listing = repo.list().unwrap();
    assert!(listing.orphans.is_empty(), "{:?}", listing.orphans);
    assert_eq!(std::fs::read_dir(repo.snapshots_dir()).unwrap().count(), 4);
}

#[test]
fn the_manifest_retention_applies_unless_flags_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), r#"{"keep_daily": 2, "keep_tags": ["release"]}"#);
    let (repo, made) = six(dir.path());
    let out = agentbak(dir.path())
        .args(["prune", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    // Newest of 11-03 and 11-02 (daily), the tagged release; nothing else.
    assert_eq!(
        ids(&repo),
        vec![made[0].clone(), made[3].clone(), made[5].clone()]
    );
    assert_eq!(report["removed"].as_array().unwrap().len(), 3);
    assert_eq!(report["dry_run"], false);
    let reasons: Vec<String> = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| {
            d["reasons"].as_array().unwrap()[0]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(reasons, ["daily", "daily", "tag release"]);
    // Regression: `--keep-last 0` is a flag too (it used to fall back to the manifest's
    // policy); an empty policy removes nothing.
    let out = agentbak(dir.path())
        .args(["prune", "--keep-last", "0", "--dry-run", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(
        report["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r != "daily")),
        "{report}"
    );
    // Flags replace the manifest's policy whole: the tag no longer protects anything.
    agentbak(dir.path())
        .args(["prune", "--keep-last", "1"])
        .assert()
        .success();
    assert_eq!(ids(&repo), vec![made[5].clone()]);
}

#[test]
fn the_newest_survives_any_policy_and_an_empty_policy_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), "{}");
    let (repo, made) = six(dir.path());
    agentbak(dir.path())
        .arg("prune")
        .assert()
        .success()
        .stderr(predicate::str::contains("no retention policy"));
    assert_eq!(ids(&repo).len(), 6);
    agentbak(dir.path())
        .args(["prune", "--keep-tag", "nothing-has-this"])
        .assert()
        .success();
    assert_eq!(ids(&repo), vec![made[5].clone()]);
}

#[test]
fn prune_cleans_leftovers_of_killed_runs_but_not_orphans() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), r#"{"keep_last": 10}"#);
    let (repo, made) = six(dir.path());
    std::fs::write(
        repo.tmp_dir()
            .join("20261104T000000Z-00000000.tar.zst.partial"),
        b"x",
    )
    .unwrap();
    std::fs::remove_file(repo.sidecar_path(&made[0])).unwrap();
    agentbak(dir.path())
        .arg("prune")
        .assert()
        .success()
        .stderr(predicate::str::contains("archive without sidecar"));
    assert_eq!(std::fs::read_dir(repo.tmp_dir()).unwrap().count(), 0);
    let listing = repo.list().unwrap();
    assert_eq!(listing.snapshots.len(), 5);
    assert_eq!(
        listing.orphans.len(),
        1,
        "an orphan archive is left for a person to judge"
    );
}

#[test]
fn prune_without_a_repository_is_an_error_not_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), r#"{"keep_last": 1}"#);
    agentbak(dir.path())
        .arg("prune")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no repository here"));
}

/// Regression: with two agents in one repository (SPEC "Beyond one host"), `prune`, `list` and
/// `restore latest` of one agent planned to delete, listed and restored the other's snapshots.
#[test]
fn agents_sharing_a_repository_see_and_prune_only_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for agent in ["kevin", "bob"] {
        std::fs::create_dir_all(root.join(agent)).unwrap();
        std::fs::write(
            root.join(agent).join("notes.md"),
            format!("{agent}'s notes\n"),
        )
        .unwrap();
        std::fs::write(
            root.join(format!("{agent}.json")),
            format!(
                r#"{{ "version": 1, "agent": "{agent}", "state": "./{agent}", "repository": "./shared" }}"#
            ),
        )
        .unwrap();
    }
    let run = |agent: &str, args: &[&str]| {
        agentbak(root)
            .arg("-m")
            .arg(format!("{agent}.json"))
            .args(args)
            .output()
            .unwrap()
    };
    for agent in ["kevin", "kevin", "bob", "bob"] {
        assert!(run(agent, &["snapshot"]).status.success());
    }
    let list = |agent: &str| {
        let out = run(agent, &["list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["agent"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list("kevin"), ["kevin", "kevin"]);
    assert_eq!(list("bob"), ["bob", "bob"]);
    let out = run("bob", &["prune", "--keep-last", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(list("bob"), ["bob"]);
    assert_eq!(
        list("kevin"),
        ["kevin", "kevin"],
        "kevin's snapshots are untouched"
    );
    let out = run("bob", &["restore", "latest", "--target", "restored-bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("restored-bob/notes.md")).unwrap(),
        "bob's notes\n"
    );
}

#[test]
fn forget_removes_named_snapshots_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), "{}");
    let (repo, made) = six(dir.path());
    // One unknown name: nothing is removed, and the error names it.
    let out = agentbak(dir.path())
        .args(["forget", &made[1], "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
    assert_eq!(ids(&repo), made);
    // --dry-run reports and keeps.
    agentbak(dir.path())
        .args(["forget", "--dry-run", &made[1]])
        .assert()
        .success()
        .stdout(format!("would remove {}\n", made[1]));
    assert_eq!(ids(&repo), made);
    // By id and by `latest`, each once even when named twice; files and sidecars are gone.
    let out = agentbak(dir.path())
        .args(["forget", "--json", &made[1], "latest", &made[1]])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["removed"], serde_json::json!([made[1], made[5]]));
    let mut left = made.clone();
    left.remove(5);
    left.remove(1);
    assert_eq!(ids(&repo), left);
    let listing = repo.list().unwrap();
    assert!(listing.orphans.is_empty(), "{:?}", listing.orphans);
}
