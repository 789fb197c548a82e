//! A day of a living agent, hourly (issue "a living agent keeps its backups"): the agent writes
//! new transcripts with tokens JSON-escaped in tool outputs, refreshes its OAuth tokens and
//! leaves the old one in a log, adds a config with a letters-only password and an MCP server
//! with a token in its env block, and grows a transcript past 20 MiB with a token near its end.
//! Every hourly snapshot exits 0 or 3, never 4; verify right after it exits 0 or 3; no value
//! is in the repository in any encoding; every snapshot restores byte-identical.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as Std;

use base64::Engine;

use crate::restore_fixture::{Project, all_output, contains, tree};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "codex",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }
  },
  "capture": { "store": "local", "path": "agents/{agent}/captured" },
  "secrets": [
    { "file": "auth.json", "json": "/tokens/access_token", "handle": "local:agents/{agent}/oauth#access_token", "owner": "agent" },
    { "file": "auth.json", "json": "/tokens/refresh_token", "handle": "local:agents/{agent}/oauth#refresh_token", "owner": "agent" },
    { "file": "config.toml", "toml": "/model_providers/openrouter/api_key", "handle": "local:agents/{agent}/openrouter#api_key" }
  ]
}"#;

const OPENROUTER: &str =
    "sk-or-v1-0f3c9a7b2d8e4f6a1c5b9d3e7f2a6c4b8d1e5f9a3c7b2d6e0f4a8c1b5d9e3f7a2";
const ACCESS_1: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIiwiZXhwIjoxNzY0ODAwMDAwfQ.Qm9ndXNTaWduYXR1cmVPbmVfMTIzNDU2Nzg5";
const REFRESH_1: &str = "rt_1_Zk3Qp8Lm2Nx7Vb4Wc9Hy6Tg1Rf5Ed0Sa3Jk8Lp2Mn7Bv4";
const ACCESS_2: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIiwiZXhwIjoxNzY0ODAzNjAwfQ.Qm9ndXNTaWduYXR1cmVUd29fOTg3NjU0MzIx";
const REFRESH_2: &str = "rt_2_Pw5Xc2Vb8Nm3Lk7Jh1Gf6Ds9Aq4We0Rt5Yu8Io2Pa7Sd3";
const GH_TOKEN: &str = "ghp_R8s2Kq9Lm4Np7Xv1Zc6Bw3Hy5Tj0Fd8Ga2Qe";
const HF_TOKEN: &str = "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";
const PASSWORD: &str = "TrqpLmzoXekWuvbsNyaH";
const NOTION: &str = "ntn_4b1c9a8e7d6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0dEf";
const ANTHROPIC: &str =
    "sk-ant-api03-Zx8Cv7Bn6Mm5Ll4Kk3Jj2Hh1Gg0Ff9Dd8Ss7Aa6Qq5Ww4Ee3Rr2Tt1Yy0Uu9Ii8Oo7Pp6-AbCdEfAA";

const VALUES: [&str; 10] = [
    OPENROUTER, ACCESS_1, REFRESH_1, ACCESS_2, REFRESH_2, GH_TOKEN, HF_TOKEN, PASSWORD, NOTION,
    ANTHROPIC,
];

fn auth(access: &str, refresh: &str) -> Vec<u8> {
    format!(
        "{{\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {{\n    \"access_token\": \"{access}\",\n    \"refresh_token\": \"{refresh}\",\n    \"account_id\": \"acct_7f3a\"\n  }},\n  \"last_refresh\": \"2026-12-04T09:00:00Z\"\n}}\n"
    )
    .into_bytes()
}

/// A transcript line whose tool output holds `export NAME=value`, JSON-escaped as agents
/// write it (`\n` and `\"` inside the string).
fn tool_output(name: &str, value: &str) -> String {
    format!(
        "{{\"type\":\"function_call_output\",\"output\":\"$ cat ~/.bashrc\\nexport PATH=\\\"$HOME/bin:$PATH\\\"\\nexport {name}={value}\\n\"}}\n"
    )
}

/// Every form of a value the repository must not hold: raw, JSON-escaped, base64 (padded and
/// not, standard and URL-safe), hex, and the sha256 and blake3 of it in hex.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let b = value.as_bytes();
    let mut out = vec![
        b.to_vec(),
        value.replace('/', "\\/").into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(b)
            .into_bytes(),
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into_bytes(),
        blake3::hash(b).to_hex().to_string().into_bytes(),
    ];
    let sha = Std::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest(), end='')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .expect("python3 runs");
    out.push(sha.stdout);
    out
}

/// Every byte of the repository: its files as they are, and each archive decompressed with
/// the stock `zstd`.
fn repository_bytes(repo: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(repo) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        if entry.path().to_string_lossy().ends_with(".tar.zst") {
            let tar = Std::new("zstd")
                .args(["-d", "-c", "-q"])
                .arg(entry.path())
                .output()
                .expect("zstd runs");
            assert!(tar.status.success());
            out.extend_from_slice(&tar.stdout);
        }
        out.extend_from_slice(&bytes);
    }
    out
}

fn assert_nowhere(what: &str, bytes: &[u8], values: &[&str]) {
    let mut labels = Vec::new();
    let mut patterns = Vec::new();
    for v in values {
        for (i, form) in forms(v).into_iter().enumerate() {
            labels.push(format!("form {i} of a planted value ({}…)", &v[..6]));
            patterns.push(form);
        }
    }
    let search = aho_corasick::AhoCorasick::new(&patterns).unwrap();
    if let Some(m) = search.find(bytes) {
        panic!("{what}: {}", labels[m.pattern().as_usize()]);
    }
}

struct Day {
    p: Project,
    hour: u32,
}

impl Day {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = self.p.agentbak().args(args).output().unwrap();
        let text = all_output(&out);
        for v in VALUES {
            assert!(!contains(text.as_bytes(), v), "{args:?} printed a value");
        }
        out
    }

    /// One hourly run: snapshot, verify, restore with --rehydrate, compare.
    fn hourly(&mut self) {
        self.hour += 1;
        let out = self.run(&["snapshot"]);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 3)),
            "hour {}: snapshot exited {code:?}: {}",
            self.hour,
            all_output(&out)
        );
        let out = self.run(&["verify", "latest"]);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "hour {}: verify: {}",
            self.hour,
            all_output(&out)
        );
        let target = self.p.path().join(format!("restored-{}", self.hour));
        let out = self.run(&[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--rehydrate",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "hour {}: restore: {}",
            self.hour,
            all_output(&out)
        );
        let want: BTreeMap<String, Vec<u8>> = tree(&self.p.state())
            .into_iter()
            .map(|(k, v)| (k, v.content))
            .collect();
        let got: BTreeMap<String, Vec<u8>> = tree(&target)
            .into_iter()
            .map(|(k, v)| (k, v.content))
            .collect();
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        );
        for (k, v) in &want {
            assert!(
                got[k] == *v,
                "hour {}: {k} is not restored byte-identical",
                self.hour
            );
        }
        std::fs::remove_dir_all(&target).unwrap();
        assert_nowhere(
            &format!("hour {}: the repository", self.hour),
            &repository_bytes(&self.p.path().join("backups")),
            &VALUES,
        );
    }
}

#[test]
fn a_day_of_hourly_snapshots_never_stops_and_never_leaks() {
    let p = Project::new(MANIFEST);
    p.set("local:agents/codex/openrouter#api_key", OPENROUTER, &[]);
    p.file("auth.json", 0o600, &auth(ACCESS_1, REFRESH_1));
    p.file(
        "config.toml",
        0o600,
        format!("model = \"gpt-5\"\n\n[model_providers.openrouter]\napi_key = \"{OPENROUTER}\"\n")
            .as_bytes(),
    );
    p.file(
        "sessions/2026/12/04/rollout-0900.jsonl",
        0o600,
        b"{\"type\":\"message\",\"content\":\"hello\"}\n",
    );
    p.file("log/codex-tui.log", 0o600, b"09:00 started\n");
    let mut day = Day { p, hour: 0 };
    day.hourly();

    // 10:00: a new transcript with a token JSON-escaped inside a tool output.
    day.p.file(
        "sessions/2026/12/04/rollout-1000.jsonl",
        0o600,
        format!(
            "{{\"type\":\"message\",\"content\":\"show me your env\"}}\n{}",
            tool_output("GH_TOKEN", GH_TOKEN)
        )
        .as_bytes(),
    );
    day.hourly();

    // 11:00: the agent refreshes its OAuth tokens; the old access token stays in its log.
    day.p.file("auth.json", 0o600, &auth(ACCESS_2, REFRESH_2));
    day.p.file(
        "log/codex-tui.log",
        0o600,
        format!("09:00 started\n10:59 refresh: old bearer {ACCESS_1} expired\n").as_bytes(),
    );
    day.hourly();

    // 12:00: a new config with a letters-only password, and another transcript.
    day.p.file(
        "config/db.json",
        0o600,
        format!("{{\n  \"host\": \"db.internal\",\n  \"password\": \"{PASSWORD}\"\n}}\n")
            .as_bytes(),
    );
    day.p.file(
        "sessions/2026/12/04/rollout-1200.jsonl",
        0o600,
        tool_output("HF_TOKEN", HF_TOKEN).as_bytes(),
    );
    day.hourly();

    // 13:00: a new MCP server with a token in its env block.
    day.p.file(
        ".mcp.json",
        0o600,
        format!(
            "{{\n  \"mcpServers\": {{\n    \"notion\": {{\n      \"command\": \"npx\",\n      \"args\": [\"-y\", \"@notionhq/notion-mcp-server\"],\n      \"env\": {{ \"NOTION_TOKEN\": \"{NOTION}\" }}\n    }}\n  }}\n}}\n"
        )
        .as_bytes(),
    );
    day.hourly();

    // 14:00: a transcript past 20 MiB with a token near its end, and a known value in it.
    let mut big = String::with_capacity(21 << 20);
    let mut i = 0;
    while big.len() < 20 << 20 {
        big.push_str(&format!(
            "{{\"type\":\"message\",\"n\":{i},\"content\":\"step {i}: reading files and thinking about them\"}}\n"
        ));
        i += 1;
    }
    big.push_str(&format!(
        "{{\"type\":\"message\",\"content\":\"the provider key is {OPENROUTER}\"}}\n"
    ));
    big.push_str(&tool_output("ANTHROPIC_API_KEY", ANTHROPIC));
    big.push_str("{\"type\":\"message\",\"content\":\"done\"}\n");
    day.p.file(
        "sessions/2026/12/04/rollout-1400.jsonl",
        0o600,
        big.as_bytes(),
    );
    day.hourly();

    // 15:00: nothing new: the captured secrets are known, the run is clean.
    let out = day.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
}

/// A project with only a declared OpenRouter key, for the capture edge cases.
fn small() -> Project {
    let p = Project::new(MANIFEST);
    p.set("local:agents/codex/openrouter#api_key", OPENROUTER, &[]);
    p.file(
        "config.toml",
        0o600,
        format!("[model_providers.openrouter]\napi_key = \"{OPENROUTER}\"\n").as_bytes(),
    );
    p.file("auth.json", 0o600, &auth(ACCESS_1, REFRESH_1));
    p
}

#[test]
fn a_dry_run_says_what_it_would_capture_and_stores_nothing() {
    let p = small();
    p.file("notes.md", 0o600, format!("token {GH_TOKEN}\n").as_bytes());
    let store_before = std::fs::read(p.path().join("store/local.age")).unwrap();
    let out = p
        .agentbak()
        .args(["snapshot", "--dry-run"])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("would capture 1 secret in 1 file that no rule declares"),
        "{text}"
    );
    assert!(!contains(text.as_bytes(), GH_TOKEN));
    assert_eq!(
        std::fs::read(p.path().join("store/local.age")).unwrap(),
        store_before,
        "a dry run writes nothing to the store"
    );
}

#[test]
fn what_cannot_be_captured_refuses_with_what_to_do() {
    // A token inside a binary file: no placeholder can replace it.
    let p = small();
    let mut blob = vec![0u8, 1, 2, 3];
    blob.extend_from_slice(GH_TOKEN.as_bytes());
    p.file("cache/model.bin", 0o600, &blob);
    let out = p.agentbak().arg("snapshot").output().unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("cache/model.bin: a secret outside a text file cannot be captured: exclude the file (`exclude`), declare it whole (a `whole_file` rule), or accept it (`detect.allow`)"),
        "{text}"
    );
    assert!(!contains(text.as_bytes(), GH_TOKEN));
    assert!(
        std::fs::read_dir(p.path().join("backups/snapshots"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// A vault token that may read but not write: the capture is refused with a 403, so the
/// snapshot refuses (exit 4) rather than archive the token, and says why.
#[test]
fn a_store_that_refuses_the_capture_refuses_the_snapshot() {
    let bao = crate::common::OpenBao::start();
    bao.cli_with_stdin(
        &["policy", "write", "reader", "-"],
        Some(b"path \"secret/data/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/*\" { capabilities = [\"read\", \"list\"] }\n"),
    );
    bao.cli(&[
        "kv",
        "put",
        "secret/agents/codex/openrouter",
        &format!("api_key={OPENROUTER}"),
    ]);
    let token = bao.cli(&["token", "create", "-policy=reader", "-field=token"]);
    let manifest = format!(
        r#"{{
  "version": 1, "agent": "codex", "state": "./state", "repository": "./backups",
  "stores": {{ "vault": {{ "kind": "vault", "address": "{}", "mount": "secret" }} }},
  "secrets": [
    {{ "file": "config.toml", "toml": "/model_providers/openrouter/api_key", "handle": "vault:agents/{{agent}}/openrouter#api_key" }}
  ]
}}"#,
        bao.addr
    );
    let p = Project::new(&manifest);
    p.file(
        "config.toml",
        0o600,
        format!("[model_providers.openrouter]\napi_key = \"{OPENROUTER}\"\n").as_bytes(),
    );
    p.file("notes.md", 0o600, format!("token {GH_TOKEN}\n").as_bytes());
    let out = p
        .agentbak()
        .env("VAULT_TOKEN", token.trim())
        .arg("snapshot")
        .output()
        .unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("could not be captured") && text.contains("403"),
        "{text}"
    );
    assert!(
        text.contains("the snapshot is refused rather than archive them"),
        "{text}"
    );
    assert!(!contains(text.as_bytes(), GH_TOKEN));
    assert!(!contains(text.as_bytes(), OPENROUTER));
    assert!(
        std::fs::read_dir(p.path().join("backups/snapshots"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// The one behaviour for short values (docs/security.md): a declared 6-byte password is
/// replaced where it is declared, a copy elsewhere is archived as it is, and the snapshot says
/// so with a note, exit 0.
#[test]
fn a_short_declared_value_is_replaced_where_declared_and_named_in_a_note() {
    let p = Project::new(
        r#"{
  "version": 1, "agent": "codex", "state": "./state", "repository": "./backups",
  "stores": { "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" } },
  "secrets": [ { "file": "db.env", "env": "PW", "handle": "local:agents/{agent}/db#pw" } ]
}"#,
    );
    p.set("local:agents/codex/db#pw", "hx7Qz2", &[]);
    p.file("db.env", 0o600, b"PW=hx7Qz2\n");
    p.file("notes.md", 0o600, b"the db password is hx7Qz2\n");
    let out = p.agentbak().arg("snapshot").output().unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("note: the value of local:agents/codex/db#pw is too short to prove absent"),
        "{text}"
    );
    let tar = repository_bytes(&p.path().join("backups"));
    assert!(contains(&tar, "PW=+agentbak:local:agents/codex/db:pw+"));
    assert!(contains(&tar, "the db password is hx7Qz2"));
}
