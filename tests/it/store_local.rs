//! The local store from outside: concurrent writer processes lose no update, files are `0600`,
//! and the stock `age` binary opens the store with its identity (recovery by hand).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const MANIFEST: &str = r#"{
  "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": { "local": { "kind": "local", "path": "./store/local.age",
                         "identity": "./keys/local.key", "max_versions": 20 } }
}"#;

#[test]
fn concurrent_writers_lose_no_update_and_age_opens_the_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agentbak.json"), MANIFEST).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("agentbak");
    // Eight processes write eight fields of one secret at the same moment.
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut child = Command::new(&bin)
                .current_dir(dir.path())
                .args(["secrets", "set", &format!("local:shared#field{i}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("planted-concurrent-{i}").as_bytes())
                .unwrap();
            child
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    for i in 0..8 {
        let out = Command::new(&bin)
            .current_dir(dir.path())
            .args([
                "secrets",
                "get",
                "--reveal",
                &format!("local:shared#field{i}"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.stdout, format!("planted-concurrent-{i}").as_bytes());
    }
    let json = Command::new(&bin)
        .current_dir(dir.path())
        .args(["--json", "secrets", "get", "local:shared#field0"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["status"]["version"], 8, "one version per writer: {doc}");

    for f in ["store/local.age", "keys/local.key"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let raw = std::fs::read(dir.path().join("store/local.age")).unwrap();
    assert!(!raw.windows(7).any(|w| w == b"planted"));

    // Recovery by hand with the stock age binary.
    let plain = Command::new("age")
        .args(["-d", "-i", "keys/local.key", "store/local.age"])
        .current_dir(dir.path())
        .output()
        .expect("the `age` binary (scripts/tools.sh installs it)");
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(doc["format"], 2);
    assert_eq!(doc["secrets"]["shared"]["current"], 8);
    // Each writer's field records the version it was written in, not the newest one.
    let mut changed: Vec<u64> = (0..8)
        .map(|i| doc["secrets"]["shared"]["changed"][format!("field{i}")]["version"].as_u64())
        .map(|v| v.expect("a per-field change record"))
        .collect();
    changed.sort();
    assert_eq!(changed, (1..=8).collect::<Vec<u64>>());
}
