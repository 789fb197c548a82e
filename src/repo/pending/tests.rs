//! The pending archive: unnamed while written, linked, copied or unsealed at commit.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::io::Errno;

use super::*;
use crate::archive::{Counts, SIDECAR_FORMAT};
use std::fs;

/// Stands in for an archive: longer than one background flush, so that part of it reaches
/// the disk while it is pending, and with a marker to look for there.
fn archive_bytes() -> Vec<u8> {
    let mut data = Vec::new();
    let mut n = 0u64;
    while data.len() < (super::super::durable::SYNC_EVERY as usize) + (1 << 20) {
        data.extend_from_slice(format!("MARKER line {n} of the pending archive\n").as_bytes());
        n += 1;
    }
    data
}

fn repository() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open_or_create(&dir.path().join("repo")).unwrap();
    (dir, repo)
}

fn sidecar_for(pending: &PendingArchive<'_>, data: &[u8]) -> Sidecar {
    Sidecar {
        format: SIDECAR_FORMAT,
        id: pending.id().to_string(),
        agent: "kevin".into(),
        host: "box".into(),
        created_at: chrono::Utc::now(),
        tags: vec![],
        tool_version: "0".into(),
        archive: pending.archive_name().to_string(),
        size: data.len() as u64,
        blake3: blake3::hash(data).to_hex().to_string(),
        counts: Counts::default(),
        encrypted: false,
        degraded: vec![],
        tree: None,
        stored: None,
        chunk_key: None,
        signature: None,
    }
}

/// Every file under `dir`, relative to it, sorted (the packs' tests use it too).
pub(crate) fn files_under(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

/// Whether `needle` is somewhere in `haystack`.
pub(crate) fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Writes `data` into a new unnamed pending archive and checks that nothing names it.
/// Returns it with the inode of its file.
fn write_unnamed<'r>(repo: &'r Repository, data: &[u8]) -> (PendingArchive<'r>, u64) {
    let id = SnapshotId::new(chrono::Utc::now());
    let mut pending = PendingArchive::start(repo, &id, false, Way::Unnamed).unwrap();
    pending.file().write_all(data).unwrap();
    let Some(file) = pending.out.as_ref().and_then(|f| f.0.unnamed()) else {
        panic!("the test's file system has O_TMPFILE, yet the archive was sealed");
    };
    let meta = file.metadata().unwrap();
    assert_eq!(meta.nlink(), 0, "no folder names the pending archive");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let shown = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
    assert!(
        shown.unwrap().to_string_lossy().ends_with(" (deleted)"),
        "the kernel shows an unnamed file as deleted"
    );
    assert_eq!(
        files_under(repo.root()),
        ["lock"],
        "nothing in tmp/ or snapshots/"
    );
    (pending, meta.ino())
}

/// The snapshot is listed, its archive holds `data`, `tmp/` is empty; returns the
/// archive's inode.
fn committed(repo: &Repository, sidecar: &Sidecar, data: &[u8]) -> u64 {
    let archive = repo.snapshots_dir().join(&sidecar.archive);
    assert_eq!(fs::read(&archive).unwrap(), data);
    let meta = fs::metadata(&archive).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.nlink(), 1);
    assert_eq!(repo.list().unwrap().snapshots, vec![sidecar.clone()]);
    assert!(files_under(&repo.tmp_dir()).is_empty());
    meta.ino()
}

/// Writes an unnamed archive, commits it with `way` alone, and returns whether the
/// committed file is the very inode that was written (a link) or another (a copy).
fn commit_only_with(way: &'static [Link]) -> bool {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let data = archive_bytes();
    let (mut pending, ino) = write_unnamed(&repo, &data);
    assert_eq!(pending.tmp_path(), repo.tmp_dir());
    pending.link_ways = way;
    let sidecar = sidecar_for(&pending, &data);
    pending.commit(&sidecar).unwrap();
    committed(&repo, &sidecar, &data) == ino
}

#[test]
fn the_pending_archive_has_no_name_until_commit_links_it_into_place() {
    assert!(commit_only_with(&[Link::Proc]), "the same file, linked");
}

#[test]
fn an_unnamed_archive_dropped_uncommitted_leaves_no_file() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let (pending, _) = write_unnamed(&repo, &archive_bytes());
    drop(pending);
    assert_eq!(files_under(repo.root()), ["lock"]);
}

#[test]
fn without_proc_commit_links_with_at_empty_path() {
    if !rustix::process::geteuid().is_root() {
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH. CI runs as root and may not skip.
        assert!(
            std::env::var_os("AGENTBAK_NO_SKIP").is_none(),
            "this test may not be skipped here (AGENTBAK_NO_SKIP is set): not root"
        );
        eprintln!("SKIPPED: not root, AT_EMPTY_PATH would be refused");
        return;
    }
    assert!(
        commit_only_with(&[Link::EmptyPath]),
        "the same file, linked"
    );
}

#[test]
fn where_no_link_is_allowed_commit_copies_the_archive_into_place() {
    assert!(!commit_only_with(&[Link::Copy]), "a copy");
}

#[test]
fn a_copy_that_differs_from_the_sidecar_is_not_committed() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let data = archive_bytes();
    let (mut pending, _) = write_unnamed(&repo, &data);
    pending.link_ways = &[Link::Copy];
    let mut sidecar = sidecar_for(&pending, &data);
    sidecar.blake3 = "00".repeat(32);
    let err = pending.commit(&sidecar).unwrap_err();
    assert!(err.to_string().contains("the sidecar says"), "{err}");
    assert_eq!(files_under(repo.root()), ["lock"]);
}

#[test]
fn an_unnamed_archive_of_another_size_than_the_sidecar_is_not_committed() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let data = archive_bytes();
    let (pending, _) = write_unnamed(&repo, &data);
    let mut sidecar = sidecar_for(&pending, &data);
    sidecar.size += 1;
    let err = pending.commit(&sidecar).unwrap_err();
    assert!(err.to_string().contains("the sidecar says"), "{err}");
    assert_eq!(files_under(repo.root()), ["lock"]);
}

#[test]
fn commit_never_replaces_an_existing_archive() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let data = archive_bytes();
    let (pending, _) = write_unnamed(&repo, &data);
    let there = repo.snapshots_dir().join(pending.archive_name());
    fs::write(&there, b"another archive").unwrap();
    let sidecar = sidecar_for(&pending, &data);
    pending.commit(&sidecar).unwrap_err();
    assert_eq!(fs::read(&there).unwrap(), b"another archive");
    assert!(repo.list().unwrap().snapshots.is_empty());
}

#[test]
fn a_sealed_archive_is_unreadable_on_the_disk_and_committed_in_plain() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let id = SnapshotId::new(chrono::Utc::now());
    let mut pending = PendingArchive::start(&repo, &id, true, Way::Sealed).unwrap();
    let data = archive_bytes();
    pending.file().write_all(&data).unwrap();
    pending.file().flush().unwrap();
    let sealed = pending.tmp_path();
    assert_eq!(
        files_under(&repo.tmp_dir()),
        [format!("{id}{ENCRYPTED_SUFFIX}{SEALED_SUFFIX}")]
    );
    assert_eq!(
        fs::metadata(&sealed).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let on_disk = fs::read(&sealed).unwrap();
    assert!(on_disk.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        on_disk.len() > 1 << 20,
        "the archive went to the file as it grew"
    );
    assert!(
        !holds(&on_disk, b"MARKER"),
        "no plaintext in the sealed file"
    );
    assert!(!format!("{pending:?}").contains("AGE-SECRET-KEY"));
    let sidecar = sidecar_for(&pending, &data);
    pending.commit(&sidecar).unwrap();
    committed(&repo, &sidecar, &data);
}

#[test]
fn a_sealed_archive_dropped_uncommitted_leaves_no_file() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let id = SnapshotId::new(chrono::Utc::now());
    let mut pending = PendingArchive::start(&repo, &id, false, Way::Sealed).unwrap();
    pending.file().write_all(&archive_bytes()).unwrap();
    assert_eq!(files_under(&repo.tmp_dir()).len(), 1);
    drop(pending);
    assert_eq!(files_under(repo.root()), ["lock"]);
}

#[test]
fn a_sealed_archive_that_differs_from_the_sidecar_is_not_committed() {
    let (_dir, repo) = repository();
    let _lock = repo.lock(None, "test").unwrap();
    let id = SnapshotId::new(chrono::Utc::now());
    let mut pending = PendingArchive::start(&repo, &id, false, Way::Sealed).unwrap();
    let data = archive_bytes();
    pending.file().write_all(&data).unwrap();
    let sidecar = sidecar_for(&pending, &data[1..]);
    let err = pending.commit(&sidecar).unwrap_err();
    assert!(err.to_string().contains("the sidecar says"), "{err}");
    assert_eq!(files_under(repo.root()), ["lock"]);
}

#[test]
fn a_file_system_without_unnamed_files_is_told_from_other_failures() {
    // sysfs has no O_TMPFILE: the kernel's own EOPNOTSUPP, not a simulated one.
    match open_unnamed(Path::new("/sys/kernel")) {
        Err(e) => assert!(lacks_unnamed_files(&e), "{e}"),
        Ok(_) => panic!("sysfs made an unnamed file"),
    }
    for errno in [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL] {
        assert!(lacks_unnamed_files(&errno.into()));
    }
    // A missing folder is an error of its own, not a reason to seal.
    let dir = tempfile::tempdir().unwrap();
    let e = open_unnamed(&dir.path().join("missing")).unwrap_err();
    assert!(!lacks_unnamed_files(&e), "{e}");
    let repo = Repository {
        root: dir.path().join("missing"),
    };
    let id = SnapshotId::new(chrono::Utc::now());
    let err = PendingArchive::start(&repo, &id, false, Way::Unnamed).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}
