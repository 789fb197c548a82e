//! The repository lock: `<repo>/lock`, held with `flock(2)` for the length of a run.
//!
//! The kernel releases a `flock` when its holder dies, so a crashed run never blocks the next
//! one. What a crash does leave is the file's *content* (pid, host, start time): the next run
//! finds it, sees that the pid is gone on this host, and says it took over a stale lock.
//!
//! Invariants:
//! - The lock file is never deleted. Deleting it would let a waiting run lock an unlinked
//!   inode while a third run locks a new file: two holders. Release truncates it instead.
//! - The file is opened close-on-exec, so no child process can keep a lock alive.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How often a waiting run retries.
const POLL: Duration = Duration::from_millis(100);

/// Who holds (or held) a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the holder.
    pub host: String,
    /// When it took the lock.
    pub started_at: DateTime<Utc>,
    /// What it was doing (`snapshot`, `prune`, …).
    #[serde(default)]
    pub command: String,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` pid {} on {} since {}",
            self.command,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%SZ")
        )
    }
}

/// A held repository lock; released (the file truncated and unlocked) on drop.
#[derive(Debug)]
pub struct RepoLock {
    file: File,
    path: PathBuf,
    /// A lock left by a run that died, found and taken over when this one was taken.
    pub took_over: Option<LockInfo>,
}

/// This host's name, as the lock file and the sidecar record it.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Whether a process with this pid exists on this host.
pub(crate) fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM means it exists but belongs to someone else.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

fn read_info(file: &mut File) -> Option<LockInfo> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl RepoLock {
    /// Takes the lock at `path`, waiting up to `wait` (no wait when `None`) for another run
    /// to release it; [`Error::Locked`] names the holder when it does not.
    pub fn acquire(path: &Path, wait: Option<Duration>, command: &str) -> Result<RepoLock> {
        let io_err = |e| Error::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        let deadline = Instant::now() + wait.unwrap_or_default();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                    std::thread::sleep(POLL);
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let holder = read_info(&mut file)
                        .map_or_else(|| "another run".to_string(), |i| i.to_string());
                    return Err(Error::Locked {
                        path: path.to_path_buf(),
                        holder,
                    });
                }
                Err(e) => return Err(io_err(e.into())),
            }
        }
        let took_over = read_info(&mut file);
        if let Some(stale) = &took_over {
            let here = host_name();
            if stale.host == here && alive(stale.pid) && stale.pid != std::process::id() {
                // The kernel says nobody holds the lock, yet that pid lives: it was reused
                // by an unrelated process, or the holder closed the file without truncating.
                tracing::warn!(lock = %path.display(), previous = %stale, "taking over a lock whose pid still exists");
            } else {
                tracing::warn!(lock = %path.display(), previous = %stale, "taking over a stale lock left by a run that did not finish");
            }
        }
        let info = LockInfo {
            pid: std::process::id(),
            host: host_name(),
            started_at: Utc::now(),
            command: command.to_string(),
        };
        let mut text = serde_json::to_vec(&info).expect("lock info serializes");
        text.push(b'\n');
        file.set_len(0).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        file.write_all(&text).map_err(io_err)?;
        file.sync_data().map_err(io_err)?;
        Ok(RepoLock {
            file,
            path: path.to_path_buf(),
            took_over,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        // Best effort: an empty file tells the next run this one finished cleanly. The flock
        // itself goes away when the file is closed, whatever happens here.
        let _ = self.file.set_len(0);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = RepoLock::acquire(&path, None, "snapshot").unwrap();
        assert!(first.took_over.is_none());
        let err = RepoLock::acquire(&path, Some(Duration::from_millis(250)), "prune").unwrap_err();
        assert!(matches!(err, Error::Locked { .. }));
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("`snapshot`"), "{text}");
        drop(first);
        let again = RepoLock::acquire(&path, None, "prune").unwrap();
        assert!(
            again.took_over.is_none(),
            "a clean release leaves no stale info"
        );
    }

    #[test]
    fn a_dead_holder_is_taken_over_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = LockInfo {
            pid: dead,
            host: host_name(),
            started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            command: "snapshot".into(),
        };
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        assert!(!alive(dead));
        let lock = RepoLock::acquire(&path, None, "prune").unwrap();
        assert_eq!(lock.took_over, Some(stale));
        let now = read_info(&mut File::open(&path).unwrap()).unwrap();
        assert_eq!(now.pid, std::process::id());
    }
}
