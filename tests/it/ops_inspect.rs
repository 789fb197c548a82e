//! The operator commands through the real binary: `ls`, `diff`, `restore --include` and
//! `restore --from` (a standalone archive with or without its sidecar), with the local store.
//! Every test that plants a value asserts it appears in no output.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use crate::restore_fixture::{
    Project, all_bytes, all_output, assert_no_value_in, contains, three_ways, tree,
};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }
  },
  "secrets": [
    { "file": "config/credentials.json", "json": "/openai/api_key", "handle": "local:agents/{agent}/openai#api_key" },
    { "file": "config.yaml", "yaml": "/providers/0/key", "handle": "local:anthropic#key" },
    { "file": "settings.toml", "toml": "/slack/bot_token", "handle": "local:agents/{agent}/slack#bot_token" }
  ]
}"#;

const OPENAI: &str = "sk-proj-InspectPlantedOpenAi1234567890abcdefXYZ";
const ANTHROPIC: &str = "sk-ant-api03-InspectPlantedAnthropic0123456789";
const SLACK: &str = "xoxb-1111-2222-InspectPlantedSlackToken";
const ROTATED: &str = "sk-proj-InspectRotatedOpenAi9876543210zyxwvuTSR";
const VALUES: [&str; 4] = [OPENAI, ANTHROPIC, SLACK, ROTATED];

const OPENAI_HANDLE: &str = "local:agents/kevin/openai#api_key";
const ANTHROPIC_HANDLE: &str = "local:anthropic#key";
const SLACK_HANDLE: &str = "local:agents/kevin/slack#bot_token";

/// A state with three declared secrets (and a stray copy of one), plain files, a link.
/// `store_anthropic`: whether the anthropic value is in the store.
fn project(store_anthropic: bool) -> Project {
    let p = Project::new(MANIFEST);
    p.file(
        "config/credentials.json",
        0o640,
        format!("{{\n  \"openai\": {{ \"api_key\": \"{OPENAI}\", \"org\": \"acme\" }}\n}}\n")
            .as_bytes(),
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
    p.file(
        "memory/notes.md",
        0o644,
        format!("the key is {OPENAI} (do not share)\n").as_bytes(),
    );
    p.file("memory/deep/log.md", 0o600, b"day one\n");
    p.file("bin/run.sh", 0o755, b"#!/bin/sh\necho hi\n");
    p.file("blob.bin", 0o644, &[7u8; 5000]);
    fs::set_permissions(p.state().join("memory"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("../config.yaml", p.state().join("memory/current")).unwrap();
    p.set(OPENAI_HANDLE, OPENAI, &[]);
    p.set(SLACK_HANDLE, SLACK, &[]);
    if store_anthropic {
        p.set(ANTHROPIC_HANDLE, ANTHROPIC, &[]);
    }
    p
}

fn versions(openai: u64) -> BTreeMap<String, u64> {
    [
        (OPENAI_HANDLE, openai),
        (ANTHROPIC_HANDLE, 1),
        (SLACK_HANDLE, 1),
    ]
    .into_iter()
    .map(|(h, v)| (h.to_string(), v))
    .collect()
}

fn run(p: &Project, args: &[&str]) -> Output {
    p.agentbak().args(args).output().unwrap()
}

fn assert_no_value(out: &Output) {
    let text = all_output(out);
    for v in VALUES {
        assert!(!text.contains(v), "a planted value leaked:\n{text}");
    }
}

fn mtime_of(p: &Project, rel: &str) -> String {
    let secs = fs::symlink_metadata(p.state().join(rel)).unwrap().mtime();
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

#[test]
fn ls_lists_type_mode_size_time_path_and_placeholders() {
    let p = project(true);
    let id = p.snapshot("20260101T000000Z-00000001", &versions(1));
    let runs = three_ways(|| p.agentbak(), &["ls", &id]);
    assert_no_value_in(&runs, &VALUES);
    let out = &runs[0].output;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let line = |path: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|cols| cols.get(4).map(String::as_str) == Some(path))
            .unwrap_or_else(|| panic!("no line for {path}:\n{text}"))
    };
    // type+mode, size, date, time, path, [placeholders]
    let blob = line("blob.bin");
    assert_eq!(blob[0], "-rw-r--r--");
    assert_eq!(blob[1], "5000");
    assert_eq!(format!("{} {}", blob[2], blob[3]), mtime_of(&p, "blob.bin"));
    assert_eq!(
        blob.len(),
        5,
        "no placeholder column for a plain file: {blob:?}"
    );
    let creds = line("config/credentials.json");
    assert_eq!(creds[0], "-rw-r-----");
    assert_eq!(creds[5..].join(" "), "[1 placeholder]");
    assert_eq!(line("memory/notes.md")[5..].join(" "), "[1 placeholder]");
    assert_eq!(line("bin/run.sh")[0], "-rwxr-xr-x");
    assert_eq!(line("memory")[0], "drwxr-x---");
    let link = line("memory/current");
    assert_eq!(link[0], "lrwxrwxrwx");
    assert_eq!(link[5..].join(" "), "-> ../config.yaml");
    assert_eq!(line(".")[0].chars().next(), Some('d'));

    // A folder: itself and what it holds, nothing else; a file: itself.
    let out = run(&p, &["ls", &id, "memory"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "memory",
            "memory/current",
            "memory/deep",
            "memory/deep/log.md",
            "memory/notes.md"
        ]
    );
    let out = run(&p, &["ls", &id, "memory/notes.md"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    // `mem` is a prefix of a name, not a folder.
    let out = run(&p, &["ls", &id, "mem"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("no entry `mem`"),
        "{}",
        all_output(&out)
    );

    // The machine form: every entry, placeholders and handles, no value.
    let out = run(&p, &["--json", "ls", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_no_value(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["snapshot"], id.as_str());
    assert_eq!(doc["signature"]["status"], "unsigned");
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), tree(&p.state()).len());
    let creds = entries
        .iter()
        .find(|e| e["path"] == "config/credentials.json")
        .unwrap();
    assert_eq!(creds["type"], "file");
    assert_eq!(creds["mode"], 0o640);
    assert_eq!(creds["placeholders"], 1);
    assert_eq!(creds["handles"], serde_json::json!([OPENAI_HANDLE]));
}

#[test]
fn diff_reports_added_removed_changed_files_and_rotated_handles() {
    let p = project(true);
    let first = p.snapshot("20260101T000000Z-00000001", &versions(1));
    // Between the two snapshots: a file added, one removed, one edited, one chmod-ed, a
    // secret rotated in the store (and in the state), a secret no longer used.
    p.file("memory/new.md", 0o644, b"new\n");
    fs::remove_file(p.state().join("bin/run.sh")).unwrap();
    p.file(
        "config.yaml",
        0o644,
        format!("providers:\n  - name: anthropic\n    key: '{ANTHROPIC}' # main, edited\n")
            .as_bytes(),
    );
    fs::set_permissions(
        p.state().join("blob.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    p.set(OPENAI_HANDLE, ROTATED, &[]);
    p.file(
        "config/credentials.json",
        0o640,
        format!("{{\n  \"openai\": {{ \"api_key\": \"{ROTATED}\", \"org\": \"acme\" }}\n}}\n")
            .as_bytes(),
    );
    p.file("memory/notes.md", 0o644, b"the key is elsewhere now\n");
    p.file("settings.toml", 0o644, b"[slack]\nchannel = \"#ops\"\n");
    let second = p.snapshot("20260102T000000Z-00000002", &versions(2));

    let runs = three_ways(|| p.agentbak(), &["diff", &first, &second]);
    assert_no_value_in(&runs, &VALUES);
    let out = &runs[0].output;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    for line in [
        "+  memory/new.md",
        "-  bin/run.sh",
        "M  config.yaml  (content, size)",
        "M  blob.bin  (mode)",
        "M  settings.toml  (content, size)",
        "M  memory/notes.md  (content, size)",
        &format!("~  {OPENAI_HANDLE}  v1 -> v2"),
        &format!("-  handle {SLACK_HANDLE}"),
        "1 added, 1 removed, 4 changed; handles: 1 rotated, 0 added, 1 removed",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(!text.contains("~  local:anthropic"), "{text}");

    let out = run(&p, &["--json", "diff", &first, &second]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["added"], serde_json::json!(["memory/new.md"]));
    assert_eq!(doc["removed"], serde_json::json!(["bin/run.sh"]));
    let rotated = &doc["handles"]["rotated"][0];
    assert_eq!(rotated["handle"], OPENAI_HANDLE);
    assert_eq!(
        (rotated["from"].as_u64(), rotated["to"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(doc["handles"]["removed"], serde_json::json!([SLACK_HANDLE]));
    // The other way round: the mirror image, and the same snapshot twice: nothing.
    let back = run(&p, &["--json", "diff", &second, &first]);
    let doc: serde_json::Value = serde_json::from_slice(&back.stdout).unwrap();
    assert_eq!(doc["added"], serde_json::json!(["bin/run.sh"]));
    assert_eq!(doc["handles"]["added"], serde_json::json!([SLACK_HANDLE]));
    let same = run(&p, &["diff", &first, &first]);
    assert_eq!(same.status.code(), Some(0));
    assert!(
        String::from_utf8(same.stdout)
            .unwrap()
            .contains("0 added, 0 removed, 0 changed; handles: 0 rotated, 0 added, 0 removed")
    );
}

#[test]
fn include_restores_and_rehydrates_only_the_matching_files() {
    // The anthropic value is not in the store: a restore that asked for it would stop (6).
    let p = project(false);
    let id = p.snapshot("20260101T000000Z-00000001", &versions(1));
    let whole = run(&p, &["restore", &id, "--target", "whole", "--rehydrate"]);
    assert_eq!(whole.status.code(), Some(6), "{}", all_output(&whole));

    let args = [
        "--json",
        "restore",
        &id,
        "--target",
        "part",
        "--rehydrate",
        "--include",
        "memory/**",
        "--include",
        "config/*.json",
    ];
    let runs = three_ways(|| p.agentbak(), &args);
    // Each way restores into the same target: the first writes it, the next are refused
    // (the folder is not empty) before anything is read.
    assert_no_value_in(&runs, &VALUES);
    let out = &runs[0].output;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let asked: Vec<&str> = report["handles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["handle"].as_str().unwrap())
        .collect();
    assert_eq!(asked, [OPENAI_HANDLE], "only the selected files' handles");
    assert_eq!(
        report["include"],
        serde_json::json!(["memory/**", "config/*.json"])
    );
    assert_eq!(report["secret_files"], 2);

    let original = tree(&p.state());
    let restored = tree(&p.path().join("part"));
    let names: Vec<&str> = restored.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "",
            "config",
            "config/credentials.json",
            "memory",
            "memory/current",
            "memory/deep",
            "memory/deep/log.md",
            "memory/notes.md"
        ]
    );
    for rel in [
        "config/credentials.json",
        "memory/notes.md",
        "memory/deep/log.md",
    ] {
        assert_eq!(restored[rel].content, original[rel].content, "{rel}");
    }
    // The folders above the selection keep their archive mode and time.
    assert_eq!(restored["memory"].mode, 0o750);
    assert_eq!(restored["config"].mtime, original["config"].mtime);
    assert_eq!(restored["memory/current"].content, b"../config.yaml");
    let bytes = all_bytes(&p.path().join("part"));
    for absent in [ANTHROPIC, SLACK] {
        assert!(!contains(&bytes, absent));
    }
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());

    // Without --rehydrate: the same subset, placeholders kept.
    let out = run(
        &p,
        &[
            "restore",
            &id,
            "--target",
            "bare",
            "--include",
            "config.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let bare = tree(&p.path().join("bare"));
    assert_eq!(bare.keys().collect::<Vec<_>>(), ["", "config.yaml"]);
    assert!(!contains(&bare["config.yaml"].content, ANTHROPIC));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("only --include config.yaml")
    );
}

#[test]
fn include_that_matches_nothing_or_would_replace_a_folder_is_refused() {
    let p = project(true);
    let id = p.snapshot("20260101T000000Z-00000001", &versions(1));
    let out = run(
        &p,
        &[
            "restore",
            &id,
            "--target",
            "out",
            "--include",
            "memory/**",
            "--include",
            "memroy/**",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(
        text.contains("--include `memroy/**` matches nothing"),
        "{text}"
    );
    assert!(
        !text.contains("`memory/**`"),
        "only the unmatched glob is named: {text}"
    );
    assert!(!p.path().join("out").exists());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());

    // A bad glob, and a partial restore over a non-empty folder even with --force.
    let out = run(&p, &["restore", &id, "--target", "out", "--include", "a[b"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    fs::create_dir(p.path().join("live")).unwrap();
    fs::write(p.path().join("live/keep.txt"), b"mine").unwrap();
    let out = run(
        &p,
        &[
            "restore",
            &id,
            "--target",
            "live",
            "--force",
            "--include",
            "memory/**",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("restore into a new folder"));
    assert_eq!(fs::read(p.path().join("live/keep.txt")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(p.path().join("live")).unwrap().count(), 1);
    // Without --force, the same refusal (not "pass --force", which would not help).
    let out = run(
        &p,
        &["restore", &id, "--target", "live", "--include", "memory/**"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("restore into a new folder"));
    // An empty folder is fine.
    fs::create_dir(p.path().join("empty")).unwrap();
    let out = run(
        &p,
        &[
            "restore",
            &id,
            "--target",
            "empty",
            "--include",
            "memory/**",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(p.path().join("empty/memory/notes.md").is_file());
}

/// Copies snapshot `id`'s archive to `<dir>/export.tar.zst` (and its sidecar beside it as
/// `export.tar.zst.json` when `sidecar`), then removes the repository: `--from` needs none.
fn export(p: &Project, id: &str, sidecar: bool) -> std::path::PathBuf {
    let snapshots = p.path().join("backups/snapshots");
    let file = p.path().join("export.tar.zst");
    fs::copy(snapshots.join(format!("{id}.tar.zst")), &file).unwrap();
    if sidecar {
        fs::copy(
            snapshots.join(format!("{id}.json")),
            p.path().join("export.tar.zst.json"),
        )
        .unwrap();
    }
    fs::remove_dir_all(p.path().join("backups")).unwrap();
    file
}

#[test]
fn from_restores_a_standalone_archive_checked_by_its_sidecar() {
    let p = project(true);
    let id = p.snapshot("20260101T000000Z-00000001", &versions(1));
    export(&p, &id, true);
    let runs = three_ways(
        || p.agentbak(),
        &[
            "restore",
            "--from",
            "export.tar.zst",
            "--target",
            "out",
            "--rehydrate",
        ],
    );
    assert_no_value_in(&runs, &VALUES);
    let out = &runs[0].output;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(out));
    assert!(all_output(out).contains(&format!("restored {id} into out")));
    let original = tree(&p.state());
    let restored = tree(&p.path().join("out"));
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        restored.keys().collect::<Vec<_>>()
    );
    for (rel, seen) in &original {
        assert_eq!(restored[rel].content, seen.content, "{rel}");
    }
    // A snapshot id and --from together make no sense.
    let out = run(
        &p,
        &["restore", &id, "--from", "export.tar.zst", "--target", "x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
}

#[test]
fn from_without_a_sidecar_needs_allow_unsigned() {
    let p = project(true);
    let id = p.snapshot("20260101T000000Z-00000001", &versions(1));
    export(&p, &id, false);
    let out = run(
        &p,
        &["restore", "--from", "export.tar.zst", "--target", "out"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(
        text.contains("export.tar.zst.json") && text.contains("--allow-unsigned"),
        "{text}"
    );
    assert!(!p.path().join("out").exists());

    let out = run(
        &p,
        &[
            "restore",
            "--from",
            "export.tar.zst",
            "--target",
            "out",
            "--allow-unsigned",
            "--rehydrate",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_no_value(&out);
    assert!(
        all_output(&out).contains("signature: unsigned"),
        "{}",
        all_output(&out)
    );
    let original = tree(&p.state());
    let restored = tree(&p.path().join("out"));
    for (rel, seen) in &original {
        assert_eq!(restored[rel].content, seen.content, "{rel}");
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn from_a_tampered_archive_or_sidecar_is_refused() {
    let p = project(true);
    let id = p.snapshot("20260101T000000Z-00000001", &versions(1));
    let file = export(&p, &id, true);
    let original = fs::read(&file).unwrap();
    flip_byte(&file, original.len() / 2);
    let out = run(
        &p,
        &["restore", "--from", "export.tar.zst", "--target", "out"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("does not match its sidecar"),
        "{}",
        all_output(&out)
    );
    assert!(!p.path().join("out").exists());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());

    // The archive intact but the sidecar's digest changed: the same refusal.
    fs::write(&file, &original).unwrap();
    let sidecar = p.path().join("export.tar.zst.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&sidecar).unwrap()).unwrap();
    doc["size"] = serde_json::json!(original.len() + 1);
    fs::write(&sidecar, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = run(
        &p,
        &["restore", "--from", "export.tar.zst", "--target", "out"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(!p.path().join("out").exists());
}

/// An Ed25519 key in PKCS#8 PEM, as `openssl genpkey` writes it.
fn openssl_key(dir: &Path) -> String {
    let path = dir.join("key.pem");
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(path).unwrap()
}

#[test]
fn under_signing_ls_diff_and_from_check_the_signature_first() {
    let keys = tempfile::tempdir().unwrap();
    let p = project(true);
    let unsigned = p.snapshot("20260101T000000Z-00000001", &versions(1));
    let signed_manifest = MANIFEST.replacen(
        "\"secrets\": [",
        "\"signing\": { \"key\": \"local:agents/{agent}/signing#private_key\" },\n  \"secrets\": [",
        1,
    );
    fs::write(p.path().join("agentbak.json"), signed_manifest).unwrap();
    p.set(
        "local:agents/kevin/signing#private_key",
        &openssl_key(keys.path()),
        &[],
    );
    let out = run(&p, &["--json", "snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let signed = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = run(&p, &["--json", "ls", &signed]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["signature"]["status"], "signed");
    for args in [vec!["ls", &unsigned], vec!["diff", &unsigned, &signed]] {
        let out = run(&p, &args);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", all_output(&out));
        assert!(
            all_output(&out).contains("unsigned"),
            "{}",
            all_output(&out)
        );
        let mut allowed = args.clone();
        allowed.push("--allow-unsigned");
        let out = run(&p, &allowed);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{allowed:?}: {}",
            all_output(&out)
        );
    }

    // A signed export restores; the same with a field of its sidecar changed does not.
    let out = run(&p, &["export", &signed, "-o", "e.tar.zst"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let sidecar = p.path().join("e.tar.zst.json");
    let out = run(&p, &["restore", "--from", "e.tar.zst", "--target", "ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(all_output(&out).contains("signed by local:agents/kevin/signing#private_key"));
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&sidecar).unwrap()).unwrap();
    doc["tags"] = serde_json::json!(["forged"]);
    fs::write(&sidecar, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = run(
        &p,
        &["restore", "--from", "e.tar.zst", "--target", "forged"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(!p.path().join("forged").exists());
    // Without the sidecar, under signing: refused, as an unsigned snapshot is.
    fs::remove_file(&sidecar).unwrap();
    let out = run(&p, &["restore", "--from", "e.tar.zst", "--target", "bare"]);
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
}
