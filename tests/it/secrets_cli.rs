//! `agentbak secrets` end to end through the real binary: the local store, the env store and
//! a real OpenBao. Every test that plants a value asserts it appears in no output unless
//! `--reveal` asked for it.

use crate::common;
use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

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
    { "file": ".env", "env": "OPENAI_KEY", "handle": "local:agents/{agent}/openai#api_key" },
    { "file": "keys/id.pem", "whole_file": true, "handle": "local:agents/{agent}/identity#pem" },
    { "file": ".env", "env": "SESSION", "handle": "env:SESSION_TOKEN", "ephemeral": true }
  ],
  "rotation": { "max_age_days": MAX_AGE }
}"#;

const OPENAI: &str = "sk-proj-Planted0penAiValue1234567890abcdefXYZ";
const PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIplantedPemBody0123456789\n-----END PRIVATE KEY-----\n";

fn project(max_age: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agentbak.json"),
        MANIFEST.replace("MAX_AGE", &max_age.to_string()),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("state/keys")).unwrap();
    dir
}

fn agentbak(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("agentbak").unwrap();
    c.current_dir(dir)
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("SESSION_TOKEN")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("RUST_LOG");
    c
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn set(dir: &Path, handle: &str, stdin: &[u8], extra: &[&str]) -> Output {
    agentbak(dir)
        .args(["secrets", "set", handle])
        .args(extra)
        .write_stdin(stdin.to_vec())
        .output()
        .unwrap()
}

#[test]
fn set_get_and_reveal_keep_bytes_and_never_leak() {
    let d = project(30);
    let out = set(
        d.path(),
        "local:agents/kevin/openai#api_key",
        format!("{OPENAI}\n").as_bytes(),
        &["--trim"],
    );
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 1"));
    assert!(!all_output(&out).contains(OPENAI));

    let got = agentbak(d.path())
        .args(["secrets", "get", "local:agents/{agent}/openai#api_key"])
        .output()
        .unwrap();
    assert!(got.status.success());
    let shown = all_output(&got);
    assert!(
        !shown.contains(OPENAI) && !shown.contains("Planted"),
        "{shown}"
    );
    assert!(
        shown.contains("version: 1") && shown.contains("hidden, 45 bytes"),
        "{shown}"
    );

    let revealed = agentbak(d.path())
        .args([
            "secrets",
            "get",
            "--reveal",
            "local:agents/kevin/openai#api_key",
        ])
        .output()
        .unwrap();
    assert_eq!(revealed.stdout, OPENAI.as_bytes(), "trimmed, byte for byte");

    // Without --trim every byte is kept, newline and non-UTF-8 bytes included.
    let raw = [0u8, 255, b'\n', b'x', b'\n'];
    assert!(set(d.path(), "local:bin#v", &raw, &[]).status.success());
    let revealed = agentbak(d.path())
        .args(["secrets", "get", "--reveal", "local:bin#v"])
        .output()
        .unwrap();
    assert_eq!(revealed.stdout, raw);

    let json = agentbak(d.path())
        .args([
            "--json",
            "secrets",
            "get",
            "local:agents/kevin/openai#api_key",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["status"]["status"], "resolved");
    assert_eq!(doc["status"]["version"], 1);
    assert!(doc.get("value").is_none());
    assert!(!all_output(&json).contains(OPENAI));

    // Every command that reads the value, at every log level and in every log format
    // (`status` exits 6: the manifest's other handles are not stored).
    let mut runs = Vec::new();
    for (args, code) in [
        (
            &["secrets", "get", "local:agents/kevin/openai#api_key"][..],
            0,
        ),
        (&["secrets", "status"], 6),
        (&["secrets", "ls"], 0),
    ] {
        for run in crate::restore_fixture::three_ways(|| agentbak(d.path()), args) {
            assert_eq!(run.code(), Some(code), "{}", run.text());
            runs.push(run);
        }
    }
    for run in crate::restore_fixture::three_ways(
        || {
            let mut c = agentbak(d.path());
            c.write_stdin(format!("{OPENAI}\n"));
            c
        },
        &[
            "secrets",
            "set",
            "--trim",
            "local:agents/kevin/openai#api_key",
        ],
    ) {
        assert_eq!(run.code(), Some(0), "{}", run.text());
        runs.push(run);
    }
    crate::restore_fixture::assert_no_value_in(&runs, &[OPENAI]);
}

#[test]
fn set_refuses_argv_values_pinned_env_and_empty_input() {
    let d = project(30);
    // A value on the command line is a usage error: clap has no place for it.
    let out = agentbak(d.path())
        .args(["secrets", "set", "local:a#k", "sk-on-argv-value"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for (handle, input) in [
        ("local:a?version=2#k", "v"),
        ("env:SESSION_TOKEN", "v"),
        ("local:a#k", ""),
        ("nostore:a#k", "v"),
    ] {
        let out = set(d.path(), handle, input.as_bytes(), &[]);
        assert_eq!(out.status.code(), Some(2), "{handle}: {}", all_output(&out));
    }
}

#[test]
fn missing_handles_exit_6_and_status_reports_rotation() {
    let d = project(30);
    let out = agentbak(d.path())
        .args(["secrets", "get", "local:agents/kevin/openai#api_key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));

    set(
        d.path(),
        "local:agents/kevin/openai#api_key",
        OPENAI.as_bytes(),
        &[],
    );
    set(
        d.path(),
        "local:agents/kevin/identity#pem",
        PEM.as_bytes(),
        &[],
    );
    // SESSION_TOKEN is unset: the env handle is missing, so status exits 6.
    let out = agentbak(d.path())
        .args(["--json", "secrets", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_handle = |h: &str| {
        doc.as_array()
            .unwrap()
            .iter()
            .find(|e| e["handle"] == h)
            .cloned()
            .unwrap()
    };
    // `{agent}` is filled in, as snapshot and verify show handles.
    let openai = by_handle("local:agents/kevin/openai#api_key");
    assert_eq!(openai["status"], "resolved");
    assert_eq!(openai["version"], 1);
    assert_eq!(openai["rotation"], "ok");
    assert_eq!(openai["max_age_days"], 30);
    assert_eq!(by_handle("env:SESSION_TOKEN")["status"], "missing");
    assert!(!all_output(&out).contains(OPENAI) && !all_output(&out).contains("MIIplanted"));

    // With the variable set everything resolves; human output has a row per handle.
    let out = agentbak(d.path())
        .env("SESSION_TOKEN", "session-planted-value")
        .args(["secrets", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(!all_output(&out).contains("session-planted-value"));
}

#[test]
fn overdue_rotation_is_a_warning() {
    let d = project(0);
    set(
        d.path(),
        "local:agents/kevin/openai#api_key",
        OPENAI.as_bytes(),
        &[],
    );
    set(
        d.path(),
        "local:agents/kevin/identity#pem",
        PEM.as_bytes(),
        &[],
    );
    let out = agentbak(d.path())
        .env("SESSION_TOKEN", "x")
        .args(["--json", "secrets", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rotations: Vec<&str> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rotation"].as_str().unwrap())
        .collect();
    assert_eq!(
        rotations.iter().filter(|r| **r == "overdue").count(),
        2,
        "{rotations:?}"
    );
}

#[test]
fn push_stores_what_the_state_holds_and_the_store_lacks() {
    let d = project(30);
    std::fs::write(
        d.path().join("state/.env"),
        format!("# agent env\nOPENAI_KEY=\"{OPENAI}\"\nSESSION=ephemeral-planted\n"),
    )
    .unwrap();
    std::fs::write(d.path().join("state/keys/id.pem"), PEM).unwrap();
    let out = agentbak(d.path())
        .args(["secrets", "push"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let text = all_output(&out);
    assert_eq!(text.matches("pushed").count(), 2, "{text}");
    assert!(text.contains("skipped  env:SESSION_TOKEN"), "{text}");
    assert!(
        text.contains("sk-p…YZ (45 chars)"),
        "masked preview: {text}"
    );
    for planted in [OPENAI, "MIIplanted", "ephemeral-planted"] {
        assert!(!text.contains(planted), "{planted} leaked: {text}");
    }
    let reveal = |h: &str| {
        agentbak(d.path())
            .args(["secrets", "get", "--reveal", h])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(
        reveal("local:agents/kevin/openai#api_key"),
        OPENAI.as_bytes()
    );
    assert_eq!(reveal("local:agents/kevin/identity#pem"), PEM.as_bytes());

    // Nothing new to push the second time; a rotated value in the state becomes version 2.
    let again = agentbak(d.path())
        .args(["secrets", "push"])
        .output()
        .unwrap();
    assert_eq!(all_output(&again).matches("in store").count(), 2);
    std::fs::write(d.path().join("state/keys/id.pem"), "rotated-pem").unwrap();
    let third = agentbak(d.path())
        .args(["--json", "secrets", "push"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    let pem = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["handle"] == "local:agents/kevin/identity#pem")
        .unwrap();
    assert_eq!(pem["outcome"], "pushed", "{doc:#}");
    assert_eq!(pem["version"], 2);
}

#[test]
fn ls_lists_paths_never_values() {
    let d = project(30);
    set(
        d.path(),
        "local:agents/kevin/openai#api_key",
        OPENAI.as_bytes(),
        &[],
    );
    set(
        d.path(),
        "local:agents/kevin/identity#pem",
        PEM.as_bytes(),
        &[],
    );
    let out = agentbak(d.path())
        .args(["secrets", "ls", "local"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "local:agents/kevin/identity\nlocal:agents/kevin/openai\n"
    );
    assert!(!all_output(&out).contains(OPENAI));
}

#[test]
fn vault_store_from_environment_variables_and_exit_codes() {
    let mut bao = common::OpenBao::start();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("agentbak.json"),
        r#"{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
             "stores": { "vault": { "kind": "vault", "timeout_s": 2 } },
             "secrets": [ { "file": "a.json", "json": "/k", "handle": "vault:agents/{agent}/a#k" } ] }"#,
    )
    .unwrap();
    std::fs::create_dir_all(d.path().join("state")).unwrap();
    let addr = bao.addr.clone();
    let root = bao.token.clone();
    let with_env = |token: &str| {
        let mut c = agentbak(d.path());
        c.env("VAULT_ADDR", &addr).env("VAULT_TOKEN", token);
        c
    };
    let out = with_env(&root)
        .args(["secrets", "set", "vault:agents/kevin/a#k"])
        .write_stdin("vault-planted-value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let out = with_env(&root)
        .args(["secrets", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let out = with_env(&root).args(["secrets", "ls"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "vault:agents/kevin/a\n"
    );

    let out = with_env("not-a-valid-token")
        .args(["secrets", "get", "vault:agents/kevin/a#k"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        all_output(&out)
    );

    bao.stop();
    let out = with_env(&root)
        .args(["--json", "secrets", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc[0]["status"], "unreachable");
    assert!(!all_output(&out).contains("vault-planted-value"));
}

#[test]
fn push_writes_the_fields_of_one_secret_as_one_version_and_never_rolls_back() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("agentbak.json"),
        r#"{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": { "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" } },
  "secrets": [
    { "file": ".env", "env": "DB_USER", "handle": "local:agents/{agent}/db#user" },
    { "file": ".env", "env": "DB_PASS", "handle": "local:agents/{agent}/db#pass" },
    { "file": ".env", "env": "DB_HOST_TOKEN", "handle": "local:agents/{agent}/db#host_token" }
  ] }"#,
    )
    .unwrap();
    std::fs::create_dir_all(d.path().join("state")).unwrap();
    let env = |pass: &str| {
        std::fs::write(
            d.path().join("state/.env"),
            format!("DB_USER=planted-user-0001\nDB_PASS={pass}\nDB_HOST_TOKEN=planted-host-0003\n"),
        )
        .unwrap();
    };
    let planted = [
        "planted-user-0001",
        "planted-pass-0002",
        "planted-pass-0004",
    ];
    let push = || {
        let out = agentbak(d.path())
            .args(["--json", "secrets", "push"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
        for v in planted {
            assert!(!all_output(&out).contains(v));
        }
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut rows: Vec<(String, String, u64)> = doc
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["handle"].as_str().unwrap().to_string(),
                    i["outcome"].as_str().unwrap().to_string(),
                    i["version"].as_u64().unwrap(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let row = |h: &str, o: &str, v: u64| (format!("local:agents/kevin/db#{h}"), o.to_string(), v);

    // A first import: three fields, one version.
    env("planted-pass-0002");
    assert_eq!(
        push(),
        vec![
            row("host_token", "pushed", 1),
            row("pass", "pushed", 1),
            row("user", "pushed", 1)
        ]
    );
    // The store moved on (a rotation by hand); the state still holds the older password:
    // mid-rotation, so nothing is written back over the rotation.
    set(
        d.path(),
        "local:agents/kevin/db#pass",
        b"planted-pass-0004",
        &[],
    );
    assert_eq!(
        push(),
        vec![
            row("host_token", "in_store", 2),
            row("pass", "in_store", 1),
            row("user", "in_store", 2)
        ]
    );
    let out = agentbak(d.path())
        .args(["--json", "secrets", "get", "local:agents/kevin/db#pass"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"]["version"], 2, "no version was written: {doc}");
}
