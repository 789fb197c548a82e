//! Every version a store keeps is a known value, and versions are per field: end to end through
//! the real binary, with the local store and a real OpenBao.
//!
//! - A log that still holds a value from before two rotations is snapshotted with a
//!   version-pinned placeholder (`+agentbak:STORE:PATH@N:FIELD+`) and restores byte-identical
//!   with `--rehydrate`, while the declared location gets the current value.
//! - Rotating one field of a secret does not mark its sibling rotated (`verify
//!   --check-handles`), nor move the sibling's last change (`secrets status`).
//! - Every output is searched for every planted value.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common;

/// Three values of one field, oldest first; the state's declared location holds the newest.
const V1: &str = "sk-proj-FirstPlantedValue0000000000000000aaaa";
const V2: &str = "sk-proj-SecondPlantedValue111111111111111bbbb";
const V3: &str = "sk-proj-ThirdPlantedValue2222222222222222cccc";
const ORG: &str = "org-PlantedSiblingValue33333333";
const ORG_NEW: &str = "org-PlantedSiblingRotated444444";
const PLANTED: [&str; 5] = [V1, V2, V3, ORG, ORG_NEW];

fn manifest(store: &str) -> String {
    format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": {store},
  "secrets": [
    {{ "file": "config/credentials.json", "json": "/openai/api_key",
       "handle": "main:agents/{{agent}}/openai#api_key" }},
    {{ "file": "config/credentials.json", "json": "/openai/org",
       "handle": "main:agents/{{agent}}/openai#org" }}
  ] }}"#
    )
}

fn local_manifest() -> String {
    manifest(
        r#"{ "main": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" } }"#,
    )
}

fn vault_manifest(addr: &str) -> String {
    manifest(&format!(
        r#"{{ "main": {{ "kind": "vault", "address": "{addr}", "mount": "secret" }} }}"#
    ))
}

struct Project {
    dir: tempfile::TempDir,
    token: Option<String>,
}

impl Project {
    fn new(manifest: &str, token: Option<&str>) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agentbak.json"), manifest).unwrap();
        std::fs::create_dir_all(dir.path().join("state/config")).unwrap();
        std::fs::create_dir_all(dir.path().join("state/logs")).unwrap();
        Project {
            dir,
            token: token.map(str::to_string),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write as _;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentbak"));
        cmd.current_dir(self.path())
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("RUST_LOG")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(t) = &self.token {
            cmd.env("VAULT_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let all = text(&out);
        for v in PLANTED {
            assert!(
                !all.contains(v),
                "a planted value in the output of {args:?}"
            );
        }
        out
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let out = self.run(args, stdin);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    }

    fn set(&self, handle: &str, value: &str) {
        self.ok(&["secrets", "set", handle], Some(value));
    }

    fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.path().join("state").join(rel), content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn credentials(key: &str, org: &str) -> String {
    format!("{{\n  \"openai\": {{ \"api_key\": \"{key}\", \"org\": \"{org}\" }}\n}}\n")
}

/// A log of the agent's life: each key it used, one of them JSON-escaped in a tool output.
fn log() -> String {
    format!(
        "09:00 start with key {V1}\n\
         10:00 {{\"tool\":\"shell\",\"output\":\"export OPENAI_API_KEY={V2}\\n\"}}\n\
         11:00 rotated again; key {V3} org {ORG}\n"
    )
}

/// Sets V1, V2 (and the sibling org), then V3; writes the state; snapshots; checks the archive
/// holds pinned placeholders for the old values and no value; restores and compares.
fn old_versions_restore_exactly(p: &Project) {
    p.set("main:agents/kevin/openai#api_key", V1);
    p.set("main:agents/kevin/openai#org", ORG);
    p.set("main:agents/kevin/openai#api_key", V2);
    p.set("main:agents/kevin/openai#api_key", V3);
    p.write("config/credentials.json", &credentials(V3, ORG));
    p.write("logs/agent.log", &log());

    // Most verbose logging: the histories, pins and rehydration log nothing of a value.
    let out = p.ok(&["--json", "-vvv", "snapshot"], None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "{report:#}"
    );

    // Without --rehydrate: the placeholders as archived.
    p.ok(&["restore", "latest", "--target", "./plain"], None);
    let archived = p.read("plain/logs/agent.log");
    assert_eq!(
        archived,
        "09:00 start with key +agentbak:main:agents/kevin/openai@1:api_key+\n\
         10:00 {\"tool\":\"shell\",\"output\":\"export OPENAI_API_KEY=+agentbak:main:agents/kevin/openai@3:api_key+\\n\"}\n\
         11:00 rotated again; key +agentbak:main:agents/kevin/openai:api_key+ org +agentbak:main:agents/kevin/openai:org+\n"
    );
    let mut everything = Vec::new();
    for entry in walk(&p.path().join("backups")) {
        everything.extend(std::fs::read(entry).unwrap());
    }
    for v in PLANTED {
        assert!(
            !everything.windows(v.len()).any(|w| w == v.as_bytes()),
            "a planted value in the repository"
        );
    }

    p.ok(
        &[
            "-vvv",
            "--log-format",
            "json",
            "restore",
            "latest",
            "--target",
            "./restored",
            "--rehydrate",
        ],
        None,
    );
    for rel in ["logs/agent.log", "config/credentials.json"] {
        assert_eq!(
            p.read(&format!("restored/{rel}")),
            p.read(&format!("state/{rel}")),
            "{rel} restores byte-identical"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_log_holding_old_versions_restores_byte_identical_after_two_rotations() {
    old_versions_restore_exactly(&Project::new(&local_manifest(), None));
}

#[test]
fn a_log_holding_old_versions_restores_byte_identical_with_openbao() {
    let bao = common::OpenBao::start();
    let p = Project::new(&vault_manifest(&bao.addr), Some(&bao.token));
    old_versions_restore_exactly(&p);
}

/// Rotating one field of a secret leaves its sibling's change where it was: `secrets status`
/// and `verify --check-handles` per field.
fn a_siblings_rotation_leaves_a_field_alone(p: &Project) {
    p.set("main:agents/kevin/openai#api_key", V1);
    p.set("main:agents/kevin/openai#org", ORG);
    p.write("config/credentials.json", &credentials(V1, ORG));
    p.ok(&["snapshot"], None);
    p.set("main:agents/kevin/openai#org", ORG_NEW);

    let out = p.ok(&["--json", "-vvv", "secrets", "status"], None);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |h: &str| {
        status
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["handle"] == h)
            .cloned()
            .unwrap()
    };
    let key = row("main:agents/kevin/openai#api_key");
    let org = row("main:agents/kevin/openai#org");
    assert_eq!(
        (key["version"].as_u64(), org["version"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(key["changed_version"], 1, "{key:#}");
    assert_eq!(org["changed_version"], 3, "{org:#}");
    assert!(
        key["changed_at"].as_str().unwrap() < org["changed_at"].as_str().unwrap()
            || key["age_days"].as_f64() > org["age_days"].as_f64(),
        "the key's age counts from its own change: {key:#} {org:#}"
    );

    let out = p.ok(&["--json", "verify", "--check-handles"], None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let handles = report["snapshots"][0]["handles"]
        .as_array()
        .unwrap()
        .clone();
    let check = |h: &str| handles.iter().find(|c| c["handle"] == h).cloned().unwrap();
    assert_eq!(
        check("main:agents/kevin/openai#api_key")["rotated_since"],
        false
    );
    assert_eq!(check("main:agents/kevin/openai#org")["rotated_since"], true);
}

#[test]
fn rotating_one_field_does_not_rotate_its_sibling_local() {
    a_siblings_rotation_leaves_a_field_alone(&Project::new(&local_manifest(), None));
}

#[test]
fn rotating_one_field_does_not_rotate_its_sibling_openbao() {
    let bao = common::OpenBao::start();
    let p = Project::new(&vault_manifest(&bao.addr), Some(&bao.token));
    a_siblings_rotation_leaves_a_field_alone(&p);
}
