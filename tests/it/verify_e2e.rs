//! `agentbak verify` on snapshots made by `agentbak snapshot`: the real pipeline end to end,
//! with a local store and age encryption, before and after a rotation.

use std::path::Path;
use std::process::Output;

use age::secrecy::ExposeSecret;
use assert_cmd::Command;
use serde_json::Value;

const OPENAI: &str = "sk-proj-E2eVerifyValue0123456789abcdefghijklmnop";
const GITHUB: &str = "ghp_E2eVer1fyT0kenQx9Lm2Vb7Rt5Wy8Kd3Hs6Jf";
const GITHUB_NEW: &str = "ghp_R0tatedT0kenQx9Lm2Vb7Rt5Wy8Kd3Hs6JfZ";

fn agentbak(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::cargo_bin("agentbak").unwrap();
    c.current_dir(dir)
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("AGENTBAK_IDENTITY")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("RUST_LOG")
        .args(args);
    if let Some(input) = stdin {
        c.write_stdin(input);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

fn schema_valid(report: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/verify-report.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn handle<'v>(report: &'v Value, name: &str) -> &'v Value {
    report["snapshots"][0]["handles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["handle"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report:#}"))
}

#[test]
fn snapshots_made_by_the_pipeline_verify_clean_before_and_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = age::x25519::Identity::generate();
    std::fs::write(
        root.join("backup.key"),
        format!("{}\n", key.to_string().expose_secret()),
    )
    .unwrap();
    let manifest = format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "encryption": {{ "recipients": ["{}"] }},
  "stores": {{ "local": {{ "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }} }},
  "secrets": [
    {{ "file": "config.json", "json": "/api_key", "handle": "local:agents/{{agent}}/openai#api_key" }},
    {{ "file": ".env", "env": "GITHUB_TOKEN", "handle": "local:agents/{{agent}}/github#token" }} ] }}"#,
        key.to_public()
    );
    std::fs::write(root.join("agentbak.json"), manifest).unwrap();
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::write(
        root.join("state/config.json"),
        format!("{{\n  \"api_key\": \"{OPENAI}\",\n  \"model\": \"gpt\"\n}}\n"),
    )
    .unwrap();
    std::fs::write(root.join("state/.env"), format!("GITHUB_TOKEN={GITHUB}\n")).unwrap();
    std::fs::write(
        root.join("state/memory.md"),
        format!("# notes\nthe token is {GITHUB} (pasted by mistake)\n"),
    )
    .unwrap();
    for (h, v) in [
        ("local:agents/kevin/openai#api_key", OPENAI),
        ("local:agents/kevin/github#token", GITHUB),
    ] {
        ok(agentbak(root, &["secrets", "set", h], Some(v)));
    }
    let out = ok(agentbak(root, &["snapshot"], None));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!id.is_empty(), "{}", text(&out));

    let full = [
        "verify",
        "--identity",
        "backup.key",
        "--against-store",
        "--check-handles",
        "--json",
    ];
    let out = agentbak(root, &full, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    schema_valid(&report);
    let s = &report["snapshots"][0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["deep"], true);
    assert!(s["findings"].as_array().unwrap().is_empty(), "{s:#}");
    let github = handle(&report, "local:agents/kevin/github#token");
    assert_eq!(github["version_at_snapshot"], 1);
    assert_eq!(github["rotated_since"], false);

    // Rotate: the snapshot now holds a handle whose value moved on; its old value (now the
    // previous version) is searched for too, and is in no backup.
    ok(agentbak(
        root,
        &["secrets", "set", "local:agents/kevin/github#token"],
        Some(GITHUB_NEW),
    ));
    let out = agentbak(root, &full, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let github = handle(&report, "local:agents/kevin/github#token");
    assert_eq!(github["version"], 2);
    assert_eq!(github["rotated_since"], true);
    let sources = report["known_values"]["sources"][0].as_str().unwrap();
    assert!(sources.contains("2 current, 1 previous"), "{sources}");

    // The snapshot host has no key: the key-less checks pass.
    let out = agentbak(root, &["verify", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["snapshots"][0]["deep"], false);

    let human = agentbak(root, &full[..5], None);
    for o in [&out, &human] {
        for v in [OPENAI, GITHUB, GITHUB_NEW] {
            assert!(!text(o).contains(&v[8..]), "{}", text(o));
        }
    }
}
