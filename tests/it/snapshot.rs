//! The snapshot pipeline end to end: a real OpenBao, the stock `zstd`, `tar` and `age` tools.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

const OPENAI: &str = "sk-proj-Abc123Def456Ghi789Jkl012Mno345Pqr678Stu901";
const GITHUB: &str = "ghp_abcdefghijklmnopqrstuvwxyzABCDEF0123";
const ANTHROPIC: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
const SLACK: &str = "xoxb-not-a-real-token-but-long-enough-7f3a9";
const SESSION: &str = "sess_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBsb3JlbWlwc3VtZG9sb3JzaXRhbWV0Y29uc2VjdGV0dXIAAAAAAAAAAA==\n-----END OPENSSH PRIVATE KEY-----\n";

fn values() -> [&'static str; 6] {
    [OPENAI, GITHUB, ANTHROPIC, SLACK, SESSION, PEM]
}

struct Agent {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Agent {
    fn manifest(&self) -> PathBuf {
        self.root.join("agentbak.json")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn repo(&self) -> PathBuf {
        self.root.join("backups")
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.state().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn agentbak(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_agentbak"))
            .arg("-m")
            .arg(self.manifest())
            .args(args)
            .env_remove("AGENTBAK_MANIFEST")
            .env("SESSION_TOKEN", SESSION)
            .output()
            .unwrap()
    }
    /// Every snapshot as one archive stock tools open (`agentbak export`), oldest first.
    fn archives(&self, identity: Option<&Path>) -> Vec<PathBuf> {
        crate::common::export_all(&self.manifest(), &self.root.join("exports"), identity)
    }
}

/// An agent whose state holds a secret in every supported place, with a vault store.
fn agent(vault_addr: &str, encryption: Option<&str>) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let a = Agent { _dir: dir, root };
    a.write(
        "config/credentials.json",
        &format!(
            "{{\n  \"openai\": {{ \"api_key\": \"{OPENAI}\" }},\n  \"model\": \"gpt-5\"\n}}\n"
        ),
    );
    a.write(
        ".env",
        &format!("GITHUB_TOKEN={GITHUB}\nexport SESSION_TOKEN=\"{SESSION}\"\n"),
    );
    a.write(
        "config.yaml",
        &format!("providers:\n  - name: anthropic\n    key: {ANTHROPIC}  # main\n"),
    );
    a.write(
        "settings.toml",
        &format!("[slack]\nbot_token = '{SLACK}'\n"),
    );
    a.write("keys/identity.pem", PEM);
    a.write(
        "logs/agent.log",
        &format!("GET /v1 Authorization: Bearer {SESSION}\nok\n"),
    );
    a.write(
        "memory/notes.md",
        &format!("remember: the key was {OPENAI}\n"),
    );
    let encryption = encryption
        .map(|r| format!(r#""encryption": {{ "recipients": ["{r}"] }},"#))
        .unwrap_or_default();
    let manifest = format!(
        r#"{{
  "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups", {encryption}
  "stores": {{
    "vault": {{ "kind": "vault", "address": "{vault_addr}", "mount": "secret" }},
    "env": {{ "kind": "env" }}
  }},
  "secrets": [
    {{ "file": "config/credentials.json", "json": "/openai/api_key", "handle": "vault:agents/{{agent}}/openai#api_key" }},
    {{ "file": ".env", "env": "GITHUB_TOKEN", "handle": "vault:agents/kevin/github#token" }},
    {{ "file": ".env", "env": "SESSION_TOKEN", "handle": "env:SESSION_TOKEN", "ephemeral": true }},
    {{ "file": "config.yaml", "yaml": "/providers/0/key", "handle": "vault:agents/kevin/anthropic#key" }},
    {{ "file": "settings.toml", "toml": "/slack/bot_token", "handle": "vault:agents/kevin/slack#bot_token" }},
    {{ "file": "keys/identity.pem", "whole_file": true, "handle": "vault:agents/kevin/identity#private_key" }},
    {{ "file": "logs/*.log", "regex": "Authorization: Bearer ([A-Za-z0-9._~+/-]+)", "handle": "env:SESSION_TOKEN" }}
  ]
}}"#
    );
    std::fs::write(a.manifest(), manifest).unwrap();
    a
}

/// Every form a value could leak in: raw, base64 (both alphabets), hex.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let b = value.as_bytes();
    let mut out = vec![b.to_vec()];
    out.push(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(b)
            .into_bytes(),
    );
    out.push(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(b)
            .into_bytes(),
    );
    out.push(
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    out.push(value.replace('\n', "\\n").into_bytes());
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_value(what: &str, bytes: &[u8]) {
    for v in values() {
        for f in forms(v) {
            // The first line of the PEM ("-----BEGIN ...") is not secret by itself.
            let f = if v == PEM { f[36..].to_vec() } else { f };
            assert!(!contains(bytes, &f), "{what} holds a secret value");
        }
    }
}

fn stock_extract(archive: &Path, identity: Option<&Path>) -> Vec<u8> {
    let cmd = match identity {
        Some(id) => format!(
            "age -d -i '{}' '{}' | zstd -dc | tar -xO",
            id.display(),
            archive.display()
        ),
        None => format!("zstd -dc '{}' | tar -xO", archive.display()),
    };
    let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn raw_tar(archive: &Path, identity: Option<&Path>) -> Vec<u8> {
    let cmd = match identity {
        Some(id) => format!(
            "age -d -i '{}' '{}' | zstd -dc",
            id.display(),
            archive.display()
        ),
        None => format!("zstd -dc '{}'", archive.display()),
    };
    Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap()
        .stdout
}

fn seed_vault(bao: &common::OpenBao) {
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
        "secret/agents/kevin/anthropic",
        &format!("key={ANTHROPIC}"),
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/slack",
        &format!("bot_token={SLACK}"),
    ]);
    bao.cli_with_stdin(
        &["kv", "put", "secret/agents/kevin/identity", "private_key=-"],
        Some(PEM.as_bytes()),
    );
}

fn with_token(a: &Agent, bao: &common::OpenBao, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentbak"))
        .arg("-m")
        .arg(a.manifest())
        .args(args)
        .env_remove("AGENTBAK_MANIFEST")
        .env("VAULT_TOKEN", &bao.token)
        .env("SESSION_TOKEN", SESSION)
        .output()
        .unwrap()
}

#[test]
fn archive_holds_handles_and_no_value_in_any_encoding() {
    let bao = common::OpenBao::start();
    seed_vault(&bao);
    let a = agent(&bao.addr, None);
    let out = with_token(&a, &bao, &["snapshot"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let id = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(id.trim().len() > 20);
    assert_no_value("stdout and stderr", &[out.stdout, out.stderr].concat());

    let archives = a.archives(None);
    assert_eq!(archives.len(), 1);
    let files = stock_extract(&archives[0], None);
    let text = String::from_utf8_lossy(&files);
    for p in [
        "+agentbak:vault:agents/kevin/openai:api_key+",
        "+agentbak:vault:agents/kevin/github:token+",
        "+agentbak:vault:agents/kevin/anthropic:key+",
        "+agentbak:vault:agents/kevin/slack:bot_token+",
        "+agentbak:vault:agents/kevin/identity:private_key+",
        "+agentbak:env:SESSION_TOKEN+",
    ] {
        assert!(text.contains(p), "missing placeholder {p}");
    }
    // The stray copy in a note became the same placeholder.
    assert!(text.contains("remember: the key was +agentbak:vault:agents/kevin/openai:api_key+"));
    // Formatting around the values is kept byte for byte.
    assert!(text.contains("    key: +agentbak:vault:agents/kevin/anthropic:key+  # main\n"));
    assert_no_value("the archive's files", &files);
    assert_no_value("the raw tar stream", &raw_tar(&archives[0], None));
    for (name, bytes) in crate::common::repository_plaintext(&a.repo(), None) {
        assert_no_value(&name, &bytes);
    }

    // Again at every log level and in every log format (each run is a snapshot of its own).
    let runs = crate::restore_fixture::three_ways(
        || {
            let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_agentbak"));
            c.arg("-m")
                .arg(a.manifest())
                .env_remove("AGENTBAK_MANIFEST")
                .env_remove("RUST_LOG")
                .env("VAULT_TOKEN", &bao.token)
                .env("SESSION_TOKEN", SESSION);
            c
        },
        &["snapshot"],
    );
    for run in &runs {
        assert_eq!(run.code(), Some(0), "{}", run.text());
    }
    let mut planted = values().to_vec();
    planted.push(&bao.token);
    crate::restore_fixture::assert_no_value_in(&runs, &planted);
    assert_eq!(a.archives(None).len(), 4);
}

#[test]
fn encrypted_archive_opens_with_stock_age() {
    let bao = common::OpenBao::start();
    seed_vault(&bao);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("backup.key");
    let keygen = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let recipient = String::from_utf8_lossy(&keygen.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_string();
    let a = agent(&bao.addr, Some(&recipient));
    let out = with_token(&a, &bao, &["snapshot"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archives = a.archives(Some(&key));
    assert!(archives[0].to_string_lossy().ends_with(".tar.zst.age"));
    let files = stock_extract(&archives[0], Some(&key));
    for (name, bytes) in crate::common::repository_plaintext(&a.repo(), Some(&key)) {
        assert_no_value(&name, &bytes);
    }
    // Without the identity, the packs are ciphertext: no placeholder shows.
    for (name, bytes) in crate::common::repository_plaintext(&a.repo(), None) {
        if name.contains("/packs/") {
            assert!(!contains(&bytes, b"+agentbak:"), "{name} is not encrypted");
        }
    }
    assert!(
        String::from_utf8_lossy(&files).contains("+agentbak:vault:agents/kevin/openai:api_key+")
    );
    assert_no_value("the decrypted archive", &files);
}

impl Agent {
    /// Sets `detect.on_unknown`.
    fn on_unknown(&self, policy: &str) {
        let text = std::fs::read_to_string(self.manifest()).unwrap();
        let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
        m["detect"]["on_unknown"] = serde_json::json!(policy);
        std::fs::write(self.manifest(), m.to_string()).unwrap();
    }
}

#[test]
fn undeclared_tokens_and_encoded_copies_refuse_the_snapshot_under_refuse() {
    let bao = common::OpenBao::start();
    seed_vault(&bao);
    let a = agent(&bao.addr, None);
    a.on_unknown("refuse");
    let b64 = base64::engine::general_purpose::STANDARD.encode(GITHUB);
    a.write(
        "memory/pasted.md",
        "slack: xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx\n",
    );
    a.write("cache/blob.txt", &format!("blob={b64}\n"));
    let out = with_token(&a, &bao, &["snapshot"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("memory/pasted.md"), "{stderr}");
    assert!(stderr.contains("cache/blob.txt"), "{stderr}");
    assert!(
        stderr.contains("vault:agents/kevin/github#token"),
        "{stderr}"
    );
    assert!(
        a.archives(None).is_empty(),
        "nothing reaches the repository"
    );
    for dir in ["packs", "index"] {
        let listed = std::fs::read_dir(a.repo().join(dir)).map_or(0, |d| d.count());
        assert_eq!(listed, 0, "nothing under {dir}/");
    }
    let tmp = a.repo().join("tmp");
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "no temporary file is left"
    );
    assert_no_value("the refusal report", &[out.stdout, out.stderr].concat());
    assert!(!stderr.contains("AbCdEfGhIjKlMnOpQrStUvWx"));
}

/// The default: what no rule declares is captured into the store, the snapshot happens (exit
/// 3), no form of a value is in the repository, and a restore gives every file back.
#[test]
fn undeclared_tokens_and_encoded_copies_are_captured_and_restore_byte_identical() {
    let bao = common::OpenBao::start();
    seed_vault(&bao);
    let a = agent(&bao.addr, None);
    let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    let b64 = base64::engine::general_purpose::STANDARD.encode(GITHUB);
    a.write(
        "memory/pasted.md",
        &format!("slack: {slack}\nagain: {slack}\n"),
    );
    a.write("cache/blob.txt", &format!("blob={b64}\n"));
    let out = with_token(&a, &bao, &["snapshot"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "captured 2 new secrets that no rule declares, in cache/blob.txt, memory/pasted.md"
        ),
        "{stderr}"
    );
    assert_eq!(a.archives(None).len(), 1);
    let files = stock_extract(&a.archives(None)[0], None);
    assert_no_value("the archive", &files);
    for needle in [slack.as_bytes(), b64.as_bytes()] {
        assert!(!contains(&files, needle));
        for (name, bytes) in crate::common::repository_plaintext(&a.repo(), None) {
            assert!(!contains(&bytes, needle), "{name}");
        }
    }
    assert_no_value(
        "the report",
        &[out.stdout.clone(), out.stderr.clone()].concat(),
    );
    assert!(!contains(
        &[out.stdout, out.stderr].concat(),
        slack.as_bytes()
    ));
    let pasted = String::from_utf8_lossy(&files).to_string();
    assert!(
        pasted.contains("slack: +agentbak:vault:agents/kevin/captured:slack-bot-token-"),
        "{pasted}"
    );

    // The next run knows them: nothing new, exit 0, the same handles.
    let out = with_token(&a, &bao, &["snapshot"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = String::from_utf8_lossy(&stock_extract(&a.archives(None)[1], None)).to_string();
    let handles = |text: &str| -> Vec<String> {
        text.match_indices("+agentbak:vault:agents/kevin/captured:")
            .map(|(i, _)| text[i..].split('+').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(handles(&pasted), handles(&second));

    let target = a.root.join("restored");
    let target_arg = target.to_string_lossy().to_string();
    let out = with_token(
        &a,
        &bao,
        &["restore", "latest", "--target", &target_arg, "--rehydrate"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree(&a.state()),
        tree(&target),
        "the restore equals the state"
    );
    let out = with_token(&a, &bao, &["verify", "latest"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_value_the_store_lacks_warns_and_push_secrets_stores_it() {
    let bao = common::OpenBao::start();
    seed_vault(&bao);
    // Rotated twice in the vault and the first version deleted: the state's value is in no
    // version the store keeps (a kept older version would be a rotation in progress).
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/github",
        "token=ghp_rotated_in_vault_but_not_in_state_01",
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/github",
        "token=ghp_rotated_in_vault_but_not_in_state_02",
    ]);
    bao.cli(&["kv", "delete", "-versions=1", "secret/agents/kevin/github"]);
    let a = agent(&bao.addr, None);
    let out = with_token(&a, &bao, &["snapshot"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "vault:agents/kevin/github#token: the value in the state is not in its store"
        )
    );
    assert_eq!(a.archives(None).len(), 1, "the snapshot is still written");

    let out = with_token(&a, &bao, &["snapshot", "--push-secrets"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = bao.cli(&["kv", "get", "-field=token", "secret/agents/kevin/github"]);
    assert_eq!(stored.trim(), GITHUB);
}

#[test]
fn unreachable_vault_is_a_degraded_snapshot() {
    let a = agent(&format!("http://127.0.0.1:{}", common::free_port()), None);
    let out = Command::new(env!("CARGO_BIN_EXE_agentbak"))
        .arg("-m")
        .arg(a.manifest())
        .args(["--json", "snapshot"])
        .env("VAULT_TOKEN", "some-token")
        .env("SESSION_TOKEN", SESSION)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["degraded"][0], "store-unreachable:vault");
    let sidecar = std::fs::read_to_string(
        std::fs::read_dir(a.repo().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap(),
    )
    .unwrap();
    assert!(sidecar.contains("store-unreachable:vault"));
    assert_no_value("the JSON report", &out.stdout);
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let a = agent(&format!("http://127.0.0.1:{}", common::free_port()), None);
    let out = a.agentbak(&["snapshot", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("would redact config/credentials.json (json /openai/api_key)"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing written"));
    assert!(!a.repo().exists(), "a dry run creates no repository");
    assert_no_value("the dry-run report", &[out.stdout, out.stderr].concat());
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn snapshot_then_restore_is_byte_identical_and_rotation_comes_back_fresh() {
    let bao = common::OpenBao::start();
    seed_vault(&bao);
    let a = agent(&bao.addr, None);
    let out = with_token(&a, &bao, &["snapshot"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let target = a.root.join("restored");
    let target_arg = target.to_string_lossy().to_string();
    let out = with_token(
        &a,
        &bao,
        &["restore", "latest", "--target", &target_arg, "--rehydrate"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree(&a.state()),
        tree(&target),
        "the restore equals the original state"
    );
    assert_no_value("restore output", &[out.stdout, out.stderr].concat());

    // Rotate the OpenAI key: the new value comes back at the declared place and the stray copy.
    let rotated = "sk-proj-Rotated000Rotated111Rotated222Rotated333Rota";
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/openai",
        &format!("api_key={rotated}"),
    ]);
    let again = a.root.join("restored-rotated");
    let again_arg = again.to_string_lossy().to_string();
    let out = with_token(
        &a,
        &bao,
        &["restore", "latest", "--target", &again_arg, "--rehydrate"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = tree(&again);
    let creds = String::from_utf8(files["config/credentials.json"].clone()).unwrap();
    assert!(creds.contains(rotated), "{creds}");
    let notes = String::from_utf8(files["memory/notes.md"].clone()).unwrap();
    assert!(notes.contains(rotated), "{notes}");
    let all: Vec<u8> = files.values().flatten().copied().collect();
    assert!(!contains(&all, OPENAI.as_bytes()), "the old key is nowhere");
}
