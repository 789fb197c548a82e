//! Archives against stock tools: `zstd -d | tar -x` (and `age -d -i`) open what the writer
//! wrote, `b3sum` matches the index, the observer sees the exact tar stream, and the reader
//! detects flipped bytes, truncation, tampering and unsafe entries (exit 5).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;
use agentbak::archive::{
    ArchiveDigest, ArchiveEntry, ArchiveWriter, EntryData, EntryKind, EntryMeta, EntryProblem,
    INDEX_PATH, Identity, ReadOptions, Recipients, SecretLocation, SnapshotInfo, WriterOptions,
    check_digest, read_archive,
};
use agentbak::handle::Handle;
use agentbak::manifest::Locator;
use agentbak::{Error, ExitCode};

const MTIME: i64 = 1_764_370_501;
const LONG: &str = "memory/projects/a-rather-long-project-name-that-keeps-going/notes/\
                    2026-11-28-a-very-long-file-name-that-passes-the-ustar-limit.md";

/// Files of a small agent state: (relative path, mode, content).
fn files() -> Vec<(&'static str, u32, Vec<u8>)> {
    vec![
        (
            "config/credentials.json",
            0o600,
            br#"{"openai":{"api_key":"+agentbak:vault:agents/kevin/openai:api_key+"}}"#.to_vec(),
        ),
        ("bin/run.sh", 0o755, b"#!/bin/sh\necho hi\n".to_vec()),
        (LONG, 0o644, b"long names survive\n".to_vec()),
        (
            "blob.bin",
            0o640,
            (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ),
        ("empty", 0o644, Vec::new()),
        // Past four frames of the zstd layer (2 MiB each), so that every test below reads
        // several frames.
        (
            "logs/agent.log",
            0o600,
            (0..9u32 << 20)
                .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
                .collect(),
        ),
    ]
}

fn info() -> SnapshotInfo {
    SnapshotInfo {
        agent: "kevin".into(),
        snapshot_id: "20251128T225501Z-3f9a2c1b".into(),
        created_at: "2025-11-28T22:55:01Z".parse().unwrap(),
    }
}

fn secret_location() -> SecretLocation {
    SecretLocation {
        file: "state/config/credentials.json".into(),
        locator: Some(Locator::Json("/openai/api_key".into())),
        handle: Handle::parse("vault:agents/kevin/openai#api_key").unwrap(),
        store_version: Some(2),
        ephemeral: false,
        context: serde_json::json!({"quote": "\""}),
    }
}

/// Writes the sample state; returns (archive bytes, digest, index, raw tar stream seen).
fn write_sample(
    recipients: Option<&Recipients>,
) -> (Vec<u8>, ArchiveDigest, agentbak::archive::Index, Vec<u8>) {
    let mut observed = Vec::new();
    let options = WriterOptions {
        threads: 2,
        recipients,
        ..WriterOptions::default()
    };
    let mut writer = ArchiveWriter::new(Vec::new(), &options, Some(&mut observed)).unwrap();
    let dir = EntryMeta {
        mode: 0o700,
        mtime: MTIME,
    };
    writer.append_dir("", dir).unwrap();
    for folder in ["config", "bin", "memory", "memory/projects", "logs"] {
        writer.append_dir(folder, dir).unwrap();
    }
    for (path, mode, data) in files() {
        let meta = EntryMeta { mode, mtime: MTIME };
        writer
            .append_file(path, meta, data.len() as u64, data.as_slice())
            .unwrap();
    }
    let link = EntryMeta {
        mode: 0o777,
        mtime: MTIME,
    };
    writer
        .append_symlink("config/current", link, Path::new("credentials.json"))
        .unwrap();
    writer
        .append_symlink("outside", link, Path::new("../../etc/hosts"))
        .unwrap();
    let written = writer.finish(info(), vec![secret_location()]).unwrap();
    let digest = ArchiveDigest {
        size: written.size,
        blake3: written.blake3.clone(),
    };
    assert_eq!(written.size, written.sink.len() as u64);
    assert_eq!(
        written.blake3,
        blake3::hash(&written.sink).to_hex().to_string()
    );
    assert_eq!(written.counts.files, 6);
    assert_eq!(written.counts.dirs, 6);
    assert_eq!(written.counts.symlinks, 2);
    assert_eq!(written.counts.secrets, 1);
    (written.sink, digest, written.index, observed)
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sh(script: &str) -> std::process::Output {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `b3sum` of every extracted file, keyed by archive path.
fn b3sums(root: &Path) -> HashMap<String, String> {
    let out = sh(&format!(
        "cd '{}' && find state agentbak -type f -print0 | xargs -0 b3sum",
        root.display()
    ));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").unwrap();
            (path.to_string(), hash.to_string())
        })
        .collect()
}

/// Checks an extracted tree against the index: contents, b3sum, modes, links, owner.
fn check_extracted(root: &Path, index: &agentbak::archive::Index) {
    let sums = b3sums(root);
    for entry in &index.entries {
        let path = root.join(&entry.path);
        match entry.kind {
            EntryKind::File => {
                assert_eq!(
                    sums[&entry.path],
                    entry.blake3.clone().unwrap(),
                    "{}",
                    entry.path
                );
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
                assert_eq!(mode, entry.mode, "{}", entry.path);
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(&path).unwrap();
                assert_eq!(target.to_str(), entry.link.as_deref());
            }
            EntryKind::Dir => assert!(path.is_dir()),
        }
    }
    for (rel, _, data) in files() {
        assert_eq!(std::fs::read(root.join("state").join(rel)).unwrap(), data);
    }
    let index_text = std::fs::read(root.join(INDEX_PATH)).unwrap();
    let on_disk: agentbak::archive::Index = serde_json::from_slice(&index_text).unwrap();
    assert_eq!(&on_disk, index);
}

#[test]
fn stock_zstd_and_tar_open_it_and_b3sum_matches_the_index() {
    let (bytes, _, index, _) = write_sample(None);
    let dir = tempfile::tempdir().unwrap();
    let archive = save(dir.path(), "x.tar.zst", &bytes);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    sh(&format!(
        "zstd -q -d -c '{}' | tar -x -p -C '{}'",
        archive.display(),
        out.display()
    ));
    check_extracted(&out, &index);
    // The index is the last entry, and owners are anonymous (0/0, no names).
    let listing = sh(&format!(
        "zstd -q -d -c '{}' | tar -t -v --numeric-owner",
        archive.display()
    ));
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.trim_end().ends_with(INDEX_PATH), "{listing}");
    assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
    assert!(listing.contains(LONG));
}

#[test]
fn index_holds_every_entry_and_validates_against_its_schema() {
    let (_, _, index, _) = write_sample(None);
    let paths: Vec<&str> = index.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths[0], "state");
    assert!(paths.contains(&"state/config/current"));
    assert_eq!(index.secrets, vec![secret_location()]);
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/index.schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let value = serde_json::to_value(&index).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The schema is not a rubber stamp: a file without blake3 and a `..` path fail it.
    let mut bad = value.clone();
    bad["entries"][6]["blake3"] = serde_json::Value::Null;
    bad["secrets"][0]["file"] = "state/../etc/passwd".into();
    assert!(validator.iter_errors(&bad).count() >= 2);
}

#[test]
fn the_observer_sees_exactly_the_tar_stream_that_is_compressed() {
    let (bytes, _, _, observed) = write_sample(None);
    let tar = zstd::decode_all(bytes.as_slice()).unwrap();
    assert_eq!(observed, tar);
    assert!(observed.len() > 200_000);
}

fn age_identity(dir: &Path) -> (PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = save(
        dir,
        "key.txt",
        format!("# test key\n{}\n", id.to_string().expose_secret()).as_bytes(),
    );
    (path, id.to_public().to_string())
}

fn read_ok(
    bytes: &[u8],
    identity: Option<&Identity>,
    digest: Option<ArchiveDigest>,
) -> agentbak::archive::ReadReport {
    let options = ReadOptions {
        name: "sample".into(),
        expected: digest,
        identity,
        max_bytes: None,
    };
    let mut seen = Vec::new();
    let mut visitor = |entry: &ArchiveEntry, data: &mut EntryData<'_>| {
        let mut content = Vec::new();
        data.read_to_end(&mut content)
            .map_err(|e| Error::io(&entry.path, e))?;
        seen.push((entry.path.clone(), content.len()));
        Ok(())
    };
    let report = read_archive(bytes, &options, &mut visitor).unwrap();
    report.ensure_clean("sample").unwrap();
    assert_eq!(seen.len(), report.index.entries.len());
    report
}

fn read_err(bytes: &[u8], identity: Option<&Identity>, digest: Option<ArchiveDigest>) -> Error {
    let options = ReadOptions {
        name: "sample".into(),
        expected: digest,
        identity,
        max_bytes: None,
    };
    let mut ignore = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
    match read_archive(bytes, &options, &mut ignore) {
        Ok(report) => report.ensure_clean("sample").unwrap_err(),
        Err(e) => e,
    }
}

#[test]
fn encrypted_to_x25519_opens_with_stock_age_and_with_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (key, recipient) = age_identity(dir.path());
    let recipients = Recipients::parse(&[recipient]).unwrap();
    let (bytes, digest, index, _) = write_sample(Some(&recipients));
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    let archive = save(dir.path(), "x.tar.zst.age", &bytes);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    sh(&format!(
        "age -d -i '{}' '{}' | zstd -q -d | tar -x -p -C '{}'",
        key.display(),
        archive.display(),
        out.display()
    ));
    check_extracted(&out, &index);

    let identity = Identity::from_file(&key).unwrap();
    let report = read_ok(&bytes, Some(&identity), Some(digest.clone()));
    assert!(report.encrypted);
    assert_eq!(report.index, index);
    assert_eq!(report.blake3, digest.blake3);

    // No identity: a usage error that says what to pass. A wrong one: exit 5.
    let none = read_err(&bytes, None, None);
    assert_eq!(none.exit_code(), ExitCode::Usage);
    assert!(none.to_string().contains("--identity"), "{none}");
    let stranger = age::x25519::Identity::generate();
    let wrong = Identity::parse(
        &agentbak::secret::Secret::from(stranger.to_string().expose_secret().to_string()),
        "wrong",
    )
    .unwrap();
    let err = read_err(&bytes, Some(&wrong), None);
    assert_eq!(err.exit_code(), ExitCode::Integrity, "{err}");
}

#[test]
fn encrypted_to_ssh_ed25519_opens_with_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -C test -f '{}'",
        key.display()
    ));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let recipients = Recipients::parse(&[public.trim()]).unwrap();
    let (bytes, digest, index, _) = write_sample(Some(&recipients));
    let identity = Identity::from_file(&key).unwrap();
    let report = read_ok(&bytes, Some(&identity), Some(digest));
    assert_eq!(report.index, index);
    let archive = save(dir.path(), "x.tar.zst.age", &bytes);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    sh(&format!(
        "age -d -i '{}' '{}' | zstd -q -d | tar -x -p -C '{}'",
        key.display(),
        archive.display(),
        out.display()
    ));
    check_extracted(&out, &index);
}

#[test]
fn a_flipped_byte_anywhere_is_an_integrity_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (key, recipient) = age_identity(dir.path());
    let identity = Identity::from_file(&key).unwrap();
    let recipients = Recipients::parse(&[recipient]).unwrap();
    for encrypted in [false, true] {
        let (bytes, digest, _, _) = write_sample(encrypted.then_some(&recipients));
        for at in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 5] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let id = encrypted.then_some(&identity);
            let with_sidecar = read_err(&bad, id, Some(digest.clone()));
            assert_eq!(
                with_sidecar.exit_code(),
                ExitCode::Integrity,
                "{with_sidecar}"
            );
            assert!(
                with_sidecar
                    .to_string()
                    .contains("does not match its sidecar")
            );
            // Without the sidecar, zstd's checksum or age's tags still catch it.
            let alone = read_err(&bad, id, None);
            assert_eq!(alone.exit_code(), ExitCode::Integrity, "at {at}: {alone}");
            // And the key-less check sees it from the digest alone.
            let keyless = check_digest(bad.as_slice(), &digest, "sample").unwrap_err();
            assert_eq!(keyless.exit_code(), ExitCode::Integrity);
        }
        check_digest(bytes.as_slice(), &digest, "sample").unwrap();
    }
}

#[test]
fn truncation_is_an_integrity_failure() {
    let (bytes, digest, _, _) = write_sample(None);
    for keep in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
        let cut = &bytes[..keep];
        let err = read_err(cut, None, Some(digest.clone()));
        assert_eq!(err.exit_code(), ExitCode::Integrity, "{err}");
        let err = read_err(cut, None, None);
        assert_eq!(err.exit_code(), ExitCode::Integrity, "{keep}: {err}");
    }
}

/// Builds a raw tar + zstd archive by hand, to forge what the writer never produces.
fn forge(entries: &[(&str, tar::EntryType, &[u8])], index: &agentbak::archive::Index) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_mtime(MTIME as u64);
        header.set_size(data.len() as u64);
        if *kind == tar::EntryType::Link {
            header.set_link_name("state/a").unwrap();
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    let json = serde_json::to_vec(index).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    builder
        .append_data(&mut header, INDEX_PATH, json.as_slice())
        .unwrap();
    let tar = builder.into_inner().unwrap();
    zstd::encode_all(tar.as_slice(), 3).unwrap()
}

#[test]
fn tampered_missing_and_unindexed_entries_are_reported() {
    let (_, _, mut index, _) = write_sample(None);
    index
        .entries
        .retain(|e| e.path == "state/bin/run.sh" || e.path == "state/empty");
    let entry_a = index.entries[0].clone();
    assert_eq!(entry_a.path, "state/bin/run.sh");
    let size = entry_a.size as usize;
    let forged = forge(
        &[
            // Same size, different content: only the blake3 tells.
            (
                "state/bin/run.sh",
                tar::EntryType::Regular,
                &b"#!/bin/sh\nrm -rf /\n"[..size],
            ),
            ("state/extra", tar::EntryType::Regular, b"not indexed"),
        ],
        &index,
    );
    let options = ReadOptions {
        name: "forged".into(),
        ..ReadOptions::default()
    };
    let mut ignore = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
    let report = read_archive(forged.as_slice(), &options, &mut ignore).unwrap();
    let problems = &report.problems;
    assert!(problems.iter().any(|p| matches!(p, EntryProblem::Differs { path, field: "blake3", .. } if path == "state/bin/run.sh")), "{problems:?}");
    assert!(problems.contains(&EntryProblem::NotInIndex {
        path: "state/extra".into()
    }));
    assert!(problems.contains(&EntryProblem::Missing {
        path: "state/empty".into()
    }));
    let err = report.ensure_clean("forged").unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Integrity);
    // The forged header also carries 0644 where the index says 0755: four differences.
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, EntryProblem::Differs { field: "mode", .. }))
    );
    assert!(err.to_string().contains("4 entries differ"), "{err}");
}

#[test]
fn unsafe_entries_are_refused() {
    let (_, _, index, _) = write_sample(None);
    let cases: [(&str, tar::EntryType, &str); 5] = [
        ("state/../../evil", tar::EntryType::Regular, "`..`"),
        ("/etc/cron.d/evil", tar::EntryType::Regular, "absolute"),
        ("elsewhere/file", tar::EntryType::Regular, "only `state/"),
        ("state/hard", tar::EntryType::Link, "hard links"),
        ("state/dev", tar::EntryType::Char, "not allowed"),
    ];
    for (path, kind, why) in cases {
        let forged = forge(&[(path, kind, b"")], &index);
        let err = read_err(&forged, None, None);
        assert_eq!(err.exit_code(), ExitCode::Integrity, "{path}: {err}");
        assert!(err.to_string().contains(why), "{path}: {err}");
    }
    let dup = forge(
        &[
            ("state/a", tar::EntryType::Regular, b"1"),
            ("state/a", tar::EntryType::Regular, b"2"),
        ],
        &index,
    );
    assert!(
        read_err(&dup, None, None)
            .to_string()
            .contains("appears twice")
    );
}

#[test]
fn max_bytes_bounds_the_expansion() {
    let (bytes, _, _, _) = write_sample(None);
    let options = ReadOptions {
        name: "bomb".into(),
        max_bytes: Some(100_000),
        ..ReadOptions::default()
    };
    let mut ignore = |_: &ArchiveEntry, _: &mut EntryData<'_>| Ok(());
    let err = read_archive(bytes.as_slice(), &options, &mut ignore).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Integrity);
    assert!(err.to_string().contains("expands past"), "{err}");
}

#[test]
fn a_file_that_changes_size_is_reported_and_the_archive_stays_sound() {
    let mut writer = ArchiveWriter::new(Vec::new(), &WriterOptions::default(), None).unwrap();
    let meta = EntryMeta {
        mode: 0o644,
        mtime: MTIME,
    };
    let short = writer
        .append_file("short", meta, 10, &b"12345"[..])
        .unwrap_err();
    assert!(
        short.to_string().contains("declared 10 bytes, read 5"),
        "{short}"
    );
    let long = writer
        .append_file("long", meta, 3, &b"12345"[..])
        .unwrap_err();
    assert!(long.to_string().contains("read more"), "{long}");
    let bad = writer
        .append_file("../escape", meta, 0, std::io::empty())
        .unwrap_err();
    assert!(
        bad.to_string().contains("not a clean relative path"),
        "{bad}"
    );
    let written = writer.finish(info(), vec![]).unwrap();
    let report = read_ok(&written.sink, None, None);
    assert_eq!(report.index.entries.len(), 2);
}

#[test]
fn a_secret_location_must_name_an_archived_file() {
    let writer = ArchiveWriter::new(Vec::new(), &WriterOptions::default(), None).unwrap();
    let err = writer.finish(info(), vec![secret_location()]).unwrap_err();
    assert!(err.to_string().contains("names no file entry"), "{err}");
}

#[test]
fn a_visitor_error_is_returned_and_a_damaged_stream_wins_over_it() {
    let (bytes, _, _, _) = write_sample(None);
    let options = ReadOptions::default();
    let mut failing = |entry: &ArchiveEntry, _: &mut EntryData<'_>| {
        if entry.path == "state/blob.bin" {
            return Err(Error::Usage("visitor says no".into()));
        }
        Ok(())
    };
    let err = read_archive(bytes.as_slice(), &options, &mut failing).unwrap_err();
    assert!(err.to_string().contains("visitor says no"), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Usage);
}

/// The two ways to write a file's content (from a reader in pieces, or from memory in one
/// write) make the same tar stream, long names and every padding length included, as a
/// byte-for-byte tar of the same entries built by the `tar` crate alone.
#[test]
fn files_from_readers_and_from_memory_make_the_same_tar_stream_as_tar_itself() {
    let meta = EntryMeta {
        mode: 0o640,
        mtime: MTIME,
    };
    let files: Vec<(String, Vec<u8>)> = [0usize, 1, 511, 512, 513, 300_000]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let name = if i == 2 {
                LONG.to_string()
            } else {
                format!("f{i}")
            };
            (name, (0..len).map(|b| (b * 7 % 251) as u8).collect())
        })
        .collect();
    let stream = |from_memory: bool| {
        let mut raw = Vec::new();
        let mut writer =
            ArchiveWriter::new(std::io::sink(), &WriterOptions::default(), Some(&mut raw)).unwrap();
        for (name, data) in &files {
            let digest = if from_memory {
                writer
                    .append_bytes(name, meta, data)
                    .unwrap()
                    .blake3
                    .clone()
            } else {
                let size = data.len() as u64;
                writer
                    .append_file(name, meta, size, data.as_slice())
                    .unwrap()
                    .blake3
                    .clone()
            };
            assert_eq!(digest, Some(blake3::hash(data).to_hex().to_string()));
        }
        drop(writer);
        raw
    };
    let (from_memory, from_readers) = (stream(true), stream(false));
    assert_eq!(from_memory, from_readers);
    let mut reference = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o640);
        header.set_mtime(MTIME as u64);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(data.len() as u64);
        reference
            .append_data(&mut header, format!("state/{name}"), data.as_slice())
            .unwrap();
    }
    let reference = reference.into_inner().unwrap();
    assert_eq!(from_memory, reference);
}

/// A visitor may read an entry, take it where it lies in the frames, mix both or leave some:
/// it gets the content in order, and every entry's digest still matches the index.
#[test]
fn entries_read_shared_mixed_or_left_come_out_whole_and_hashed() {
    let (bytes, digest, _, _) = write_sample(None);
    let options = ReadOptions {
        name: "sample".into(),
        expected: Some(digest),
        identity: None,
        max_bytes: None,
    };
    let want: HashMap<String, Vec<u8>> = files()
        .into_iter()
        .map(|(path, _, data)| (format!("state/{path}"), data))
        .collect();
    let mut got: HashMap<String, Vec<u8>> = HashMap::new();
    let mut slices = 0;
    let mut visitor = |entry: &ArchiveEntry, data: &mut EntryData<'_>| {
        if entry.kind != agentbak::archive::EntryKind::File {
            return Ok(());
        }
        let mut content = Vec::new();
        match entry.path.as_str() {
            // Left unread: drained and hashed by the walk.
            "state/blob.bin" => return Ok(()),
            // Half read, then left.
            "state/bin/run.sh" => {
                let mut half = vec![0; 9];
                data.read_exact(&mut half).unwrap();
                content = half;
            }
            _ => {
                let mut small = [0u8; 1000];
                loop {
                    let n = data.read(&mut small).unwrap();
                    content.extend_from_slice(&small[..n]);
                    match data.next_shared().unwrap() {
                        Some(piece) => {
                            assert!(piece.len() <= 2 << 20, "at most a frame");
                            slices += 1;
                            content.extend_from_slice(&piece);
                        }
                        None => break,
                    }
                }
                assert_eq!(data.read(&mut small).unwrap(), 0);
            }
        }
        got.insert(entry.path.clone(), content);
        Ok(())
    };
    let report = read_archive(bytes.as_slice(), &options, &mut visitor).unwrap();
    report.ensure_clean("sample").unwrap();
    assert!(slices >= 5, "the 9 MiB log spans frames: {slices} slices");
    for (path, content) in &got {
        let whole = &want[path];
        if path == "state/bin/run.sh" {
            assert_eq!(content.as_slice(), &whole[..9]);
        } else {
            assert_eq!(content, whole, "{path}");
        }
    }
    assert_eq!(got.len(), want.len() - 1);
}
