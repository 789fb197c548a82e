//! The CLI's words under review: `--help` of every command and subcommand, and the human output
//! of the main commands (snapshot, list, verify, restore, scan), as insta snapshots in
//! `tests/it/snapshots/`. A change to what a user reads shows up as a diff in review.
//!
//! The real binary runs on a real project (local store, unencrypted repository). What varies
//! from run to run is normalised by filters: snapshot ids, times, the host, sizes, temporary
//! paths and the number of builtin rules. A changed text fails the test; to accept it, run the
//! test with `INSTA_UPDATE=always` (or `cargo insta review`, where installed) and commit the
//! `.snap` files.
//!
//! Every output is also searched for the planted secret value: these are the texts users paste
//! into issues.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use agentbak::cli::Cli;
use clap::CommandFactory;

const OPENAI: &str = "sk-proj-Planted0penAiValue1234567890abcdefXYZ";
/// A GitHub token shape the builtin rules know (not a real token).
const GITHUB: &str = "ghp_Pl4ntedT0kenQx9Lm2Vb7Rt5Wy8Kd3Hs6JfA";

/// The binary with a clean environment and a fixed width for help text.
fn agentbak(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agentbak"));
    c.current_dir(dir)
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("AGENTBAK_IDENTITY")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("RUST_LOG");
    c
}

/// Exit code, stdout and stderr as one text; asserts that no planted value is in it.
fn render(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = format!(
        "exit: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
            .code()
            .map_or("signal".to_string(), |c| c.to_string())
    );
    for planted in [OPENAI, GITHUB] {
        assert!(
            !text.contains(planted),
            "a planted value in the output:\n{text}"
        );
    }
    text
}

/// The filters for what varies between runs.
fn settings(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    let dir = dir.canonicalize().unwrap();
    s.add_filter(&regex::escape(&dir.display().to_string()), "[DIR]");
    s.add_filter(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}", "[ID]");
    s.add_filter(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})",
        "[TIME]",
    );
    // The host's column is as wide as its name: the padding goes with it.
    s.add_filter(
        &format!(r"\b{}\b *", regex::escape(&agentbak::repo::host_name())),
        "[HOST]  ",
    );
    s.add_filter(r"\bHOST +", "HOST  ");
    s.add_filter(r"\b[0-9]+(\.[0-9]+)? (B|KiB|MiB|GiB|bytes)\b", "[SIZE]");
    s.add_filter(r"\b[0-9]+ rule\(s\)", "[N] rule(s)");
    s
}

/// Every command path of the CLI (`[]`, `["secrets"]`, `["secrets", "set"]`, …), `help` left
/// out (it prints the same texts).
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        out.push(prefix.to_vec());
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" || sub.is_hide_set() {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    out
}

#[test]
fn help_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let paths = command_paths();
    assert!(paths.len() > 12, "{paths:?}");
    let settings = settings(dir.path());
    for path in paths {
        let out = agentbak(dir.path())
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{path:?}: {}", render(&out));
        let name = if path.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", path.join("_"))
        };
        settings.bind(|| insta::assert_snapshot!(name, render(&out)));
    }
}

/// A project: manifest, local store holding the openai key, a state folder whose files all
/// have one fixed time (so the archive, and its size, is the same on every run).
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("agentbak.json"),
            r#"{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": { "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" } },
  "secrets": [ { "file": "config/credentials.json", "json": "/openai/api_key",
                 "handle": "local:agents/{agent}/openai#api_key" } ] }"#,
        )
        .unwrap();
        let state = root.join("state");
        std::fs::create_dir_all(state.join("config")).unwrap();
        std::fs::write(
            state.join("config/credentials.json"),
            format!(
                "{{\n  \"openai\": {{ \"api_key\": \"{OPENAI}\" }},\n  \"model\": \"gpt-5\"\n}}\n"
            ),
        )
        .unwrap();
        std::fs::write(state.join("notes.md"), "# notes\nnothing secret here\n").unwrap();
        let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        for p in ["config/credentials.json", "notes.md", "config", ""] {
            let f = std::fs::File::open(state.join(p)).unwrap();
            f.set_modified(fixed).unwrap();
        }
        let p = Project { dir };
        let out = p
            .run(
                &["secrets", "set", "local:agents/kevin/openai#api_key"],
                Some(OPENAI),
            )
            .unwrap();
        assert!(out.status.success(), "{}", render(&out));
        p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> std::io::Result<Output> {
        use std::io::Write as _;
        let mut child = agentbak(self.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes())?;
        }
        drop(input);
        child.wait_with_output()
    }

    /// Runs `args` and snapshots the output as `name`.
    fn snap(&self, name: &str, args: &[&str]) -> Output {
        let out = self.run(args, None).unwrap();
        settings(self.path()).bind(|| insta::assert_snapshot!(name, render(&out)));
        out
    }
}

#[test]
fn human_output_of_the_main_commands() {
    let p = Project::new();
    let made = p.snap("snapshot", &["snapshot", "--tag", "nightly"]);
    assert_eq!(made.status.code(), Some(0));
    p.snap("list", &["list"]);
    p.snap("verify", &["verify"]);
    let restored = p.snap(
        "restore",
        &["restore", "latest", "--target", "./restored", "--rehydrate"],
    );
    assert_eq!(restored.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(p.path().join("restored/config/credentials.json")).unwrap(),
        std::fs::read_to_string(p.path().join("state/config/credentials.json")).unwrap()
    );
    // scan: a clean file, then a provider token and the managed value in plain text.
    p.snap("scan_clean", &["scan", "state/notes.md"]);
    std::fs::write(p.path().join("leak.txt"), format!("token {GITHUB}\n")).unwrap();
    let leaked = p.snap("scan_findings", &["scan", "leak.txt", "state"]);
    assert_eq!(leaked.status.code(), Some(4));
}
