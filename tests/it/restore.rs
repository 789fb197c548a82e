//! `agentbak restore` through the real binary with the local and env stores (no server):
//! byte-identical round trip, placeholders without `--rehydrate`, all or nothing, the target
//! rules, `--dry-run`, `--pin`/`--previous`, ephemeral values, links that leave the tree.
//! Every test that plants a value asserts it appears in no output.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::restore_fixture::{Project, all_bytes, all_output, contains, tree};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" },
    "env": { "kind": "env" }
  },
  "secrets": [
    { "file": "config/credentials.json", "json": "/openai/api_key", "handle": "local:agents/{agent}/openai#api_key" },
    { "file": ".env", "env": "GITHUB_TOKEN", "handle": "local:agents/{agent}/github#token" },
    { "file": "config.yaml", "yaml": "/providers/0/key", "handle": "local:anthropic#key" },
    { "file": "settings.toml", "toml": "/slack/bot_token", "handle": "local:agents/{agent}/slack#bot_token" },
    { "file": "keys/identity.pem", "whole_file": true, "handle": "local:agents/{agent}/identity#pem" },
    { "file": ".env", "env": "SESSION", "handle": "env:SESSION_TOKEN", "ephemeral": true }
  ]
}"#;

const OPENAI: &str = "sk-proj-PlantedOpenAiValue1234567890abcdefXYZ";
const GITHUB: &str = "ghp_PlantedGithubToken0123456789abcdefABCD";
const ANTHROPIC: &str = "sk-ant-api03-PlantedAnthropicValue0123456789";
const SLACK: &str = "xoxb-1111-2222-PlantedSlackToken";
const PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIplantedPemBody0123456789abcdef\n-----END PRIVATE KEY-----\n";
const SESSION: &str = "session-PlantedEphemeral0123456789";
const ROTATED: &str = "sk-proj-RotatedOpenAiValue9876543210zyxwvuTSR";

const VALUES: [&str; 6] = [OPENAI, GITHUB, ANTHROPIC, SLACK, PEM, SESSION];

/// A project whose state holds every kind of secret, with the values in the local store.
fn project() -> Project {
    let p = Project::new(MANIFEST);
    p.file(
        "config/credentials.json",
        0o640,
        format!("{{\n  \"openai\": {{ \"api_key\": \"{OPENAI}\", \"org\": \"acme\" }}\n}}\n")
            .as_bytes(),
    );
    p.file(
        ".env",
        0o600,
        format!("# tokens\nGITHUB_TOKEN={GITHUB}\nSESSION=\"{SESSION}\"\nDEBUG=1\n").as_bytes(),
    );
    p.file(
        "config.yaml",
        0o644,
        format!("providers:\n  - name: anthropic\n    key: '{ANTHROPIC}' # main\n").as_bytes(),
    );
    p.file(
        "settings.toml",
        0o644,
        format!("[slack]\nbot_token = \"{SLACK}\"\nchannel = \"#ops\"\n").as_bytes(),
    );
    p.file("keys/identity.pem", 0o600, PEM.as_bytes());
    // A stray copy of a declared value: it must come back too, and rotate with its handle.
    p.file(
        "memory/notes.md",
        0o644,
        format!("the key is {OPENAI} (do not share)\n").as_bytes(),
    );
    p.file("bin/run.sh", 0o755, b"#!/bin/sh\necho hi\n");
    p.file(
        "blob.bin",
        0o644,
        &(0..5000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    );
    std::os::unix::fs::symlink("../config.yaml", p.state().join("memory/current")).unwrap();
    for (h, v) in [
        ("local:agents/kevin/openai#api_key", OPENAI),
        ("local:agents/kevin/github#token", GITHUB),
        ("local:anthropic#key", ANTHROPIC),
        ("local:agents/kevin/slack#bot_token", SLACK),
        ("local:agents/kevin/identity#pem", PEM),
    ] {
        p.set(h, v, &[]);
    }
    p
}

fn versions_at_one() -> BTreeMap<String, u64> {
    [
        "local:agents/kevin/openai#api_key",
        "local:agents/kevin/github#token",
        "local:anthropic#key",
        "local:agents/kevin/slack#bot_token",
        "local:agents/kevin/identity#pem",
    ]
    .into_iter()
    .map(|h| (h.to_string(), 1))
    .collect()
}

fn assert_no_value(text: &str) {
    for v in VALUES.iter().chain([&ROTATED]) {
        assert!(!text.contains(v.trim()), "a planted value leaked:\n{text}");
    }
}

#[test]
fn unrotated_round_trip_is_byte_identical_with_secret_files_private() {
    let p = project();
    let id = p.snapshot("20260101T000000Z-00000001", &versions_at_one());
    let out = p
        .agentbak()
        .env("SESSION_TOKEN", SESSION)
        .args(["restore", &id, "--target", "restored", "--rehydrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_no_value(&all_output(&out));
    let original = tree(&p.state());
    let restored = tree(&p.path().join("restored"));
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        restored.keys().collect::<Vec<_>>()
    );
    let private = [
        "config/credentials.json",
        ".env",
        "config.yaml",
        "settings.toml",
        "keys/identity.pem",
        "memory/notes.md",
    ];
    for (rel, seen) in &original {
        let back = &restored[rel];
        assert_eq!(back.kind, seen.kind, "{rel}");
        assert_eq!(back.content, seen.content, "{rel} differs");
        assert_eq!(back.mtime, seen.mtime, "{rel} mtime");
        let mode = if private.contains(&rel.as_str()) {
            0o600
        } else {
            seen.mode
        };
        assert_eq!(back.mode, mode, "{rel} mode {:o}", back.mode);
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    assert!(!p.path().join("restored/agentbak").exists());
}

#[test]
fn without_rehydrate_no_value_is_written_and_placeholders_stay() {
    let p = project();
    let id = p.snapshot("20260101T000000Z-00000001", &versions_at_one());
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let bytes = all_bytes(&p.path().join("restored"));
    assert_no_value(&String::from_utf8_lossy(&bytes));
    assert!(contains(
        &bytes,
        "+agentbak:local:agents/kevin/openai:api_key+"
    ));
    assert_no_value(&all_output(&out));
}

#[test]
fn rotation_restores_the_current_value_everywhere_and_pin_the_old_one() {
    let p = project();
    let id = p.snapshot("20260101T000000Z-00000001", &versions_at_one());
    p.set("local:agents/kevin/openai#api_key", ROTATED, &[]);
    let out = p
        .agentbak()
        .env("SESSION_TOKEN", SESSION)
        .args(["--json", "restore", &id, "--target", "new", "--rehydrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_no_value(&all_output(&out));
    let bytes = all_bytes(&p.path().join("new"));
    assert!(!contains(&bytes, OPENAI), "the old value is still there");
    let creds = fs::read_to_string(p.path().join("new/config/credentials.json")).unwrap();
    let notes = fs::read_to_string(p.path().join("new/memory/notes.md")).unwrap();
    assert!(creds.contains(ROTATED) && notes.contains(ROTATED));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let openai = report["handles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["handle"] == "local:agents/kevin/openai#api_key")
        .unwrap();
    assert_eq!(openai["snapshot_version"], 1);
    assert_eq!(openai["restored_version"], 2);
    assert_eq!(openai["rotated"], true);
    assert_eq!(openai["status"], "resolved");

    for (flag, dir) in [("--pin", "pinned"), ("--previous", "previous")] {
        let out = p
            .agentbak()
            .env("SESSION_TOKEN", SESSION)
            .args(["restore", &id, "--target", dir, "--rehydrate", flag])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", all_output(&out));
        let creds = fs::read_to_string(p.path().join(dir).join("config/credentials.json")).unwrap();
        assert!(
            creds.contains(OPENAI),
            "{flag} restores the version of the snapshot"
        );
    }

    // The same restores at every log level and in every log format: values go to the files
    // only (`--force` replaces the previous run's tree).
    let mut runs = Vec::new();
    for flag in ["--pin", "--previous", "--dry-run"] {
        runs.extend(crate::restore_fixture::three_ways(
            || {
                let mut c = p.agentbak();
                c.env("SESSION_TOKEN", SESSION);
                c
            },
            &[
                "restore",
                &id,
                "--target",
                "again",
                "--rehydrate",
                "--force",
                flag,
            ],
        ));
    }
    for run in &runs {
        assert_eq!(run.code(), Some(0), "{}", run.text());
    }
    let mut planted = VALUES.to_vec();
    planted.push(ROTATED);
    crate::restore_fixture::assert_no_value_in(&runs, &planted);
}

#[test]
fn a_missing_handle_writes_nothing_and_exits_6_with_a_report() {
    let p = project();
    let id = p.snapshot("20260101T000000Z-00000001", &versions_at_one());
    // A store file without that secret: the manifest points at a fresh, empty store.
    let moved = p.path().join("store/local.age");
    fs::rename(&moved, p.path().join("store/elsewhere.age")).unwrap();
    p.set("local:anthropic#key", ANTHROPIC, &[]);
    let out = p
        .agentbak()
        .args([
            "--json",
            "restore",
            &id,
            "--target",
            "restored",
            "--rehydrate",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    assert!(!p.path().join("restored").exists());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "unresolved");
    let statuses: Vec<&str> = report["handles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"missing") && statuses.contains(&"resolved"),
        "{statuses:?}"
    );
    assert_no_value(&all_output(&out));
}

#[test]
fn target_rules_dry_run_and_force() {
    let p = project();
    let id = p.snapshot("20260101T000000Z-00000001", &versions_at_one());
    let target = p.path().join("busy");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep.txt"), b"old").unwrap();
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "busy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(fs::read(target.join("keep.txt")).unwrap(), b"old");

    let out = p
        .agentbak()
        .args([
            "--json",
            "restore",
            &id,
            "--target",
            "busy",
            "--force",
            "--dry-run",
            "--rehydrate",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "ephemeral unset: {}",
        all_output(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "dry_run");
    assert_eq!(report["handles"].as_array().unwrap().len(), 6);
    assert_eq!(fs::read(target.join("keep.txt")).unwrap(), b"old");
    assert!(p.leftovers().is_empty());
    assert_no_value(&all_output(&out));

    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "busy", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(!target.join("keep.txt").exists());
    assert!(target.join("bin/run.sh").is_file());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

#[test]
fn an_unset_ephemeral_value_is_left_empty_with_a_warning() {
    let p = project();
    let id = p.snapshot("20260101T000000Z-00000001", &versions_at_one());
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored", "--rehydrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("env:SESSION_TOKEN"));
    let env = fs::read_to_string(p.path().join("restored/.env")).unwrap();
    assert!(env.contains("SESSION=\"\"\n"), "{env}");
    assert!(env.contains(GITHUB));
    let mode = fs::metadata(p.path().join("restored/.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn links_that_leave_the_tree_are_skipped_with_a_warning() {
    let p = Project::new(MANIFEST);
    p.file("a.txt", 0o644, b"a\n");
    let outside = p.path().join("victim");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink("../victim", p.state().join("out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.state().join("abs")).unwrap();
    std::os::unix::fs::symlink("a.txt", p.state().join("in")).unwrap();
    let id = p.snapshot("20260101T000000Z-00000001", &BTreeMap::new());
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let restored = p.path().join("restored");
    assert!(
        fs::symlink_metadata(restored.join("in"))
            .unwrap()
            .is_symlink()
    );
    assert!(fs::symlink_metadata(restored.join("out")).is_err());
    assert!(fs::symlink_metadata(restored.join("abs")).is_err());
    let text = all_output(&out);
    assert!(text.contains("skipped link out -> ../victim"), "{text}");
}
