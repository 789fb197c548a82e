//! The leak gate against the encodings real tools write (issue 20): each one planted beside a
//! declared value, through the real binary. The snapshot must not archive the value in that
//! form (it refuses, exit 4, or captures it, exit 3), and no form of the value may be in the
//! repository (archives unpacked with the stock `zstd -d | tar -x`); `scan` and `verify` report
//! the same encodings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// A declared value with characters each encoder treats differently.
const VALUE: &str = "Qm7&zR2<w9>K/p!x*'(L)~ 4vN";
/// A value declared before `VALUE` (the verify test rotates it to `VALUE`).
const OLD: &str = "Old-value-0f9e8d7c6b5a";

struct Agent {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Agent {
    /// An agent whose `config/credentials.json` holds `declared` under a declared handle.
    fn new(declared: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let a = Agent {
            root: dir.path().to_path_buf(),
            _dir: dir,
        };
        a.declare(declared);
        let manifest = r#"{
  "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
  "stores": { "env": { "kind": "env" } },
  "secrets": [
    { "file": "config/credentials.json", "json": "/api/key", "handle": "env:API_KEY", "ephemeral": true }
  ]
}"#;
        std::fs::write(a.root.join("agentbak.json"), manifest).unwrap();
        a
    }

    fn declare(&self, value: &str) {
        let json = serde_json::json!({ "api": { "key": value }, "model": "gpt-5" });
        self.write("config/credentials.json", json.to_string().as_bytes());
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.root.join("state").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn run(&self, args: &[&str], loud: bool) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentbak"));
        cmd.current_dir(&self.root)
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("API_KEY")
            .env_remove("RUST_LOG");
        if loud {
            cmd.env("RUST_LOG", "trace")
                .args(["-vvv", "--log-format", "json"]);
        }
        cmd.arg("-m").arg(self.root.join("agentbak.json"));
        cmd.args(args).output().unwrap()
    }

    fn repo(&self) -> PathBuf {
        self.root.join("backups")
    }
}

/// The encodings of the issue, each as a tool writes a file holding `VALUE`.
fn planted() -> Vec<(&'static str, Vec<u8>)> {
    let doc = format!("{{\"api\": {{\"key\": \"{VALUE}\"}}}}\n");
    let wrap = |text: &str, width: usize, eol: &str| -> String {
        text.as_bytes()
            .chunks(width)
            .map(|l| format!("{}{eol}", std::str::from_utf8(l).unwrap()))
            .collect()
    };
    let b64 = STANDARD.encode(&doc);
    let go = VALUE
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    let every: String = VALUE
        .chars()
        .map(|c| format!("\\u{:04X}", c as u32))
        .collect();
    // urllib.parse.quote: everything but unreserved characters and `/`.
    let quote: String = VALUE
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    // encodeURIComponent: also leaves `!*'()`.
    let component: String = VALUE
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let utf16 = |be: bool, bom: bool| -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        if bom {
            out.extend_from_slice(if be { &[0xfe, 0xff] } else { &[0xff, 0xfe] });
        }
        for u in format!("notes\r\nkey: {VALUE}\r\n").encode_utf16() {
            out.extend(if be { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        out
    };
    vec![
        ("base64-76-lf", wrap(&b64, 76, "\n").into_bytes()),
        (
            "pem-64-crlf",
            format!(
                "-----BEGIN DATA-----\r\n{}-----END DATA-----\r\n",
                wrap(&b64, 64, "\r\n")
            )
            .into_bytes(),
        ),
        ("go-json", format!("{{\"url\":\"{go}\"}}\n").into_bytes()),
        (
            "json-every-u",
            format!("{{\"k\":\"{every}\"}}\n").into_bytes(),
        ),
        (
            "urllib-quote",
            format!("GET /cb?s={quote}&x=1\n").into_bytes(),
        ),
        (
            "encode-uri-component",
            format!("https://x/?s={component}\n").into_bytes(),
        ),
        ("utf16-le-bom", utf16(false, true)),
        ("utf16-be", utf16(true, false)),
    ]
}

/// Every form of `VALUE` that must not be in a repository: raw, base64 at each alignment in
/// both alphabets, hex, UTF-16, and each planted encoding itself.
fn forbidden() -> Vec<(String, Vec<u8>)> {
    let v = VALUE.as_bytes();
    let mut out = vec![("raw".to_string(), v.to_vec())];
    for align in 0..3 {
        let mut shifted = vec![0u8; align];
        shifted.extend_from_slice(v);
        for (name, text) in [
            ("base64", STANDARD_NO_PAD.encode(&shifted)),
            ("base64-url", URL_SAFE_NO_PAD.encode(&shifted)),
        ] {
            // The characters that depend on the value only.
            let first = (8 * align).div_ceil(6);
            let last = 8 * (align + v.len()) / 6;
            out.push((
                format!("{name}-{align}"),
                text.as_bytes()[first..last].to_vec(),
            ));
        }
    }
    out.push(("hex".into(), hex(v, false).into_bytes()));
    out.push(("hex-upper".into(), hex(v, true).into_bytes()));
    for be in [false, true] {
        let units: Vec<u8> = VALUE
            .encode_utf16()
            .flat_map(|u| if be { u.to_be_bytes() } else { u.to_le_bytes() })
            .collect();
        out.push((format!("utf16-be-{be}"), units));
    }
    for (name, bytes) in planted() {
        out.push((name.to_string(), bytes));
    }
    out
}

fn hex(v: &[u8], upper: bool) -> String {
    v.iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// What `bytes` leaks: the names of the forbidden forms found in it, also once line breaks
/// are removed (wrapped base64).
fn leaks(bytes: &[u8]) -> Vec<String> {
    let unwrapped: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    forbidden()
        .into_iter()
        .filter(|(_, f)| contains(bytes, f) || contains(&unwrapped, f))
        .map(|(n, _)| n)
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every file of the repository, and every file of every archive in it unpacked with the stock
/// tools, searched for every form of the value.
fn assert_repository_clean(repo: &Path, case: &str) {
    for f in files(repo) {
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(
            leaks(&bytes),
            Vec::<String>::new(),
            "{case}: {}",
            f.display()
        );
        if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let out = tempfile::tempdir().unwrap();
            let status = Command::new("sh")
                .arg("-c")
                .arg("zstd -q -d -c \"$0\" | tar -x -C \"$1\"")
                .arg(&f)
                .arg(out.path())
                .status()
                .unwrap();
            assert!(status.success(), "{case}: unpack {}", f.display());
            for g in files(out.path()) {
                let content = std::fs::read(&g).unwrap();
                assert_eq!(
                    leaks(&content),
                    Vec::<String>::new(),
                    "{case}: {}",
                    g.display()
                );
            }
        }
    }
}

fn assert_output_clean(out: &Output, case: &str) {
    for stream in [&out.stdout, &out.stderr] {
        assert_eq!(leaks(stream), Vec::<String>::new(), "{case}: output");
    }
}

#[test]
fn each_encoding_beside_a_declared_value_never_reaches_the_repository() {
    for (case, bytes) in planted() {
        for loud in [false, true] {
            let a = Agent::new(VALUE);
            a.write("notes/leak.txt", &bytes);
            let out = a.run(&["snapshot"], loud);
            assert_output_clean(&out, case);
            let code = out.status.code();
            assert!(
                code == Some(4) || code == Some(3),
                "{case}: exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_repository_clean(&a.repo(), case);
        }
    }
}

#[test]
fn scan_reports_each_encoding_at_its_file() {
    for (case, bytes) in planted() {
        let a = Agent::new(VALUE);
        a.write("notes/leak.txt", &bytes);
        let state = a.root.join("state").join("notes");
        let out = a.run(
            &["scan", state.to_str().unwrap(), "--format", "json"],
            false,
        );
        assert_output_clean(&out, case);
        assert_eq!(out.status.code(), Some(4), "{case}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let findings = report["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 1, "{case}: {findings:?}");
        assert_eq!(findings[0]["rule"], "known-value", "{case}");
        assert!(findings[0]["path"].as_str().unwrap().ends_with("leak.txt"));
    }
}

#[test]
fn verify_finds_each_encoding_of_a_value_declared_after_the_snapshot() {
    // The snapshot is taken while the value is not declared (no rule knows it), so the
    // archive holds its encoded form; once the state declares it, verify must find it there.
    for (case, bytes) in planted() {
        let a = Agent::new(OLD);
        a.write("notes/leak.txt", &bytes);
        let out = a.run(&["snapshot"], false);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        a.declare(VALUE);
        let out = a.run(&["verify", "--json"], false);
        assert_output_clean(&out, case);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{case}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Regression: `see +agentbak:<store>:<path>:<token>+` passed both the known-value search and
/// the provider rules; it is not a placeholder of a declared or captured handle.
#[test]
fn placeholder_shaped_text_is_scanned_with_a_manifest() {
    let token = "sk-ant-api03-GEcIzzOLWON8oc11J8Ir8KKJtW7NLQNWRmfjvakbXjdJ5VTqGSjlaZ-aOQ2UFBSujhcSvxRmdq48veoDhnLrP7iFy3N1CAA";
    let a = Agent::new(VALUE);
    a.write(
        "notes/hidden.md",
        format!("see +agentbak:vault:agents/x:{token}+\nand +agentbak:env:API_KEY+\n").as_bytes(),
    );
    let state = a.root.join("state").join("notes");
    let out = a.run(
        &["scan", state.to_str().unwrap(), "--format", "json"],
        false,
    );
    assert_eq!(out.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["rule"], "anthropic-api-key");
    assert_eq!(findings[0]["line"], 1);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(token));
}
