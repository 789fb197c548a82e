//! The race between the two reads of a rule file (issue 18): a value rotated after the known
//! values were read must never reach the archive unsearched.

use std::fs;

use super::*;

const OLD: &str = "sk-proj-OldDeclaredValue0123456789abcdef";
const NEW: &str = "sk-proj-NewRotatedValue9876543210fedcba";

struct Setup {
    _dir: tempfile::TempDir,
    m: Manifest,
    config: std::path::PathBuf,
}

/// A state whose `config.json` declares a value, and whose `a-notes.md` (archived first)
/// already holds the value the agent is about to rotate to.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::write(state.join("a-notes.md"), format!("next key: {NEW}\n")).unwrap();
    let config = state.join("config.json");
    fs::write(&config, format!("{{\"k\": \"{OLD}\"}}\n")).unwrap();
    let manifest = dir.path().join("agentbak.json");
    fs::write(
        &manifest,
        r#"{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
             "stores": { "env": { "kind": "env" } },
             "secrets": [ { "file": "config.json", "json": "/k", "handle": "env:K" } ] }"#,
    )
    .unwrap();
    let m = Manifest::load(&manifest).unwrap();
    Setup {
        _dir: dir,
        m,
        config,
    }
}

/// Gathers the known values keeping `budget` bytes, rotates the value, then writes.
fn attempt(s: &Setup, budget: usize) -> (Result<archive::Archived, Changed>, Vec<u8>) {
    let mut report = SnapshotReport::default();
    let rules = Rules::new(&s.m).unwrap();
    let stores = Stores::from_manifest(&s.m).unwrap();
    let walked = walk::walk(&s.m.state, &s.m.include, &s.m.exclude).unwrap();
    let opts = SnapshotOptions::default();
    let sources = known::Sources {
        m: &s.m,
        opts: &opts,
        rules: &rules,
        stores: &stores,
        captured: &[],
        fingerprint_key: None,
    };
    let (mut known, detector) = known::gather(&sources, &walked, &mut report, budget).unwrap();
    fs::write(&s.config, format!("{{\"k\": \"{NEW}\"}}\n")).unwrap();
    let masks = NameMasks::default();
    let input = archive::Input {
        text_rules: None,
        m: &s.m,
        rules: &rules,
        walked: &walked,
        recipients: None,
        masks: &masks,
        info: SnapshotInfo {
            agent: "kevin".into(),
            snapshot_id: "20261204T000000Z-00000000".into(),
            created_at: Utc::now(),
        },
        name: "<test>".into(),
        progress: None,
    };
    let mut sink = Vec::new();
    let result = archive::write(
        input,
        &mut known,
        std::sync::Arc::new(detector),
        &mut sink,
        &mut report,
    )
    .unwrap();
    (result, sink)
}

fn tar_bytes(archive: &[u8]) -> String {
    String::from_utf8_lossy(&zstd::decode_all(archive).unwrap()).into_owned()
}

#[test]
fn a_kept_rule_file_is_archived_as_its_values_were_read() {
    let s = setup();
    let (result, archive) = attempt(&s, known::MAX_HELD);
    assert!(result.is_ok(), "the first read's bytes are archived");
    let tar = tar_bytes(&archive);
    assert!(!tar.contains(OLD), "the declared value is a placeholder");
    assert!(tar.contains("+agentbak:env:K+"));
    // The rotated value is only in a note: the state as first read did not declare it.
    assert!(tar.contains(&format!("next key: {NEW}")));
}

#[test]
fn a_rule_file_read_again_with_other_values_stops_the_attempt() {
    let s = setup();
    let (result, _) = attempt(&s, 0);
    match result {
        Err(Changed(rel)) => assert_eq!(rel, "config.json"),
        Ok(_) => panic!("a value the gate did not search for was archived"),
    }
}
