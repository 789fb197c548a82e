//! `agentbak verify` end to end through the real binary, on real snapshots made with the
//! library's archive writer and repository (lock, begin, write, commit), a real local store,
//! and a real OpenBao for `--check-handles`.
//!
//! Every test that plants a value asserts that it appears in no output.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::Output;

use age::secrecy::ExposeSecret;
use agentbak::archive::{
    ArchiveWriter, EntryMeta, Recipients, SIDECAR_FORMAT, SecretLocation, Sidecar, SnapshotInfo,
    WriterOptions,
};
use agentbak::handle::Handle;
use agentbak::manifest::Locator;
use agentbak::repo::{Repository, SnapshotId, host_name};
use assert_cmd::Command;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

const OPENAI: &str = "sk-proj-Planted0penAiValue1234567890abcdefXYZ";
/// A GitHub token shape the builtin rules know (not a real token).
const GITHUB: &str = "ghp_Pl4ntedT0kenQx9Lm2Vb7Rt5Wy8Kd3Hs6JfA";

/// A project folder: manifest, repository, local store; the state folder is absent, as on an
/// audit host, unless a test makes it.
struct Project {
    dir: tempfile::TempDir,
    recipients: Option<String>,
    identity: Option<PathBuf>,
}

fn project(encrypted: bool, extra: &str) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let (recipients, identity) = if encrypted {
        let id = age::x25519::Identity::generate();
        let path = dir.path().join("backup.key");
        std::fs::write(&path, format!("{}\n", id.to_string().expose_secret())).unwrap();
        (Some(id.to_public().to_string()), Some(path))
    } else {
        (None, None)
    };
    let manifest = format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": {{ "local": {{ "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }} }},
  "secrets": [ {{ "file": "config.json", "json": "/api_key", "handle": "local:agents/{{agent}}/openai#api_key" }} ]
  {extra} }}"#
    );
    std::fs::write(dir.path().join("agentbak.json"), manifest).unwrap();
    Repository::open_or_create(&dir.path().join("backups")).unwrap();
    Project {
        dir,
        recipients,
        identity,
    }
}

impl Project {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn repo(&self) -> Repository {
        Repository::open(&self.path().join("backups")).unwrap()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("agentbak").unwrap();
        c.current_dir(self.path())
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `agentbak verify ARGS --identity KEY` three ways (plain, `-vvv` with
    /// `RUST_LOG=trace`, `--log-format json`), asserts each exits `code` and that no output holds
    /// any form of `planted`.
    fn verify_three_ways(&self, args: &[&str], code: i32, planted: &[&str]) {
        let id = self.identity.as_ref().unwrap().to_str().unwrap();
        let args = [&["verify"], args, &["--identity", id]].concat();
        let runs = crate::restore_fixture::three_ways(|| self.cmd(), &args);
        for run in &runs {
            assert_eq!(run.code(), Some(code), "{}", run.text());
        }
        crate::restore_fixture::assert_no_value_in(&runs, planted);
    }

    /// Runs `agentbak verify ARGS` (with the identity when `with_identity`).
    fn verify(&self, args: &[&str], with_identity: bool) -> Output {
        let mut c = self.cmd();
        c.arg("verify").args(args);
        if with_identity && let Some(id) = &self.identity {
            c.arg("--identity").arg(id);
        }
        c.output().unwrap()
    }

    fn set_secret(&self, handle: &str, value: &str) {
        let out = self
            .cmd()
            .args(["secrets", "set", handle])
            .write_stdin(value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Commits a snapshot made at `time` holding `files`, the first of which carries the
    /// openai handle's placeholder at `/api_key` when `redacted`.
    fn snapshot(&self, time: &str, files: &[(&str, &[u8])], store_version: Option<u64>) -> Sidecar {
        let recipients = self
            .recipients
            .as_ref()
            .map(|r| Recipients::parse(&[r.as_str()]).unwrap());
        make_snapshot(
            &self.repo(),
            time,
            files,
            store_version,
            recipients.as_ref(),
        )
    }

    fn archive(&self, s: &Sidecar) -> PathBuf {
        self.path().join("backups/snapshots").join(&s.archive)
    }
}

fn openai() -> Handle {
    Handle::parse("local:agents/kevin/openai#api_key").unwrap()
}

/// A redacted `config.json` as the snapshot pipeline writes it.
fn redacted_config() -> Vec<u8> {
    format!(
        "{{\n  \"api_key\": \"{}\",\n  \"model\": \"gpt\"\n}}\n",
        openai().placeholder()
    )
    .into_bytes()
}

fn make_snapshot(
    repo: &Repository,
    time: &str,
    files: &[(&str, &[u8])],
    store_version: Option<u64>,
    recipients: Option<&Recipients>,
) -> Sidecar {
    let created_at: DateTime<Utc> = time.parse().unwrap();
    let id = SnapshotId::new(created_at);
    let lock = repo.lock(None, "test").unwrap();
    let mut pending = repo.begin(&lock, &id, recipients.is_some()).unwrap();
    let archive = pending.archive_name().to_string();
    let options = WriterOptions {
        recipients,
        threads: 0,
        ..WriterOptions::default()
    };
    let mut writer = ArchiveWriter::new(pending.file(), &options, None).unwrap();
    let meta = EntryMeta {
        mode: 0o600,
        mtime: created_at.timestamp(),
    };
    writer
        .append_dir(
            "",
            EntryMeta {
                mode: 0o700,
                mtime: meta.mtime,
            },
        )
        .unwrap();
    for (name, data) in files {
        writer
            .append_file(name, meta, data.len() as u64, *data)
            .unwrap();
    }
    let secrets = vec![SecretLocation {
        file: format!("state/{}", files[0].0),
        locator: Some(Locator::Json("/api_key".into())),
        handle: openai(),
        store_version,
        ephemeral: false,
        context: serde_json::json!({}),
    }];
    let info = SnapshotInfo {
        agent: "kevin".into(),
        snapshot_id: id.to_string(),
        created_at,
    };
    let written = writer.finish(info, secrets).unwrap();
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        id: id.to_string(),
        agent: "kevin".into(),
        host: host_name(),
        created_at,
        tags: vec![],
        tool_version: env!("CARGO_PKG_VERSION").into(),
        archive,
        size: written.size,
        blake3: written.blake3,
        counts: written.counts,
        encrypted: recipients.is_some(),
        degraded: vec![],
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
    };
    pending.commit(&sidecar).unwrap();
    sidecar
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// The path of every finding of snapshot `snapshot`, in report order.
fn finding_paths(report: &Value, snapshot: usize) -> Vec<&str> {
    report["snapshots"][snapshot]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

fn check<'v>(report: &'v Value, snapshot: usize, name: &str) -> &'v Value {
    report["snapshots"][snapshot]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

fn assert_schema_valid(report: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/verify-report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
}

const T1: &str = "2026-11-28T22:55:01Z";
const T2: &str = "2026-11-29T22:55:01Z";
const T3: &str = "2026-11-30T22:55:01Z";

fn clean_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config.json", redacted_config()),
        (
            "memory.md",
            b"# memory\nthe user likes short answers\n".repeat(200),
        ),
    ]
}

fn as_refs<'a>(files: &'a [(&'a str, Vec<u8>)]) -> Vec<(&'a str, &'a [u8])> {
    files.iter().map(|(n, d)| (*n, d.as_slice())).collect()
}

#[test]
fn clean_snapshots_exit_0_and_the_json_report_matches_its_schema() {
    let p = project(true, "");
    let files = clean_files();
    p.snapshot(T1, &as_refs(&files), Some(1));
    p.snapshot(T2, &as_refs(&files), Some(1));
    for with_identity in [false, true] {
        let out = p.verify(&["--all", "--json"], with_identity);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let report = json(&out);
        assert_schema_valid(&report);
        assert_eq!(report["snapshots"].as_array().unwrap().len(), 2);
        let deep = if with_identity { "pass" } else { "skipped" };
        for name in ["contents", "index", "leak-scan"] {
            assert_eq!(check(&report, 1, name)["result"], deep, "{name}");
        }
        assert_eq!(check(&report, 0, "archive")["result"], "pass");
        assert_eq!(check(&report, 0, "sidecar")["result"], "pass");
    }
    // The human table says the same.
    let out = p.verify(&[], true);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("leak-scan"), "{shown}");
    assert!(
        shown.contains("1 snapshot(s) verified, 0 with problems"),
        "{shown}"
    );
}

#[test]
fn one_flipped_byte_anywhere_is_an_integrity_failure_with_and_without_identity() {
    for encrypted in [true, false] {
        let p = project(encrypted, "");
        let files = clean_files();
        let s = p.snapshot(T1, &as_refs(&files), Some(1));
        let path = p.archive(&s);
        let original = std::fs::read(&path).unwrap();
        let n = original.len();
        for at in [0, 40, n / 3, n / 2, n - 20, n - 1] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            for with_identity in [false, true] {
                let out = p.verify(&["--json"], with_identity);
                assert_eq!(
                    code(&out),
                    5,
                    "encrypted={encrypted} byte {at} identity={with_identity}: {}",
                    text(&out)
                );
                let report = json(&out);
                assert_eq!(check(&report, 0, "archive")["result"], "fail");
                assert_schema_valid(&report);
            }
        }
        std::fs::write(&path, &original).unwrap();
        assert_eq!(code(&p.verify(&[], true)), 0);
    }
}

#[test]
fn a_truncated_archive_is_an_integrity_failure() {
    let p = project(true, "");
    let files = clean_files();
    let s = p.snapshot(T1, &as_refs(&files), Some(1));
    let path = p.archive(&s);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    for with_identity in [false, true] {
        let out = p.verify(&[], with_identity);
        assert_eq!(code(&out), 5, "{}", text(&out));
        assert!(
            text(&out).contains("corrupt or truncated"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn a_removed_sidecar_leaves_an_orphan_that_is_reported() {
    let p = project(false, "");
    let files = clean_files();
    let old = p.snapshot(T1, &as_refs(&files), Some(1));
    let new = p.snapshot(T2, &as_refs(&files), Some(1));
    std::fs::remove_file(p.path().join(format!("backups/snapshots/{}.json", new.id))).unwrap();
    let out = p.verify(&["--all", "--json"], false);
    assert_eq!(code(&out), 5, "{}", text(&out));
    let report = json(&out);
    assert_schema_valid(&report);
    assert_eq!(report["snapshots"][0]["id"], old.id.as_str());
    assert_eq!(report["snapshots"][0]["exit_code"], 0);
    assert_eq!(report["orphans"][0]["file"], new.archive.as_str());
    assert_eq!(report["orphans"][0]["problem"], "archive-without-sidecar");
    let human = text(&p.verify(&["--all"], false));
    assert!(
        human.contains(&format!("{}: archive without sidecar", new.archive)),
        "{human}"
    );
}

#[test]
fn a_forged_archive_with_a_plaintext_token_and_a_recomputed_hash_is_caught() {
    let p = project(true, "");
    // A forger with the recipients (public) writes a complete, self-consistent archive and
    // sidecar: only the leak scan can tell.
    let forged = format!("GITHUB_TOKEN={GITHUB}\n");
    let files = [
        ("config.json", redacted_config()),
        (".env", forged.clone().into_bytes()),
    ];
    p.snapshot(T1, &as_refs(&files), Some(1));
    let out = p.verify(&["--json"], true);
    assert_eq!(code(&out), 4, "{}", text(&out));
    let report = json(&out);
    assert_schema_valid(&report);
    assert_eq!(check(&report, 0, "archive")["result"], "pass");
    assert_eq!(check(&report, 0, "leak-scan")["result"], "fail");
    let finding = &report["snapshots"][0]["findings"][0];
    assert_eq!(finding["path"], "state/.env");
    assert_eq!(finding["rule"], "github-pat");
    let human = p.verify(&[], true);
    for o in [&out, &human] {
        assert!(!text(o).contains(&GITHUB[8..]), "{}", text(o));
    }
    p.verify_three_ways(&[], 4, &[GITHUB]);
    // Without the identity the forgery is invisible, and the report says what was not read.
    let keyless = p.verify(&["--json"], false);
    assert_eq!(code(&keyless), 0, "{}", text(&keyless));
    assert_eq!(check(&json(&keyless), 0, "leak-scan")["result"], "skipped");
}

#[test]
fn findings_in_many_files_come_back_in_archive_order() {
    // The leak scan runs on several threads, an entry each: the report keeps archive order.
    let p = project(false, "");
    let mut files = vec![("config.json", redacted_config())];
    let names: Vec<String> = (0..9).map(|i| format!("leak-{i}.env")).collect();
    for (i, name) in names.iter().enumerate() {
        let body = format!("{}\nGITHUB_TOKEN={GITHUB}\n", "x".repeat(i * 50_000));
        files.push((name.as_str(), body.into_bytes()));
    }
    p.snapshot(T1, &as_refs(&files), Some(1));
    let out = p.verify(&["--json"], false);
    assert_eq!(code(&out), 4, "{}", text(&out));
    let report = json(&out);
    let paths = finding_paths(&report, 0);
    let want: Vec<String> = names.iter().map(|n| format!("state/{n}")).collect();
    assert_eq!(paths, want);
}

/// A token in a file name is found once, as the entry's name; the index, which lists the same
/// path, is searched for known values only (agentbak's own record: issue 19).
#[test]
fn a_token_in_an_entry_name_is_found_as_the_name() {
    let p = project(false, "");
    let name = format!("notes-{GITHUB}.md");
    let files = [
        ("config.json", redacted_config()),
        (name.as_str(), b"hello\n".to_vec()),
    ];
    p.snapshot(T1, &as_refs(&files), Some(1));
    let out = p.verify(&["--json"], false);
    assert_eq!(code(&out), 4, "{}", text(&out));
    let report = json(&out);
    let paths = finding_paths(&report, 0);
    assert!(
        paths.iter().any(|p| p.ends_with("(entry name)")),
        "{paths:?}"
    );
    assert!(!paths.contains(&"agentbak/index.json"), "{paths:?}");
    assert!(!text(&out).contains(&GITHUB[8..]));
}

#[test]
fn against_store_finds_current_and_previous_values_in_any_encoding() {
    let p = project(true, "");
    let previous = "sk-proj-OldRotatedValue-0123456789abcdefghijk";
    p.set_secret("local:agents/kevin/openai#api_key", previous);
    p.set_secret("local:agents/kevin/openai#api_key", OPENAI);
    let clean = clean_files();
    p.snapshot(T1, &as_refs(&clean), Some(2));
    // A log that kept the old key base64-encoded: no rule knows this shape.
    let b64 = base64::engine::general_purpose::STANDARD.encode(previous);
    let log = format!("2026-11-29 auth header={b64}\n");
    let leaky = [
        ("config.json", redacted_config()),
        ("logs/agent.log", log.clone().into_bytes()),
    ];
    p.snapshot(T2, &as_refs(&leaky), Some(2));
    // Rules alone do not see it.
    let out = p.verify(&["--all", "--json"], true);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = p.verify(&["--all", "--json", "--against-store"], true);
    assert_eq!(code(&out), 4, "{}", text(&out));
    let report = json(&out);
    assert_schema_valid(&report);
    assert_eq!(report["snapshots"][0]["exit_code"], 0);
    assert_eq!(check(&report, 0, "against-store")["result"], "pass");
    assert_eq!(check(&report, 1, "against-store")["result"], "fail");
    let kind = &report["snapshots"][1]["findings"][0]["kind"];
    assert_eq!(
        kind["label"],
        "local:agents/kevin/openai#api_key (previous v1)"
    );
    assert_eq!(kind["encoding"], "base64");
    assert!(
        report["known_values"]["sources"][0]
            .as_str()
            .unwrap()
            .contains("1 current, 1 previous"),
        "{report:#}"
    );
    let human = p.verify(&["--all", "--against-store"], true);
    for o in [&out, &human] {
        let shown = text(o);
        for planted in [previous, OPENAI, b64.as_str()] {
            assert!(!shown.contains(&planted[6..]), "{shown}");
        }
    }
    p.verify_three_ways(&["--all", "--against-store"], 4, &[previous, OPENAI]);
}

#[test]
fn an_overdue_rotation_is_reported_and_needs_attention() {
    let p = project(false, r#", "rotation": { "max_age_days": 0 }"#);
    p.set_secret("local:agents/kevin/openai#api_key", OPENAI);
    let files = clean_files();
    p.snapshot(T1, &as_refs(&files), Some(1));
    let out = p.verify(&["--check-handles", "--json"], false);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let report = json(&out);
    assert_schema_valid(&report);
    assert_eq!(check(&report, 0, "handles")["result"], "pass");
    let rotation = check(&report, 0, "rotation");
    assert_eq!(rotation["result"], "warn");
    assert!(
        rotation["detail"][0]
            .as_str()
            .unwrap()
            .starts_with("local:agents/kevin/openai#api_key overdue"),
        "{rotation:#}"
    );
    let h = &report["snapshots"][0]["handles"][0];
    assert_eq!(h["version_at_snapshot"], 1);
    assert_eq!(h["version"], 1);
    assert_eq!(h["rotated_since"], false);
    assert_eq!(h["rotation"], "overdue");
    let human = text(&p.verify(&["--check-handles"], false));
    assert!(human.contains("overdue (max 0)"), "{human}");
    assert!(!human.contains(&OPENAI[8..]));
}

#[test]
fn all_verifies_every_snapshot_and_names_the_bad_one() {
    let p = project(true, "");
    let files = clean_files();
    let good = [
        p.snapshot(T1, &as_refs(&files), Some(1)),
        p.snapshot(T3, &as_refs(&files), Some(1)),
    ];
    let bad = p.snapshot(T2, &as_refs(&files), Some(1));
    let path = p.archive(&bad);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = p.verify(&["--all", "--json"], true);
    assert_eq!(code(&out), 5, "{}", text(&out));
    let report = json(&out);
    let codes: Vec<(String, u64)> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["exit_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (good[0].id.clone(), 0),
            (bad.id.clone(), 5),
            (good[1].id.clone(), 0)
        ]
    );
    // Naming snapshots verifies just those.
    let out = p.verify(&[&good[0].id, &good[1].id], true);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn a_wrong_identity_is_an_integrity_failure() {
    let p = project(true, "");
    let files = clean_files();
    p.snapshot(T1, &as_refs(&files), Some(1));
    let other = age::x25519::Identity::generate();
    let key = p.path().join("other.key");
    std::fs::write(&key, format!("{}\n", other.to_string().expose_secret())).unwrap();
    let out = p
        .cmd()
        .args(["verify", "--identity"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(text(&out).contains("cannot be decrypted"), "{}", text(&out));
}

#[test]
fn a_deleted_secret_fails_check_handles_with_6_naming_it() {
    let bao = common::OpenBao::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": {{ "vault": {{ "kind": "vault", "address": "{}", "timeout_s": 5 }} }},
  "secrets": [ {{ "file": "config.json", "json": "/api_key", "handle": "vault:agents/{{agent}}/openai#api_key" }},
               {{ "file": "config.json", "json": "/gh", "handle": "vault:agents/{{agent}}/github#token" }} ] }}"#,
        bao.addr
    );
    std::fs::write(dir.path().join("agentbak.json"), manifest).unwrap();
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/openai",
        &format!("api_key={OPENAI}"),
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/github",
        &format!("token={GITHUB}"),
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/github",
        &format!("token={GITHUB}x"),
    ]);
    let repo = Repository::open_or_create(&dir.path().join("backups")).unwrap();
    let config = format!(
        "{{\"api_key\": \"{}\", \"gh\": \"{}\"}}\n",
        Handle::parse("vault:agents/kevin/openai#api_key")
            .unwrap()
            .placeholder(),
        Handle::parse("vault:agents/kevin/github#token")
            .unwrap()
            .placeholder()
    );
    let s = write_two_handle_snapshot(&repo, config.as_bytes());
    bao.cli(&["kv", "metadata", "delete", "secret/agents/kevin/openai"]);
    let run = |args: &[&str]| {
        Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(dir.path())
            .env_remove("AGENTBAK_MANIFEST")
            .env("VAULT_TOKEN", &bao.token)
            .arg("verify")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--check-handles", "--json"]);
    assert_eq!(code(&out), 6, "{}", text(&out));
    let report = json(&out);
    assert_schema_valid(&report);
    assert_eq!(report["snapshots"][0]["id"], s.id.as_str());
    let handles = check(&report, 0, "handles");
    assert_eq!(handles["result"], "fail");
    assert!(
        handles["detail"][0]
            .as_str()
            .unwrap()
            .starts_with("vault:agents/kevin/openai#api_key missing"),
        "{handles:#}"
    );
    let rows = report["snapshots"][0]["handles"].as_array().unwrap();
    let github = rows
        .iter()
        .find(|h| h["handle"] == "vault:agents/kevin/github#token")
        .unwrap();
    assert_eq!(github["status"], "resolved");
    assert_eq!(github["version_at_snapshot"], 1);
    assert_eq!(github["version"], 2);
    assert_eq!(github["rotated_since"], true);
    let human = run(&["--check-handles", "--against-store"]);
    assert_eq!(code(&human), 6, "{}", text(&human));
    let shown = text(&human);
    assert!(
        shown.contains("vault:agents/kevin/openai#api_key"),
        "{shown}"
    );
    for o in [&out, &human] {
        assert!(!text(o).contains(&GITHUB[8..]), "{}", text(o));
        assert!(!text(o).contains(&OPENAI[8..]), "{}", text(o));
    }
}

/// A snapshot whose `config.json` holds two vault placeholders recorded at version 1.
fn write_two_handle_snapshot(repo: &Repository, config: &[u8]) -> Sidecar {
    let created_at: DateTime<Utc> = T1.parse().unwrap();
    let id = SnapshotId::new(created_at);
    let lock = repo.lock(None, "test").unwrap();
    let mut pending = repo.begin(&lock, &id, false).unwrap();
    let archive = pending.archive_name().to_string();
    let options = WriterOptions {
        threads: 0,
        ..WriterOptions::default()
    };
    let mut writer = ArchiveWriter::new(pending.file(), &options, None).unwrap();
    let meta = EntryMeta {
        mode: 0o600,
        mtime: created_at.timestamp(),
    };
    writer
        .append_file("config.json", meta, config.len() as u64, config)
        .unwrap();
    let location = |pointer: &str, handle: &str| SecretLocation {
        file: "state/config.json".into(),
        locator: Some(Locator::Json(pointer.into())),
        handle: Handle::parse(handle).unwrap(),
        store_version: Some(1),
        ephemeral: false,
        context: serde_json::json!({}),
    };
    let secrets = vec![
        location("/api_key", "vault:agents/kevin/openai#api_key"),
        location("/gh", "vault:agents/kevin/github#token"),
    ];
    let info = SnapshotInfo {
        agent: "kevin".into(),
        snapshot_id: id.to_string(),
        created_at,
    };
    let written = writer.finish(info, secrets).unwrap();
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        id: id.to_string(),
        agent: "kevin".into(),
        host: host_name(),
        created_at,
        tags: vec![],
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

/// Issue 19 ("Never flag itself"): right after a clean `agentbak snapshot`, `verify` exited 4
/// on `agentbak/index.json`, whose locators hold the regex init wrote
/// (`\bGITHUB_TOKEN=([A-Za-z0-9…]+)`) and whose handles a manifest rule may match; `scan` of
/// the manifest and the repository flagged them too. Real binary, real pipeline.
#[test]
fn verify_and_scan_never_flag_agentbaks_own_index_manifest_or_repository() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The regex is the one init writes for `GITHUB_TOKEN=…` (src/ops/init/discover/text.rs);
    // the custom rule matches the handle's text, which the index and the manifest hold.
    let manifest = r#"{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": { "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" } },
  "secrets": [ { "file": ".env", "regex": "\\bGITHUB_TOKEN=([A-Za-z0-9\\-._~+/]+)", "handle": "local:agents/kevin/github#token" } ],
  "detect": { "rules": [ { "id": "kevin-handle", "regex": "agents/kevin/[a-z]+#token" } ] } }"#;
    std::fs::write(root.join("agentbak.json"), manifest).unwrap();
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::write(
        root.join("state/.env"),
        format!("GITHUB_TOKEN={GITHUB}\nMODEL=gpt\n"),
    )
    .unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut c = Command::cargo_bin("agentbak").unwrap();
        c.current_dir(root)
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("RUST_LOG")
            .args(args);
        if let Some(input) = stdin {
            c.write_stdin(input);
        }
        c.output().unwrap()
    };
    let out = run(
        &["secrets", "set", "local:agents/kevin/github#token"],
        Some(GITHUB),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["snapshot"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = run(&["verify", "--json"], None);
    assert_no_value(&out, GITHUB);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["snapshots"][0]["findings"].as_array().unwrap();
    assert!(findings.is_empty(), "{findings:#?}");

    // The manifest and the repository (sidecar, archive): agentbak's own files.
    let out = run(
        &["scan", "agentbak.json", "backups", "--format", "json"],
        None,
    );
    assert_no_value(&out, GITHUB);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A known value there is still a finding: agentbak's own files are searched for values.
    std::fs::write(root.join("backups/stray.txt"), format!("{GITHUB}\n")).unwrap();
    let out = run(
        &["scan", "agentbak.json", "backups", "--format", "json"],
        None,
    );
    assert_no_value(&out, GITHUB);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["known-value"]);
}

fn assert_no_value(out: &Output, value: &str) {
    assert!(!text(out).contains(value), "value leaked:\n{}", text(out));
}
