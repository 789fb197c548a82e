//! The binary's contract: manifest errors with positions (exit 2), completions, man, version.

use assert_cmd::Command;
use assert_fs::prelude::*;
use predicates::prelude::*;

fn agentbak() -> Command {
    let mut cmd = Command::cargo_bin("agentbak").unwrap();
    cmd.env_remove("AGENTBAK_MANIFEST").env_remove("RUST_LOG");
    cmd
}

const GOOD: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": { "local": { "kind": "local", "path": "/tmp/x.store.age", "identity": "/tmp/x.key" } },
  "secrets": [
    { "file": "config.json", "json": "/openai/api_key", "handle": "local:openai#api_key" }
  ]
}"#;

/// Runs `agentbak -m FILE list` on manifest text; returns stderr after asserting exit 2.
fn manifest_error(text: &str) -> String {
    let dir = assert_fs::TempDir::new().unwrap();
    let file = dir.child("bad.json");
    file.write_str(text).unwrap();
    let out = agentbak()
        .arg("-m")
        .arg(file.path())
        .arg("list")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bad.json:"), "names the file: {stderr}");
    stderr
}

#[test]
fn unknown_field_names_line_column_and_field() {
    let text = GOOD.replace(
        "\"agent\": \"kevin\",",
        "\"agent\": \"kevin\",\n  \"colour\": 3,",
    );
    let err = manifest_error(&text);
    assert!(err.contains("bad.json:4:13:"), "{err}");
    assert!(err.contains("field `/colour`"), "{err}");
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(err.contains("expected one of"), "{err}");
}

#[test]
fn unknown_field_in_a_nested_rule() {
    let text = GOOD.replace(
        "\"json\": \"/openai/api_key\",",
        "\"json\": \"/openai/api_key\", \"jsn\": 1,",
    );
    let err = manifest_error(&text);
    assert!(err.contains("field `/secrets/0/jsn`"), "{err}");
    assert!(err.contains(":8:"), "{err}");
}

#[test]
fn json_syntax_error_names_line_and_column() {
    let text = GOOD.replace(
        "\"repository\": \"./backups\",",
        "\"repository\": \"./backups\"",
    );
    let err = manifest_error(&text);
    assert!(err.contains("bad.json:6:3:"), "{err}");
    assert!(err.contains("invalid JSON"), "{err}");
}

#[test]
fn bad_handle_names_the_field_and_the_reason() {
    let text = GOOD.replace("local:openai#api_key", "local:openai#");
    let err = manifest_error(&text);
    assert!(err.contains("field `/secrets/0/handle`"), "{err}");
    assert!(err.contains(":8:"), "{err}");
    assert!(err.contains("invalid handle `local:openai#`"), "{err}");
}

#[test]
fn undefined_store_names_the_field_and_the_known_stores() {
    let text = GOOD.replace("local:openai#api_key", "vault:agents/kevin/openai#api_key");
    let err = manifest_error(&text);
    assert!(err.contains("field `/secrets/0/handle`"), "{err}");
    assert!(err.contains(":8:67:"), "{err}");
    assert!(
        err.contains("store `vault`, which `stores` does not define (defined: local)"),
        "{err}"
    );
}

#[test]
fn several_problems_are_all_reported() {
    let text = GOOD
        .replace("\"version\": 1", "\"version\": 2")
        .replace("\"/openai/api_key\"", "\"openai\"");
    let err = manifest_error(&text);
    assert!(
        err.contains("field `/version`: unsupported version 2"),
        "{err}"
    );
    assert!(
        err.contains("field `/secrets/0/json`: expected a JSON Pointer"),
        "{err}"
    );
}

#[test]
fn store_files_inside_the_state_are_refused() {
    let text = GOOD.replace("/tmp/x.key", "./state/x.key");
    let err = manifest_error(&text);
    assert!(err.contains("field `/stores/local/identity`"), "{err}");
    assert!(err.contains("inside the state folder"), "{err}");
}

#[test]
fn vault_credential_files_inside_the_state_are_refused() {
    // A token or AppRole secret id inside the state would be archived in plain text.
    let vault = r#""vault": { "kind": "vault", "mount": "secret", "auth": { "method": "approle", "role_id_file": "/etc/agentbak/role", "secret_id_file": "./state/secret-id" } }"#;
    let text = GOOD.replace(r#""stores": { "#, &format!(r#""stores": {{ {vault}, "#));
    let err = manifest_error(&text);
    assert!(
        err.contains("field `/stores/vault/auth/secret_id_file`"),
        "{err}"
    );
    assert!(!err.contains("role_id_file"), "{err}");
    let vault = r#""vault": { "kind": "vault", "mount": "secret", "auth": { "method": "token", "token_file": "./backups/t" } }"#;
    let text = GOOD.replace(r#""stores": { "#, &format!(r#""stores": {{ {vault}, "#));
    let err = manifest_error(&text);
    assert!(
        err.contains("field `/stores/vault/auth/token_file`"),
        "{err}"
    );
    assert!(err.contains("inside the repository folder"), "{err}");
}

#[test]
fn missing_manifest_is_a_usage_error_with_a_hint() {
    let dir = assert_fs::TempDir::new().unwrap();
    agentbak()
        .current_dir(dir.path())
        .arg("list")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("agentbak.json")
                .and(predicate::str::contains("agentbak init")),
        );
}

#[test]
fn manifest_is_found_through_the_environment() {
    let dir = assert_fs::TempDir::new().unwrap();
    let file = dir.child("elsewhere.json");
    file.write_str("{").unwrap();
    agentbak()
        .current_dir(dir.path())
        .env("AGENTBAK_MANIFEST", file.path())
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("elsewhere.json:1:1:"));
}

#[test]
fn a_valid_manifest_gets_past_loading() {
    let dir = assert_fs::TempDir::new().unwrap();
    let file = dir.child("agentbak.json");
    file.write_str(GOOD).unwrap();
    // Loading succeeds and `list` answers for an empty repository: exit 0, a header and a
    // count, nothing on stderr.
    agentbak()
        .current_dir(dir.path())
        .arg("list")
        .assert()
        .code(0)
        .stdout(
            predicate::str::starts_with("ID  TIME  HOST  TAGS")
                .and(predicate::str::contains("0 snapshots")),
        )
        .stderr(predicate::str::is_empty());
}

#[test]
fn bad_flags_are_usage_errors() {
    agentbak()
        .args(["snapshot", "--no-such-flag"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unexpected argument '--no-such-flag' found",
        ));
    agentbak()
        .args(["restore", "latest"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("the following required arguments were not provided")
                .and(predicate::str::contains("--target <DIR>")),
        );
}

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "_agentbak()"),
        ("zsh", "#compdef agentbak"),
        ("fish", "complete -c agentbak"),
        ("elvish", "agentbak"),
        ("powershell", "agentbak"),
    ] {
        agentbak()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker).and(predicate::str::contains("snapshot")));
    }
}

#[test]
fn man_page_is_roff_with_every_command() {
    let out = agentbak()
        .arg("man")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let page = String::from_utf8(out).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH agentbak"),
        "{}",
        &page[..80.min(page.len())]
    );
    for cmd in [
        "init", "snapshot", "restore", "verify", "scan", "prune", "forget", "secrets",
    ] {
        assert!(page.contains(cmd), "man page lacks {cmd}");
    }
}

#[test]
fn version_and_help() {
    agentbak()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "agentbak {}",
            env!("CARGO_PKG_VERSION")
        )));
    agentbak()
        .args(["secrets", "set", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("stdin"));
}

#[test]
fn broken_pipe_exits_zero() {
    // `agentbak man | head -c1`: the reader goes away; agentbak must not report an error.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("agentbak"))
        .args(["completions", "zsh"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression: with `--log-format json`, a command's report lines and its final error line
/// were plain text among the JSON events; every stderr line is now one JSON object.
#[test]
fn log_format_json_makes_every_stderr_line_json() {
    let dir = assert_fs::TempDir::new().unwrap();
    let token = "ghp_Zq8vN3mT5wK1xR7pL2cY9bH4dF6gJ0sA1eU3";
    dir.child("state/.env")
        .write_str(&format!("GH={token}\n"))
        .unwrap();
    dir.child("agentbak.json")
        .write_str(
            r#"{ "version": 1, "agent": "k", "state": "./state", "repository": "./backups" }"#,
        )
        .unwrap();
    let lines = |out: &std::process::Output| -> Vec<serde_json::Value> {
        let stderr = String::from_utf8(out.stderr.clone()).unwrap();
        assert!(!stderr.contains(token), "{stderr}");
        stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let out = agentbak()
        .current_dir(dir.path())
        .args(["--log-format", "json", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let events = lines(&out);
    for start in [".env at byte", "snapshot refused"] {
        assert!(events.iter().any(|e| {
            e["level"] == "ERROR" && e["fields"]["message"].as_str().unwrap().starts_with(start)
        }));
    }
    let out = agentbak()
        .current_dir(dir.path())
        .args(["--log-format", "json", "-m", "missing.json", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let events = lines(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["level"], "ERROR");
    // Text mode is unchanged.
    let out = agentbak()
        .current_dir(dir.path())
        .args(["-m", "missing.json", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("agentbak: "), "{stderr}");
    assert!(stderr.contains("missing.json"), "{stderr}");
}
