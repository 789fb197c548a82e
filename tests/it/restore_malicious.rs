//! Malicious archives, crafted byte by byte: `../` entries, absolute paths, a symlink to
//! outside followed by a file through it, a hard link, a huge declared size, content that
//! differs from the index. Each must write nothing outside the target, leave no target and no
//! partial folder, and exit non-zero (5: the archive cannot be trusted).

use std::fs;

use crate::restore_fixture::{Project, all_output};
use agentbak::archive::{Counts, EntryKind, INDEX_FORMAT, Index, IndexEntry};

const MANIFEST: &str = r#"{ "version": 1, "agent": "kevin", "state": "./state",
  "repository": "./backups", "stores": { "env": { "kind": "env" } }, "secrets": [] }"#;

/// One raw tar entry.
struct Raw<'a> {
    path: &'a str,
    kind: tar::EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
    /// The size the header declares (defaults to the data's).
    declared: Option<u64>,
}

impl<'a> Raw<'a> {
    fn file(path: &'a str, data: &'a [u8]) -> Raw<'a> {
        Raw {
            path,
            kind: tar::EntryType::Regular,
            link: None,
            data,
            declared: None,
        }
    }
    fn link(path: &'a str, kind: tar::EntryType, target: &'a str) -> Raw<'a> {
        Raw {
            path,
            kind,
            link: Some(target),
            data: b"",
            declared: None,
        }
    }
}

/// A tar stream written without the tar crate's path checks (raw name bytes).
fn raw_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        let name = &mut h.as_old_mut().name;
        name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        if let Some(l) = e.link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(e.kind);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(e.declared.unwrap_or(e.data.len() as u64));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// Commits `tar` (compressed) as a snapshot whose sidecar counts `bytes`; runs a restore.
fn restore_raw(tar: &[u8], bytes: u64) -> (Project, std::process::Output) {
    let p = Project::new(MANIFEST);
    fs::create_dir(p.path().join("victim")).unwrap();
    let archive = zstd::encode_all(tar, 3).unwrap();
    let counts = Counts {
        bytes,
        ..Counts::default()
    };
    let id = p.commit("20260101T000000Z-0000000a", &archive, counts);
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored"])
        .output()
        .unwrap();
    (p, out)
}

/// Nothing restored, nothing left over, nothing written outside.
fn assert_refused(p: &Project, out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(5), "{}", all_output(out));
    assert!(!p.path().join("restored").exists());
    assert!(
        p.leftovers().is_empty(),
        "partial folder left: {:?}",
        p.leftovers()
    );
    assert_eq!(fs::read_dir(p.path().join("victim")).unwrap().count(), 0);
    assert!(!p.path().join("evil.txt").exists());
}

#[test]
fn dot_dot_entries_are_refused() {
    let tar = raw_tar(&[
        Raw::file("state/ok.txt", b"fine"),
        Raw::file("state/../../evil.txt", b"evil"),
    ]);
    let (p, out) = restore_raw(&tar, 8);
    assert_refused(&p, &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("state/../../evil.txt"));
}

#[test]
fn absolute_entries_are_refused() {
    let p0 = tempfile::tempdir().unwrap();
    let evil = p0.path().join("evil.txt");
    let path = evil.to_str().unwrap().to_string();
    let tar = raw_tar(&[Raw::file(&path, b"evil")]);
    let (p, out) = restore_raw(&tar, 4);
    assert_refused(&p, &out);
    assert!(!evil.exists());
}

#[test]
fn a_file_through_a_symlink_to_outside_is_refused() {
    // The link is relative to its own folder: state/ -> project root -> victim.
    let tar = raw_tar(&[
        Raw::link("state/link", tar::EntryType::Symlink, "../../victim"),
        Raw::file("state/link/pwned", b"evil"),
    ]);
    let (p, out) = restore_raw(&tar, 4);
    assert_refused(&p, &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("below a symlink"));
}

#[test]
fn a_symlink_over_extracted_entries_is_refused() {
    let tar = raw_tar(&[
        Raw::file("state/dir/file", b"x"),
        Raw::link("state/dir", tar::EntryType::Symlink, "../../victim"),
    ]);
    let (p, out) = restore_raw(&tar, 1);
    assert_refused(&p, &out);
}

#[test]
fn hard_links_are_refused() {
    let tar = raw_tar(&[Raw::link("state/hl", tar::EntryType::Link, "/etc/passwd")]);
    let (p, out) = restore_raw(&tar, 0);
    assert_refused(&p, &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("hard link"));
}

#[test]
fn devices_and_fifos_are_refused() {
    for kind in [
        tar::EntryType::Fifo,
        tar::EntryType::Char,
        tar::EntryType::Block,
    ] {
        let tar = raw_tar(&[Raw {
            path: "state/dev",
            kind,
            link: None,
            data: b"",
            declared: None,
        }]);
        let (p, out) = restore_raw(&tar, 0);
        assert_refused(&p, &out);
    }
}

#[test]
fn a_huge_declared_size_is_refused_before_it_is_read() {
    let tar = raw_tar(&[Raw {
        declared: Some(1 << 40),
        ..Raw::file("state/big", b"tiny")
    }]);
    let (p, out) = restore_raw(&tar, 4);
    assert_refused(&p, &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expands past its bound"));
}

#[test]
fn content_that_differs_from_the_index_is_refused() {
    let index = Index {
        format: INDEX_FORMAT,
        tool_version: "test".into(),
        agent: "kevin".into(),
        snapshot_id: "20260101T000000Z-0000000a".into(),
        created_at: chrono::Utc::now(),
        entries: vec![IndexEntry {
            path: "state/a.txt".into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 5,
            mtime: 1_700_000_000,
            blake3: Some(blake3::hash(b"hello").to_hex().to_string()),
            link: None,
        }],
        secrets: vec![],
    };
    let json = serde_json::to_vec(&index).unwrap();
    let tar = raw_tar(&[
        Raw::file("state/a.txt", b"HELLO"),
        Raw::file("agentbak/index.json", &json),
    ]);
    let (p, out) = restore_raw(&tar, 5);
    assert_refused(&p, &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("blake3"));
}

#[test]
fn a_flipped_byte_fails_the_sidecar_check() {
    let tar = raw_tar(&[Raw::file("state/a.txt", b"hello")]);
    let p = Project::new(MANIFEST);
    let mut archive = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let id = p.commit("20260101T000000Z-0000000b", &archive, Counts::default());
    let n = archive.len() / 2;
    archive[n] ^= 1;
    fs::write(
        p.path().join(format!("backups/snapshots/{id}.tar.zst")),
        &archive,
    )
    .unwrap();
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(!p.path().join("restored").exists());
    assert!(p.leftovers().is_empty());
}
