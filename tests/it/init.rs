//! `agentbak init --discover --import` end to end: a state with secrets in JSON, YAML, TOML,
//! dotenv, INI, a PEM key and a log → a manifest with one rule per location → a snapshot
//! with no secret in it (stock `zstd` and `tar`) → a byte-identical restore, with no vault.
//! Every planted value is searched for in every output.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use walkdir::WalkDir;

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

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn from(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }

    fn alnum(&mut self, n: usize) -> String {
        // Mixed classes with digits, so that every token passes the detectors' randomness gates.
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
}

/// An agent folder: `kevin/state`, a home for the local store, and a place for restores.
struct Agent {
    root: tempfile::TempDir,
    /// Every planted value, by name.
    values: BTreeMap<&'static str, String>,
}

impl Agent {
    fn dir(&self) -> PathBuf {
        self.root.path().join("kevin")
    }

    fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.state().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(self.dir())
            .env("HOME", self.home())
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BEARER_TOKEN")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs and asserts that no planted value (nor its base64) is in stdout or stderr.
    fn run_clean(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        self.assert_absent(&all, &format!("output of {args:?}"));
        out
    }

    fn assert_absent(&self, haystack: &[u8], what: &str) {
        use base64::Engine;
        for (name, value) in &self.values {
            // The first line of a PEM body is as secret as the rest.
            let probe = value.lines().nth(1).unwrap_or(value);
            let b64 = base64::engine::general_purpose::STANDARD.encode(probe);
            for needle in [probe, b64.as_str()] {
                assert!(
                    !contains(haystack, needle.as_bytes()),
                    "{name} appears in the {what}"
                );
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Thirteen secret locations (twelve distinct values, one of them in two files) across every
/// format, values that are not secrets next to them, and a cache folder.
fn agent() -> Agent {
    let mut g = Gen::new();
    let mut values = BTreeMap::new();
    values.insert("openai", format!("sk-proj-{}", g.alnum(48)));
    values.insert(
        "slack",
        format!(
            "xoxb-{}-{}-{}",
            g.from(b"123456789", 12),
            g.from(b"123456789", 13),
            g.alnum(24)
        ),
    );
    values.insert("anthropic", format!("sk-ant-api03-{}", g.alnum(93)));
    values.insert(
        "db_password",
        format!("{}!{}#{}", g.alnum(8), g.alnum(6), g.alnum(4)),
    );
    values.insert("github", format!("ghp_{}", g.alnum(36)));
    values.insert(
        "aws_id",
        format!("AKIA{}", g.from(b"ABCDEFGHJKLMNPQRSTUVWXYZ234567", 16)),
    );
    values.insert(
        "aws_secret",
        format!("{}/{}+{}", g.alnum(18), g.alnum(10), g.alnum(10)),
    );
    values.insert("hf", format!("hf_{}", g.alnum(34)));
    values.insert("webhook", format!("whsec_{}", g.alnum(32)));
    values.insert(
        "smtp",
        format!("{}-{}-{}", g.alnum(7), g.alnum(7), g.alnum(6)),
    );
    let pem_body: Vec<String> = (0..6).map(|_| g.alnum(64)).collect();
    values.insert(
        "pem",
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            pem_body.join("\n")
        ),
    );
    values.insert("bearer", format!("{}.{}", g.alnum(24), g.alnum(16)));
    values.insert("cached", format!("ghp_{}", g.alnum(36)));
    let a = Agent {
        root: tempfile::tempdir().unwrap(),
        values,
    };
    let v = |k: &str| a.values[k].clone();
    a.write(
        "config/credentials.json",
        &format!(
            "{{\n  \"openai\": {{ \"api_key\": \"{}\", \"organization\": \"org-kevin\" }},\n  \"slack\": {{ \"bot_token\": \"{}\" }},\n  \"model\": \"gpt-5\"\n}}\n",
            v("openai"),
            v("slack")
        ),
    );
    a.write(
        "memory/tools.json",
        &format!(
            "[{{ \"name\": \"search\", \"auth\": \"{}\", \"calls\": 1200 }}]\n",
            v("openai")
        ),
    );
    a.write(
        "config.yaml",
        &format!(
            "providers:\n  - name: anthropic\n    key: {}   # rotated monthly\n    max_tokens: 4096\ndatabase:\n  host: db.internal\n  password: '{}'\n",
            v("anthropic"),
            v("db_password")
        ),
    );
    a.write(
        "settings.toml",
        &format!(
            "[github]\ntoken = \"{}\"\nowner = \"kevin-bot\"\n\n[aws]\naccess_key_id = \"{}\"\nsecret_access_key = '{}'\nregion = \"eu-west-1\"\n",
            v("github"),
            v("aws_id"),
            v("aws_secret")
        ),
    );
    a.write(
        ".env",
        &format!(
            "# tools\nexport HF_TOKEN={}\nWEBHOOK_SECRET=\"{}\"\nLOG_LEVEL=info\n",
            v("hf"),
            v("webhook")
        ),
    );
    a.write(
        "tools/mail.ini",
        &format!(
            "[smtp]\nhost = smtp.example.org\npassword = {}\n",
            v("smtp")
        ),
    );
    a.write("keys/identity.pem", &v("pem"));
    a.write(
        "logs/agent.log",
        &format!(
            "2026-11-28T10:00:00Z GET /v1/models Authorization: Bearer {b} 200\n\
             2026-11-28T10:00:01Z task 42 started with key {o}\n\
             2026-11-28T10:05:00Z GET /v1/files Authorization: Bearer {b} 200\n",
            b = v("bearer"),
            o = v("openai")
        ),
    );
    a.write(
        "memory/notes.md",
        "# Notes\n\n- The user prefers short answers.\n",
    );
    a.write(
        "cache/http/last.json",
        &format!("{{\"token\": \"{}\"}}\n", v("cached")),
    );
    fs::create_dir_all(a.home()).unwrap();
    a
}

#[test]
fn discover_import_snapshot_restore_is_byte_identical_with_no_vault() {
    let a = agent();
    let out = a.run_clean(&["init", "--discover", "--import"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The manifest: one rule per location, with the expected locator kind in each file.
    let manifest_text = fs::read_to_string(a.dir().join("agentbak.json")).unwrap();
    a.assert_absent(manifest_text.as_bytes(), "manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest_text).unwrap();
    assert_eq!(manifest["$schema"], "./agentbak.schema.json");
    assert!(a.dir().join("agentbak.schema.json").is_file());
    assert_eq!(manifest["agent"], "kevin");
    assert_eq!(manifest["exclude"], serde_json::json!(["cache/**"]));
    let rules = manifest["secrets"].as_array().unwrap();
    let got: Vec<(String, String)> = rules
        .iter()
        .map(|r| {
            let obj = r.as_object().unwrap();
            let kind = ["json", "yaml", "toml", "env", "ini", "regex", "whole_file"]
                .into_iter()
                .find(|k| obj.contains_key(*k))
                .unwrap();
            let at = match &obj[kind] {
                serde_json::Value::String(s) if kind != "regex" => s.clone(),
                _ => String::new(),
            };
            (
                obj["file"].as_str().unwrap().to_string(),
                format!("{kind} {at}"),
            )
        })
        .collect();
    let want = [
        (".env", "env HF_TOKEN"),
        (".env", "env WEBHOOK_SECRET"),
        ("config/credentials.json", "json /openai/api_key"),
        ("config/credentials.json", "json /slack/bot_token"),
        ("config.yaml", "yaml /database/password"),
        ("config.yaml", "yaml /providers/0/key"),
        ("keys/identity.pem", "whole_file "),
        ("memory/tools.json", "json /0/auth"),
        ("settings.toml", "toml /aws/access_key_id"),
        ("settings.toml", "toml /aws/secret_access_key"),
        ("settings.toml", "toml /github/token"),
        ("tools/mail.ini", "ini smtp.password"),
        ("logs/agent.log", "regex "),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted: Vec<(String, String)> = want
        .iter()
        .map(|(f, l)| (f.to_string(), l.to_string()))
        .collect();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted, "{manifest_text}");
    // The same value in two files has one handle.
    let handle_of = |file: &str| {
        rules
            .iter()
            .find(|r| r["file"] == file && r.get("json").is_some())
            .map(|r| r["handle"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        handle_of("memory/tools.json"),
        handle_of("config/credentials.json")
    );
    assert!(handle_of("config/credentials.json").starts_with("local:agents/{agent}/config/"));

    // The store and its identity: 0600, outside the state.
    let store = a.home().join(".local/share/agentbak/kevin.store.age");
    let identity = a.home().join(".config/agentbak/kevin.store.key");
    for p in [&store, &identity] {
        let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    a.assert_absent(&fs::read(&store).unwrap(), "store file");

    // Snapshot: exit 0 (every value is in the store), and the archive holds none of them.
    let out = a.run_clean(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let archive = crate::common::export_all(
        &a.dir().join("agentbak.json"),
        &a.dir().join("exports"),
        None,
    )
    .remove(0);
    assert!(archive.to_string_lossy().contains(&id));
    for (name, bytes) in crate::common::repository_plaintext(&a.dir().join("backups"), None) {
        a.assert_absent(&bytes, &name);
    }
    let tar = std::process::Command::new("zstd")
        .args(["-dc"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(tar.status.success());
    a.assert_absent(&tar.stdout, "archive");
    let listing = std::process::Command::new("tar")
        .args(["-t"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&tar.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.contains("state/config.yaml"), "{listing}");
    assert!(
        !listing.contains("state/cache/"),
        "the cache is excluded: {listing}"
    );

    let out = a.run_clean(&["verify", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Restore with fresh values: identical to the original, cache aside.
    let out = a.run_clean(&["restore", &id, "--target", "restored", "--rehydrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut original = tree(&a.state());
    original.retain(|k, _| !k.starts_with("cache/"));
    assert_eq!(tree(&a.dir().join("restored")), original);
}

#[test]
fn an_existing_manifest_is_kept_without_force() {
    let a = agent();
    fs::create_dir_all(a.dir()).unwrap();
    fs::write(a.dir().join("agentbak.json"), "{ \"mine\": true }\n").unwrap();
    let out = a.run_clean(&["init", "--discover"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(a.dir().join("agentbak.json")).unwrap(),
        "{ \"mine\": true }\n"
    );
    // Without --import nothing goes to the store, but the store and its identity exist.
    let out = a.run_clean(&["init", "--discover", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("secrets push"), "{}", text(&out));
    assert!(a.home().join(".config/agentbak/kevin.store.key").is_file());
    let out = a.run_clean(&["secrets", "ls"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("agents/kevin"),
        "{}",
        text(&out)
    );
    // A plain init (no --discover) writes a manifest with no rules that later commands load.
    let out = a.run_clean(&["init", "--force", "--agent", "bob"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.dir().join("agentbak.json")).unwrap()).unwrap();
    assert_eq!(m["agent"], "bob");
    assert_eq!(m["secrets"], serde_json::json!([]));
    // init names where captured secrets go: the store it chose.
    assert_eq!(
        m["capture"],
        serde_json::json!({"store": "local", "path": "agents/{agent}/captured"})
    );
    let out = a.run_clean(&["snapshot", "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "rule-less: the gate would capture every secret: {}",
        text(&out)
    );
    assert!(text(&out).contains("would capture"), "{}", text(&out));
}

#[test]
fn a_token_that_changes_through_a_log_gets_an_ephemeral_handle() {
    let mut g = Gen::new();
    let (t1, t2) = (
        format!("{}.{}", g.alnum(24), g.alnum(16)),
        format!("{}.{}", g.alnum(24), g.alnum(16)),
    );
    let a = Agent {
        root: tempfile::tempdir().unwrap(),
        values: BTreeMap::from([("t1", t1.clone()), ("t2", t2.clone())]),
    };
    fs::create_dir_all(a.home()).unwrap();
    a.write(
        "logs/agent.log",
        &format!("GET / Authorization: Bearer {t1} 200\nGET / Authorization: Bearer {t2} 200\n"),
    );
    let out = a.run_clean(&["init", "--discover", "--import"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.dir().join("agentbak.json")).unwrap()).unwrap();
    let rules = m["secrets"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{m}");
    assert_eq!(rules[0]["handle"], "env:BEARER_TOKEN");
    assert_eq!(rules[0]["ephemeral"], true);
    assert!(text(&out).contains("skipped"), "{}", text(&out));
    // Both tokens are replaced in the snapshot.
    let out = a.run_clean(&["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_secret_in_a_binary_file_needs_attention_exit_3() {
    let mut g = Gen::new();
    let token = format!("ghp_{}", g.alnum(36));
    let a = Agent {
        root: tempfile::tempdir().unwrap(),
        values: BTreeMap::from([("token", token.clone())]),
    };
    fs::create_dir_all(a.home()).unwrap();
    let mut blob = vec![0u8, 1, 2, 3];
    blob.extend_from_slice(token.as_bytes());
    fs::create_dir_all(a.state()).unwrap();
    fs::write(a.state().join("model.bin"), blob).unwrap();
    let out = a.run_clean(&["init", "--discover"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("model.bin"), "{}", text(&out));
    assert!(text(&out).contains("binary"), "{}", text(&out));
}

/// Regression: a `.json` file whose invalid UTF-8 comes after the first block panicked
/// discovery (`is_binary` reads only the first block).
#[test]
fn invalid_utf8_late_in_a_structured_file_is_no_panic() {
    let mut g = Gen::new();
    let token = format!("ghp_{}", g.alnum(36));
    let a = Agent {
        root: tempfile::tempdir().unwrap(),
        values: BTreeMap::from([("token", token.clone())]),
    };
    fs::create_dir_all(a.home()).unwrap();
    fs::create_dir_all(a.state()).unwrap();
    let mut doc = format!(
        "{{\"note\": \"{}\", \"token\": \"{token}\"}}\n",
        "x".repeat(70_000)
    )
    .into_bytes();
    doc.extend_from_slice(b"\xff\xfe trailing\n");
    fs::write(a.state().join("big.json"), doc).unwrap();
    let out = a.run_clean(&["init", "--discover"]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
    assert!(text(&out).contains("big.json"), "{}", text(&out));
}

/// `init --store vault --discover --import` against a real OpenBao dev server: the values go
/// to KV v2 under the handles init wrote, a snapshot is in sync (exit 0), and a restore
/// fetches them back byte for byte.
#[test]
fn vault_store_import_snapshot_restore_with_a_real_openbao() {
    let bao = crate::common::OpenBao::start();
    let a = agent();
    let vault = |args: &[&str]| {
        Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(a.dir())
            .env("HOME", a.home())
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", &bao.token)
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .unwrap()
    };
    let check = |out: &Output| {
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        a.assert_absent(&all, "output");
    };
    let out = vault(&["init", "--store", "vault", "--discover", "--import"]);
    check(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.dir().join("agentbak.json")).unwrap()).unwrap();
    assert_eq!(m["stores"]["vault"]["address"], bao.addr.as_str());
    assert!(
        m["secrets"].as_array().unwrap().iter().all(|r| r["handle"]
            .as_str()
            .unwrap()
            .starts_with("vault:agents/{agent}/")),
        "{m}"
    );
    assert_eq!(m["capture"]["store"], "vault", "{m}");
    // The value is in OpenBao's KV v2, under the handle's path and field.
    let (status, body) = crate::common::http_get_with_token(
        &bao.addr,
        "/v1/secret/data/agents/kevin/config/credentials",
        &bao.token,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["data"]["data"]["openai_api_key"],
        a.values["openai"].as_str()
    );

    let out = vault(&["snapshot"]);
    check(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = vault(&["restore", "latest", "--target", "restored", "--rehydrate"]);
    check(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut original = tree(&a.state());
    original.retain(|k, _| !k.starts_with("cache/"));
    assert_eq!(tree(&a.dir().join("restored")), original);
}

/// The manifest elsewhere (`-m`), the state given by `--state`, the store under
/// `XDG_DATA_HOME`/`XDG_CONFIG_HOME`: paths that cannot be written relative are absolute, and
/// a store inside the state is refused before anything is written.
#[test]
fn paths_from_flags_and_xdg_dirs_are_written_so_later_commands_find_them() {
    let a = agent();
    let etc = a.root.path().join("etc");
    let xdg = a.root.path().join("xdg");
    fs::create_dir_all(&etc).unwrap();
    let manifest = etc.join("kevin.json");
    let run = |data: &Path, config: &Path, args: &[&str]| {
        Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(a.root.path())
            .env("HOME", a.home())
            .env("XDG_DATA_HOME", data)
            .env("XDG_CONFIG_HOME", config)
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("RUST_LOG")
            .arg("-m")
            .arg(&manifest)
            .args(args)
            .output()
            .unwrap()
    };
    let state = a.state();
    let state_arg = state.to_str().unwrap();
    // A store inside the state is refused, and nothing is written.
    let out = run(
        &state.join("keys"),
        &xdg,
        &["init", "--state", state_arg, "--agent", "kev"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("outside the state"), "{}", text(&out));
    assert!(!manifest.exists());
    // Elsewhere, every path is absolute and the next commands work from any folder.
    let out = run(
        &xdg,
        &xdg,
        &[
            "init",
            "--state",
            state_arg,
            "--agent",
            "kev",
            "--discover",
            "--import",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    a.assert_absent(
        &[out.stdout.as_slice(), out.stderr.as_slice()].concat(),
        "output",
    );
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["state"], state_arg);
    assert_eq!(m["agent"], "kev");
    assert_eq!(
        m["stores"]["local"]["path"],
        xdg.join("agentbak/kev.store.age").to_str().unwrap()
    );
    assert!(xdg.join("agentbak/kev.store.key").is_file());
    assert!(etc.join("agentbak.schema.json").is_file());
    let out = run(&xdg, &xdg, &["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        etc.join("backups/snapshots").is_dir(),
        "the repository is beside the manifest"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Discovery never panics, whatever the files hold: pieces of every format's syntax,
    /// tokens, multi-byte characters and control bytes, under every structured name.
    #[test]
    fn discovery_never_panics(
        files in proptest::collection::vec(
            (0usize..7, proptest::collection::vec(0usize..24, 0..60)),
            1..6,
        )
    ) {
        const NAMES: [&str; 7] = ["a.json", "b.yaml", ".env", "c.ini", "d.toml", "e.log", "f.pem"];
        const PIECES: [&str; 24] = [
            "key", "token", "=", ": ", "\"", "'", "\n", "\r", " ", "#", "[s]", "{", "}", "-",
            "ghp_Zq8vN3mT5wK1xR7pL2cY9bH4dF6gJ0sA1eU3", "é", "·", "→", "\u{0}", "Bearer ",
            "-----BEGIN PRIVATE KEY-----\n", "sk-proj-", "passw0rd=Xy7#kQ2!mZ9v", "\\",
        ];
        let dir = tempfile::tempdir().unwrap();
        for (name, pieces) in &files {
            let text: String = pieces.iter().map(|p| PIECES[*p]).collect();
            fs::write(dir.path().join(NAMES[*name]), text).unwrap();
        }
        let detector = agentbak::detect::Detector::new(&agentbak::manifest::Detect::default(), None).unwrap();
        let mut found = agentbak::ops::init::discover::discover(dir.path(), "local", &detector).unwrap();
        let rules = std::mem::take(&mut found.found);
        agentbak::ops::init::discover::check(dir.path(), rules, &mut found.attention);
    }
}
