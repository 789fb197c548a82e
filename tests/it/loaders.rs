//! Rehydrated values as the real loaders read them (issue 20): a state with dotenv, INI, YAML
//! and TOML files is snapshotted, the values are rotated in the local store to values each
//! format finds awkward, `agentbak restore --rehydrate` (the real binary) writes them back,
//! and python-dotenv (interpolation on), bash (`set -a; . file`), configparser, PyYAML and
//! tomllib must each read exactly the rotated value. A value no quoting lets the loaders read
//! alike is refused before anything is written, naming the file and handle, never the value.
//!
//! The Python side needs python-dotenv and PyYAML (`scripts/tools.sh` installs them into a
//! venv and exports `AGENTBAK_PYTHON`); without them the tests say SKIPPED, which CI
//! (`AGENTBAK_NO_SKIP`) turns into a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::skip;
use crate::restore_fixture::{Project, all_bytes, all_output, contains};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }
  },
  "secrets": [
    { "file": "app.env", "env": "PLAIN_TOKEN", "handle": "local:agents/{agent}/dotenv#plain" },
    { "file": "app.env", "env": "QUOTED_TOKEN", "handle": "local:agents/{agent}/dotenv#quoted" },
    { "file": "app.env", "env": "SINGLE_TOKEN", "handle": "local:agents/{agent}/dotenv#single" },
    { "file": "app.ini", "ini": "db.password", "handle": "local:agents/{agent}/ini#password" },
    { "file": "app.yaml", "yaml": "/db/plain", "handle": "local:agents/{agent}/yaml#plain" },
    { "file": "app.yaml", "yaml": "/db/single", "handle": "local:agents/{agent}/yaml#single" },
    { "file": "app.yaml", "yaml": "/db/tabbed", "handle": "local:agents/{agent}/yaml#tabbed" },
    { "file": "app.yaml", "yaml": "/db/block", "handle": "local:agents/{agent}/yaml#block" },
    { "file": "app.toml", "toml": "/db/basic", "handle": "local:agents/{agent}/toml#basic" },
    { "file": "app.toml", "toml": "/db/literal", "handle": "local:agents/{agent}/toml#literal" },
    { "file": "app.toml", "toml": "/db/multi", "handle": "local:agents/{agent}/toml#multi" },
    { "file": "app.toml", "toml": "/db/multi_literal", "handle": "local:agents/{agent}/toml#multi_literal" }
  ]
}"#;

/// The issue's values: for dotenv a `$` bash would expand, a quote, `#`, a space and a final
/// tab; for INI configparser's `%` syntax and two spaces; for YAML a tab, `: `, ` #` and a
/// line break; for TOML a run of three quotes of each kind and a `\u` escape's text.
const DOTENV: &str = "Xk9$Lm\"q#1 \t";
const INI: &str = "50%off  %(user)s";
const YAML: &str = "a\tb: c #d\ne";
const TOML: &str = r#"t"""q\u0041'''"#;
/// A tab alone, which YAML 1.2 allows in a plain scalar and PyYAML does not.
const YAML_TAB: &str = "tab\there-0123";

/// (handle, original value, rotated value, loader key the Python script prints it under).
const HANDLES: [(&str, &str, &str, &str); 12] = [
    (
        "local:agents/kevin/dotenv#plain",
        "orig-plain-0123456789",
        DOTENV,
        "dotenv:PLAIN_TOKEN",
    ),
    (
        "local:agents/kevin/dotenv#quoted",
        "orig-quoted-0123456789",
        DOTENV,
        "dotenv:QUOTED_TOKEN",
    ),
    (
        "local:agents/kevin/dotenv#single",
        "orig-single-0123456789",
        DOTENV,
        "dotenv:SINGLE_TOKEN",
    ),
    (
        "local:agents/kevin/ini#password",
        "orig-ini-0123456789",
        INI,
        "ini",
    ),
    (
        "local:agents/kevin/yaml#plain",
        "orig-yaml-plain-0123456789",
        YAML,
        "yaml:plain",
    ),
    (
        "local:agents/kevin/yaml#single",
        "orig-yaml-single-0123456789",
        YAML,
        "yaml:single",
    ),
    (
        "local:agents/kevin/yaml#tabbed",
        "orig-yaml-tabbed-0123456789",
        YAML_TAB,
        "yaml:tabbed",
    ),
    (
        "local:agents/kevin/yaml#block",
        "orig-yaml-block-0123\nline-two-456789\n",
        YAML,
        "yaml:block",
    ),
    (
        "local:agents/kevin/toml#basic",
        "orig-toml-basic-0123456789",
        TOML,
        "toml:basic",
    ),
    (
        "local:agents/kevin/toml#literal",
        "orig-toml-literal-0123456789",
        TOML,
        "toml:literal",
    ),
    (
        "local:agents/kevin/toml#multi",
        "orig-toml-multi-0123456789",
        TOML,
        "toml:multi",
    ),
    (
        "local:agents/kevin/toml#multi_literal",
        "orig-toml-mlit-0123456789",
        TOML,
        "toml:multi_literal",
    ),
];

/// Reads every file of a restored tree with the real parsers and prints what each key holds,
/// as JSON.
const READ_ALL: &str = r#"
import configparser, json, sys, tomllib
import yaml
from dotenv import dotenv_values
root = sys.argv[1]
out = {}
for k, v in dotenv_values(root + "/app.env", interpolate=True).items():
    out["dotenv:" + k] = v
ini = configparser.ConfigParser()
with open(root + "/app.ini", encoding="utf-8") as f:
    ini.read_file(f)
out["ini"] = ini["db"]["password"]
with open(root + "/app.yaml", encoding="utf-8") as f:
    for k, v in yaml.safe_load(f)["db"].items():
        out["yaml:" + k] = v
with open(root + "/app.toml", "rb") as f:
    for k, v in tomllib.load(f)["db"].items():
        out["toml:" + k] = v
json.dump(out, sys.stdout)
"#;

/// A Python that has python-dotenv, PyYAML and tomllib: `AGENTBAK_PYTHON` (set by
/// `scripts/tools.sh`), the venv it makes, or `python3`; `None` (after a visible skip) when
/// none has them.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/loaders-venv/bin/python");
    let candidates = std::env::var_os("AGENTBAK_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("python3")]);
    for python in candidates {
        // The interpreter itself (not a shim that needs this environment): the loaders run
        // in an empty one.
        let probe = Command::new(&python)
            .args([
                "-c",
                "import configparser, tomllib, yaml, dotenv, sys; print(sys.executable)",
            ])
            .output();
        if let Ok(out) = probe
            && out.status.success()
        {
            let exe = String::from_utf8(out.stdout).unwrap();
            return Some(PathBuf::from(exe.trim()));
        }
    }
    skip(
        "no Python with python-dotenv, PyYAML and tomllib (run `. scripts/tools.sh; ensure_tools`)",
    );
    None
}

/// What bash reads for `var` after `set -a; . file`, in an empty environment.
fn bash_reads(file: &Path, var: &str) -> String {
    let out = Command::new("bash")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args([
            "-c",
            "set -a; . \"$1\" || exit 9; printf %s \"${!2}\"",
            "bash",
        ])
        .arg(file)
        .arg(var)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {}", all_output(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// What the real parsers read in a restored tree, by key.
fn python_reads(python: &Path, root: &Path) -> BTreeMap<String, serde_json::Value> {
    let out = Command::new(python)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-c", READ_ALL])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", all_output(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The project: each value in every style its format has, snapshotted with the original
/// values, then every value rotated in the store.
fn rotated_project() -> (Project, String) {
    let p = Project::new(MANIFEST);
    let original = |handle: &str| {
        HANDLES
            .iter()
            .find(|h| h.0.ends_with(handle))
            .map(|h| h.1)
            .unwrap()
    };
    p.file(
        "app.env",
        0o600,
        format!(
            "# app\nPLAIN_TOKEN={}\nQUOTED_TOKEN=\"{}\"\nSINGLE_TOKEN='{}'\nDEBUG=1\n",
            original("dotenv#plain"),
            original("dotenv#quoted"),
            original("dotenv#single"),
        )
        .as_bytes(),
    );
    p.file(
        "app.ini",
        0o600,
        format!(
            "[DEFAULT]\nuser = kevin\n\n[db]\npassword = {}\nhost = localhost\n",
            original("ini#password")
        )
        .as_bytes(),
    );
    p.file(
        "app.yaml",
        0o600,
        format!(
            "db:\n  plain: {}\n  single: '{}'\n  tabbed: {}\n  block: |\n    orig-yaml-block-0123\n    line-two-456789\n  port: 5432\n",
            original("yaml#plain"),
            original("yaml#single"),
            original("yaml#tabbed"),
        )
        .as_bytes(),
    );
    p.file(
        "app.toml",
        0o600,
        format!(
            "[db]\nbasic = \"{}\"\nliteral = '{}'\nmulti = \"\"\"\n{}\"\"\"\nmulti_literal = '''{}'''\n",
            original("toml#basic"),
            original("toml#literal"),
            original("toml#multi"),
            original("toml#multi_literal"),
        )
        .as_bytes(),
    );
    for (handle, value, _, _) in HANDLES {
        p.set(handle, value, &[]);
    }
    let versions = HANDLES.iter().map(|h| (h.0.to_string(), 1)).collect();
    let id = p.snapshot("20260101T000000Z-00000001", &versions);
    for (handle, _, rotated, _) in HANDLES {
        p.set(handle, rotated, &[]);
    }
    (p, id)
}

#[test]
fn rotated_values_read_back_exactly_in_every_real_loader() {
    let Some(python) = python() else { return };
    let (p, id) = rotated_project();
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored", "--rehydrate"])
        .output()
        .unwrap();
    let shown = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for (_, original, rotated, _) in HANDLES {
        assert!(!shown.contains(original.trim()) && !shown.contains(rotated.trim()));
    }
    let root = p.path().join("restored");
    let read = python_reads(&python, &root);
    for (handle, _, rotated, key) in HANDLES {
        assert_eq!(
            read.get(key).and_then(|v| v.as_str()),
            Some(rotated),
            "{key} ({handle}) as its Python loader reads it"
        );
    }
    // Bash reads the dotenv file as a shell script.
    for var in ["PLAIN_TOKEN", "QUOTED_TOKEN", "SINGLE_TOKEN"] {
        assert_eq!(bash_reads(&root.join("app.env"), var), DOTENV, "bash {var}");
    }
    // The file is still the one it was, around the values.
    let env = std::fs::read_to_string(root.join("app.env")).unwrap();
    assert!(env.starts_with("# app\nPLAIN_TOKEN=") && env.ends_with("DEBUG=1\n"));
}

/// Restores after rotating `handle` to `value`, which its format cannot carry: exit 1, a
/// message naming `file`, the handle and `why`, no value anywhere, and no target written.
fn assert_refused(handle: &str, value: &str, file: &str, why: &str) {
    let (p, id) = rotated_project();
    p.set(handle, value, &[]);
    // At every verbosity and log format: no value in any output.
    let quiet: &[&str] = &[];
    for logging in [quiet, &["-vvv"], &["--log-format", "json", "-vv"]] {
        let out = p
            .agentbak()
            .env("RUST_LOG", "trace")
            .args(logging)
            .args(["restore", &id, "--target", "restored", "--rehydrate"])
            .output()
            .unwrap();
        let shown = all_output(&out);
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(shown.contains(file), "the file is named: {shown}");
        assert!(shown.contains(handle), "the handle is named: {shown}");
        assert!(shown.contains(why), "the reason is given: {shown}");
        assert!(!shown.contains(value.trim()), "the value leaked: {shown}");
        assert!(
            !p.path().join("restored").exists(),
            "the target was written"
        );
        assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    }
    assert!(!contains(&all_bytes(p.path()), value));
}

#[test]
fn a_dotenv_value_no_quoting_reads_alike_is_refused_before_anything_is_written() {
    // python-dotenv expands `${HOME}` in every quoting (single quotes included) and has no
    // escape for it; with a `'` too, no quoting makes python-dotenv and bash read it alike.
    assert_refused(
        "local:agents/kevin/dotenv#quoted",
        "Xk9'Lm${HOME}zz-0123",
        "app.env",
        "python-dotenv expands",
    );
    // Without a quote too: single quotes are no escape from python-dotenv's expansion.
    assert_refused(
        "local:agents/kevin/dotenv#single",
        "Xk9${HOME}zz-0123",
        "app.env",
        "python-dotenv expands",
    );
    // A `'` rules out single quotes, and bash expands `$Lm` in double quotes, where
    // python-dotenv has no escape for `$`.
    assert_refused(
        "local:agents/kevin/dotenv#plain",
        "Xk9'q$Lm-0123456",
        "app.env",
        "no dotenv quoting",
    );
}

#[test]
fn an_ini_value_configparser_would_trim_is_refused_before_anything_is_written() {
    assert_refused(
        "local:agents/kevin/ini#password",
        "  padded-0123456789",
        "app.ini",
        "configparser trims",
    );
}

/// Deterministic pseudo-random values from characters each format finds awkward.
fn awkward_values(count: usize) -> Vec<String> {
    let pool: Vec<char> =
        "aZ09$\"'#% \t\n\r\\{}()`~:-/<>&=;|*?!@.,é😀\u{0}\u{1b}\u{85}\u{7f}\u{2028}"
            .chars()
            .collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = 1 + (next() % 24) as usize;
            (0..len)
                .map(|_| pool[(next() % pool.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// Many awkward values, each rehydrated through the library into every style of every format,
/// read back by the real loaders: what restore writes is read exactly, and what it refuses is
/// only what a format cannot carry.
#[test]
fn awkward_values_read_back_exactly_or_are_refused() {
    use agentbak::handle::Handle;
    use agentbak::manifest::Locator;
    use agentbak::redact::{RedactError, Rule, redact_file, rehydrate_file};
    use agentbak::secret::Secret;
    use std::collections::HashMap;

    let Some(python) = python() else { return };
    let handle = Handle::parse("local:fuzz#key").unwrap();
    let templates: [(&str, &str, Locator); 12] = [
        (
            "env",
            "A=1\nK=orig-value-123\nB=2\n",
            Locator::Env("K".into()),
        ),
        ("env", "K='orig-value-123'\n", Locator::Env("K".into())),
        ("env", "K=\"orig-value-123\"\n", Locator::Env("K".into())),
        (
            "ini",
            "[s]\nk = orig-value-123\n",
            Locator::Ini("s.k".into()),
        ),
        (
            "yaml",
            "k: orig-value-123\nn: 1\n",
            Locator::Yaml("/k".into()),
        ),
        ("yaml", "k: 'orig-value-123'\n", Locator::Yaml("/k".into())),
        (
            "yaml",
            "k: \"orig-value-123\"\n",
            Locator::Yaml("/k".into()),
        ),
        (
            "yaml",
            "k: |\n  orig-value-123\nn: 1\n",
            Locator::Yaml("/k".into()),
        ),
        (
            "toml",
            "k = \"orig-value-123\"\n",
            Locator::Toml("/k".into()),
        ),
        ("toml", "k = 'orig-value-123'\n", Locator::Toml("/k".into())),
        (
            "toml",
            "k = \"\"\"\norig-value-123\"\"\"\n",
            Locator::Toml("/k".into()),
        ),
        (
            "toml",
            "k = '''orig-value-123'''\n",
            Locator::Toml("/k".into()),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut listed = String::new();
    let mut expected: Vec<(PathBuf, String)> = Vec::new();
    let mut refused = 0;
    for (t, (ext, doc, locator)) in templates.iter().enumerate() {
        let rule = Rule {
            locator: locator.clone(),
            handle: handle.clone(),
        };
        let name = format!("t.{ext}");
        let red = redact_file(&name, doc.as_bytes(), &[rule], &[]).unwrap();
        for (i, value) in awkward_values(150).into_iter().enumerate() {
            let values = HashMap::from([(handle.clone(), Secret::from(value.clone()))]);
            match rehydrate_file(&name, &red.output, &red.replacements, &values) {
                Ok(bytes) => {
                    let path = dir.path().join(format!("{t}-{i}.{ext}"));
                    std::fs::write(&path, bytes).unwrap();
                    listed.push_str(&format!("{}\t{ext}\n", path.display()));
                    expected.push((path, value));
                }
                Err(RedactError::Unrepresentable { .. }) => {
                    assert!(
                        matches!(*ext, "env" | "ini"),
                        "{ext} refused {value:?} in {doc:?}"
                    );
                    refused += 1;
                }
                Err(e) => panic!("{e} for {value:?} in {doc:?}"),
            }
        }
    }
    let script = r#"
import configparser, json, sys, tomllib, yaml
from dotenv import dotenv_values
out = []
for line in sys.stdin.read().splitlines():
    path, ext = line.split("\t")
    if ext == "env":
        out.append(dotenv_values(path, interpolate=True)["K"])
    elif ext == "ini":
        c = configparser.ConfigParser()
        with open(path, encoding="utf-8") as f:
            c.read_file(f)
        out.append(c["s"]["k"])
    elif ext == "yaml":
        with open(path, encoding="utf-8") as f:
            out.append(yaml.safe_load(f)["k"])
    else:
        with open(path, "rb") as f:
            out.append(tomllib.load(f)["k"])
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(&python)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(listed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python: {}", all_output(&out));
    let read: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut wrong = Vec::new();
    for ((path, value), got) in expected.iter().zip(&read) {
        if got.as_str() != Some(value.as_str()) {
            wrong.push(format!(
                "{}: {value:?} read as {:?}\n{:?}",
                path.display(),
                got.as_str(),
                std::fs::read_to_string(path).unwrap()
            ));
        }
        if path.extension().is_some_and(|e| e == "env") {
            let var = bash_reads(path, "K");
            if var != *value {
                wrong.push(format!("bash: {value:?} read as {var:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The refusals are the few values dotenv and INI cannot carry, not most of them.
    eprintln!("{} values read back, {refused} refused", expected.len());
    assert!(refused < 4 * 150 / 2, "{refused} refused");
}
