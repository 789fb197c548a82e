//! The target folder: a fresh hidden folder beside it, then one rename into place.
//!
//! Invariants:
//! - The new tree is built in `<parent>/.<name>.agentbak-restore-<random>` (`0700`, same file
//!   system as the target, so the final step is a `rename`, never a copy).
//! - [`Staging`] removes that folder when dropped unless [`Staging::commit`] succeeded: every
//!   early return (a tampered entry, an unresolved handle) leaves no partial folder.
//! - A target is replaced only with `--force`, and then atomically: the new tree and the old one
//!   are swapped with `renameat2(RENAME_EXCHANGE)`, so at every instant the target is either the
//!   complete old tree or the complete new one; the old tree is deleted only afterwards. Where
//!   the kernel or file system lacks the exchange, the old tree is first renamed aside (a crash
//!   in that instant leaves the target absent and both trees intact under hidden names).
//! - Before the rename the file system is synced, so the renamed tree is on disk.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::repo::{alive, host_name, sync_dir};

/// What is at the target path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetState {
    /// Nothing.
    Absent,
    /// An empty folder.
    Empty,
    /// A folder with entries.
    NonEmpty,
}

/// Looks at the target and refuses what a restore must not replace: a non-empty folder without
/// `force`, and anything that is not a folder (a file, a symlink: replacing a link would
/// surprise whoever made it).
pub(crate) fn inspect(target: &Path, force: bool) -> Result<TargetState> {
    let meta = match fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TargetState::Absent),
        Err(e) => return Err(Error::io(target, e)),
    };
    if !meta.is_dir() {
        return Err(Error::Target {
            path: target.to_path_buf(),
            reason: "it exists and is not a folder (a file or a symlink); pick another --target"
                .into(),
        });
    }
    let mut entries = fs::read_dir(target).map_err(|e| Error::io(target, e))?;
    if entries.next().is_none() {
        return Ok(TargetState::Empty);
    }
    if !force {
        return Err(Error::Target {
            path: target.to_path_buf(),
            reason: "the folder is not empty; pass --force to replace it (the old content is \
                     removed only once the new tree is in place)"
                .into(),
        });
    }
    Ok(TargetState::NonEmpty)
}

/// The folder being filled; removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct Staging {
    path: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Staging {
    /// Creates the hidden folder beside `target` (and the target's parent when missing).
    pub(crate) fn create(target: &Path) -> Result<Staging> {
        let parent = parent_of(target);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        remove_stale(target);
        let path = hidden_sibling(target, "restore")?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Staging {
            path,
            target: target.to_path_buf(),
            done: false,
        })
    }

    /// The folder to fill.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the file system, then makes the folder the target (see the module invariants).
    pub(crate) fn commit(mut self, state: TargetState) -> Result<()> {
        let dir = fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io(&self.path, e.into()))?;
        match state {
            // rename(2) replaces an empty folder in one step.
            TargetState::Absent | TargetState::Empty => {
                fs::rename(&self.path, &self.target).map_err(|e| Error::io(&self.target, e))?;
                self.done = true;
            }
            TargetState::NonEmpty => self.swap()?,
        }
        sync_dir(&parent_of(&self.target))
    }

    fn swap(&mut self) -> Result<()> {
        let exchanged = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.path,
            rustix::fs::CWD,
            &self.target,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        match exchanged {
            Ok(()) => {
                // The old tree now sits at the staging path: drop removes it.
                tracing::debug!(old = %self.path.display(), "old target swapped out");
                Ok(())
            }
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
                let aside = hidden_sibling(&self.target, "old")?;
                fs::rename(&self.target, &aside).map_err(|e| Error::io(&self.target, e))?;
                if let Err(e) = fs::rename(&self.path, &self.target) {
                    // Put the old tree back: the user keeps what they had.
                    let _ = fs::rename(&aside, &self.target);
                    return Err(Error::io(&self.target, e));
                }
                self.done = true;
                remove_tree(&aside);
                Ok(())
            }
            Err(e) => Err(Error::io(&self.target, e.into())),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            remove_tree(&self.path);
        }
    }
}

/// Removes a tree we made; folders restored without write permission are opened up first.
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    if let Err(e) = fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), "could not remove a restore folder: {e}");
    }
}

fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Removes the hidden folders that killed restores of `target` left beside it (a `kill -9`
/// runs no destructor): a partial tree, perhaps with rehydrated values, or an old tree swapped
/// out. A folder is stale when the process named in it no longer runs; folders of live runs
/// and names that do not parse are left alone.
fn remove_stale(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.agentbak-");
    let Ok(entries) = fs::read_dir(parent_of(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        // `<what>-<pid>@<host>-<random>`; a host name may hold `-`, the random tag does not.
        let Some((owner, _random)) = rest
            .strip_prefix("restore-")
            .or_else(|| rest.strip_prefix("old-"))
            .and_then(|r| r.rsplit_once('-'))
        else {
            continue;
        };
        let Some((Ok(pid), host)) = owner.split_once('@').map(|(p, h)| (p.parse::<u32>(), h))
        else {
            continue;
        };
        if host != host_name() || pid == std::process::id() || alive(pid) {
            continue;
        }
        tracing::warn!(
            path = %entry.path().display(),
            "removing what a killed restore (pid {pid}) left beside the target"
        );
        remove_tree(&entry.path());
    }
}

/// `<parent>/.<name>.agentbak-<what>-<pid>@<host>-<random>`: the pid and host let a later
/// run tell a folder of a killed run from one of a run in progress.
fn hidden_sibling(target: &Path, what: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::Target {
            path: target.to_path_buf(),
            reason: "a target needs a folder name (not `/`, `.` or `..`)".into(),
        })?
        .to_string_lossy();
    let mut random = [0u8; 6];
    getrandom::fill(&mut random)
        .map_err(|e| Error::io(target, std::io::Error::other(e.to_string())))?;
    let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(parent_of(target).join(format!(
        ".{name}.agentbak-{what}-{}@{}-{tag}",
        std::process::id(),
        host_name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_killed_runs_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent");
        // pid 0 never names a user process; our own pid is alive.
        let host = host_name();
        let at = |what: &str, pid: u32, host: &str| {
            dir.path()
                .join(format!(".agent.agentbak-{what}-{pid}@{host}-a1b2"))
        };
        let dead = at("restore", 0, &host);
        let old = at("old", 0, &host);
        let live = at("restore", std::process::id(), &host);
        let elsewhere = at("restore", 0, "another-host");
        let other = dir
            .path()
            .join(format!(".other.agentbak-restore-0@{host}-a1b2"));
        for d in [&dead, &old, &live, &elsewhere, &other] {
            fs::create_dir_all(d.join("sub")).unwrap();
        }
        let staging = Staging::create(&target).unwrap();
        assert!(!dead.exists() && !old.exists(), "stale folders are gone");
        assert!(live.exists(), "a live run's folder stays");
        assert!(
            elsewhere.exists(),
            "another host's folder stays (its pid means nothing here)"
        );
        assert!(other.exists(), "another target's folder stays");
        let name = staging
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.contains(&format!("-{}@{host}-", std::process::id())),
            "{name}"
        );
        drop(staging);
    }

    #[test]
    fn staging_is_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent");
        let staging = Staging::create(&target).unwrap();
        let inner = staging.path().to_path_buf();
        fs::write(inner.join("f"), b"x").unwrap();
        drop(staging);
        assert!(!inner.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn force_swaps_the_trees_and_removes_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old"), b"old").unwrap();
        assert!(inspect(&target, false).is_err());
        let state = inspect(&target, true).unwrap();
        assert_eq!(state, TargetState::NonEmpty);
        let staging = Staging::create(&target).unwrap();
        fs::write(staging.path().join("new"), b"new").unwrap();
        staging.commit(state).unwrap();
        assert!(target.join("new").is_file());
        assert!(!target.join("old").exists());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "only the target is left: {names:?}");
    }

    #[test]
    fn files_and_links_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(inspect(&file, true).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(inspect(&link, true).is_err());
        assert_eq!(
            inspect(&dir.path().join("none"), false).unwrap(),
            TargetState::Absent
        );
    }
}
