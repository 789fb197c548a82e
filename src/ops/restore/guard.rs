//! The restore guard: a restore never replaces what agentbak itself needs.
//!
//! A restore with `--force` swaps a whole tree into the target and deletes the old one. A target
//! that is, holds or lies inside the repository, the manifest file or a store's file (a local
//! store and its identity, a vault cache, token or AppRole file) would take the snapshots, the
//! configuration or the keys with it (issue 17: `--target .` beside `agentbak.json` deleted all
//! three). [`Protected::check`] refuses such a target before anything is touched — with or
//! without `--force`, also with `--dry-run` — as a usage error (exit 2).
//!
//! Invariants: every comparison is between paths with their symlinks resolved
//! ([`real_path`]), so an alias of a protected folder, or a target reached through a linked
//! parent, names the same place as the real path; the target need not exist yet. Nothing but
//! those paths is protected: `/` or a home folder is refused because it holds them, not by rule.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, real_path, shown};

/// The paths a restore must not replace, resolved once.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    paths: Vec<Guarded>,
}

#[derive(Debug, Clone)]
struct Guarded {
    /// What it is, for the error: `the repository`, `the identity of store `local``.
    what: String,
    /// The path as the manifest gave it.
    path: PathBuf,
    /// The same path with its symlinks resolved.
    real: PathBuf,
}

impl Protected {
    /// The repository, the manifest at `manifest_path` and every store file of `manifest`.
    pub fn new(manifest: &Manifest, manifest_path: &Path) -> Protected {
        let mut paths = vec![
            Guarded::new("the repository".into(), &manifest.repository),
            Guarded::new("the manifest".into(), manifest_path),
        ];
        for file in manifest.store_files() {
            paths.push(Guarded::new(
                format!("the {} of store `{}`", file.what, file.store),
                file.path,
            ));
        }
        Protected { paths }
    }

    /// Refuses a `target` that is, holds or lies inside a protected path.
    pub fn check(&self, target: &Path) -> Result<()> {
        let real = real_path(target);
        for g in &self.paths {
            let relation = if real == g.real {
                "is"
            } else if g.real.starts_with(&real) {
                "holds"
            } else if real.starts_with(&g.real) {
                "lies inside"
            } else {
                continue;
            };
            return Err(Error::ProtectedTarget {
                target: shown(target, &real),
                relation,
                what: g.what.clone(),
                path: shown(&g.path, &g.real),
            });
        }
        Ok(())
    }
}

impl Guarded {
    fn new(what: String, path: &Path) -> Guarded {
        Guarded {
            what,
            path: path.to_path_buf(),
            real: real_path(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::error::ExitCode;

    /// `root/{agentbak.json, state/, backups/, keys/}`, the manifest loaded as `cli` loads it.
    fn project() -> (tempfile::TempDir, PathBuf, Protected) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("state")).unwrap();
        fs::create_dir_all(root.join("backups/snapshots")).unwrap();
        fs::create_dir_all(root.join("keys")).unwrap();
        let manifest = root.join("agentbak.json");
        fs::write(
            &manifest,
            r#"{ "version": 1, "agent": "k", "state": "./state", "repository": "./backups",
                 "stores": { "local": { "kind": "local", "path": "./keys/s.age",
                                        "identity": "./keys/s.key" } } }"#,
        )
        .unwrap();
        let m = Manifest::load(&manifest).unwrap();
        let protected = Protected::new(&m, &manifest);
        (dir, root, protected)
    }

    fn refusal(p: &Protected, target: &Path) -> String {
        let err = p.check(target).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        err.to_string()
    }

    #[test]
    fn a_target_that_is_holds_or_lies_inside_a_protected_path_is_refused() {
        let (_dir, root, p) = project();
        let msg = refusal(&p, &root.join("backups"));
        assert_eq!(
            msg,
            format!(
                "restore target {0}/backups is the repository {0}/backups; restore elsewhere",
                root.display()
            )
        );
        let msg = refusal(&p, &root);
        assert!(
            msg.contains(&format!("holds the repository {}/backups", root.display())),
            "{msg}"
        );
        let msg = refusal(&p, &root.join("backups/snapshots/new"));
        assert!(msg.contains("lies inside the repository"), "{msg}");
        let msg = refusal(&p, &root.join("keys"));
        assert!(msg.contains("holds the file of store `local`"), "{msg}");
        let msg = refusal(&p, &root.join("agentbak.json"));
        assert!(msg.contains("is the manifest"), "{msg}");
        assert!(refusal(&p, Path::new("/")).contains("holds the repository"));
    }

    #[test]
    fn an_alias_names_the_folder_it_points_to() {
        let (_dir, root, p) = project();
        symlink(root.join("backups"), root.join("bk")).unwrap();
        symlink(&root, root.join("state/up")).unwrap();
        let msg = refusal(&p, &root.join("bk"));
        assert!(
            msg.contains(&format!(
                "{0}/bk (resolves to {0}/backups) is the repository",
                root.display()
            )),
            "{msg}"
        );
        let msg = refusal(&p, &root.join("state/up/keys"));
        assert!(msg.contains("holds the file of store `local`"), "{msg}");
        // A `..` that climbs out of a folder that does not exist yet.
        let msg = refusal(&p, &root.join("new/../backups"));
        assert!(msg.contains("is the repository"), "{msg}");
    }

    #[test]
    fn the_state_and_fresh_folders_beside_it_are_fine() {
        let (_dir, root, p) = project();
        p.check(&root.join("state")).unwrap();
        p.check(&root.join("restored/deep")).unwrap();
        // A sibling whose name starts with a protected one is not inside it.
        p.check(&root.join("backups-old")).unwrap();
        p.check(&root.join("agentbak.json.d")).unwrap();
        Protected::default().check(&root).unwrap();
    }
}
