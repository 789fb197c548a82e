//! Test support for `agentbak restore`: a project folder (manifest, state, repository), a
//! snapshot made from the library's own parts (redaction + archive writer, as the snapshot
//! pipeline does), raw archives for malicious cases, and tree comparisons.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use agentbak::archive::{
    ArchiveWriter, Counts, EntryMeta, Recipients, SIDECAR_FORMAT, SecretLocation, Sidecar,
    SnapshotInfo, WriterOptions,
};
use agentbak::handle::Handle;
use agentbak::manifest::Manifest;
use agentbak::redact::{Rule, Source, redact_file};
use agentbak::secret::Secret;
use assert_cmd::Command;
use walkdir::WalkDir;

/// A project: `agentbak.json`, `state/`, `backups/`, and room for targets.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A project with this manifest text.
    pub fn new(manifest: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("agentbak.json"), manifest).unwrap();
        fs::create_dir_all(dir.path().join("state")).unwrap();
        fs::create_dir_all(dir.path().join("backups/snapshots")).unwrap();
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Writes a state file (creating folders) with a mode.
    pub fn file(&self, rel: &str, mode: u32, content: &[u8]) {
        let path = self.state().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The binary, run in the project with a clean environment.
    pub fn agentbak(&self) -> Command {
        let mut c = Command::cargo_bin("agentbak").unwrap();
        c.current_dir(self.path())
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("SESSION_TOKEN")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("VAULT_NAMESPACE")
            .env_remove("RUST_LOG")
            // The incremental repository's files cache stays in the project.
            .env("AGENTBAK_CACHE_DIR", self.path().join("cache"));
        c
    }

    /// `secrets set HANDLE` with the value on stdin.
    pub fn set(&self, handle: &str, value: &str, env: &[(&str, &str)]) {
        let out = self
            .agentbak()
            .envs(env.iter().copied())
            .args(["secrets", "set", handle])
            .write_stdin(value)
            .output()
            .unwrap();
        assert!(out.status.success(), "secrets set: {}", all_output(&out));
    }

    /// Makes a snapshot of `state/` as the snapshot pipeline does: declared values redacted,
    /// stray copies of them too, `versions` recorded as the store versions seen.
    pub fn snapshot(&self, id: &str, versions: &BTreeMap<String, u64>) -> String {
        self.snapshot_with(id, versions, None)
    }

    /// Like [`Project::snapshot`], encrypted to `recipients` when given.
    pub fn snapshot_with(
        &self,
        id: &str,
        versions: &BTreeMap<String, u64>,
        recipients: Option<&Recipients>,
    ) -> String {
        let manifest = Manifest::load(&self.path().join("agentbak.json")).unwrap();
        let rules = rules_by_file(&manifest);
        let walk = state_entries(&self.state());
        // First pass: the declared values, which are the known values of the second pass.
        let mut known: Vec<(Handle, Secret)> = Vec::new();
        for (rel, path) in &walk {
            if let Some(r) = rules.get(rel) {
                let bytes = fs::read(path).unwrap();
                let plain: Vec<Rule> = r.iter().map(|(rule, _)| rule.clone()).collect();
                known.extend(redact_file(rel, &bytes, &plain, &[]).unwrap().values);
            }
        }
        let opts = WriterOptions {
            threads: 1,
            recipients,
            ..WriterOptions::default()
        };
        let mut writer = ArchiveWriter::new(Vec::new(), &opts, None).unwrap();
        let mut secrets = Vec::new();
        for (rel, path) in &walk {
            let meta = fs::symlink_metadata(path).unwrap();
            let em = EntryMeta {
                mode: meta.mode() & 0o7777,
                mtime: meta.mtime(),
            };
            if meta.file_type().is_symlink() {
                writer
                    .append_symlink(rel, em, &fs::read_link(path).unwrap())
                    .unwrap();
            } else if meta.is_dir() {
                writer.append_dir(rel, em).unwrap();
            } else {
                let bytes = fs::read(path).unwrap();
                let declared = rules.get(rel).cloned().unwrap_or_default();
                let plain: Vec<Rule> = declared.iter().map(|(r, _)| r.clone()).collect();
                let red = redact_file(rel, &bytes, &plain, &known).unwrap();
                assert!(
                    red.blockers.is_empty(),
                    "{rel}: a known value in a binary file"
                );
                for rep in &red.replacements {
                    let ephemeral = match &rep.source {
                        Source::Rule(l) => declared.iter().any(|(r, e)| &r.locator == l && *e),
                        Source::Stray => false,
                    };
                    secrets.push(SecretLocation {
                        file: format!("state/{rel}"),
                        locator: match &rep.source {
                            Source::Rule(l) => Some(l.clone()),
                            Source::Stray => None,
                        },
                        handle: rep.handle.clone(),
                        store_version: versions.get(&rep.handle.to_string()).copied(),
                        ephemeral,
                        context: serde_json::to_value(rep).unwrap(),
                    });
                }
                writer
                    .append_file(rel, em, red.output.len() as u64, &red.output[..])
                    .unwrap();
            }
        }
        let info = SnapshotInfo {
            agent: manifest.agent.clone(),
            snapshot_id: id.into(),
            created_at: chrono::Utc::now(),
        };
        let written = writer.finish(info, secrets).unwrap();
        self.commit_as(id, &written.sink, written.counts, recipients.is_some())
    }

    /// Puts archive bytes and a matching sidecar into the repository.
    pub fn commit(&self, id: &str, archive: &[u8], counts: Counts) -> String {
        self.commit_as(id, archive, counts, false)
    }

    fn commit_as(&self, id: &str, archive: &[u8], counts: Counts, encrypted: bool) -> String {
        let name = if encrypted {
            format!("{id}.tar.zst.age")
        } else {
            format!("{id}.tar.zst")
        };
        let snapshots = self.path().join("backups/snapshots");
        fs::write(snapshots.join(&name), archive).unwrap();
        let sidecar = Sidecar {
            format: SIDECAR_FORMAT,
            id: id.into(),
            agent: "kevin".into(),
            host: "test".into(),
            created_at: chrono::Utc::now(),
            tags: vec![],
            tool_version: "test".into(),
            archive: name,
            size: archive.len() as u64,
            blake3: blake3::hash(archive).to_hex().to_string(),
            counts,
            encrypted,
            degraded: vec![],
            tree: None,
            stored: None,
            chunk_key: None,
            signature: None,
        };
        fs::write(snapshots.join(format!("{id}.json")), sidecar.to_json()).unwrap();
        id.to_string()
    }

    /// Folders in the project's root other than the known ones (a partial restore left over).
    pub fn leftovers(&self) -> Vec<String> {
        fs::read_dir(self.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }
}

/// The manifest's rules by file, with `{agent}` filled and the ephemeral flag.
fn rules_by_file(m: &Manifest) -> HashMap<String, Vec<(Rule, bool)>> {
    let mut out: HashMap<String, Vec<(Rule, bool)>> = HashMap::new();
    for s in &m.secrets {
        let rule = Rule {
            locator: s.locator(),
            handle: s.handle.with_agent(&m.agent),
        };
        out.entry(s.file.clone())
            .or_default()
            .push((rule, s.ephemeral));
    }
    out
}

/// Every entry below `root` (relative path, absolute path), sorted, the root itself first.
pub fn state_entries(root: &Path) -> Vec<(String, PathBuf)> {
    WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap();
            (rel.to_string_lossy().into_owned(), e.path().to_path_buf())
        })
        .collect()
}

/// One entry as a comparison sees it: kind, mode, mtime, content or link target.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime: i64,
    pub content: Vec<u8>,
}

/// Every entry of a tree, for comparing an original with its restore.
pub fn tree(root: &Path) -> BTreeMap<String, Seen> {
    state_entries(root)
        .into_iter()
        .map(|(rel, path)| {
            let meta = fs::symlink_metadata(&path).unwrap();
            let (kind, content) = if meta.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&path)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes(),
                )
            } else if meta.is_dir() {
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&path).unwrap())
            };
            let mode = if kind == "link" {
                0
            } else {
                meta.mode() & 0o7777
            };
            (
                rel,
                Seen {
                    kind,
                    mode,
                    mtime: meta.mtime(),
                    content,
                },
            )
        })
        .collect()
}

/// Every byte under `root` (file contents and link targets), to search for planted values.
pub fn all_bytes(root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for (rel, seen) in tree(root) {
        out.extend_from_slice(rel.as_bytes());
        out.extend_from_slice(&seen.content);
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

pub fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The ways a command runs when its output is searched for planted values (house rule: no
/// value at any log level, in any log format): as given, at `-vvv` with `RUST_LOG=trace`, and
/// at `-vvv` with `--log-format json`.
pub const WAYS: [(&str, &[&str], bool); 3] = [
    ("plain", &[], false),
    ("-vvv RUST_LOG=trace", &["-vvv"], true),
    (
        "-vvv --log-format json",
        &["-vvv", "--log-format", "json"],
        false,
    ),
];

/// One run of a command, named by how it ran.
pub struct Run {
    /// The command line and the way (`snapshot, -vvv RUST_LOG=trace`).
    pub what: String,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    /// stdout then stderr, for failure messages (never holds a value when the test passes).
    pub fn text(&self) -> String {
        format!("{}: {}", self.what, all_output(&self.output))
    }
}

/// Runs `agentbak ARGS` once per [`WAYS`]: `make` builds the command afresh each time (binary,
/// folder, environment, stdin); the way's flags go before `args`. Returns every run, for
/// [`assert_no_value_in`] and for the caller's own checks of each.
pub fn three_ways(make: impl Fn() -> Command, args: &[&str]) -> Vec<Run> {
    WAYS.iter()
        .map(|(way, flags, trace)| {
            let mut cmd = make();
            if *trace {
                cmd.env("RUST_LOG", "trace");
            }
            let output = cmd.args(*flags).args(args).output().unwrap();
            Run {
                what: format!("{}, {way}", args.join(" ")),
                output,
            }
        })
        .collect()
}

/// Every form a value is searched in: raw, base64 (standard and URL-safe, with and without
/// padding), hex (both cases), JSON-escaped, percent-encoded, and with its line breaks
/// escaped.
pub fn leak_forms(value: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let b = value.as_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let percent: String = b.iter().map(|x| format!("%{x:02X}")).collect();
    let json = serde_json::to_string(value).unwrap();
    let mut out = vec![
        b.to_vec(),
        STANDARD.encode(b).into_bytes(),
        STANDARD_NO_PAD.encode(b).into_bytes(),
        URL_SAFE.encode(b).into_bytes(),
        URL_SAFE_NO_PAD.encode(b).into_bytes(),
        hex.to_uppercase().into_bytes(),
        hex.into_bytes(),
        percent.into_bytes(),
        json.as_bytes()[1..json.len() - 1].to_vec(),
        value.replace('\n', "\\n").into_bytes(),
    ];
    out.sort();
    out.dedup();
    out
}

/// Fails, naming the run and the form's kind only, if any run's stdout or stderr holds any
/// [`leak_forms`] of any of `values`.
pub fn assert_no_value_in(runs: &[Run], values: &[&str]) {
    assert!(!runs.is_empty());
    for run in runs {
        for (stream, bytes) in [
            ("stdout", &run.output.stdout),
            ("stderr", &run.output.stderr),
        ] {
            for (i, v) in values.iter().enumerate() {
                for form in leak_forms(v) {
                    assert!(
                        !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                        "{} ({stream}) holds planted value #{i} (a form of {} bytes)",
                        run.what,
                        form.len()
                    );
                }
            }
        }
    }
}
