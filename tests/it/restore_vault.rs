//! `agentbak restore --rehydrate` against a real OpenBao dev server: an unrotated round trip
//! is byte-identical, a rotated secret comes back rotated everywhere, a deleted one stops the
//! restore (exit 6, nothing written), a vault that is down is served from a fresh cache
//! (exit 3) or stops the restore without one (exit 6), and an archive's identity can itself
//! come from the vault. No planted value appears in any output.

use crate::common;
use std::collections::BTreeMap;
use std::fs;

use crate::restore_fixture::{Project, all_bytes, all_output, tree};
use age::secrecy::ExposeSecret;
use agentbak::archive::Recipients;

const OPENAI: &str = "sk-proj-VaultPlantedOpenAi1234567890abcdefXYZ";
const GITHUB: &str = "ghp_VaultPlantedGithubToken0123456789abcdef";
const ROTATED: &str = "sk-proj-VaultRotatedOpenAi9876543210zyxwvuT";

fn manifest(cache: bool) -> String {
    let cache = if cache {
        r#", "cache": { "path": "./cache/vault.cache.age", "ttl": "24h" }"#
    } else {
        ""
    };
    format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": {{ "vault": {{ "kind": "vault", "timeout_s": 2 {cache} }} }},
  "secrets": [
    {{ "file": "config/credentials.json", "json": "/openai/api_key", "handle": "vault:agents/{{agent}}/openai#api_key" }},
    {{ "file": ".env", "env": "GITHUB_TOKEN", "handle": "vault:agents/{{agent}}/github#token" }}
  ] }}"#
    )
}

struct Setup {
    bao: common::OpenBao,
    p: Project,
    id: String,
}

fn setup(cache: bool) -> Setup {
    let bao = common::OpenBao::start();
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
    let p = Project::new(&manifest(cache));
    p.file(
        "config/credentials.json",
        0o644,
        format!("{{\"openai\": {{\"api_key\": \"{OPENAI}\"}}}}\n").as_bytes(),
    );
    p.file(".env", 0o600, format!("GITHUB_TOKEN={GITHUB}\n").as_bytes());
    p.file(
        "memory/log.md",
        0o644,
        format!("used {OPENAI} today\n").as_bytes(),
    );
    let versions: BTreeMap<String, u64> = [
        ("vault:agents/kevin/openai#api_key".to_string(), 1),
        ("vault:agents/kevin/github#token".to_string(), 1),
    ]
    .into();
    let id = p.snapshot("20260101T000000Z-00000001", &versions);
    Setup { bao, p, id }
}

fn restore(s: &Setup, target: &str, extra: &[&str]) -> std::process::Output {
    s.p.agentbak()
        .env("VAULT_ADDR", &s.bao.addr)
        .env("VAULT_TOKEN", &s.bao.token)
        .args([
            "--json",
            "restore",
            &s.id,
            "--target",
            target,
            "--rehydrate",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_clean_output(out: &std::process::Output) {
    let text = all_output(out);
    for v in [OPENAI, GITHUB, ROTATED] {
        assert!(!text.contains(v), "a value leaked:\n{text}");
    }
}

#[test]
fn round_trip_is_identical_and_a_rotation_comes_back_everywhere() {
    let s = setup(false);
    let out = restore(&s, "same", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean_output(&out);
    let (original, back) = (tree(&s.p.state()), tree(&s.p.path().join("same")));
    assert_eq!(original.len(), back.len());
    for (rel, seen) in &original {
        assert_eq!(back[rel].content, seen.content, "{rel}");
    }
    assert_eq!(back["config/credentials.json"].mode, 0o600);

    s.bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/openai",
        &format!("api_key={ROTATED}"),
    ]);
    let out = restore(&s, "rotated", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean_output(&out);
    let bytes = String::from_utf8_lossy(&all_bytes(&s.p.path().join("rotated"))).into_owned();
    assert_eq!(
        bytes.matches(ROTATED).count(),
        2,
        "in the JSON file and the stray copy"
    );
    assert!(!bytes.contains(OPENAI), "the old value is gone everywhere");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = &report["handles"][1];
    assert_eq!(h["handle"], "vault:agents/kevin/openai#api_key");
    assert_eq!(
        (
            h["snapshot_version"].as_u64(),
            h["restored_version"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(h["rotated"], true);
}

#[test]
fn a_deleted_secret_stops_the_restore_with_exit_6() {
    let s = setup(false);
    s.bao
        .cli(&["kv", "metadata", "delete", "secret/agents/kevin/github"]);
    let out = restore(&s, "restored", &[]);
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    assert_clean_output(&out);
    assert!(!s.p.path().join("restored").exists());
    assert!(s.p.leftovers().is_empty(), "{:?}", s.p.leftovers());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["handles"][0]["status"], "missing");
    assert_eq!(report["handles"][1]["status"], "resolved");
}

#[test]
fn a_vault_that_is_down_is_served_from_a_fresh_cache_else_exit_6() {
    let mut s = setup(true);
    let out = restore(&s, "first", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    s.bao.stop();
    let out = restore(&s, "cached", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert_clean_output(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["handles"][0]["status"], "from_cache");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cache"));
    let creds = fs::read_to_string(s.p.path().join("cached/config/credentials.json")).unwrap();
    assert!(creds.contains(OPENAI));

    fs::write(s.p.path().join("agentbak.json"), manifest(false)).unwrap();
    let out = restore(&s, "uncached", &[]);
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    assert!(!s.p.path().join("uncached").exists());
    assert!(s.p.leftovers().is_empty(), "{:?}", s.p.leftovers());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["handles"][0]["status"], "unreachable");
}

#[test]
fn the_identity_of_an_encrypted_archive_can_come_from_the_vault() {
    let s = setup(false);
    let key = age::x25519::Identity::generate();
    let recipients = Recipients::parse(&[key.to_public().to_string()]).unwrap();
    let id = s.p.snapshot_with(
        "20260102T000000Z-00000002",
        &BTreeMap::new(),
        Some(&recipients),
    );
    let secret_key = key.to_string().expose_secret().to_string();
    s.bao.cli_with_stdin(
        &["kv", "put", "secret/agents/kevin/backup-key", "identity=-"],
        Some(secret_key.as_bytes()),
    );
    let run = |identity: Option<&str>, target: &str| {
        let mut c = s.p.agentbak();
        c.env("VAULT_ADDR", &s.bao.addr)
            .env("VAULT_TOKEN", &s.bao.token)
            .args(["restore", &id, "--target", target, "--rehydrate"]);
        if let Some(i) = identity {
            c.env("AGENTBAK_IDENTITY", i);
        }
        c.output().unwrap()
    };
    let out = run(None, "no-key");
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(!s.p.path().join("no-key").exists());
    let out = run(Some("vault:agents/kevin/backup-key#identity"), "restored");
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(!all_output(&out).contains(&secret_key[20..]));
    let creds = fs::read_to_string(s.p.path().join("restored/config/credentials.json")).unwrap();
    assert!(creds.contains(OPENAI));
    let out = run(Some("vault:agents/kevin/nokey#identity"), "missing-key");
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
}
