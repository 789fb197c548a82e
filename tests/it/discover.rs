//! `init --discover` rules that follow a living agent, and `agentbak discover [--update]
//! [--import]` against an existing manifest, with the real binary and a local store. Every
//! planted value (and its base64) is searched for in every output, the manifest and the
//! archives.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;

/// Random tokens from a per-run seed: nothing live-looking is committed.
struct Gen(u64);

impl Gen {
    fn new() -> Gen {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Gen(t | 1)
    }

    fn from(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                alphabet[(self.0 % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }

    /// Letters and digits, each class present (the detectors' randomness gates pass).
    fn alnum(&mut self, n: usize) -> String {
        loop {
            let s = self.from(
                b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
                n,
            );
            let has = |f: fn(&u8) -> bool| s.as_bytes().iter().any(f);
            if has(u8::is_ascii_digit) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)
            {
                return s;
            }
        }
    }

    fn letters(&mut self, n: usize) -> String {
        self.from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", n)
    }
}

struct Agent {
    root: tempfile::TempDir,
    values: Vec<(&'static str, String)>,
}

impl Agent {
    fn new() -> Agent {
        let a = Agent {
            root: tempfile::tempdir().unwrap(),
            values: Vec::new(),
        };
        fs::create_dir_all(a.home()).unwrap();
        fs::create_dir_all(a.state()).unwrap();
        a
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("kevin")
    }

    fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    fn manifest(&self) -> String {
        fs::read_to_string(self.dir().join("agentbak.json")).unwrap()
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.state().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// Runs the binary and asserts that no planted value (nor its base64) is in its output.
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(self.dir())
            .env("HOME", self.home())
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("RUST_LOG", "trace")
            .args(["-vvv"])
            .args(args)
            .output()
            .unwrap();
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        self.assert_absent(&all, &format!("output of {args:?}"));
        out
    }

    fn assert_absent(&self, haystack: &[u8], what: &str) {
        use base64::Engine;
        for (name, value) in &self.values {
            let b64 = base64::engine::general_purpose::STANDARD.encode(value);
            for needle in [value.as_str(), b64.as_str()] {
                assert!(
                    !haystack
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes()),
                    "{name} appears in the {what}"
                );
            }
        }
    }

    fn each_archive(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> = fs::read_dir(self.dir().join("backups/snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let tar = std::process::Command::new("zstd")
                    .arg("-dc")
                    .arg(p)
                    .output()
                    .unwrap();
                assert!(tar.status.success());
                tar.stdout
            })
            .collect()
    }

    fn archives(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in fs::read_dir(self.dir().join("backups/snapshots")).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".tar.zst") {
                let tar = std::process::Command::new("zstd")
                    .arg("-dc")
                    .arg(&p)
                    .output()
                    .unwrap();
                assert!(tar.status.success());
                all.extend(tar.stdout);
            }
        }
        all
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(file, locator kind, handle)` of every rule of a manifest.
fn rules(manifest: &str) -> Vec<(String, String, String)> {
    let m: serde_json::Value = serde_json::from_str(manifest).unwrap();
    m["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let o = r.as_object().unwrap();
            let kind = ["json", "yaml", "toml", "env", "ini", "regex", "whole_file"]
                .into_iter()
                .find(|k| o.contains_key(*k))
                .unwrap();
            let at = match &o[kind] {
                serde_json::Value::String(s) if kind != "regex" => format!("{kind} {s}"),
                _ => kind.to_string(),
            };
            (
                o["file"].as_str().unwrap().to_string(),
                at,
                o["handle"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A transcript line as Codex writes one: a tool output JSON-escaped inside a JSON string.
fn transcript(session: &str, output: &str) -> String {
    let inner = serde_json::json!({ "output": output, "metadata": { "exit_code": 0 } }).to_string();
    let line = serde_json::json!({
        "timestamp": "2025-06-01T09:13:09.400Z",
        "type": "response_item",
        "payload": { "type": "function_call_output", "call_id": session, "output": inner },
    });
    format!("{line}\n")
}

/// Issue 19: init matched only the one session file it saw, with a handle ending `#nHF_TOKEN`
/// (residue of the `\n` escape), and missed a letters-only password while proposing rules
/// for references, hints, header names and ids. Now: glob rules for the sessions, handles
/// named after the variable, and the next day's transcript is covered without a new rule.
#[test]
fn init_rules_follow_the_agent_into_the_next_days_sessions() {
    let mut g = Gen::new();
    let mut a = Agent::new();
    let gh = format!("ghp_{}", g.alnum(36));
    let hf = format!("hf_{}", g.letters(34));
    let password = g.letters(20);
    a.values = vec![
        ("gh", gh.clone()),
        ("hf", hf.clone()),
        ("password", password.clone()),
    ];
    a.write(
        "sessions/2025/06/01/rollout-2025-06-01T09-13-00-7d81c5e2-0b9a-4c3e-8f1d-2a6b4c8e0f13.jsonl",
        &transcript("call_1", &format!("PATH=/usr/bin\nHF_TOKEN={hf}\nexport GH_TOKEN={gh}\n")),
    );
    a.write(
        "config.json",
        &format!(
            "{{\n  \"db\": {{ \"user\": \"kevin\", \"password\": \"{password}\", \"password_hint\": \"the usual one\" }},\n  \"web\": {{ \"csrf_token_name\": \"X-CSRF-Token\", \"session_id\": \"01J9ZQ4X3K8M2N6P5R7T9V1W3Y\" }}\n}}\n"
        ),
    );
    let out = a.run(&["init", "--discover", "--import"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let manifest = a.manifest();
    a.assert_absent(manifest.as_bytes(), "manifest");
    let mut got = rules(&manifest);
    got.sort();
    let want = [
        (
            "config.json",
            "json /db/password",
            "local:agents/{agent}/config#db_password",
        ),
        (
            "sessions/**/*.jsonl",
            "regex",
            "local:agents/{agent}/sessions#GH_TOKEN",
        ),
        (
            "sessions/**/*.jsonl",
            "regex",
            "local:agents/{agent}/sessions#HF_TOKEN",
        ),
    ]
    .map(|(f, l, h)| (f.to_string(), l.to_string(), h.to_string()));
    assert_eq!(got, want, "{manifest}");
    let out = a.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The next day: a new transcript in a new folder, the token escaped after a `\n`.
    a.write(
        "sessions/2025/06/02/rollout-2025-06-02T14-01-00-0b6c2f1e-3d4a-4e5f-9a8b-7c6d5e4f3a2b.jsonl",
        &transcript("call_2", &format!("$ gh auth status\nGH_TOKEN={gh}\nok\n")),
    );
    let out = a.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = a.run(&["discover"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to add"),
        "{}",
        text(&out)
    );
    assert_eq!(
        a.manifest(),
        manifest,
        "discover without --update writes nothing"
    );
    a.assert_absent(&a.archives(), "archives");
    let out = a.run(&["restore", "latest", "--target", "restored", "--rehydrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for rel in [
        "config.json",
        "sessions/2025/06/02/rollout-2025-06-02T14-01-00-0b6c2f1e-3d4a-4e5f-9a8b-7c6d5e4f3a2b.jsonl",
    ] {
        assert_eq!(
            fs::read(a.dir().join("restored").join(rel)).unwrap(),
            fs::read(a.state().join(rel)).unwrap(),
            "{rel}"
        );
    }
}

/// The agent adds an MCP server with a token in its env block and a config with a
/// letters-only password; snapshot captures both (exit 3). `discover` proposes the two named
/// rules as a diff, folding the captured handles, and writes nothing (exit 3); `--import`
/// inserts them into the manifest, every other byte kept, and stores the values; the next
/// snapshot has nothing to capture (exit 0) and `discover` nothing to add (exit 0).
#[test]
fn discover_names_captured_secrets_and_update_inserts_the_rules_keeping_the_manifest() {
    let mut g = Gen::new();
    let mut a = Agent::new();
    let openai = format!("sk-proj-{}", g.alnum(48));
    let slack = format!(
        "xoxb-{}-{}-{}",
        g.from(b"123456789", 11),
        g.from(b"123456789", 13),
        g.alnum(24)
    );
    let password = g.letters(20);
    a.values = vec![
        ("openai", openai.clone()),
        ("slack", slack.clone()),
        ("password", password.clone()),
    ];
    a.write(
        "config.json",
        &format!("{{ \"openai\": {{ \"api_key\": \"{openai}\" }} }}\n"),
    );
    let out = a.run(&["init", "--discover", "--import"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A person's edit: a comment-free reformat and a key order init would not write.
    let manifest = a.manifest().replace(
        "  \"retention\"",
        "  \"detect\": { \"on_unknown\": \"capture\" },\n  \"retention\"",
    );
    fs::write(a.dir().join("agentbak.json"), &manifest).unwrap();

    a.write(
        "mcp.json",
        &format!(
            "{{\n  \"mcpServers\": {{\n    \"slack\": {{ \"command\": \"npx\", \"env\": {{ \"SLACK_BOT_TOKEN\": \"{slack}\", \"SLACK_TEAM_ID\": \"T01ABCDEFGH\" }} }}\n  }}\n}}\n"
        ),
    );
    a.write(
        "identity/accounts.json",
        &format!(
            "{{ \"intranet\": {{ \"username\": \"kevin\", \"password\": \"{password}\" }} }}\n"
        ),
    );
    let out = a.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // The listing: one `+` line per rule, the captured handle it names, no value.
    let out = a.run(&["discover"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let added: Vec<&str> = stdout.lines().filter(|l| l.starts_with("+ ")).collect();
    assert_eq!(added.len(), 2, "{stdout}");
    let plus: Vec<serde_json::Value> = added
        .iter()
        .map(|l| serde_json::from_str(&l[2..]).unwrap())
        .collect();
    assert_eq!(
        plus[0],
        serde_json::json!({"file": "identity/accounts.json", "json": "/intranet/password",
            "handle": "local:agents/{agent}/identity/accounts#intranet_password"})
    );
    assert_eq!(
        plus[1],
        serde_json::json!({"file": "mcp.json", "json": "/mcpServers/slack/env/SLACK_BOT_TOKEN",
            "handle": "local:agents/{agent}/mcp#mcpServers_slack_env_SLACK_BOT_TOKEN"})
    );
    // The gate captured the Slack token (a provider rule) and the letters-only password
    // (password-assignment): discovery names both.
    let notes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("    ")).collect();
    assert_eq!(notes.len(), 2, "{stdout}");
    assert!(
        notes[0].contains("names the captured local:agents/kevin/captured#password-assignment-"),
        "{stdout}"
    );
    assert!(
        notes[1].contains("names the captured local:agents/kevin/captured#slack-bot-token-"),
        "{stdout}"
    );
    assert!(stdout.contains("discover --update"), "{stdout}");
    assert_eq!(
        a.manifest(),
        manifest,
        "no --update: the manifest is untouched"
    );

    let out = a.run(&["discover", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["proposed"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["updated"], false);

    // --import: the rules are inserted after the last one, nothing else moves.
    let out = a.run(&["discover", "--import"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("added 2 rule(s)"), "{}", text(&out));
    let updated = a.manifest();
    a.assert_absent(updated.as_bytes(), "manifest");
    let last_old_rule = manifest
        .lines()
        .rfind(|l| l.trim_start().starts_with("{ \"file\""))
        .unwrap();
    let cut = manifest.find(last_old_rule).unwrap() + last_old_rule.len();
    assert!(updated.starts_with(&manifest[..cut]), "{updated}");
    assert!(updated.ends_with(&manifest[cut..]), "{updated}");
    let middle = &updated[cut..updated.len() - (manifest.len() - cut)];
    let new_lines: Vec<serde_json::Value> = middle
        .split(",\n    ")
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(new_lines, plus, "{middle:?}");

    // The values are in the store under the new handles.
    let out = a.run(&[
        "secrets",
        "get",
        "local:agents/kevin/mcp#mcpServers_slack_env_SLACK_BOT_TOKEN",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = a.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = a.run(&["discover"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to add"), "{}", text(&out));
    // Every archive, the first included: the gate captured both values from the start.
    for archive in a.each_archive() {
        a.assert_absent(&archive, "an archive");
    }
}
