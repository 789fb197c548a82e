//! Crashes and faults: `kill -9` at random moments during snapshots never leaves a listed
//! snapshot that fails its hash check, nor a lock that blocks the next run (SPEC "Snapshot"
//! point 6), nor a readable byte that the leak gate would have refused (point 9); a full disk
//! fails a snapshot cleanly; `kill -9` during a restore never leaves a partial target, and the
//! next restore removes what the killed one left.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn agentbak(manifest: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentbak"));
    cmd.arg("-m").arg(manifest).env_remove("AGENTBAK_MANIFEST");
    cmd
}

/// A state of a few tens of MiB: enough that a snapshot takes a while on any machine.
fn make_state(root: &Path) {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..16 {
        let dir = root.join(format!("memory/d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = std::fs::File::create(dir.join(format!("f{i}.log"))).unwrap();
        let mut buf = Vec::with_capacity(1 << 20);
        for _ in 0..2 {
            buf.clear();
            while buf.len() < (1 << 20) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                writeln!(buf, "step {seed:016x} observation {}", seed % 9973).unwrap();
            }
            f.write_all(&buf).unwrap();
        }
    }
}

/// Every listed snapshot's archive matches its sidecar's size and blake3.
fn check_listed(repo: &Path) -> usize {
    let dir = repo.join("snapshots");
    let mut listed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let archive = dir.join(sidecar["archive"].as_str().unwrap());
        let bytes = std::fs::read(&archive).expect("a listed snapshot has its archive");
        assert_eq!(bytes.len() as u64, sidecar["size"].as_u64().unwrap());
        assert_eq!(
            blake3::hash(&bytes).to_hex().to_string(),
            sidecar["blake3"].as_str().unwrap(),
            "{} does not match its sidecar",
            archive.display()
        );
        listed += 1;
    }
    listed
}

#[test]
fn kill_9_at_random_moments_leaves_only_complete_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_state(&root.join("state"));
    let manifest = root.join("agentbak.json");
    std::fs::write(
        &manifest,
        r#"{ "version": 1, "agent": "crash", "state": "./state", "repository": "./backups" }"#,
    )
    .unwrap();

    // How long one run takes here, to spread the kills over it.
    let t = Instant::now();
    let ok = agentbak(&manifest).arg("snapshot").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let full = t.elapsed();

    let trials = 8;
    for trial in 0..trials {
        let delay = full.mul_f64(trial as f64 / trials as f64 * 1.1);
        let mut child = agentbak(&manifest)
            .arg("snapshot")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        check_listed(&root.join("backups"));
    }

    // The next run is not blocked by a lock of a killed run, and cleans up what they left.
    let next = agentbak(&manifest).arg("snapshot").output().unwrap();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let listed = check_listed(&root.join("backups"));
    assert!(listed >= 2, "the first and the last run are listed");
    let tmp = root.join("backups/tmp");
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "leftovers of killed runs are gone"
    );
    let list = agentbak(&manifest).arg("list").output().unwrap();
    assert!(list.status.success());
}

/// A GitHub token, put together at run time so that no token is in the source as one literal.
fn planted_token() -> String {
    let alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let body: String = (0..36)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            alnum[(seed % 62) as usize] as char
        })
        .collect();
    ["ghp", body.as_str()].join("_")
}

/// Four MiB of log lines that zstd halves: compressible, but not trivially (the archive's
/// frames are 2 MiB, so repeating the block gains nothing).
fn log_block() -> Vec<u8> {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = Vec::with_capacity(4 << 20);
    while block.len() < (4 << 20) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        writeln!(block, "step {seed:016x} observation {}", seed % 9973).unwrap();
    }
    block
}

/// A state of about 250 MiB: `a/big.log` (129 MiB) with a line for the token 1 MiB before
/// its end, then 120 MiB of other logs that the archive holds after it, so that a snapshot
/// spends half of its time with the token archived and not yet refused. The line holds
/// dashes until [`set_token_line`] puts the token there. Returns the line's offset.
fn make_large_state(root: &Path) -> u64 {
    let block = log_block();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::create_dir_all(root.join("b")).unwrap();
    let mut big = std::io::BufWriter::new(std::fs::File::create(root.join("a/big.log")).unwrap());
    for _ in 0..32 {
        big.write_all(&block).unwrap();
    }
    let at = 32 * block.len() as u64;
    writeln!(big, "step note {}", "-".repeat(planted_token().len())).unwrap();
    big.write_all(&block[..1 << 20]).unwrap();
    big.flush().unwrap();
    // Files past 16 MiB stream into the archive, as the big one does.
    for i in 0..6 {
        let mut f = std::fs::File::create(root.join(format!("b/more{i}.log"))).unwrap();
        // Rotated by file, so that no two files are alike.
        let (head, tail) = block.split_at((i + 1) << 18);
        for _ in 0..5 {
            f.write_all(tail).unwrap();
            f.write_all(head).unwrap();
        }
    }
    at
}

/// Writes `with` into the token line of `a/big.log` at `at`, in place.
fn set_token_line(state: &Path, at: u64, with: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(state.join("a/big.log"))
        .unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    writeln!(f, "step note {with}").unwrap();
}

/// The files under `root` that hold `needle`, as bytes or inside zstd frames (a pending
/// archive is compressed, so the token is found only after decompressing what is there).
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let finder = memchr::memmem::Finder::new(needle);
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let mut held = finder.find(&bytes).is_some();
        if !held && bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            // Decompress as far as the file goes (a killed run's file ends mid-frame), keeping
            // the last bytes of each piece so that a token across two pieces is seen too.
            let mut decoder = zstd::stream::read::Decoder::new(bytes.as_slice()).unwrap();
            let mut window = Vec::new();
            let mut piece = vec![0; 1 << 20];
            while let Ok(n) = decoder.read(&mut piece) {
                if n == 0 {
                    break;
                }
                window.extend_from_slice(&piece[..n]);
                if finder.find(&window).is_some() {
                    held = true;
                    break;
                }
                window.drain(..window.len().saturating_sub(needle.len()));
            }
        }
        if held {
            found.push(entry.path().to_path_buf());
        }
    }
    found
}

/// The size of the archive that the snapshot `pid` is writing into `tmp` (named or not), if
/// it has one open there.
fn pending_size(pid: u32, tmp: &Path) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| {
            let fd = fd.ok()?.path();
            let target = std::fs::read_link(&fd).ok()?;
            // An unnamed file shows as `<tmp>/#<inode> (deleted)`.
            target.starts_with(tmp).then_some(())?;
            std::fs::metadata(&fd).ok().map(|m| m.len())
        })
        .max()
}

#[test]
fn kill_9_before_the_gate_refuses_a_token_leaves_it_nowhere_in_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let state = root.join("state");
    let token_at = make_large_state(&state);
    let manifest = root.join("agentbak.json");
    std::fs::write(
        &manifest,
        r#"{ "version": 1, "agent": "crash", "state": "./state", "repository": "./backups" }"#,
    )
    .unwrap();
    let repo = root.join("backups");
    let token = planted_token();
    let run = || agentbak(&manifest).arg("snapshot").output().unwrap();

    // One clean snapshot, listed throughout.
    let clean = run();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    set_token_line(&state, token_at, &token);

    // The gate refuses the token (exit 4) at the end of a whole run, and nothing stays. The
    // run's time spreads the kills over such a run.
    let t = Instant::now();
    let refused = run();
    let full = t.elapsed();
    assert_eq!(
        refused.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        files_holding(&repo, token.as_bytes()),
        Vec::<PathBuf>::new()
    );

    // Where the token lies in an archive: about as far in as it lies in the state.
    let state_bytes: u64 = walkdir::WalkDir::new(&state)
        .into_iter()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let archive_bytes = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    let token_in_archive = archive_bytes * token_at / state_bytes;
    let tmp = repo.join("tmp").canonicalize().unwrap();
    let mut killed_past_token = 0;
    let trials = 8;
    for trial in 0..trials {
        // From a fifth of the run to nearly its end: about half of the kills land after the
        // token was archived and before the gate refused it.
        let delay = full.mul_f64(0.2 + 0.75 * trial as f64 / (trials - 1) as f64);
        let mut child = agentbak(&manifest)
            .arg("snapshot")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let pending = pending_size(child.id(), &tmp);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if pending.is_some_and(|size| size > token_in_archive + (4 << 20)) {
            killed_past_token += 1;
        }
        assert_eq!(
            files_holding(&repo, token.as_bytes()),
            Vec::<PathBuf>::new(),
            "trial {trial}, killed after {delay:?} of a {full:?} run: the token is readable"
        );
        assert_eq!(
            check_listed(&repo),
            1,
            "trial {trial}: only the clean snapshot"
        );
    }

    // The kills that matter happened: the test would have caught a pending archive that held
    // the token readably (it did, before archives were written unnamed).
    assert!(
        killed_past_token >= 2,
        "only {killed_past_token} of {trials} kills came after the token was archived"
    );

    // Without the token, the next run takes the lock, cleans up and commits.
    set_token_line(&state, token_at, &"-".repeat(token.len()));
    let next = run();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert_eq!(check_listed(&repo), 2);
    assert_eq!(std::fs::read_dir(repo.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_second_run_meets_the_lock_and_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::write(root.join("state/notes.md"), "hello\n").unwrap();
    let manifest = root.join("agentbak.json");
    std::fs::write(
        &manifest,
        r#"{ "version": 1, "agent": "lock", "state": "./state", "repository": "./backups" }"#,
    )
    .unwrap();
    // This test holds the repository lock, as a running snapshot would.
    let repo = agentbak::repo::Repository::open_or_create(&root.join("backups")).unwrap();
    let held = repo.lock(None, "test").unwrap();
    let second = agentbak(&manifest).arg("snapshot").output().unwrap();
    assert_eq!(
        second.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("locked"));
    // With --wait, the run proceeds once the lock is released.
    let waiting = agentbak(&manifest)
        .args(["snapshot", "--wait", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!out.stdout.is_empty(), "the waiting run printed its id");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `dir`, or says why it cannot (not root, no CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_snapshot_cleanly_and_the_next_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_state(&root.join("state"));
    // A repository on a 256 KiB file system: the archive of ~32 MiB of logs does not fit.
    let disk = match Tmpfs::mount(&root.join("disk"), "256k") {
        Ok(disk) => disk,
        Err(why) => {
            // Mounting needs root (CI runs as root, and may not skip).
            crate::common::skip(&format!("cannot mount a tmpfs to fill ({why})"));
            return;
        }
    };
    let manifest = root.join("agentbak.json");
    std::fs::write(
        &manifest,
        r#"{ "version": 1, "agent": "full", "state": "./state", "repository": "./disk/repo" }"#,
    )
    .unwrap();
    let out = agentbak(&manifest).arg("snapshot").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(
        check_listed(&root.join("disk/repo")),
        0,
        "nothing is listed"
    );
    assert_eq!(
        std::fs::read_dir(root.join("disk/repo/tmp"))
            .unwrap()
            .count(),
        0,
        "the partial archive is removed"
    );
    // With room again (a small state), the next run takes the lock and succeeds.
    std::fs::remove_dir_all(root.join("state/memory")).unwrap();
    std::fs::write(root.join("state/notes.md"), "small\n").unwrap();
    let out = agentbak(&manifest).arg("snapshot").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check_listed(&root.join("disk/repo")), 1);
    drop(disk);
}

#[test]
fn kill_9_during_restore_leaves_the_target_absent_or_complete() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_state(&root.join("state"));
    let manifest = root.join("agentbak.json");
    std::fs::write(
        &manifest,
        r#"{ "version": 1, "agent": "crash", "state": "./state", "repository": "./backups" }"#,
    )
    .unwrap();
    let out = agentbak(&manifest).arg("snapshot").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let t = Instant::now();
    let target = root.join("restored");
    let ok = agentbak(&manifest)
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let full = t.elapsed();
    let complete = tree_digest(&target);
    std::fs::remove_dir_all(&target).unwrap();

    let trials = 6;
    for trial in 0..trials {
        let delay = full.mul_f64(trial as f64 / trials as f64);
        let mut child = agentbak(&manifest)
            .args(["restore", "latest", "--target"])
            .arg(&target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        if target.exists() {
            assert_eq!(
                tree_digest(&target),
                complete,
                "trial {trial}: a partial target"
            );
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
    // The next restore completes and removes what the killed runs left beside the target.
    let out = agentbak(&manifest)
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_digest(&target), complete);
    let leftovers: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".agentbak-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Every file under `root` with its blake3, sorted.
fn tree_digest(root: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().display().to_string(),
                blake3::hash(&std::fs::read(e.path()).unwrap())
                    .to_hex()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}
