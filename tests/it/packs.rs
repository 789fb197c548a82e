//! The incremental repository (format 2, issue 21): what a second snapshot stores and reads,
//! a secret declared after a file was stored, garbage collection, `kill -9` during snapshot
//! and prune, and a forged tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::restore_fixture::{Project, all_output, contains, tree};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }
  },
  "secrets": [
    { "file": "config.json", "json": "/openai/api_key", "handle": "local:agents/{agent}/openai#api_key" }
  ]
}"#;

const OPENAI: &str = "sk-proj-PacksPlantedOpenAi1234567890abcdefXYZ";

/// A project with one declared secret and a few files, the value in the store.
fn project() -> Project {
    let p = Project::new(MANIFEST);
    p.file(
        "config.json",
        0o600,
        format!("{{\"openai\": {{\"api_key\": \"{OPENAI}\"}}}}\n").as_bytes(),
    );
    p.file("memory/notes.md", 0o644, b"# notes\nthe user likes tea\n");
    p.file("logs/run.jsonl", 0o644, &transcript(0, 4000));
    p.file("db/vectors.bin", 0o644, &noise(1, 3 << 20));
    let out = run(&p, &["secrets", "push"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    p
}

/// JSONL lines `from..to`, about 120 bytes each.
fn transcript(from: u32, to: u32) -> Vec<u8> {
    (from..to)
        .map(|i| {
            format!(
                "{{\"ts\": {}, \"role\": \"tool\", \"text\": \"step {i} read file {} and wrote a summary\"}}\n",
                1_764_900_000 + i,
                u64::from(i) * 7919 % 1000
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// `n` pseudo-random bytes (xorshift), the same for the same seed.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn run(p: &Project, args: &[&str]) -> Output {
    p.agentbak().args(args).output().unwrap()
}

/// Runs a snapshot that must succeed (exit 0) and returns its sidecar.
fn snapshot(p: &Project) -> serde_json::Value {
    let out = run(p, &["--json", "snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sidecar(p, &id)
}

fn sidecar(p: &Project, id: &str) -> serde_json::Value {
    let path = p.path().join(format!("backups/snapshots/{id}.json"));
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn restore(p: &Project, id: &str, target: &str) {
    let out = run(p, &["restore", id, "--target", target, "--rehydrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let (got, want) = (state_tree(&p.path().join(target)), state_tree(&p.state()));
    let differ: Vec<&String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| got.get(*k) != want.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "snapshot {id} restores the state byte for byte; differ: {differ:?}"
    );
}

/// The tree of a state folder without the folder itself (the index does not hold its mode
/// and time: a restore makes it).
fn state_tree(root: &Path) -> std::collections::BTreeMap<String, crate::restore_fixture::Seen> {
    let mut t = tree(root);
    t.remove("");
    t
}

fn du(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[test]
fn a_second_snapshot_reads_no_unchanged_file_and_stores_only_the_change() {
    let p = project();
    let first = snapshot(&p);
    assert_eq!(first["format"], 2);
    assert_eq!(first["stored"]["reused_files"], 0);
    let packs_after_first = du(&p.path().join("backups/packs"));

    // Unchanged: every file without a rule comes from the cache; almost nothing is stored.
    let second = snapshot(&p);
    assert_eq!(second["stored"]["reused_files"], 3, "{second:#}");
    assert!(
        second["stored"]["new_bytes"].as_u64().unwrap() < 8 * 1024,
        "{second:#}"
    );
    restore(&p, second["id"].as_str().unwrap(), "second");

    // An append to the transcript: the new tail, not the file, is stored.
    let mut log = fs::read(p.state().join("logs/run.jsonl")).unwrap();
    log.extend(transcript(4000, 4100));
    fs::write(p.state().join("logs/run.jsonl"), &log).unwrap();
    let third = snapshot(&p);
    assert_eq!(third["stored"]["reused_files"], 2, "{third:#}");
    let new = third["stored"]["new_bytes"].as_u64().unwrap();
    assert!(new < 300 * 1024, "an append of 12 KiB stored {new} bytes");
    restore(&p, third["id"].as_str().unwrap(), "third");
    let growth = du(&p.path().join("backups/packs")) - packs_after_first;
    assert!(growth < 200 * 1024, "the packs grew by {growth} bytes");

    // A file whose stat changed is read again even with the same size.
    let mut db = fs::read(p.state().join("db/vectors.bin")).unwrap();
    db[1 << 20] ^= 0xff;
    std::thread::sleep(Duration::from_millis(20));
    fs::write(p.state().join("db/vectors.bin"), &db).unwrap();
    let fourth = snapshot(&p);
    assert_eq!(fourth["stored"]["reused_files"], 2, "{fourth:#}");
    restore(&p, fourth["id"].as_str().unwrap(), "fourth");
}

#[test]
fn a_secret_declared_later_is_searched_for_in_files_stored_before() {
    // A value in a note, not recognizable as a secret: the first snapshot stores it.
    const LATER: &str = "mellow-purple-otter-4242-quietly";
    let p = project();
    // 0600: a file that receives a value on restore is made 0600 (docs/restore.md).
    p.file(
        "memory/notes.md",
        0o600,
        format!("# notes\nthe door code is {LATER}\n").as_bytes(),
    );
    snapshot(&p);
    snapshot(&p);
    // Now it is declared, in a file of its own: the note did not change, but it must not be
    // taken from the cache (its chunks hold the value).
    p.file(
        "door.json",
        0o600,
        format!("{{\"code\": \"{LATER}\"}}\n").as_bytes(),
    );
    let manifest = fs::read_to_string(p.path().join("agentbak.json")).unwrap();
    let manifest = manifest.replace(
        "  ]\n}",
        "  ,{ \"file\": \"door.json\", \"json\": \"/code\", \"handle\": \"local:agents/{agent}/door#code\" }\n  ]\n}",
    );
    fs::write(p.path().join("agentbak.json"), manifest).unwrap();
    let out = run(&p, &["secrets", "push"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let third = snapshot(&p);
    assert_eq!(
        third["stored"]["reused_files"], 0,
        "the known values changed: no file is taken from the cache"
    );
    let id = third["id"].as_str().unwrap();
    let export = p.path().join("third.tar.zst");
    let out = run(&p, &["export", id, "-o", export.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let tar = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -xO state/memory/notes.md",
            export.display()
        ))
        .output()
        .unwrap();
    let note = String::from_utf8_lossy(&tar.stdout);
    assert!(
        note.contains("the door code is +agentbak:local:agents/kevin/door:code+"),
        "{note}"
    );
    assert!(!contains(&tar.stdout, LATER));
    restore(&p, id, "restored");
}

#[test]
fn prune_deletes_dead_packs_and_repacks_sparse_ones_and_what_is_kept_restores() {
    let p = project();
    // Four snapshots, each with a new file (8 MiB, then 2 MiB) and without the previous one.
    let mut ids = Vec::new();
    for round in 0..4u64 {
        if round > 0 {
            fs::remove_file(p.state().join(format!("blob-{}.bin", round - 1))).unwrap();
        }
        p.file(
            &format!("blob-{round}.bin"),
            0o644,
            &noise(100 + round, if round == 0 { 8 << 20 } else { 2 << 20 }),
        );
        ids.push(snapshot(&p)["id"].as_str().unwrap().to_string());
    }
    let before = du(&p.path().join("backups"));
    let out = run(&p, &["--json", "prune", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gc = &report["gc"];
    assert_eq!(report["removed"].as_array().unwrap().len(), 3);
    // The packs of the two middle snapshots are dead; the first one's is mostly dead (8 MiB
    // of its 11): its live chunks (the 3 MiB vector file...) are repacked.
    assert_eq!(gc["packs_deleted"], 2, "{gc:#}");
    assert_eq!(gc["packs_repacked"], 1, "{gc:#}");
    assert!(gc["bytes_written"].as_u64().unwrap() > 2 << 20, "{gc:#}");
    assert!(gc["bytes_freed"].as_u64().unwrap() > 14 << 20, "{gc:#}");
    let after = du(&p.path().join("backups"));
    assert!(
        after + (11 << 20) < before,
        "the repository went from {before} to {after} bytes"
    );
    assert_eq!(
        files_in(&p.path().join("backups/index")).len(),
        1,
        "one consolidated index"
    );
    restore(&p, &ids[3], "kept");
    // A second prune has nothing left to do.
    let out = run(&p, &["--json", "prune", "--keep-last", "1"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["gc"]["bytes_freed"], 0, "{report:#}");
}

/// Runs `args` and kills it after `delay`; returns whether it finished by itself.
fn kill_after(p: &Project, args: &[&str], delay: Duration) -> bool {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentbak"))
        .current_dir(p.path())
        .env_remove("AGENTBAK_MANIFEST")
        .env("AGENTBAK_CACHE_DIR", p.path().join("cache"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let done = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    done
}

/// Every listed snapshot verifies and restores byte for byte as the state was then.
fn every_snapshot_is_whole(p: &Project, states: &[(String, PathBuf)], at: &str) {
    let out = run(p, &["--json", "list"]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in listing["snapshots"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let target = p.path().join(format!("check-{id}"));
        let _ = fs::remove_dir_all(&target);
        let out = run(p, &["restore", id, "--target", target.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{at}: {id}: {}",
            all_output(&out)
        );
        if let Some((_, copy)) = states.iter().find(|(sid, _)| sid == id) {
            let expected = state_tree(copy);
            let mut got = state_tree(&target);
            // Restored without --rehydrate: the config holds a placeholder.
            got.remove("config.json");
            let mut expected = expected;
            expected.remove("config.json");
            assert_eq!(got, expected, "{at}: {id}");
        }
        fs::remove_dir_all(&target).unwrap();
    }
}

/// A copy of the state as it is now.
fn keep_state(p: &Project, name: &str) -> PathBuf {
    let copy = p.path().join(name);
    let out = std::process::Command::new("cp")
        .args(["-a"])
        .arg(p.state())
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success());
    copy
}

#[test]
fn kill_9_during_snapshot_or_prune_never_loses_a_kept_snapshot() {
    let p = project();
    let mut states: Vec<(String, PathBuf)> = Vec::new();
    let mut round = 0u64;
    let change = |p: &Project, round: u64| {
        p.file(
            &format!("big-{round}.bin"),
            0o644,
            &noise(500 + round, 6 << 20),
        );
        if round >= 2 {
            let _ = fs::remove_file(p.state().join(format!("big-{}.bin", round - 2)));
        }
    };
    // Snapshots killed at moments spread over a run (about a second at debug speed).
    for step in 0..8u64 {
        round += 1;
        change(&p, round);
        let delay = Duration::from_millis(40 + step * 90);
        kill_after(&p, &["snapshot"], delay);
        every_snapshot_is_whole(&p, &states, &format!("snapshot killed after {delay:?}"));
        // Whatever was killed, the next run succeeds.
        let id = snapshot(&p)["id"].as_str().unwrap().to_string();
        states.push((id.clone(), keep_state(&p, &format!("state-{id}"))));
    }
    // Prunes killed at moments spread over a run; every kept snapshot stays whole.
    for step in 0..6u64 {
        let delay = Duration::from_millis(20 + step * 60);
        let finished = kill_after(&p, &["prune", "--keep-last", "3"], delay);
        every_snapshot_is_whole(&p, &states, &format!("prune killed after {delay:?}"));
        if finished {
            break;
        }
    }
    let out = run(&p, &["prune", "--keep-last", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    every_snapshot_is_whole(&p, &states, "after a whole prune");
    let out = run(&p, &["--json", "list"]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["snapshots"].as_array().unwrap().len(), 3);
    assert!(
        listing["orphans"].as_array().unwrap().is_empty(),
        "{listing:#}"
    );
    let tmp = files_in(&p.path().join("backups/tmp"));
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn a_forged_tree_cannot_make_restore_fetch_an_undeclared_handle() {
    const VAULT_TOKEN: &str = "hvs.PlantedOperatorTokenForPacks0123456789";
    let p = project();
    let honest = snapshot(&p);
    let id = honest["id"].as_str().unwrap();
    // The attacker can write the repository: a new tree, whose index asks for the operator's
    // token, in a new pack with an index file, and a sidecar recomputed to name it. (Chunk
    // ids are keyed, but a reader cannot check them without the key: they are only names.)
    let out = run(&p, &["--json", "ls", id]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let tree_json = honest_tree(&p, &honest);
    let mut tree: serde_json::Value = serde_json::from_slice(&tree_json).unwrap();
    let secret = serde_json::json!({
        "file": "state/memory/notes.md", "handle": "env:VAULT_TOKEN", "context": {}
    });
    tree["index"]["secrets"]
        .as_array_mut()
        .unwrap()
        .push(secret);
    let forged = serde_json::to_vec(&tree).unwrap();
    let frame = zstd::bulk::compress(&forged, 3).unwrap();
    let chunk_id = blake3::hash(b"forged tree chunk").to_hex().to_string();
    let pack_id = blake3::hash(&frame).to_hex().to_string();
    let pack_dir = p.path().join("backups/packs").join(&pack_id[..2]);
    fs::create_dir_all(&pack_dir).unwrap();
    fs::write(pack_dir.join(&pack_id), &frame).unwrap();
    let index = serde_json::json!({"format": 2, "packs": [{"id": pack_id, "size": frame.len(),
        "encrypted": false, "blobs": [[chunk_id, 0, frame.len(), forged.len()]]}]});
    fs::write(
        p.path().join("backups/index/forged.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let mut sidecar = honest.clone();
    sidecar["tree"] = serde_json::json!({
        "chunks": [chunk_id], "size": forged.len(),
        "blake3": blake3::hash(&forged).to_hex().to_string()
    });
    sidecar["counts"]["secrets"] = serde_json::json!(2);
    fs::write(
        p.path().join(format!("backups/snapshots/{id}.json")),
        serde_json::to_vec_pretty(&sidecar).unwrap(),
    )
    .unwrap();

    let out = p
        .agentbak()
        .env("VAULT_TOKEN", VAULT_TOKEN)
        .args(["restore", id, "--target", "forged", "--rehydrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(text.contains("env:VAULT_TOKEN"), "{text}");
    assert!(!text.contains(VAULT_TOKEN));
    assert!(!p.path().join("forged").exists(), "nothing was written");
    // A flipped byte in a pack is found too.
    let pack = files_in(&p.path().join("backups/packs"))
        .into_iter()
        .find(|f| !f.to_string_lossy().contains(&pack_id))
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x55;
    fs::write(&pack, bytes).unwrap();
    fs::write(
        p.path().join(format!("backups/snapshots/{id}.json")),
        serde_json::to_vec_pretty(&honest).unwrap(),
    )
    .unwrap();
    let out = run(&p, &["restore", id, "--target", "damaged"]);
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(!p.path().join("damaged").exists(), "never half-restored");
}

/// The honest tree of a snapshot, read back with stock zstd from its packs.
fn honest_tree(p: &Project, sidecar: &serde_json::Value) -> Vec<u8> {
    let mut blobs = std::collections::HashMap::new();
    for file in files_in(&p.path().join("backups/index")) {
        let index: serde_json::Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
        for pack in index["packs"].as_array().unwrap() {
            let id = pack["id"].as_str().unwrap().to_string();
            for b in pack["blobs"].as_array().unwrap() {
                blobs.insert(
                    b[0].as_str().unwrap().to_string(),
                    (id.clone(), b[1].as_u64().unwrap(), b[2].as_u64().unwrap()),
                );
            }
        }
    }
    let mut out = Vec::new();
    for chunk in sidecar["tree"]["chunks"].as_array().unwrap() {
        let (pack, offset, length) = &blobs[chunk.as_str().unwrap()];
        let bytes = fs::read(p.path().join("backups/packs").join(&pack[..2]).join(pack)).unwrap();
        let frame = &bytes[*offset as usize..(*offset + *length) as usize];
        out.extend(zstd::decode_all(frame).unwrap());
    }
    out
}

#[test]
fn the_end_summary_is_logged_at_info_and_cron_sees_nothing() {
    let p = project();
    snapshot(&p);
    // Not a terminal, as under cron: stdout has the id, stderr nothing.
    let out = run(&p, &["snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(out.stderr.is_empty(), "{}", all_output(&out));
    // With -v, the summary: files, unchanged files, new and stored bytes, duration.
    let out = run(&p, &["-v", "snapshot"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(": 4 files (3 unchanged, not read)"), "{err}");
    assert!(
        err.contains("MiB new,") && err.contains("MiB stored;"),
        "{err}"
    );
}

#[test]
fn encrypted_packs_need_the_identity_to_restore_and_to_repack() {
    let p = project();
    let key = p.path().join("keys/backup.key");
    let keygen = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let recipient = String::from_utf8_lossy(&keygen.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_string();
    let manifest = fs::read_to_string(p.path().join("agentbak.json")).unwrap();
    let manifest = manifest.replacen(
        "\"stores\":",
        &format!("\"encryption\": {{ \"recipients\": [\"{recipient}\"] }},\n  \"stores\":"),
        1,
    );
    fs::write(p.path().join("agentbak.json"), manifest).unwrap();
    p.file("big.bin", 0o644, &noise(7, 8 << 20));
    let first = snapshot(&p);
    assert_eq!(first["encrypted"], true);
    let packs = files_in(&p.path().join("backups/packs"));
    assert!(!packs.is_empty());
    for pack in &packs {
        assert!(
            pack.to_string_lossy().ends_with(".age"),
            "{}",
            pack.display()
        );
        let bytes = fs::read(pack).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"));
        assert!(!contains(&bytes, "step 1 read file"), "a pack is plaintext");
    }
    let id = first["id"].as_str().unwrap().to_string();
    let out = run(&p, &["restore", &id, "--target", "no-key"]);
    assert_ne!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(!p.path().join("no-key").exists());
    let key_arg = key.to_str().unwrap();
    let out = run(
        &p,
        &[
            "restore",
            &id,
            "--target",
            "with-key",
            "--rehydrate",
            "--identity",
            key_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(
        state_tree(&p.path().join("with-key")),
        state_tree(&p.state())
    );

    // The big file goes: its pack is mostly dead. Without the identity it stays, and the
    // report says why; with it, it is repacked.
    fs::remove_file(p.state().join("big.bin")).unwrap();
    snapshot(&p);
    let out = run(&p, &["--json", "prune", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["gc"]["sparse_kept"], 1, "{report:#}");
    assert_eq!(report["gc"]["packs_repacked"], 0, "{report:#}");
    let out = run(&p, &["prune", "--keep-last", "1"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repacking them needs --identity"),
        "{}",
        all_output(&out)
    );
    let out = run(
        &p,
        &["--json", "prune", "--keep-last", "1", "--identity", key_arg],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["gc"]["packs_repacked"], 1, "{report:#}");
    assert!(
        report["gc"]["bytes_freed"].as_u64().unwrap() > 8 << 20,
        "{report:#}"
    );
    for pack in files_in(&p.path().join("backups/packs")) {
        assert!(
            pack.to_string_lossy().ends_with(".age"),
            "repacked packs are encrypted too"
        );
    }
    let latest = run(
        &p,
        &[
            "restore",
            "latest",
            "--target",
            "after",
            "--rehydrate",
            "--identity",
            key_arg,
        ],
    );
    assert_eq!(latest.status.code(), Some(0), "{}", all_output(&latest));
    assert_eq!(state_tree(&p.path().join("after")), state_tree(&p.state()));
}

#[test]
fn a_repository_of_archives_takes_incremental_snapshots_beside_them() {
    let p = project();
    let manifest = fs::read_to_string(p.path().join("agentbak.json")).unwrap();
    let archives = manifest.replacen(
        "\"repository\": \"./backups\",",
        "\"repository\": \"./backups\",\n  \"repository_format\": \"archives\",",
        1,
    );
    fs::write(p.path().join("agentbak.json"), &archives).unwrap();
    let old = snapshot(&p);
    assert_eq!(old["format"], 1);
    assert!(
        p.path()
            .join(format!(
                "backups/snapshots/{}.tar.zst",
                old["id"].as_str().unwrap()
            ))
            .exists()
    );
    // The default again: the next snapshot is incremental, in the same repository.
    fs::write(p.path().join("agentbak.json"), &manifest).unwrap();
    p.file(
        "memory/notes.md",
        0o644,
        b"# notes\nthe user likes coffee now\n",
    );
    let new = snapshot(&p);
    assert_eq!(new["format"], 2);
    let out = run(&p, &["--json", "list"]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["snapshots"].as_array().unwrap().len(), 2);
    for (id, target) in [(&old["id"], "old"), (&new["id"], "new")] {
        let out = run(&p, &["verify", id.as_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
        let out = run(&p, &["restore", id.as_str().unwrap(), "--target", target]);
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    }
    let notes = fs::read_to_string(p.path().join("old/memory/notes.md")).unwrap();
    assert!(notes.contains("likes tea"), "{notes}");
    let out = run(
        &p,
        &[
            "diff",
            old["id"].as_str().unwrap(),
            new["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("memory/notes.md"));
    // Pruning the archive leaves the incremental snapshot whole.
    let out = run(&p, &["prune", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let tars = files_in(&p.path().join("backups/snapshots"))
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".tar.zst"))
        .count();
    assert_eq!(tars, 0);
    restore(&p, new["id"].as_str().unwrap(), "kept");
}

#[test]
fn kill_9_before_the_gate_refuses_a_token_leaves_it_in_no_pack() {
    // Built at run time, so that this source holds no token.
    let token = ["ghp", "Zq8Lr2Xw5Nc7Vb1Mk4Jh6Gf9Dd3Ss0Aa2Pp5"].join("_");
    let p = project();
    let manifest = fs::read_to_string(p.path().join("agentbak.json")).unwrap();
    let manifest = manifest.replacen(
        "\"stores\":",
        "\"detect\": { \"on_unknown\": \"refuse\" },\n  \"stores\":",
        1,
    );
    fs::write(p.path().join("agentbak.json"), manifest).unwrap();
    for i in 0..6u32 {
        p.file(
            &format!("logs/day-{i}.jsonl"),
            0o644,
            &transcript(i * 100_000, i * 100_000 + 40_000),
        );
        p.file(
            &format!("blobs/b-{i}.bin"),
            0o644,
            &noise(u64::from(i), 3 << 20),
        );
    }
    snapshot(&p);
    // The token near the end of the last file the walk takes.
    let mut last = transcript(900_000, 940_000);
    last.extend(format!("{{\"tool\": \"gh\", \"output\": \"token {token}\"}}\n").as_bytes());
    p.file("logs/zz-last.jsonl", 0o644, &last);
    let started = std::time::Instant::now();
    let refused = run(&p, &["snapshot"]);
    let full = started.elapsed();
    assert_eq!(refused.status.code(), Some(4), "{}", all_output(&refused));
    let holding = |p: &Project| {
        crate::common::repository_plaintext(&p.path().join("backups"), None)
            .into_iter()
            .filter(|(_, bytes)| contains(bytes, &token))
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    assert_eq!(holding(&p), Vec::<String>::new());
    for trial in 0..6u32 {
        let delay = full.mul_f64(0.2 + 0.15 * f64::from(trial));
        kill_after(&p, &["snapshot"], delay);
        assert_eq!(holding(&p), Vec::<String>::new(), "killed after {delay:?}");
    }
    let out = run(&p, &["--json", "list"]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["snapshots"].as_array().unwrap().len(), 1);
}
