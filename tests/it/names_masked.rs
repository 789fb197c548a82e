//! A token that is a file or folder name is never printed as is (issue 17): `snapshot` refused
//! such a state but showed `sessions/ghp_….json` on stderr, in `--json` and in JSON logs.
//! The real binary runs on a state holding token-named entries, at every verbosity, and no
//! output may hold a planted token; the masked name must still be there, so that the user
//! learns which file to deal with.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

use crate::restore_fixture::all_output;

/// A token that is a file name (`ghp_` and 36 characters, as GitHub issues them).
const FILE_TOKEN: &str = "ghp_PlantedNameTok3nAbcdefghijklmnopq123";
/// A token that is a folder name.
const FOLDER_TOKEN: &str = "ghp_FolderTok3nAbcdefghijklmnopqrstuvw12";
/// A token that is the name of a FIFO (skipped by the walk, with a warning in the log).
const FIFO_TOKEN: &str = "ghp_FifoTok3nAbcdefghijklmnopqrstuvwx123";

fn tokens() -> [&'static str; 3] {
    [FILE_TOKEN, FOLDER_TOKEN, FIFO_TOKEN]
}

/// A project whose state holds token-named entries; `rule` is the manifest's `secrets`.
fn project(session_json: &str, rule: &str) -> tempfile::TempDir {
    for t in tokens() {
        assert_eq!(t.len(), 40, "{t}: a token the github-pat rule finds");
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("sessions")).unwrap();
    std::fs::create_dir_all(state.join(FOLDER_TOKEN)).unwrap();
    std::fs::write(
        state.join("sessions").join(format!("{FILE_TOKEN}.json")),
        session_json,
    )
    .unwrap();
    std::fs::write(state.join(FOLDER_TOKEN).join("notes.md"), "notes\n").unwrap();
    std::fs::write(state.join("README.md"), "an agent\n").unwrap();
    let fifo = state.join(FIFO_TOKEN);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(
        dir.path().join("agentbak.json"),
        format!(
            r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
                 "stores": {{ "env": {{ "kind": "env" }} }}, "secrets": [{rule}] }}"#
        ),
    )
    .unwrap();
    dir
}

fn agentbak(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("agentbak").unwrap();
    c.current_dir(dir)
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("RUST_LOG");
    c
}

/// Runs `args` at every verbosity; checks the exit code and that no token shows; returns
/// each run's name and output.
fn every_verbosity(dir: &Path, args: &[&str], code: i32) -> Vec<(String, Output)> {
    let runs: [(&str, &[&str], Option<&str>); 5] = [
        ("plain", &[], None),
        ("-vvv", &["-vvv"], None),
        ("RUST_LOG=trace", &[], Some("trace")),
        (
            "json logs",
            &["-vvv", "--log-format", "json"],
            Some("trace"),
        ),
        ("--json", &["--json", "-vvv"], None),
    ];
    let mut out = Vec::new();
    for (name, flags, rust_log) in runs {
        let mut cmd = agentbak(dir);
        cmd.args(flags).args(args);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let o = cmd.output().unwrap();
        let text = all_output(&o);
        for t in tokens() {
            assert!(
                !text.contains(t),
                "{name}: a token that is a name was printed:\n{text}"
            );
        }
        assert_eq!(o.status.code(), Some(code), "{name}: {text}");
        out.push((name.to_string(), o));
    }
    out
}

#[test]
fn a_refused_snapshot_never_prints_a_token_that_is_a_name() {
    // The rule finds no `/k` in the session file: a warning that names the file.
    let d = project(
        r#"{"model": "gpt-5"}"#,
        r#"{ "file": "sessions/*.json", "json": "/k", "handle": "env:SESSION_KEY" }"#,
    );
    for (name, o) in every_verbosity(d.path(), &["snapshot"], 4) {
        let text = all_output(&o);
        // Still says which files: the masked names are there.
        assert!(text.contains("sessions/ghp_…"), "{name}: {text}");
        assert!(text.contains("/notes.md"), "{name}: {text}");
        // Only an env store: nothing can be captured, and the report says why.
        assert!(
            text.contains("cannot be captured: the manifest has no key/value store"),
            "{name}: {text}"
        );
        if name == "--json" {
            let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let paths: Vec<&str> = doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap())
                .collect();
            assert!(
                paths.contains(&"sessions/ghp_…23 (40 chars).json"),
                "{paths:?}"
            );
            assert_eq!(doc["id"], serde_json::Value::Null);
        } else {
            // The FIFO is skipped with a warning in the log; its name is masked there too.
            assert!(text.contains("a FIFO: skipped"), "{name}: {text}");
        }
    }
    assert!(
        !d.path().join("backups/snapshots").exists() || {
            let n = std::fs::read_dir(d.path().join("backups/snapshots"))
                .unwrap()
                .count();
            n == 0
        }
    );
    // A dry run lists what it would redact: no name shows there either.
    every_verbosity(d.path(), &["snapshot", "--dry-run"], 4);
}

#[test]
fn an_error_on_a_token_named_file_masks_the_name() {
    // The rule reads the session file as JSON, and it is not: the snapshot fails on it.
    let d = project(
        r#"{"k": broken"#,
        r#"{ "file": "sessions/*.json", "json": "/k", "handle": "env:SESSION_KEY" }"#,
    );
    for (name, o) in every_verbosity(d.path(), &["snapshot"], 1) {
        let text = all_output(&o);
        assert!(
            text.contains("sessions/ghp_…23 (40 chars).json:1:7: not valid JSON"),
            "{name}: {text}"
        );
    }
}

#[test]
fn scan_finds_a_token_in_a_name_and_never_prints_it() {
    let d = project(
        &format!(
            r#"{{"token": "{}"}}"#,
            "ghp_C0ntentTok3nAbcdefghijklmnopqrstuv12"
        ),
        "",
    );
    for format in ["human", "json", "sarif"] {
        let o = agentbak(d.path())
            .args(["scan", "state", "--format", format])
            .output()
            .unwrap();
        let text = all_output(&o);
        assert_eq!(o.status.code(), Some(4), "{format}: {text}");
        for t in tokens() {
            assert!(!text.contains(t), "{format}: a name was printed:\n{text}");
        }
        if format == "human" {
            // Each name is a finding of its own, and the content finding names its file
            // masked.
            assert!(
                text.contains("state/sessions/ghp_…23 (40 chars).json (file name):1:16"),
                "{text}"
            );
            assert!(
                text.contains("state/ghp_…12 (40 chars)/notes.md (file name):1:7"),
                "{text}"
            );
            assert!(
                text.contains("state/sessions/ghp_…23 (40 chars).json:1:12: error github-pat"),
                "{text}"
            );
        }
    }
}

#[test]
fn a_known_value_that_is_a_name_is_masked_too() {
    // No rule knows this shape: only the known values (found after the walk) can mask it.
    const VALUE: &str = "kevin-Private-Value-93xQz";
    let d = project(
        &format!(r#"{{"k": "{VALUE}"}}"#),
        r#"{ "file": "sessions/*.json", "json": "/k", "handle": "env:SESSION_KEY" }"#,
    );
    let state = d.path().join("state");
    std::fs::write(state.join(format!("copy-of-{VALUE}.txt")), "x\n").unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(state.join(format!("{VALUE}.fifo")))
        .status()
        .unwrap();
    assert!(made.success());
    for (name, o) in every_verbosity(d.path(), &["snapshot"], 4) {
        let text = all_output(&o);
        assert!(!text.contains(VALUE), "{name}: {text}");
        assert!(text.contains("copy-of-"), "{name}: {text}");
        if name != "--json" {
            assert!(text.contains(".fifo: a FIFO: skipped"), "{name}: {text}");
        }
    }
}
