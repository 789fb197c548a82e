//! `agentbak scan` end to end: the real binary on real files, stdin, a real git repository and
//! a real growing log. Every test that plants values asserts they appear in no output.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use assert_fs::prelude::*;
use base64::Engine;

const GHP: &str = "ghp_R4nd0mT0k3nV4lu3Abcdefghij0123456789";
const SLACK: &str = "xoxb-123456789012-1234567890123-Zk8mQ2vL9xT4pN7wR3sY6uB1";
const VALUE: &str = "kevin-Private-Value-93xQ!";
const DOTENV_VALUE: &str = "dotenv-Secret-7hG2kP0w";

fn agentbak() -> Command {
    let mut cmd = Command::cargo_bin("agentbak").unwrap();
    cmd.env_remove("AGENTBAK_MANIFEST").env_remove("RUST_LOG");
    cmd
}

fn assert_no_value(output: &[u8], values: &[&str]) {
    let text = String::from_utf8_lossy(output);
    for v in values {
        assert!(!text.contains(v), "value leaked into output:\n{text}");
    }
}

#[test]
fn folder_with_tokens_exits_4_and_names_path_line_and_rule() {
    let dir = assert_fs::TempDir::new().unwrap();
    dir.child("a/config.yaml")
        .write_str(&format!("name: x\ntoken: {GHP}\n"))
        .unwrap();
    dir.child("b.log")
        .write_str(&format!("{{\"msg\":\"sent\",\"auth\":\"{SLACK}\"}}\n"))
        .unwrap();
    dir.child("clean.txt").write_str("nothing here\n").unwrap();
    let out = agentbak()
        .current_dir(dir.path())
        .args(["scan", ".", "--format", "json"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    assert_no_value(&out.stdout, &[GHP, SLACK]);
    assert_no_value(&out.stderr, &[GHP, SLACK]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    let got: Vec<(String, u64, String)> = findings
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("./a/config.yaml".into(), 2, "github-pat".into()),
            ("./b.log".into(), 1, "slack-bot-token".into()),
        ]
    );
    assert_eq!(doc["summary"]["files"], 3);
    assert_eq!(findings[0]["preview"], "ghp_…89 (40 chars)");
}

#[test]
fn clean_input_exits_0_and_human_output_says_so() {
    let dir = assert_fs::TempDir::new().unwrap();
    dir.child("notes.md")
        .write_str("token: +agentbak:vault:agents/kevin/github:token+\nkey: ${API_KEY}\n")
        .unwrap();
    agentbak()
        .arg("scan")
        .arg(dir.path())
        .assert()
        .code(0)
        .stdout(predicates::str::contains("0 finding(s)"));
}

#[test]
fn stdin_is_scanned() {
    let out = agentbak()
        .args(["scan", "--stdin"])
        .write_stdin(format!("Authorization: Bearer {SLACK}\n"))
        .assert()
        .code(4)
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("<stdin>:1:23: error slack-bot-token"),
        "{text}"
    );
    assert_no_value(text.as_bytes(), &[SLACK]);
}

#[test]
fn inline_allow_and_manifest_allowlist_silence_findings() {
    let dir = assert_fs::TempDir::new().unwrap();
    dir.child("state/a.txt")
        .write_str(&format!("t={GHP} # agentbak:allow\n"))
        .unwrap();
    dir.child("state/fixtures/b.txt")
        .write_str(&format!("t={GHP}\n"))
        .unwrap();
    dir.child("agentbak.json")
        .write_str(
            r#"{"version":1,"agent":"kevin","state":"./state","repository":"./backups",
            "detect":{"allow":["fixtures/"]}}"#,
        )
        .unwrap();
    agentbak()
        .current_dir(dir.path())
        .args(["scan", "state"])
        .assert()
        .code(0);
}

/// A manifest whose declared values (dotenv, whole file, JSON) are searched for, encoded, in
/// other files of the state and in logs.
fn state_with_manifest() -> assert_fs::TempDir {
    let dir = assert_fs::TempDir::new().unwrap();
    dir.child("state/.env")
        .write_str(&format!("OTHER=1\nSESSION=\"{DOTENV_VALUE}\"\n"))
        .unwrap();
    dir.child("state/keys/private.txt")
        .write_str(&format!("{VALUE}\n"))
        .unwrap();
    dir.child("state/config.json")
        .write_str(&format!("{{\"svc\": {{\"key\": \"{GHP}\"}}}}"))
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("user:{VALUE}"));
    let pct: String = DOTENV_VALUE.replace('-', "%2D");
    dir.child("logs/agent.log")
        .write_str(&format!(
            "line one\nheader Basic-ish {b64}\nurl https://x/?s={pct}&q=1\nhex {}\n",
            hex::encode_upper(VALUE)
        ))
        .unwrap();
    dir.child("agentbak.json")
        .write_str(
            r#"{"version":1,"agent":"kevin","state":"./state","repository":"./backups",
            "stores": {"env": {"kind": "env"}, "local": {"kind": "local", "path": "/tmp/agentbak-scan-test.store.age", "identity": "/tmp/agentbak-scan-test.key"}},
            "secrets":[
              {"file":".env","env":"SESSION","handle":"env:SESSION"},
              {"file":"keys/private.txt","whole_file":true,"handle":"local:agents/{agent}/identity#key"},
              {"file":"config.json","json":"/svc/key","handle":"local:github#token"}
            ]}"#,
        )
        .unwrap();
    dir
}

mod hex {
    pub fn encode_upper(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02X}")).collect()
    }
}

#[test]
fn manifest_values_are_found_in_every_encoding_and_never_shown() {
    let dir = state_with_manifest();
    let out = agentbak()
        .current_dir(dir.path())
        .args(["scan", "logs", "--format", "json"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    assert_no_value(&out.stdout, &[VALUE, DOTENV_VALUE, GHP]);
    assert_no_value(&out.stderr, &[VALUE, DOTENV_VALUE, GHP]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"]["label"].as_str().unwrap_or("").to_string(),
                f["kind"]["encoding"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for expected in [
        ("local:agents/kevin/identity#key", "base64"),
        ("env:SESSION", "percent"),
        ("local:agents/kevin/identity#key", "hex-upper"),
    ] {
        assert!(
            kinds.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} not in {kinds:?}"
        );
    }
    // Every output format, at every log level and in every log format.
    for format in ["human", "json", "sarif"] {
        let runs = crate::restore_fixture::three_ways(
            || {
                let mut c = agentbak();
                c.current_dir(dir.path());
                c
            },
            &["scan", "logs", "state", "--format", format],
        );
        for run in &runs {
            assert_eq!(run.code(), Some(4), "{}", run.text());
        }
        crate::restore_fixture::assert_no_value_in(&runs, &[VALUE, DOTENV_VALUE, GHP]);
    }
}

#[test]
fn sarif_output_is_sarif_2_1_0_without_values() {
    let dir = state_with_manifest();
    let out = agentbak()
        .current_dir(dir.path())
        .args(["scan", "state", "--format", "sarif"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    assert_no_value(&out.stdout, &[VALUE, DOTENV_VALUE, GHP]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "agentbak");
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(run["tool"]["driver"]["rules"][index]["id"], r["ruleId"]);
        assert!(
            r["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
                >= 1
        );
        assert!(r["partialFingerprints"]["agentbak/v1"].is_string());
    }
}

/// A project whose local store holds a rotated secret (`PREVIOUS`, then `CURRENT`) and whose
/// manifest also declares a handle the store lacks; the state folder is not on this host.
fn store_project() -> assert_fs::TempDir {
    let dir = assert_fs::TempDir::new().unwrap();
    dir.child("agentbak.json")
        .write_str(
            r#"{"version":1,"agent":"kevin","state":"./state","repository":"./backups",
            "stores": {"local": {"kind": "local", "path": "./store/local.age", "identity": "./keys/local.key"}},
            "secrets":[
              {"file":"config.json","json":"/api_key","handle":"local:agents/{agent}/openai#api_key"},
              {"file":"db.env","env":"DB_PASSWORD","handle":"local:agents/{agent}/db#password"}
            ]}"#,
        )
        .unwrap();
    for value in [PREVIOUS, CURRENT] {
        set_secret(&dir, "local:agents/kevin/openai#api_key", value);
    }
    dir
}

/// The store's value before the rotation: no rule knows its shape.
const PREVIOUS: &str = "Old-Rotated-Value-0123456789abcdefghijk";
const CURRENT: &str = "New-Current-Value-9876543210zyxwvutsrqp";
const DB_PASSWORD: &str = "Db-Password-Value-5555aaaa7777";

fn set_secret(dir: &assert_fs::TempDir, handle: &str, value: &str) {
    agentbak()
        .current_dir(dir.path())
        .args(["secrets", "set", handle])
        .write_stdin(value)
        .assert()
        .success();
}

#[test]
fn known_from_store_finds_current_and_previous_store_values_and_exits_6_on_a_missing_one() {
    let dir = store_project();
    let b64 = base64::engine::general_purpose::STANDARD.encode(PREVIOUS);
    dir.child("logs/agent.log")
        .write_str(&format!("auth header={b64}\nkey {CURRENT}\n"))
        .unwrap();
    dir.child("clean/notes.txt")
        .write_str("nothing here\n")
        .unwrap();
    let planted = [PREVIOUS, CURRENT, DB_PASSWORD, b64.as_str()];
    let scan = |args: &[&str]| {
        let out = agentbak()
            .current_dir(dir.path())
            .arg("scan")
            .args(args)
            .output()
            .unwrap();
        assert_no_value(&out.stdout, &planted);
        assert_no_value(&out.stderr, &planted);
        out
    };

    // Without the flag the state is not on this host: rules only, which see neither value.
    let out = scan(&["logs", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let verbosities: [&[&str]; 3] = [&[], &["-vvv"], &["-vvv", "--log-format", "json"]];
    for flags in verbosities {
        let mut args = flags.to_vec();
        args.extend(["--known-from-store", "logs", "--format", "json"]);
        let out = scan(&args);
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let kinds: Vec<(&str, &str, u64)> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["kind"]["label"].as_str().unwrap(),
                    f["kind"]["encoding"].as_str().unwrap(),
                    f["line"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    "local:agents/kevin/openai#api_key (previous v1)",
                    "base64",
                    1
                ),
                ("local:agents/kevin/openai#api_key (current v2)", "raw", 2),
            ]
        );
        let notes = doc["notes"].to_string();
        assert!(
            notes
                .contains("local:agents/kevin/db#password: the current value could not be fetched"),
            "{notes}"
        );
    }

    // Nothing found, but a declared value could not be fetched: its absence is unproven.
    let out = scan(&["--known-from-store", "clean"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("local:agents/kevin/db#password"));

    set_secret(&dir, "local:agents/kevin/db#password", DB_PASSWORD);
    let out = scan(&["--known-from-store", "clean"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = Process::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn git_history_and_staged_changes_are_scanned() {
    let dir = assert_fs::TempDir::new().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    dir.child("app.env").write_str("A=1\nB=2\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "one"]);
    dir.child("app.env")
        .write_str(&format!("A=1\nTOKEN={GHP}\nB=2\n"))
        .unwrap();
    git(repo, &["commit", "-q", "-am", "leak"]);
    dir.child("app.env").write_str("A=1\nB=2\n").unwrap();
    git(repo, &["commit", "-q", "-am", "remove"]);
    let out = agentbak()
        .arg("scan")
        .arg(repo)
        .args(["--git", "--format", "json"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    assert_no_value(&out.stdout, &[GHP]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &doc["findings"][0];
    assert_eq!(
        (f["path"].as_str(), f["line"].as_u64()),
        (Some("app.env"), Some(2))
    );
    let leak = Process::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD~1"])
        .output()
        .unwrap();
    assert_eq!(
        f["commit"].as_str().unwrap(),
        String::from_utf8_lossy(&leak.stdout).trim()
    );
    assert_eq!(doc["findings"].as_array().unwrap().len(), 1);

    agentbak()
        .arg("scan")
        .arg(repo)
        .arg("--staged")
        .assert()
        .code(0);
    dir.child("new.yaml")
        .write_str(&format!("slack: {SLACK}\n"))
        .unwrap();
    git(repo, &["add", "new.yaml"]);
    agentbak()
        .arg("scan")
        .arg(repo)
        .arg("--staged")
        .assert()
        .code(4)
        .stdout(predicates::str::contains(
            "new.yaml:1:8: error slack-bot-token",
        ));
}

#[test]
fn git_outside_a_repository_is_an_error() {
    let dir = assert_fs::TempDir::new().unwrap();
    agentbak()
        .arg("scan")
        .arg(dir.path())
        .arg("--git")
        .assert()
        .code(1)
        .stderr(predicates::str::contains("git"));
}

/// Waits for the next line from the follower; the generous limit only guards against a hang.
fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the follower printed a line")
}

#[test]
fn follow_reports_each_finding_once_across_growth_truncation_and_rotation() {
    let dir = assert_fs::TempDir::new().unwrap();
    let log = dir.child("agent.log");
    log.write_str("start\n").unwrap();
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("agentbak"))
        .args(["scan", "--format", "json", "--follow"])
        .arg(log.path())
        .env_remove("AGENTBAK_MANIFEST")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    // Growth, with the token split across two writes.
    append("a line\ntoken=ghp_R4nd0mT0k3nV4");
    std::thread::sleep(Duration::from_millis(300));
    append("lu3Abcdefghij0123456789\n");
    let first: serde_json::Value = serde_json::from_str(&next_line(&rx)).unwrap();
    assert_eq!(
        (first["rule"].as_str(), first["line"].as_u64()),
        (Some("github-pat"), Some(3))
    );
    // Truncation in place.
    std::fs::write(log.path(), format!("auth {SLACK}\n")).unwrap();
    let second: serde_json::Value = serde_json::from_str(&next_line(&rx)).unwrap();
    assert_eq!(
        (second["rule"].as_str(), second["line"].as_u64()),
        (Some("slack-bot-token"), Some(1))
    );
    // Rotation: the file is moved away and a new one created.
    std::fs::rename(log.path(), dir.child("agent.log.1").path()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(log.path(), format!("x\ny\nk={GHP}\n")).unwrap();
    let third: serde_json::Value = serde_json::from_str(&next_line(&rx)).unwrap();
    assert_eq!(
        (third["rule"].as_str(), third["line"].as_u64()),
        (Some("github-pat"), Some(3))
    );
    let pid = child.id().to_string();
    assert!(
        Process::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.is_empty(), "each finding once: {rest:?}");
    for text in [
        &stderr,
        &first.to_string(),
        &second.to_string(),
        &third.to_string(),
    ] {
        assert_no_value(text.as_bytes(), &[GHP, SLACK]);
    }
}

/// `--known-from-store` against a real OpenBao: the current and the previous version of a
/// declared vault handle are found (the previous one base64-encoded), a declared handle the
/// server lacks is listed with exit 6 until it is stored, and a server that is down leaves
/// every vault handle unproven (exit 6, each listed). No value and no token in any output, at
/// any log level or format.
#[test]
fn known_from_store_reads_current_and_previous_versions_from_openbao() {
    const V1: &str = "Vault-Previous-Value-0a1b2c3d4e5f6g7h8i9j";
    const V2: &str = "Vault-Current-Value-9z8y7x6w5v4u3t2s1r0q";
    const DB: &str = "Vault-Db-Password-4k4k7m7m2p2p";
    let mut bao = crate::common::OpenBao::start();
    for v in [V1, V2] {
        bao.cli(&[
            "kv",
            "put",
            "secret/agents/kevin/openai",
            &format!("api_key={v}"),
        ]);
    }
    let dir = assert_fs::TempDir::new().unwrap();
    dir.child("agentbak.json")
        .write_str(&format!(
            r#"{{"version":1,"agent":"kevin","state":"./state","repository":"./backups",
            "stores": {{"vault": {{"kind": "vault", "address": "{}", "mount": "secret", "timeout_s": 3}}}},
            "secrets":[
              {{"file":"config.json","json":"/api_key","handle":"vault:agents/{{agent}}/openai#api_key"}},
              {{"file":"db.env","env":"DB_PASSWORD","handle":"vault:agents/{{agent}}/db#password"}}
            ]}}"#,
            bao.addr
        ))
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(V1);
    dir.child("logs/agent.log")
        .write_str(&format!("auth header={b64}\nkey {V2}\n"))
        .unwrap();
    dir.child("clean/notes.txt")
        .write_str("nothing here\n")
        .unwrap();
    let token = bao.token.clone();
    let planted = [V1, V2, DB, b64.as_str(), token.as_str()];
    let scan = |args: &[&str]| {
        let runs = crate::restore_fixture::three_ways(
            || {
                let mut c = agentbak();
                c.current_dir(dir.path()).env("VAULT_TOKEN", &token);
                c
            },
            &[&["scan", "--known-from-store"], args].concat(),
        );
        crate::restore_fixture::assert_no_value_in(&runs, &planted);
        runs
    };

    for run in scan(&["logs", "--format", "json"]) {
        assert_eq!(run.code(), Some(4), "{}", run.text());
        let doc: serde_json::Value = serde_json::from_slice(&run.output.stdout).unwrap();
        let kinds: Vec<(&str, &str, u64)> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["kind"]["label"].as_str().unwrap(),
                    f["kind"]["encoding"].as_str().unwrap(),
                    f["line"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    "vault:agents/kevin/openai#api_key (previous v1)",
                    "base64",
                    1
                ),
                ("vault:agents/kevin/openai#api_key (current v2)", "raw", 2),
            ],
            "{}",
            run.what
        );
        assert_eq!(
            doc["unresolved"],
            serde_json::json!(["vault:agents/kevin/db#password"])
        );
    }

    // Nothing found, but a declared handle is not in the store: its absence is unproven.
    for run in scan(&["clean"]) {
        assert_eq!(run.code(), Some(6), "{}", run.text());
        let stdout = String::from_utf8_lossy(&run.output.stdout);
        assert!(
            stdout.contains(
                "vault:agents/kevin/db#password: the current value could not be fetched, so it \
                 is not proven absent"
            ),
            "{}",
            run.text()
        );
    }
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/kevin/db",
        &format!("password={DB}"),
    ]);
    for run in scan(&["clean"]) {
        assert_eq!(run.code(), Some(0), "{}", run.text());
    }

    // The server is gone: no handle can be fetched, and each is listed.
    bao.stop();
    for run in scan(&["clean", "--format", "json"]) {
        assert_eq!(run.code(), Some(6), "{}", run.text());
        let doc: serde_json::Value = serde_json::from_slice(&run.output.stdout).unwrap();
        assert_eq!(
            doc["unresolved"],
            serde_json::json!([
                "vault:agents/kevin/openai#api_key",
                "vault:agents/kevin/db#password"
            ]),
            "{}",
            run.what
        );
    }
}

/// A project whose state holds an undeclared token in `notes/todo.md` (not on its first line)
/// and `first.md` (on its first line: in the tar stream, the header's padding comes before
/// it), with `detect.allow` = `allow`.
fn allow_project(allow: &[&str]) -> assert_fs::TempDir {
    let dir = assert_fs::TempDir::new().unwrap();
    let allow = serde_json::to_string(allow).unwrap();
    dir.child("agentbak.json")
        .write_str(&format!(
            r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": {{ "local": {{ "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }} }},
  "secrets": [ {{ "file": "config.json", "json": "/api_key", "handle": "local:agents/kevin/openai#api_key" }} ],
  "detect": {{ "on_unknown": "refuse", "allow": {allow} }} }}"#
        ))
        .unwrap();
    dir.child("state/config.json")
        .write_str("{\"api_key\": \"declared-Value-8Kq2Lm9Zx\"}\n")
        .unwrap();
    dir.child("state/notes/todo.md")
        .write_str(&format!("# todo\n\nrotate this: token {GHP}\n"))
        .unwrap();
    dir.child("state/first.md")
        .write_str(&format!("token {SLACK}\n"))
        .unwrap();
    let out = agentbak()
        .current_dir(dir.path())
        .args(["secrets", "set", "local:agents/kevin/openai#api_key"])
        .write_stdin("declared-Value-8Kq2Lm9Zx")
        .output()
        .unwrap();
    assert!(out.status.success());
    dir
}

/// Runs `agentbak ARGS` in `dir`; returns the exit code and stdout, after checking that no
/// planted value is in any output.
fn run_in(dir: &assert_fs::TempDir, args: &[&str]) -> (i32, String) {
    let out = agentbak()
        .current_dir(dir.path())
        .args(args)
        .output()
        .unwrap();
    assert_no_value(&out.stdout, &[GHP, SLACK]);
    assert_no_value(&out.stderr, &[GHP, SLACK]);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Issue 19 ("one allow, one fingerprint"): fingerprints differed between scan, snapshot (the
/// tar stream) and verify (tar paths), so an allowed finding then failed verify.
#[test]
fn an_allow_fingerprint_taken_from_scan_silences_the_finding_in_snapshot_and_verify() {
    let dir = allow_project(&[]);
    // Scanned from the project root: the paths are `state/…`, the fingerprints relative to
    // the state.
    let (code, out) = run_in(&dir, &["scan", "state", "--format", "json"]);
    assert_eq!(code, 4, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    let prints: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"]["type"] == "rule")
        .map(|f| f["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(prints.len(), 2, "{doc:#}");
    // The same from inside the state folder.
    let (_, inside) = {
        let out = agentbak()
            .current_dir(dir.path().join("state"))
            .args(["-m", "../agentbak.json", "scan", ".", "--format", "json"])
            .output()
            .unwrap();
        (0, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for p in &prints {
        assert!(inside.contains(p.as_str()), "{p} not in {inside}");
    }
    let (code, out) = run_in(&dir, &["snapshot"]);
    assert_eq!(code, 4, "without the allow the gate refuses: {out}");

    let allowed = allow_project(&[&prints[0], &prints[1]]);
    let (code, out) = run_in(&allowed, &["snapshot"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_in(&allowed, &["verify", "--json"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_in(&allowed, &["scan", "state/notes", "state/first.md"]);
    assert_eq!(code, 0, "{out}");
}

/// Issue 19: `detect.allow` path globs were ignored by the gate (it saw `<archive>`, then
/// `state/…`), so `notes/*.md` silenced scan but not snapshot or verify.
#[test]
fn an_allow_glob_silences_the_finding_in_snapshot_verify_and_scan() {
    let dir = allow_project(&["notes/*.md", "first.md"]);
    let (code, out) = run_in(&dir, &["snapshot"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_in(&dir, &["verify", "--json"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_in(&dir, &["scan", "state/notes", "state/first.md"]);
    assert_eq!(code, 0, "{out}");
    // The glob is relative to the state: `notes/*.md` does not cover `first.md`.
    let dir = allow_project(&["notes/*.md"]);
    let (code, out) = run_in(&dir, &["snapshot"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("first.md") && !out.contains("todo.md"),
        "{out}"
    );
    let (code, out) = run_in(&dir, &["scan", "state/notes", "state/first.md"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("first.md") && !out.contains("todo.md"),
        "{out}"
    );
}
