//! Malicious archives, crafted byte by byte: `../` entries, absolute paths, symlinks that
//! escape, a file through a symlink, a link over extracted entries, hard links, devices,
//! duplicates, an entry after the index, a lying size header, content that differs from the
//! index.
//!
//! Each archive carries a **valid index** that lists its entries as they are (path, type,
//! mode, size, mtime, blake3, link) and a sidecar consistent with it (size, blake3, byte
//! count), in a repository whose manifest does not configure signing. So the archive passes
//! every check but the one a test is about: the exit code and the message name that check, and
//! a test fails when its check is deleted (without an index, "index missing" gave exit 5
//! whatever the extraction did). Every test also checks that nothing was written outside the
//! target and that no partial folder is left.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::restore_fixture::{Project, all_output};
use agentbak::archive::{Counts, EntryKind, INDEX_FORMAT, Index, IndexEntry};

const MANIFEST: &str = r#"{ "version": 1, "agent": "kevin", "state": "./state",
  "repository": "./backups", "stores": { "env": { "kind": "env" } }, "secrets": [] }"#;

const ID: &str = "20260101T000000Z-0000000a";
const MTIME: u64 = 1_700_000_000;

/// One raw tar entry.
struct Raw<'a> {
    path: &'a str,
    kind: tar::EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
    /// The size the header declares (defaults to the data's); the index records the data's.
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
    fn dir(path: &'a str) -> Raw<'a> {
        Raw {
            kind: tar::EntryType::Directory,
            ..Raw::file(path, b"")
        }
    }
    fn symlink(path: &'a str, target: &'a str) -> Raw<'a> {
        Raw::link(path, tar::EntryType::Symlink, target)
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

/// One tar header and its padded data, written without the tar crate's path checks.
fn raw_entry(out: &mut Vec<u8>, e: &Raw<'_>) {
    let mut h = tar::Header::new_old();
    let name = &mut h.as_old_mut().name;
    name[..e.path.len()].copy_from_slice(e.path.as_bytes());
    if let Some(l) = e.link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(e.kind);
    h.set_mode(if e.kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(MTIME);
    h.set_size(e.declared.unwrap_or(e.data.len() as u64));
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(e.data);
    let pad = (512 - e.data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// The index an honest writer would have written for `entries`: each as it is (a hard link or
/// a device is recorded as the empty regular file a forger would claim it to be).
fn index_of(entries: &[Raw<'_>]) -> Index {
    Index {
        format: INDEX_FORMAT,
        tool_version: "test".into(),
        agent: "kevin".into(),
        snapshot_id: ID.into(),
        created_at: chrono::Utc::now(),
        entries: entries
            .iter()
            .map(|e| {
                let kind = match e.kind {
                    tar::EntryType::Directory => EntryKind::Dir,
                    tar::EntryType::Symlink => EntryKind::Symlink,
                    _ => EntryKind::File,
                };
                IndexEntry {
                    path: e.path.trim_end_matches('/').into(),
                    kind,
                    mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
                    size: if kind == EntryKind::File {
                        e.data.len() as u64
                    } else {
                        0
                    },
                    mtime: MTIME as i64,
                    blake3: (kind == EntryKind::File)
                        .then(|| blake3::hash(e.data).to_hex().to_string()),
                    link: (kind == EntryKind::Symlink).then(|| e.link.unwrap().into()),
                }
            })
            .collect(),
        secrets: vec![],
    }
}

/// A tar of `entries`, then the index of `indexed`, then `after` (entries past the index).
fn tar_with(entries: &[Raw<'_>], indexed: &Index, after: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        raw_entry(&mut out, e);
    }
    let json = serde_json::to_vec(indexed).unwrap();
    raw_entry(&mut out, &Raw::file("agentbak/index.json", &json));
    for e in after {
        raw_entry(&mut out, e);
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// Counts a sidecar consistent with `index`.
fn counts_of(index: &Index) -> Counts {
    let of = |k| index.entries.iter().filter(|e| e.kind == k).count() as u64;
    Counts {
        files: of(EntryKind::File),
        dirs: of(EntryKind::Dir),
        symlinks: of(EntryKind::Symlink),
        bytes: index.entries.iter().map(|e| e.size).sum(),
        secrets: 0,
    }
}

/// Commits `tar` (compressed) with a sidecar consistent with `index`; runs a restore into
/// `restored`. A folder `victim` and a file `outside.txt` sit beside the target.
fn restore_tar(tar: &[u8], index: &Index) -> (Project, Output) {
    let p = Project::new(MANIFEST);
    fs::create_dir(p.path().join("victim")).unwrap();
    fs::write(p.path().join("outside.txt"), "untouched").unwrap();
    let archive = zstd::encode_all(tar, 3).unwrap();
    let id = p.commit(ID, &archive, counts_of(index));
    let out = p
        .agentbak()
        .args(["restore", &id, "--target", "restored"])
        .output()
        .unwrap();
    (p, out)
}

/// An archive of `entries` with their own valid index.
fn restore_raw(entries: &[Raw<'_>]) -> (Project, Output) {
    let index = index_of(entries);
    restore_tar(&tar_with(entries, &index, &[]), &index)
}

/// Nothing outside the target changed: the victim folder is empty, `outside.txt` is intact,
/// nothing new sits in the project or its parent.
fn assert_nothing_outside(p: &Project) {
    assert_eq!(fs::read_dir(p.path().join("victim")).unwrap().count(), 0);
    assert_eq!(
        fs::read_to_string(p.path().join("outside.txt")).unwrap(),
        "untouched"
    );
    let mut names: Vec<String> = fs::read_dir(p.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![
        "agentbak.json",
        "backups",
        "outside.txt",
        "restored",
        "state",
        "victim",
    ];
    if !p.path().join("restored").exists() {
        expected.retain(|n| *n != "restored");
    }
    assert_eq!(names, expected);
    assert!(!p.path().parent().unwrap().join("evil.txt").exists());
}

/// Refused with exit 5 and `message` (the whole refusal, archive name included): nothing
/// restored, nothing left over, nothing written outside.
fn assert_refused(p: &Project, out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{}", all_output(out));
    assert!(
        stderr.contains(&format!("{ID}: {message}")),
        "expected `{message}` in: {stderr}"
    );
    assert!(!p.path().join("restored").exists());
    assert!(
        p.leftovers().is_empty(),
        "partial folder left: {:?}",
        p.leftovers()
    );
    assert_nothing_outside(p);
}

/// Restored with exit 3 (a warning) and the escaping link left out, named with its reason.
fn assert_link_skipped(p: &Project, out: &Output, link: &str) {
    let all = all_output(out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains(&format!(
            "skipped link {link} -> ../../victim: the link's target leaves the restored folder"
        )),
        "{all}"
    );
    let restored = p.path().join("restored");
    assert!(
        fs::symlink_metadata(restored.join(link)).is_err(),
        "{link} was created"
    );
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
    assert_nothing_outside(p);
}

/// The honest counterpart of the tests below: the helpers build archives that restore.
#[test]
fn an_honest_archive_built_by_these_helpers_restores() {
    let (p, out) = restore_raw(&[
        Raw::dir("state/"),
        Raw::file("state/ok.txt", b"fine"),
        Raw::symlink("state/inside", "ok.txt"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let restored = p.path().join("restored");
    assert_eq!(fs::read(restored.join("ok.txt")).unwrap(), b"fine");
    assert_eq!(
        fs::read_link(restored.join("inside")).unwrap(),
        Path::new("ok.txt")
    );
    assert_nothing_outside(&p);
}

#[test]
fn dot_dot_entries_are_refused() {
    let (p, out) = restore_raw(&[
        Raw::file("state/ok.txt", b"fine"),
        Raw::file("state/../../evil.txt", b"evil"),
    ]);
    assert_refused(
        &p,
        &out,
        "entry `state/../../evil.txt` refused: `.`, `..` and empty path segments are not allowed",
    );
}

#[test]
fn absolute_entries_are_refused() {
    let p0 = tempfile::tempdir().unwrap();
    let evil = p0.path().join("evil.txt");
    let path = evil.to_str().unwrap().to_string();
    let (p, out) = restore_raw(&[Raw::file(&path, b"evil")]);
    assert_refused(
        &p,
        &out,
        &format!("entry `{path}` refused: absolute paths are not allowed"),
    );
    assert!(!evil.exists());
}

#[test]
fn entries_outside_state_are_refused() {
    let (p, out) = restore_raw(&[Raw::file("etc/evil.txt", b"evil")]);
    assert_refused(
        &p,
        &out,
        "entry `etc/evil.txt` refused: only `state/…` and `agentbak/index.json` belong in an \
         agentbak archive",
    );
}

#[test]
fn a_state_entry_that_is_not_a_folder_is_refused() {
    let (p, out) = restore_raw(&[Raw::file("state", b"x")]);
    assert_refused(
        &p,
        &out,
        "entry `state` refused: the state folder itself is not a folder",
    );
}

#[test]
fn a_symlink_that_escapes_is_not_created() {
    // Relative to its own folder: the restored root -> the project -> victim.
    let (p, out) = restore_raw(&[
        Raw::file("state/ok.txt", b"fine"),
        Raw::symlink("state/escape", "../../victim"),
    ]);
    assert_link_skipped(&p, &out, "escape");
    assert_eq!(fs::read(p.path().join("restored/ok.txt")).unwrap(), b"fine");
}

#[test]
fn a_symlink_that_escapes_through_another_link_is_not_created() {
    // `hop -> .` makes `hop/..` the restored root's parent, though it looks like the root.
    let (p, out) = restore_raw(&[
        Raw::dir("state/"),
        Raw::dir("state/sub"),
        Raw::symlink("state/sub/hop", "."),
        Raw::symlink("state/sub/up", "hop/../../victim"),
    ]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains(
            "skipped link sub/up -> hop/../../victim: the link's target leaves the restored folder"
        ),
        "{all}"
    );
    let restored = p.path().join("restored");
    assert!(fs::symlink_metadata(restored.join("sub/up")).is_err());
    assert_eq!(
        fs::read_link(restored.join("sub/hop")).unwrap(),
        Path::new(".")
    );
    assert_nothing_outside(&p);
}

#[test]
fn an_absolute_symlink_is_not_created() {
    let (p, out) = restore_raw(&[Raw::symlink("state/passwd", "/etc/passwd")]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains(
            "skipped link passwd -> /etc/passwd: the link's target leaves the restored folder"
        ),
        "{all}"
    );
    assert!(fs::symlink_metadata(p.path().join("restored/passwd")).is_err());
    assert_nothing_outside(&p);
}

#[test]
fn a_file_through_a_symlink_to_outside_is_refused() {
    let (p, out) = restore_raw(&[
        Raw::symlink("state/link", "../../victim"),
        Raw::file("state/link/pwned", b"evil"),
    ]);
    assert_refused(
        &p,
        &out,
        "entry `state/link/pwned` refused: it lies below a symlink of the archive",
    );
}

#[test]
fn a_symlink_over_extracted_entries_is_refused() {
    let (p, out) = restore_raw(&[
        Raw::file("state/dir/file", b"x"),
        Raw::symlink("state/dir", "../../victim"),
    ]);
    assert_refused(
        &p,
        &out,
        "entry `state/dir` refused: a link over entries already extracted",
    );
}

#[test]
fn hard_links_are_refused() {
    let (p, out) = restore_raw(&[Raw::link("state/hl", tar::EntryType::Link, "/etc/passwd")]);
    assert_refused(
        &p,
        &out,
        "entry `state/hl` refused: hard links are not allowed",
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, name) in [
        (tar::EntryType::Fifo, "Fifo"),
        (tar::EntryType::Char, "Char"),
        (tar::EntryType::Block, "Block"),
    ] {
        let (p, out) = restore_raw(&[Raw {
            path: "state/dev",
            kind,
            link: None,
            data: b"",
            declared: None,
        }]);
        assert_refused(
            &p,
            &out,
            &format!("entry `state/dev` refused: entry type {name} is not allowed"),
        );
    }
}

#[test]
fn duplicate_entries_are_refused() {
    // The second copy would replace the first after the index vouched for one of them.
    let (p, out) = restore_raw(&[
        Raw::file("state/a.txt", b"first"),
        Raw::file("state/a.txt", b"other"),
    ]);
    assert_refused(&p, &out, "entry `state/a.txt` refused: appears twice");
}

#[test]
fn a_symlink_then_a_file_of_the_same_name_is_refused() {
    // Written through the link, the file would land outside.
    let (p, out) = restore_raw(&[
        Raw::symlink("state/x", "../../outside.txt"),
        Raw::file("state/x", b"evil"),
    ]);
    assert_refused(&p, &out, "entry `state/x` refused: appears twice");
}

#[test]
fn an_entry_after_the_index_is_refused() {
    let entries = [Raw::file("state/ok.txt", b"fine")];
    // The index lists the late entry too, so that only its position is wrong.
    let late = [Raw::file("state/late.txt", b"late")];
    let both = [
        Raw::file("state/ok.txt", b"fine"),
        Raw::file("state/late.txt", b"late"),
    ];
    let index = index_of(&both);
    let (p, out) = restore_tar(&tar_with(&entries, &index, &late), &index);
    assert_refused(
        &p,
        &out,
        "entry `state/late.txt` refused: an entry after the index",
    );
}

#[test]
fn a_huge_declared_size_is_refused_before_it_is_read() {
    let (p, out) = restore_raw(&[Raw {
        declared: Some(1 << 40),
        ..Raw::file("state/big", b"tiny")
    }]);
    // The sidecar counts the 4 bytes the index records.
    assert_refused(&p, &out, "expands past its bound of 4 bytes");
}

#[test]
fn content_that_differs_from_the_index_is_refused() {
    let honest = [Raw::file("state/a.txt", b"hello")];
    let index = index_of(&honest);
    let tar = tar_with(&[Raw::file("state/a.txt", b"HELLO")], &index, &[]);
    let (p, out) = restore_tar(&tar, &index);
    assert_refused(
        &p,
        &out,
        "1 entry differ from the index: `state/a.txt`: blake3 differs between the archive and the \
         index",
    );
}

#[test]
fn an_entry_the_index_does_not_list_is_refused() {
    let index = index_of(&[Raw::file("state/a.txt", b"hello")]);
    let tar = tar_with(
        &[
            Raw::file("state/a.txt", b"hello"),
            Raw::file("state/extra.txt", b""),
        ],
        &index,
        &[],
    );
    let (p, out) = restore_tar(&tar, &index);
    assert_refused(
        &p,
        &out,
        "1 entry differ from the index: `state/extra.txt` is in the archive but not in the index",
    );
}

#[test]
fn a_flipped_byte_fails_the_sidecar_check() {
    let entries = [Raw::file("state/a.txt", b"hello")];
    let index = index_of(&entries);
    let tar = tar_with(&entries, &index, &[]);
    let p = Project::new(MANIFEST);
    let mut archive = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let id = p.commit("20260101T000000Z-0000000b", &archive, counts_of(&index));
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{}", all_output(&out));
    assert!(
        stderr.contains("the archive does not match its sidecar"),
        "{stderr}"
    );
    assert!(!p.path().join("restored").exists());
    assert!(p.leftovers().is_empty());
}

/// A GNU long-name record of `len` bytes of `fill` naming the next entry, then that entry.
fn long_named(out: &mut Vec<u8>, name: &[u8], entry: &Raw<'_>) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_mode(0o644);
    h.set_size(name.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(name);
    out.extend(std::iter::repeat_n(0u8, (512 - name.len() % 512) % 512));
    raw_entry(out, entry);
}

/// Regression: tar reads a long-name record whole into memory before the walk sees its
/// entry, outside the sidecar's byte bound: a 16 KiB archive with a 512 MiB name made a
/// restore take 1.5 GB of memory and print the name. Such records are now bounded (1 MiB),
/// and a refusal shows only the start of a path.
#[test]
fn an_oversized_long_name_record_is_refused_before_it_is_read() {
    let entries = [Raw::file("state/x", b"x")];
    let index = index_of(&entries);
    let mut tar = Vec::new();
    long_named(&mut tar, &vec![b'a'; 2 << 20], &entries[0]);
    let json = serde_json::to_vec(&index).unwrap();
    raw_entry(&mut tar, &Raw::file("agentbak/index.json", &json));
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let (p, out) = restore_tar(&tar, &index);
    assert_refused(
        &p,
        &out,
        "is damaged: a header with its long-name or PAX records is larger than 1048576 bytes",
    );
    assert!(
        out.stderr.len() < 4096,
        "{} bytes of stderr",
        out.stderr.len()
    );
}

#[test]
fn a_long_path_outside_state_is_refused_and_shown_shortened() {
    let name = format!("{}/evil.txt", "d".repeat(100_000));
    let entries = [Raw::file("state/x", b"x")];
    let index = index_of(&entries);
    let mut tar = Vec::new();
    long_named(
        &mut tar,
        name.as_bytes(),
        &Raw::file("placeholder", b"evil"),
    );
    let json = serde_json::to_vec(&index).unwrap();
    raw_entry(&mut tar, &Raw::file("agentbak/index.json", &json));
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let (p, out) = restore_tar(&tar, &index);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "entry `{}… (100009 bytes)` refused",
            "d".repeat(512)
        )),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(out.stderr.len() < 4096);
    assert!(!p.path().join("restored").exists());
}

/// Long paths are real (GNU long names past 100 bytes): one inside the state restores.
#[test]
fn a_long_path_inside_state_restores() {
    let name = format!("state/{}/f.txt", "n".repeat(200));
    let entries = [Raw::file(&name, b"deep")];
    let index = index_of(&entries);
    let mut tar = Vec::new();
    long_named(
        &mut tar,
        name.as_bytes(),
        &Raw::file("placeholder", b"deep"),
    );
    let json = serde_json::to_vec(&index).unwrap();
    raw_entry(&mut tar, &Raw::file("agentbak/index.json", &json));
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let (p, out) = restore_tar(&tar, &index);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let restored = p.path().join("restored").join(&name["state/".len()..]);
    assert_eq!(fs::read(restored).unwrap(), b"deep");
    assert_nothing_outside(&p);
}
