//! `init --discover` and `discover` on an agent's live SQLite memory: a WAL database with its
//! writer open and rows only in the WAL, holding provider keys in a `credentials` table, an
//! `OPENAI_API_KEY` row in a `settings` key/value table, an `api_token` per user and a token
//! pasted inside a message. Discovery proposes exactly the `sqlite` rules (table, column,
//! `where`) of the cells, none for the message; `--import` stores the values; a snapshot
//! captures only the pasted token; `discover` names a key the agent adds later. No planted
//! value is in any output, the manifest or the repository.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use rusqlite::Connection;

use crate::common::repository_plaintext;
use crate::restore_fixture::{all_output, contains, leak_forms};

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

    /// Letters and digits, each class present (the detectors' randomness gates pass).
    fn alnum(&mut self, n: usize) -> String {
        let alphabet = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        loop {
            let s: String = (0..n)
                .map(|_| {
                    self.0 ^= self.0 << 13;
                    self.0 ^= self.0 >> 7;
                    self.0 ^= self.0 << 17;
                    alphabet[(self.0 % alphabet.len() as u64) as usize] as char
                })
                .collect();
            let has = |f: fn(&u8) -> bool| s.as_bytes().iter().any(f);
            if has(u8::is_ascii_digit) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)
            {
                return s;
            }
        }
    }
}

/// The agent's folder (`kevin/state/memory.db`), a home for the local store, the planted
/// values by name.
struct Agent {
    root: tempfile::TempDir,
    values: Vec<(&'static str, String)>,
}

impl Agent {
    fn dir(&self) -> PathBuf {
        self.root.path().join("kevin")
    }

    fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    fn value(&self, name: &str) -> &str {
        &self.values.iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn command(&self, args: &[&str]) -> Output {
        Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(self.dir())
            .env("HOME", self.root.path().join("home"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("RUST_LOG", "trace")
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs at `-vvv` with `RUST_LOG=trace` and asserts that no form of a planted value is in
    /// its output.
    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(&[&["-vvv"], args].concat());
        self.assert_absent(all_output(&out).as_bytes(), &format!("output of {args:?}"));
        out
    }

    fn assert_absent(&self, haystack: &[u8], what: &str) {
        for (name, value) in &self.values {
            for form in leak_forms(value) {
                assert!(
                    !haystack.windows(form.len()).any(|w| w == form.as_slice()),
                    "a form of {name} is in the {what}"
                );
            }
        }
    }

    fn manifest(&self) -> String {
        fs::read_to_string(self.dir().join("agentbak.json")).unwrap()
    }
}

/// The agent's database, in WAL mode with checkpoints off: the harmless rows and the first
/// provider key checkpointed into the main file, everything else only in the WAL, and the
/// writer returned open.
fn agent_database(a: &Agent) -> Connection {
    let conn = Connection::open(a.state().join("memory.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE credentials (name TEXT PRIMARY KEY, value TEXT);
         CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
         CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password_hash TEXT,
           api_token TEXT);
         CREATE TABLE messages (id INTEGER PRIMARY KEY, role TEXT, content TEXT);
         INSERT INTO settings VALUES ('theme', 'dark'), ('model', 'gpt-4o-mini'),
           ('max_tokens', '4096'), ('api_key_env', 'OPENAI_API_KEY');",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO credentials VALUES ('github', ?1)",
        [a.value("github")],
    )
    .unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    // From here on, only in the WAL.
    conn.execute(
        "INSERT INTO credentials VALUES ('openai', ?1)",
        [a.value("openai")],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO settings VALUES ('OPENAI_API_KEY', ?1)",
        [a.value("settings")],
    )
    .unwrap();
    let hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    for (id, email, token) in [
        (1, "kevin@example.net", Some(a.value("token_1"))),
        (2, "ana@example.net", Some(a.value("token_2"))),
        (3, "bot@example.net", None),
    ] {
        conn.execute(
            "INSERT INTO users VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, email, hash, token],
        )
        .unwrap();
    }
    for i in 0..40 {
        conn.execute(
            "INSERT INTO messages (role, content) VALUES ('user', ?1)",
            [format!("note {i}: remember the milk")],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO messages (role, content) VALUES ('user', ?1)",
        [format!(
            "Here is the token for the release job: {} - please use it for the \
             nightly build and do not share it with anyone else.",
            a.value("pasted")
        )],
    )
    .unwrap();
    conn
}

/// The `sqlite` object and handle of every rule of a manifest, in its order.
fn sqlite_rules(manifest: &str) -> Vec<(serde_json::Value, String)> {
    let m: serde_json::Value = serde_json::from_str(manifest).unwrap();
    m["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["file"], "memory.db", "{r}");
            (
                r["sqlite"].clone(),
                r["handle"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn discovery_proposes_sqlite_rules_for_a_live_databases_secrets_and_not_for_pasted_text() {
    let mut g = Gen::new();
    let a = Agent {
        root: tempfile::tempdir().unwrap(),
        values: vec![
            ("github", format!("ghp_{}", g.alnum(36))),
            ("openai", format!("sk-proj-{}", g.alnum(48))),
            // No provider's format: a secret by the row's key, `OPENAI_API_KEY`.
            ("settings", g.alnum(40)),
            ("token_1", g.alnum(32)),
            ("token_2", g.alnum(32)),
            ("pasted", format!("ghp_{}", g.alnum(36))),
            ("later", format!("sk-ant-api03-{}", g.alnum(93))),
        ],
    };
    fs::create_dir_all(a.state()).unwrap();
    fs::create_dir_all(a.root.path().join("home")).unwrap();
    let writer = agent_database(&a);
    // The test is about a live database: most secrets are only in its WAL.
    let main_file = fs::read(a.state().join("memory.db")).unwrap();
    assert!(contains(&main_file, a.value("github")));
    assert!(!contains(&main_file, a.value("openai")));
    assert!(fs::metadata(a.state().join("memory.db-wal")).unwrap().len() > 0);

    let out = a.run(&["init", "--discover", "--store", "local"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let manifest = a.manifest();
    a.assert_absent(manifest.as_bytes(), "manifest");
    let rules = sqlite_rules(&manifest);
    let want = [
        (
            serde_json::json!({"table": "credentials", "column": "value", "where": {"name": "github"}}),
            "local:agents/{agent}/memory#credentials_github",
        ),
        (
            serde_json::json!({"table": "credentials", "column": "value", "where": {"name": "openai"}}),
            "local:agents/{agent}/memory#credentials_openai",
        ),
        (
            serde_json::json!({"table": "settings", "column": "value", "where": {"key": "OPENAI_API_KEY"}}),
            "local:agents/{agent}/memory#settings_OPENAI_API_KEY",
        ),
        (
            serde_json::json!({"table": "users", "column": "api_token", "where": {"id": 1}}),
            "local:agents/{agent}/memory#users_1_api_token",
        ),
        (
            serde_json::json!({"table": "users", "column": "api_token", "where": {"id": 2}}),
            "local:agents/{agent}/memory#users_2_api_token",
        ),
    ]
    .map(|(cells, handle)| (cells, handle.to_string()));
    assert_eq!(rules, want, "{manifest}");
    assert!(
        text.contains("sqlite settings.value where key = 'OPENAI_API_KEY'"),
        "the report shows the locator: {text}"
    );
    // Nothing about the pasted token: not a rule, not a note.
    assert!(!manifest.contains("messages"), "{manifest}");
    assert!(!text.contains("messages"), "{text}");

    // `discover` reads the manifest's rules through a consistent copy, WAL included: a rule
    // written another way (the table's name in capitals) covers the same cell, so nothing is
    // added.
    let edited = manifest.replace(r#""table": "settings""#, r#""table": "SETTINGS""#);
    assert_ne!(edited, manifest);
    fs::write(a.dir().join("agentbak.json"), &edited).unwrap();
    let out = a.run(&["discover"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("nothing to add"), "{text}");

    // --import stores each value under its handle.
    let out = a.run(&[
        "init",
        "--discover",
        "--store",
        "local",
        "--import",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(a.manifest(), manifest, "the same rules again");
    for (handle, name) in [
        ("local:agents/kevin/memory#credentials_github", "github"),
        ("local:agents/kevin/memory#credentials_openai", "openai"),
        (
            "local:agents/kevin/memory#settings_OPENAI_API_KEY",
            "settings",
        ),
        ("local:agents/kevin/memory#users_1_api_token", "token_1"),
        ("local:agents/kevin/memory#users_2_api_token", "token_2"),
    ] {
        let got = a.command(&["secrets", "get", "--reveal", handle]);
        assert!(got.status.success(), "{handle}: {}", got.status);
        assert_eq!(got.stdout, a.value(name).as_bytes(), "{handle}");
    }

    // The snapshot redacts every declared cell; the one secret no rule declares is the token
    // pasted in a message, which the leak gate finds in its cell and captures: exit 3, and
    // right (discovery leaves pasted text to the capture).
    let out = a.run(&["snapshot"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("captured 1 new secret that no rule declares, in memory.db;"),
        "{text}"
    );
    // Captured once, it is a known value: the next snapshot has nothing new (exit 0), and
    // redacts each rule's cell and the captured token.
    let out = a.run(&["snapshot", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut redacted: Vec<(String, String)> = report["redacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["file"], "memory.db", "{r}");
            assert_eq!(r["count"], 1, "{r}");
            (
                r["locator"].as_str().unwrap().to_string(),
                r["handle"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let captured = redacted
        .iter()
        .position(|(l, _)| l == "captured")
        .expect("the pasted token is redacted as captured");
    let (_, captured) = redacted.remove(captured);
    assert!(
        captured.starts_with("local:agents/kevin/captured#github-pat-"),
        "{captured}"
    );
    let got = a.command(&["secrets", "get", "--reveal", &captured]);
    assert_eq!(got.stdout, a.value("pasted").as_bytes(), "{captured}");
    let declared: Vec<(String, String)> = want
        .iter()
        .map(|(cells, handle)| {
            let c: serde_json::Map<_, _> = cells.as_object().unwrap().clone();
            let mut at = format!(
                "sqlite {}.{}",
                c["table"].as_str().unwrap(),
                c["column"].as_str().unwrap()
            );
            for (k, v) in c["where"].as_object().unwrap() {
                match v {
                    serde_json::Value::String(s) => at.push_str(&format!(" where {k} = '{s}'")),
                    _ => at.push_str(&format!(" where {k} = {v}")),
                }
            }
            (at, handle.replace("{agent}", "kevin"))
        })
        .collect();
    assert_eq!(redacted, declared);

    // The agent stores a new key: `discover` proposes its rule, `--import` writes and stores it.
    writer
        .execute(
            "INSERT INTO settings VALUES ('ANTHROPIC_API_KEY', ?1)",
            [a.value("later")],
        )
        .unwrap();
    let out = a.run(&["discover"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let added: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("+ "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        added,
        [serde_json::json!({"file": "memory.db",
            "sqlite": {"table": "settings", "column": "value", "where": {"key": "ANTHROPIC_API_KEY"}},
            "handle": "local:agents/{agent}/memory#settings_ANTHROPIC_API_KEY"})],
        "{stdout}"
    );
    let out = a.run(&["discover", "--update", "--import"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let got = a.command(&[
        "secrets",
        "get",
        "--reveal",
        "local:agents/kevin/memory#settings_ANTHROPIC_API_KEY",
    ]);
    assert_eq!(got.stdout, a.value("later").as_bytes());
    let out = a.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));

    // Restored and rehydrated, the database holds every value in its cell again.
    let out = a.run(&["restore", "latest", "--target", "restored", "--rehydrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let restored = Connection::open(a.dir().join("restored/memory.db")).unwrap();
    let cell = |sql: &str| -> String { restored.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        cell("SELECT value FROM credentials WHERE name = 'openai'"),
        a.value("openai")
    );
    assert_eq!(
        cell("SELECT value FROM settings WHERE key = 'ANTHROPIC_API_KEY'"),
        a.value("later")
    );
    assert_eq!(
        cell("SELECT api_token FROM users WHERE id = 2"),
        a.value("token_2")
    );
    assert!(cell("SELECT content FROM messages ORDER BY id DESC").contains(a.value("pasted")));

    a.assert_absent(a.manifest().as_bytes(), "manifest");
    let files = repository_plaintext(&a.dir().join("backups"), None);
    assert!(files.iter().any(|(name, _)| name.contains("packs")));
    for (name, bytes) in files {
        a.assert_absent(&bytes, &format!("repository file {name}"));
    }
    drop(writer);
}
