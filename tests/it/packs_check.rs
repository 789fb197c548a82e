//! `agentbak check [--read-data]` and `agentbak stats` on repositories made by the real
//! `agentbak snapshot` (format 2, a local store holding the capture key): clean on healthy
//! repositories, plain and age-encrypted; exit 5 after each kind of damage (a flipped byte in
//! a pack, a deleted pack, a truncated refs file, edited index offsets); exit 3 for a pack no
//! index lists; stats that show dedup across two snapshots of one state.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use age::secrecy::ExposeSecret;
use assert_cmd::Command;
use serde_json::Value;

const OPENAI: &str = "sk-proj-CheckStatsValue0123456789abcdefghijklm";

/// An agent folder with a manifest, a local store, a state and (maybe) an age key.
struct Agent {
    dir: tempfile::TempDir,
}

impl Agent {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn repo(&self) -> PathBuf {
        self.root().join("backups")
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::cargo_bin("agentbak").unwrap();
        c.current_dir(self.root())
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("AGENTBAK_IDENTITY")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("RUST_LOG")
            .env("AGENTBAK_CACHE_DIR", self.root().join("cache"))
            .args(args);
        if let Some(input) = stdin {
            c.write_stdin(input);
        }
        c.output().unwrap()
    }

    /// Runs `agentbak snapshot`; returns the id.
    fn snapshot(&self) -> String {
        let out = ok(self.run(&["snapshot"], None));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let sidecar: Value = serde_json::from_slice(
            &std::fs::read(self.repo().join(format!("snapshots/{id}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(sidecar["format"], 2, "an incremental snapshot: {sidecar:#}");
        id
    }

    /// `check ARGS --json`: the exit code and the report.
    fn check(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["check", "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all, None);
        let report: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code().unwrap(), report)
    }

    fn stats(&self) -> Value {
        let out = ok(self.run(&["stats", "--json"], None));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The pack files, sorted.
    fn packs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for folder in std::fs::read_dir(self.repo().join("packs")).unwrap() {
            for f in std::fs::read_dir(folder.unwrap().path()).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out.sort();
        out
    }

    /// The index files, sorted.
    fn index_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.repo().join("index"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        out.sort();
        out
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// Writable copy of a file the repository wrote `0600` (and never rewrites).
fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// A state of about 400 KiB (several chunks) and one declared secret, snapshotted once.
fn agent(encrypted: bool) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let encryption = if encrypted {
        let key = age::x25519::Identity::generate();
        std::fs::write(
            root.join("backup.key"),
            format!("{}\n", key.to_string().expose_secret()),
        )
        .unwrap();
        format!(
            r#""encryption": {{ "recipients": ["{}"] }},"#,
            key.to_public()
        )
    } else {
        String::new()
    };
    let manifest = format!(
        r#"{{ "version": 1, "agent": "kevin", "state": "./state", "repository": "./backups", {encryption}
  "stores": {{ "local": {{ "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }} }},
  "secrets": [
    {{ "file": "config.json", "json": "/api_key", "handle": "local:agents/{{agent}}/openai#api_key" }} ] }}"#
    );
    std::fs::write(root.join("agentbak.json"), manifest).unwrap();
    std::fs::create_dir_all(root.join("state/memory")).unwrap();
    std::fs::write(
        root.join("state/config.json"),
        format!("{{\n  \"api_key\": \"{OPENAI}\",\n  \"model\": \"gpt\"\n}}\n"),
    )
    .unwrap();
    let mut notes = String::new();
    for i in 0..12_000 {
        let _ = writeln!(
            notes,
            "note {i:05}: the agent read page {} and kept {} lines",
            i * 7 % 1000,
            i % 13
        );
    }
    std::fs::write(root.join("state/memory/notes.md"), notes).unwrap();
    let a = Agent { dir };
    ok(a.run(
        &["secrets", "set", "local:agents/kevin/openai#api_key"],
        Some(OPENAI),
    ));
    a.snapshot();
    a
}

fn problems(report: &Value) -> Vec<(String, String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["severity"].as_str().unwrap().to_string(),
                p["object"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether some error's object starts with `object` and its message holds `needle`.
fn has_error(report: &Value, object: &str, needle: &str) -> bool {
    problems(report)
        .iter()
        .any(|(s, o, m)| s == "error" && o.starts_with(object) && m.contains(needle))
}

#[test]
fn check_passes_on_a_healthy_plain_repository_and_reads_every_blob() {
    let a = agent(false);
    let (code, report) = a.check(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(problems(&report).is_empty(), "{report:#}");
    let s = &report["summary"];
    assert_eq!(s["snapshots"], 1);
    assert_eq!(s["index_files"], 1);
    assert!(s["blobs"].as_u64().unwrap() >= 3, "{s:#}");
    assert_eq!(s["blobs_checked"], 0, "no data read without --read-data");

    let (code, report) = a.check(&["--read-data"]);
    assert_eq!(code, 0, "{report:#}");
    let s = &report["summary"];
    assert_eq!(s["packs_hashed"], s["pack_files"]);
    assert_eq!(s["blobs_checked"], s["blobs"], "{report:#}");
    assert_eq!(
        s["chunk_ids_checked"], s["blobs"],
        "every chunk id checked under the key from the store: {report:#}"
    );
    assert_eq!(s["trees_checked"], 1);

    let out = a.run(&["check", "--read-data"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("no problems found"), "{human}");
    assert!(!text(&out).contains(OPENAI));
}

#[test]
fn check_passes_on_a_healthy_encrypted_repository_and_needs_the_identity_for_blobs() {
    let a = agent(true);
    assert!(a.packs().iter().all(|p| p.extension().unwrap() == "age"));
    let (code, report) = a.check(&["--read-data"]);
    assert_eq!(code, 0, "{report:#}");
    let s = &report["summary"];
    assert!(s["packs_hashed"].as_u64().unwrap() >= 1);
    assert_eq!(s["blobs_checked"], 0, "no identity, no blob: {report:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("--identity"), "{notes}");

    let (code, report) = a.check(&["--read-data", "--identity", "backup.key"]);
    assert_eq!(code, 0, "{report:#}");
    let s = &report["summary"];
    assert_eq!(s["blobs_checked"], s["blobs"], "{report:#}");
    assert_eq!(s["chunk_ids_checked"], s["blobs"], "{report:#}");
    assert_eq!(s["trees_checked"], 1);

    // Bit rot in an encrypted pack is found without the identity: its name is its blake3.
    let pack = a.packs()[0].clone();
    rewrite(&pack, |b| {
        let at = b.len() / 2;
        b[at] ^= 0x01;
    });
    let (code, report) = a.check(&["--read-data"]);
    assert_eq!(code, 5, "{report:#}");
    assert!(has_error(&report, "packs/", "not its name"), "{report:#}");
}

#[test]
fn a_flipped_byte_in_a_pack_fails_check_read_data() {
    let a = agent(false);
    let pack = a.packs()[0].clone();
    rewrite(&pack, |b| {
        let at = b.len() / 2;
        b[at] ^= 0x40;
    });
    let (code, report) = a.check(&[]);
    assert_eq!(
        code, 0,
        "sizes still match: only reading finds it: {report:#}"
    );
    let (code, report) = a.check(&["--read-data"]);
    assert_eq!(code, 5, "{report:#}");
    let object = pack.strip_prefix(a.repo()).unwrap().display().to_string();
    assert!(has_error(&report, &object, "not its name"), "{report:#}");
    assert!(
        has_error(&report, &object, "the blob of chunk"),
        "{report:#}"
    );
    let out = a.run(&["check", "--read-data"], None);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("error   {object}: ")));
}

#[test]
fn a_deleted_pack_fails_check() {
    let a = agent(false);
    let pack = a.packs()[0].clone();
    std::fs::remove_file(&pack).unwrap();
    let (code, report) = a.check(&[]);
    assert_eq!(code, 5, "{report:#}");
    let object = pack.strip_prefix(a.repo()).unwrap().display().to_string();
    assert!(has_error(&report, &object, "missing"), "{report:#}");
    assert!(
        has_error(&report, "snapshots/", "only in missing or damaged packs"),
        "the snapshot that needs it is named: {report:#}"
    );
}

#[test]
fn a_missing_pack_whose_chunks_have_another_copy_is_a_warning() {
    let a = agent(false);
    // What an interrupted prune leaves: the pack's blobs rewritten into a new pack (here in
    // reverse order, so the bytes and the id differ) listed by a new index file, and the old
    // pack deleted before the index file that lists it.
    let index = a.index_files()[0].clone();
    let json: Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    let pack = &json["packs"][0];
    let old_id = pack["id"].as_str().unwrap();
    let old = a.repo().join("packs").join(&old_id[..2]).join(old_id);
    let bytes = std::fs::read(&old).unwrap();
    let mut blobs: Vec<Value> = pack["blobs"].as_array().unwrap().clone();
    assert!(blobs.len() >= 2, "{blobs:?}");
    blobs.reverse();
    let mut new = Vec::new();
    for blob in &mut blobs {
        let (offset, length) = (
            blob[1].as_u64().unwrap() as usize,
            blob[2].as_u64().unwrap() as usize,
        );
        blob[1] = Value::from(new.len() as u64);
        new.extend_from_slice(&bytes[offset..offset + length]);
    }
    let new_id = blake3::hash(&new).to_hex().to_string();
    let folder = a.repo().join("packs").join(&new_id[..2]);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(&new_id), &new).unwrap();
    let listing = serde_json::json!({"format": 2, "packs": [
        {"id": new_id, "size": new.len(), "encrypted": false, "blobs": blobs}]});
    std::fs::write(
        a.repo().join("index/prune-20261205T000000Z-0123abcd.json"),
        listing.to_string(),
    )
    .unwrap();
    let (code, report) = a.check(&["--read-data"]);
    assert_eq!(code, 0, "two copies of every chunk: {report:#}");
    std::fs::remove_file(&old).unwrap();
    for args in [&[][..], &["--read-data"][..]] {
        let (code, report) = a.check(args);
        assert_eq!(code, 3, "{args:?}: {report:#}");
        let found = problems(&report);
        assert_eq!(found.len(), 1, "{report:#}");
        assert_eq!(found[0].0, "warning");
        assert!(found[0].1.ends_with(old_id), "{report:#}");
        assert!(found[0].2.contains("stale"), "{report:#}");
    }
    let (_, report) = a.check(&["--read-data"]);
    assert_eq!(report["summary"]["trees_checked"], 1, "{report:#}");
}

#[test]
fn a_format_1_archive_is_checked_against_its_sidecar() {
    let a = agent(false);
    let manifest = a.root().join("agentbak.json");
    rewrite(&manifest, |b| {
        let text = String::from_utf8(b.clone()).unwrap().replace(
            r#""repository": "./backups","#,
            r#""repository": "./backups", "repository_format": "archives","#,
        );
        *b = text.into_bytes();
    });
    let out = ok(a.run(&["snapshot"], None));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let archive = a.repo().join(format!("snapshots/{id}.tar.zst"));
    assert!(archive.is_file(), "a format-1 snapshot");
    let (code, report) = a.check(&["--read-data"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["snapshots"], 2);
    assert_eq!(report["summary"]["archives"], 1);
    rewrite(&archive, |b| {
        let at = b.len() / 2;
        b[at] ^= 0x01;
    });
    let (code, report) = a.check(&[]);
    assert_eq!(code, 5, "{report:#}");
    assert!(
        has_error(
            &report,
            &format!("snapshots/{id}.tar.zst"),
            "does not match its sidecar"
        ),
        "{report:#}"
    );
    let stats = a.stats();
    assert_eq!(stats["agent"]["archives"], 1, "{stats:#}");
    assert!(stats["agent"]["archive_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn a_truncated_refs_file_fails_check() {
    let a = agent(false);
    let id = a.snapshot();
    let refs = a.repo().join(format!("snapshots/{id}.refs"));
    rewrite(&refs, |b| b.truncate(b.len() - 32));
    let (code, report) = a.check(&[]);
    assert_eq!(code, 5, "{report:#}");
    assert!(
        has_error(
            &report,
            &format!("snapshots/{id}.refs"),
            "does not match its sidecar"
        ),
        "{report:#}"
    );
    // The other snapshot is untouched: one snapshot's problems only.
    assert!(
        problems(&report).iter().all(|(_, o, _)| o.contains(&id)),
        "{report:#}"
    );
}

#[test]
fn edited_index_offsets_fail_check() {
    let a = agent(false);
    let index = a.index_files()[0].clone();
    let mut json: Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    let blobs = json["packs"][0]["blobs"].as_array_mut().unwrap();
    assert!(blobs.len() >= 2, "{blobs:?}");
    // The last blob now starts a byte early: still inside the pack, overlapping the one
    // before.
    let last = blobs.last_mut().unwrap();
    last[1] = Value::from(last[1].as_u64().unwrap() - 1);
    std::fs::write(&index, serde_json::to_vec(&json).unwrap()).unwrap();
    let (code, report) = a.check(&[]);
    assert_eq!(code, 5, "{report:#}");
    assert!(
        has_error(&report, "packs/", "do not tile the pack"),
        "{report:#}"
    );
    // An offset past the pack's end makes the index file itself malformed.
    let mut json: Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    json["packs"][0]["blobs"][0][1] = Value::from(1u64 << 40);
    std::fs::write(&index, serde_json::to_vec(&json).unwrap()).unwrap();
    let (code, report) = a.check(&[]);
    assert_eq!(code, 5, "{report:#}");
    assert!(
        has_error(&report, "index/", "run past the pack's size"),
        "{report:#}"
    );
}

#[test]
fn an_unreferenced_pack_is_a_warning() {
    let a = agent(false);
    // A pack a concurrent or interrupted run linked before its index: named by its blake3.
    let bytes = b"not listed by any index file".to_vec();
    let id = blake3::hash(&bytes).to_hex().to_string();
    let folder = a.repo().join("packs").join(&id[..2]);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(&id), &bytes).unwrap();
    for args in [&[][..], &["--read-data"][..]] {
        let (code, report) = a.check(args);
        assert_eq!(code, 3, "{args:?}: {report:#}");
        let found = problems(&report);
        assert_eq!(found.len(), 1, "{report:#}");
        assert_eq!(found[0].0, "warning");
        assert!(found[0].1.ends_with(&id), "{report:#}");
        assert!(found[0].2.contains("unreferenced"), "{report:#}");
        assert!(found[0].2.contains("prune"), "{report:#}");
        assert_eq!(report["summary"]["unreferenced_packs"], 1);
    }
}

#[test]
fn stats_show_dedup_across_two_snapshots_of_one_state() {
    let a = agent(false);
    let one = a.stats();
    a.snapshot();
    let two = a.stats();
    for scope in ["agent", "repository_total"] {
        let (s1, s2) = (&one[scope], &two[scope]);
        assert_eq!(s1["snapshots"], 1, "{one:#}");
        assert_eq!(s2["snapshots"], 2, "{two:#}");
        let logical = s1["logical_bytes"].as_u64().unwrap();
        assert!(logical > 400_000, "{one:#}");
        assert_eq!(s2["logical_bytes"].as_u64().unwrap(), 2 * logical);
        let (raw1, raw2) = (
            s1["unique_raw_bytes"].as_u64().unwrap(),
            s2["unique_raw_bytes"].as_u64().unwrap(),
        );
        assert!(raw1 >= logical, "the content and a tree: {one:#}");
        // Only the second tree is new.
        assert!(raw2 > raw1 && raw2 - raw1 < 16 << 10, "{one:#} {two:#}");
        let dedup = s2["dedup_ratio"].as_f64().unwrap();
        assert!((1.9..=2.0).contains(&dedup), "{two:#}");
        let compression = s2["compression_ratio"].as_f64().unwrap();
        assert!(compression > 1.5, "text compresses: {two:#}");
        assert!(s2["packs"].as_u64().unwrap() >= 1);
        assert!(s2["pack_bytes"].as_u64().unwrap() >= s2["unique_stored_bytes"].as_u64().unwrap());
    }
    let out = ok(a.run(&["stats"], None));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("dedup ratio"), "{human}");
    assert!(human.contains("agent kevin:"), "{human}");
}
