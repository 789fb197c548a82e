//! The HTTP client under the vault store, through the real binary: redirects and TLS.
//!
//! The client never sends a credential to another origin (issue 17): a proxy in front of
//! OpenBao that answers `307` to another port used to receive `X-Vault-Token` on every retry,
//! because reqwest strips `Authorization` on cross-origin redirects but not custom headers.
//! The redirect tests run against a redirecting [`Proxy`] whose `Location` points at a
//! [`Recorder`] on another port, and check that the recorder heard nothing, the proxy saw a
//! fixed small number of requests (no retries), the exit code and message are the documented
//! ones, and the planted credential appears in no output at any verbosity.
//!
//! agentbak builds that client itself (vaultrs's has no redirect setting), so the TLS settings
//! vaultrs applied are tested here too, against OpenBao's `-dev-tls` server.

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use assert_cmd::Command;

use crate::restore_fixture::all_output;

use crate::common;
use crate::common::proxy::{Fault, Proxy, Recorder};

const TOKEN: &str = "hvs.PlantedRedirectToken0123456789abcdef";
const SECRET_ID: &str = "planted-secret-id-7f3a9c2e-redirect";

/// A project whose vault store has `extra` settings (`, "key": value, ...`).
fn project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agentbak.json"),
        format!(
            r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups",
                 "stores": {{ "vault": {{ "kind": "vault", "timeout_s": 5 {extra} }} }},
                 "secrets": [ {{ "file": "a.json", "json": "/k", "handle": "vault:agents/{{agent}}/a#k" }} ] }}"#
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    dir
}

fn agentbak(dir: &Path, addr: &str) -> Command {
    let mut c = Command::cargo_bin("agentbak").unwrap();
    c.current_dir(dir)
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("VAULT_CACERT")
        .env_remove("RUST_LOG")
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", TOKEN)
        .env("VAULT_ROLE_ID", "planted-role-id")
        .env("VAULT_SECRET_ID", SECRET_ID);
    c
}

/// The ways a run can be made to talk: plain, `-vvv`, `RUST_LOG=trace`, JSON logs, `--json`.
fn verbosities() -> Vec<(&'static str, Vec<&'static str>, Option<&'static str>)> {
    vec![
        ("plain", vec![], None),
        ("-vvv", vec!["-vvv"], None),
        ("RUST_LOG=trace", vec![], Some("trace")),
        ("json logs", vec!["-vvv", "--log-format", "json"], None),
        ("--json", vec!["--json"], Some("trace")),
    ]
}

/// Runs `secrets get` through a proxy that redirects every request to a recorder, at every
/// verbosity; checks the invariants and returns the plain run's output.
fn get_through_redirect(auth: &str, requests_per_run: usize, planted: &[&str]) -> Output {
    let recorder = Recorder::start();
    // The upstream is never reached: every request is answered with the redirect.
    let proxy = Proxy::start(&recorder.addr);
    proxy.set_always(Some(Fault::Redirect {
        status: 307,
        port: recorder.port,
    }));
    let d = project(auth);
    let mut first = None;
    for (name, flags, rust_log) in verbosities() {
        let before = proxy.requests();
        let mut cmd = agentbak(d.path(), &proxy.addr);
        cmd.args(&flags)
            .args(["secrets", "get", "vault:agents/kevin/a#k"]);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.timeout(Duration::from_secs(60)).output().unwrap();
        let heard = recorder.requests();
        for value in planted {
            assert!(
                !heard.iter().any(|h| h.contains(value)),
                "{name}: the other origin received a credential: {heard:?}"
            );
        }
        assert_eq!(
            heard,
            Vec::<String>::new(),
            "{name}: the other origin received requests"
        );
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains("HTTP 307"), "{name}: {text}");
        assert!(
            text.contains("does not follow redirects to another origin"),
            "{name}: {text}"
        );
        assert!(
            text.contains(&format!("http://127.0.0.1:{}", recorder.port)),
            "{name}: the message names where the redirect pointed: {text}"
        );
        for value in planted {
            assert!(!text.contains(value), "{name}: a credential leaked: {text}");
        }
        assert_eq!(
            proxy.requests() - before,
            requests_per_run,
            "{name}: a refused redirect is not retried"
        );
        first.get_or_insert(out);
    }
    first.unwrap()
}

#[test]
fn redirect_to_another_port_never_carries_the_token() {
    // Two requests per run: `lookup-self` (refused; a token may lack it, so the read goes on)
    // and the read, refused too. Before the fix: ~10 hops each, retried, the token on all.
    let out = get_through_redirect("", 2, &[TOKEN]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("agentbak: vault:agents/kevin/a#k: store `vault`"),
        "{stderr}"
    );
}

#[test]
fn redirect_of_an_approle_login_never_carries_the_secret_id() {
    // The login's body holds the secret id, and a 307 replays the body: one request, refused.
    let out = get_through_redirect(
        r#", "auth": { "method": "approle" }"#,
        1,
        &[SECRET_ID, TOKEN],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AppRole login at `auth/approle`"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn redirect_within_the_origin_is_followed() {
    let bao = common::OpenBao::start();
    bao.cli(&["kv", "put", "secret/agents/kevin/a", "k=same-origin-value"]);
    let proxy = Proxy::start(&bao.addr);
    let port = proxy.addr.rsplit(':').next().unwrap().parse().unwrap();
    // `lookup-self` is forwarded; the read is redirected to the proxy itself, then forwarded.
    proxy.fail_next(&[
        Fault::Delay(Duration::ZERO),
        Fault::Redirect { status: 307, port },
        Fault::Delay(Duration::ZERO),
    ]);
    let d = project("");
    let out = agentbak(d.path(), &proxy.addr)
        .env("VAULT_TOKEN", &bao.token)
        .args(["--json", "secrets", "get", "vault:agents/kevin/a#k"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"]["status"], "resolved", "{doc}");
    assert_eq!(doc["bytes"], "same-origin-value".len(), "{doc}");
    assert_eq!(
        proxy.requests(),
        3,
        "lookup-self, the read and its redirect"
    );
}

/// An OpenBao `-dev-tls` server: its own CA, a certificate for 127.0.0.1, a known root token.
struct TlsBao {
    child: Child,
    addr: String,
    token: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsBao {
    fn start() -> TlsBao {
        let binary = common::find_binary().expect("OpenBao binary (see tests/it/common)");
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let token = format!("root-tls-{}", std::process::id());
        let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
        let child = std::process::Command::new(&binary)
            .args([
                "server",
                "-dev",
                "-dev-tls",
                "-dev-no-store-token",
                &format!("-dev-tls-cert-dir={}", dir.path().display()),
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let bao = TlsBao {
            child,
            addr: format!("https://127.0.0.1:{port}"),
            token,
            ca: dir.path().join("vault-ca.pem"),
            _dir: dir,
        };
        // Ready when the CLI, trusting the generated CA, can write.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let put = bao.cli(&["kv", "put", "secret/agents/kevin/a", "k=tls-value"]);
            if put.status.success() {
                return bao;
            }
            assert!(
                Instant::now() < deadline,
                "TLS dev server did not come up: {}",
                String::from_utf8_lossy(&put.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        std::process::Command::new(common::find_binary().unwrap())
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .env("BAO_TOKEN", &self.token)
            .env("VAULT_CACERT", &self.ca)
            .env("BAO_CACERT", &self.ca)
            .output()
            .unwrap()
    }
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tls_settings_are_those_vaultrs_applied() {
    let bao = TlsBao::start();
    let get = |extra: String| {
        let d = project(&extra);
        agentbak(d.path(), &bao.addr)
            .env("VAULT_TOKEN", &bao.token)
            .args(["--json", "secrets", "get", "vault:agents/kevin/a#k"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    };
    let ca = serde_json::to_string(&bao.ca).unwrap();
    // The manifest's CA certificate is trusted.
    let out = get(format!(r#", "ca_cert": {ca}"#));
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    // Without it the generated CA is unknown: the certificate is checked.
    let out = get(String::new());
    assert_eq!(out.status.code(), Some(6), "{}", all_output(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"]["status"], "unreachable", "{doc}");
    // `tls_verify: false` accepts it.
    let out = get(r#", "tls_verify": false"#.into());
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    // A CA file that is not there is a usage error naming the file.
    let out = get(r#", "ca_cert": "/nonexistent/agentbak-ca.pem""#.into());
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("/nonexistent/agentbak-ca.pem"),
        "{}",
        all_output(&out)
    );
}
