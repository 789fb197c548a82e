//! The security promises, tested the way a user meets them: an agent whose state holds values
//! from a local store, a real OpenBao and the environment, and a stray copy of two of them.
//!
//! - Every command that touches the values (`secrets set/get/status`, `snapshot`, `list`,
//!   `verify --against-store --check-handles`, `restore --rehydrate`, `scan --known-from-store`)
//!   runs three ways (plain, `-vvv` with `RUST_LOG=trace`, `-vvv --log-format json`;
//!   [`three_ways`]) and no output holds any form of any value, nor the vault token.
//! - No hash of a value (sha256, sha1, md5 by the stock coreutils; blake3), of its common
//!   encodings or of the value with a trailing newline, in hex (either case, and its first 12
//!   digits) or base64, is anywhere in the repository folder: not in the index, not in the
//!   sidecar, not in the archive, not in the tar the stock `zstd` decompresses.

use std::fs;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::common::OpenBao;
use crate::restore_fixture::{Project, Run, all_output, assert_no_value_in, three_ways};

const LOCAL_OLD: &str = "local-Rotated-Planted-Key-6Fd2Ks9Qa4Wy";
const LOCAL: &str = "local-Planted-OpenAI-Key-3Hw8Np5Vb1Jc7Ue";
const VAULT_OLD: &str = "vault-Rotated-Planted-Key-0Zx8Cv6Bn4Ml";
const VAULT: &str = "vault-Planted-Anthropic-Key-7Qm2Xr9Lk4Tz";
const ENV: &str = "env-Planted-Session-Value-5Rt7Yu1Io3Pl";

/// The values the state, the stores and the environment hold.
const VALUES: [&str; 5] = [LOCAL_OLD, LOCAL, VAULT_OLD, VAULT, ENV];

/// An agent with a local store, a vault store on `bao` and an env store; its state holds the
/// current values at their declared places and a stray copy of two of them in its notes. The
/// stores hold a previous and a current version of each.
fn agent(bao: &OpenBao) -> Project {
    let p = Project::new(&format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": {{
    "local": {{ "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }},
    "vault": {{ "kind": "vault", "address": "{}", "mount": "secret", "timeout_s": 5 }},
    "env": {{ "kind": "env" }}
  }},
  "secrets": [
    {{ "file": "config.json", "json": "/openai/api_key", "handle": "local:agents/{{agent}}/openai#api_key" }},
    {{ "file": "config.yaml", "yaml": "/anthropic/key", "handle": "vault:agents/{{agent}}/anthropic#key" }},
    {{ "file": ".env", "env": "SESSION_TOKEN", "handle": "env:SESSION_TOKEN" }}
  ] }}"#,
        bao.addr
    ));
    p.file(
        "config.json",
        0o600,
        format!("{{\"openai\": {{\"api_key\": \"{LOCAL}\"}}, \"model\": \"x\"}}\n").as_bytes(),
    );
    p.file(
        "config.yaml",
        0o600,
        format!("anthropic:\n  key: {VAULT}\n").as_bytes(),
    );
    p.file(".env", 0o600, format!("SESSION_TOKEN={ENV}\n").as_bytes());
    p.file(
        "notes.md",
        0o644,
        format!("# notes\nthe key was {LOCAL}\nand the other {VAULT}\n").as_bytes(),
    );
    for value in [VAULT_OLD, VAULT] {
        bao.cli(&[
            "kv",
            "put",
            "secret/agents/kevin/anthropic",
            &format!("key={value}"),
        ]);
    }
    p
}

/// The binary in the agent's folder with the vault token and the env value in its environment.
fn command(p: &Project, bao: &OpenBao) -> assert_cmd::Command {
    let mut c = p.agentbak();
    c.env("VAULT_TOKEN", &bao.token).env("SESSION_TOKEN", ENV);
    c
}

/// Runs `args` three ways, checks that each exits `code`, and returns the runs.
fn each_way(p: &Project, bao: &OpenBao, args: &[&str], code: i32) -> Vec<Run> {
    let runs = three_ways(|| command(p, bao), args);
    for run in &runs {
        assert_eq!(run.code(), Some(code), "{}", run.text());
    }
    runs
}

#[test]
fn no_value_in_any_output_at_any_log_level_or_format() {
    let bao = OpenBao::start();
    let p = agent(&bao);
    let mut runs = Vec::new();
    // `secrets set` reads the value from stdin: three versions of the old value, then the
    // current one.
    runs.extend(three_ways(
        || {
            let mut c = command(&p, &bao);
            c.write_stdin(LOCAL_OLD);
            c
        },
        &["secrets", "set", "local:agents/kevin/openai#api_key"],
    ));
    runs.extend(three_ways(
        || {
            let mut c = command(&p, &bao);
            c.write_stdin(LOCAL);
            c
        },
        &["secrets", "set", "local:agents/kevin/openai#api_key"],
    ));
    for run in &runs {
        assert_eq!(run.code(), Some(0), "{}", run.text());
    }
    runs.extend(each_way(
        &p,
        &bao,
        &["secrets", "get", "local:agents/kevin/openai#api_key"],
        0,
    ));
    runs.extend(each_way(
        &p,
        &bao,
        &["secrets", "get", "vault:agents/kevin/anthropic#key"],
        0,
    ));
    runs.extend(each_way(&p, &bao, &["secrets", "status"], 0));
    runs.extend(each_way(&p, &bao, &["secrets", "ls"], 0));
    let snapshots = each_way(&p, &bao, &["snapshot"], 0);
    runs.extend(snapshots);
    runs.extend(each_way(&p, &bao, &["list"], 0));
    runs.extend(each_way(
        &p,
        &bao,
        &["verify", "--all", "--against-store", "--check-handles"],
        0,
    ));
    runs.extend(each_way(
        &p,
        &bao,
        &[
            "restore",
            "latest",
            "--target",
            "restored",
            "--rehydrate",
            "--force",
        ],
        0,
    ));
    // The values really went through the process: they are back in the restored files.
    let restored = p.path().join("restored");
    assert!(
        fs::read_to_string(restored.join("config.json"))
            .unwrap()
            .contains(LOCAL)
    );
    assert!(
        fs::read_to_string(restored.join("config.yaml"))
            .unwrap()
            .contains(VAULT)
    );
    assert_eq!(
        fs::read_to_string(restored.join(".env")).unwrap(),
        format!("SESSION_TOKEN={ENV}\n")
    );
    // The state holds the current values: found (exit 4), and never shown.
    let scans = each_way(&p, &bao, &["scan", "state", "--known-from-store"], 4);
    for run in &scans {
        let out = all_output(&run.output);
        assert!(out.contains("local:agents/kevin/openai#api_key"), "{out}");
        assert!(out.contains("vault:agents/kevin/anthropic#key"), "{out}");
    }
    runs.extend(scans);
    runs.extend(each_way(
        &p,
        &bao,
        &["scan", "state", "--known-from-store", "--format", "sarif"],
        4,
    ));
    let mut planted: Vec<&str> = VALUES.to_vec();
    planted.push(&bao.token);
    assert_no_value_in(&runs, &planted);
}

/// The digests of `data` by the stock tools (and blake3), each in the forms a repository
/// could hold it: hex in both cases, its first 12 hex digits (a truncated id), base64.
fn digests(data: &[u8]) -> Vec<String> {
    let mut raw: Vec<Vec<u8>> = vec![blake3::hash(data).as_bytes().to_vec()];
    for tool in ["sha256sum", "sha1sum", "md5sum"] {
        let mut child = Command::new(tool)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{tool}");
        let hex = String::from_utf8(out.stdout).unwrap();
        let hex = hex.split_whitespace().next().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        raw.push(bytes);
    }
    let mut out = Vec::new();
    for d in raw {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        out.push(hex[..12].to_string());
        out.push(hex[..12].to_uppercase());
        out.push(hex.to_uppercase());
        out.push(hex);
        out.push(STANDARD_NO_PAD.encode(&d));
        out.push(URL_SAFE_NO_PAD.encode(&d));
    }
    out
}

/// The inputs a hash of `value` would be taken of: the value, with a newline (`echo v |
/// sha256sum`), and its base64, hex and JSON-string forms.
fn hashed_forms(value: &str) -> Vec<Vec<u8>> {
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        value.as_bytes().to_vec(),
        format!("{value}\n").into_bytes(),
        STANDARD.encode(value).into_bytes(),
        hex.into_bytes(),
        serde_json::to_string(value).unwrap().into_bytes(),
    ]
}

fn stock(cmd: &str) -> Vec<u8> {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn no_hash_of_a_value_is_in_the_index_the_sidecar_or_anywhere_in_the_repository() {
    let bao = OpenBao::start();
    let p = agent(&bao);
    for value in [LOCAL_OLD, LOCAL] {
        let out = command(&p, &bao)
            .args(["secrets", "set", "local:agents/kevin/openai#api_key"])
            .write_stdin(value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    }
    let out = command(&p, &bao)
        .args(["--json", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let snapshots = p.path().join("backups/snapshots");
    let archive = crate::common::export_all(
        &p.path().join("agentbak.json"),
        &p.path().join("exports"),
        None,
    )
    .remove(0);
    let tar = stock(&format!("zstd -dc '{}'", archive.display()));
    let index = stock(&format!(
        "zstd -dc '{}' | tar -xO agentbak/index.json",
        archive.display()
    ));
    serde_json::from_slice::<serde_json::Value>(&index).expect("the index is JSON");
    let sidecar = fs::read(snapshots.join(format!("{id}.json"))).unwrap();
    let mut places = vec![
        ("the index".to_string(), index),
        ("the sidecar".to_string(), sidecar),
        ("the tar".to_string(), tar),
    ];
    // Every file of the repository, packs decompressed (the tree is in them too).
    places.extend(crate::common::repository_plaintext(
        &p.path().join("backups"),
        None,
    ));
    // The archive's placeholders are really there (so the search looks at the right bytes).
    assert!(
        places[2].1.windows(13).any(|w| w == b"+agentbak:loc"),
        "no placeholder in the tar"
    );
    let mut searched = 0;
    for (i, value) in VALUES.iter().enumerate() {
        for (j, input) in hashed_forms(value).iter().enumerate() {
            for digest in digests(input) {
                for (place, bytes) in &places {
                    searched += 1;
                    assert!(
                        !bytes.windows(digest.len()).any(|w| w == digest.as_bytes()),
                        "{place} holds a digest of planted value #{i} (input form #{j})"
                    );
                }
            }
        }
    }
    assert!(searched > 1000, "{searched}");
}
