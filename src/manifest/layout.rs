//! The manifest's layout: where the state, the repository and every store file lie, compared
//! with their symlinks resolved ([`real_path`]).
//!
//! The state and the repository must be apart (neither the same folder nor one inside the
//! other), and every store file (a key, a token, a cache) must be outside both, or a snapshot
//! would archive the repository or the keys to its own secrets. `restore` uses the same
//! resolution to refuse a target that holds any of them (`ops::restore::guard`).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::validate::Collector;
use super::{Manifest, ManifestError, StoreConfig, VaultAuth};

impl Manifest {
    /// Every file a store reads or writes that must live outside the state and the repository
    /// (a key, a token, a cache), in manifest order. `restore` refuses to replace them too.
    pub(crate) fn store_files<'a>(&'a self) -> Vec<StoreFile<'a>> {
        let mut out = Vec::new();
        for (name, store) in &self.stores {
            let mut push = |field, what, path: &'a PathBuf| {
                out.push(StoreFile {
                    store: name,
                    field,
                    what,
                    path: path.as_path(),
                })
            };
            match store {
                StoreConfig::Local(l) => {
                    push("path", "file", &l.path);
                    push("identity", "identity", &l.identity);
                }
                StoreConfig::Vault(v) => {
                    if let Some(cache) = &v.cache {
                        push("cache/path", "cache", &cache.path);
                    }
                    // A token or a secret id inside the state would be archived in plain text.
                    match &v.auth {
                        Some(VaultAuth::Token {
                            token_file: Some(f),
                        }) => push("auth/token_file", "token file", f),
                        Some(VaultAuth::Approle {
                            role_id_file,
                            secret_id_file,
                            ..
                        }) => {
                            if let Some(f) = role_id_file {
                                push("auth/role_id_file", "role id file", f);
                            }
                            if let Some(f) = secret_id_file {
                                push("auth/secret_id_file", "secret id file", f);
                            }
                        }
                        _ => {}
                    }
                }
                StoreConfig::Env(_) => {}
            }
        }
        out
    }

    /// The layout, on resolved paths (after `~` and the manifest's folder): the state and the
    /// repository apart — neither the same folder nor one inside the other, or a snapshot would
    /// archive the repository and a restore into the state would delete the snapshots — and
    /// every store file outside both, or a backup would carry the keys to its own secrets.
    /// Paths are compared with their symlinks resolved, so an alias cannot hide a folder.
    pub(super) fn validate_paths(&self, path: &Path, text: &[u8]) -> Result<(), ManifestError> {
        let mut c = Collector {
            text,
            problems: Vec::new(),
        };
        let state = real_path(&self.state);
        let repository = real_path(&self.repository);
        let shown_state = shown(&self.state, &state);
        let shown_repository = shown(&self.repository, &repository);
        if repository == state {
            c.push(
                "/repository",
                format!(
                    "{shown_repository} is the state folder; keep the repository beside the \
                     state, not in it"
                ),
            );
        } else if repository.starts_with(&state) {
            c.push(
                "/repository",
                format!(
                    "{shown_repository} lies inside the state folder {shown_state}; a snapshot \
                     would archive the repository and a restore into the state would delete it; \
                     keep the repository beside the state"
                ),
            );
        } else if state.starts_with(&repository) {
            c.push(
                "/state",
                format!(
                    "{shown_state} lies inside the repository folder {shown_repository}; keep \
                     the state beside the repository"
                ),
            );
        }
        for file in self.store_files() {
            let real = real_path(file.path);
            for (what, dir, shown_dir) in [
                ("state", &state, &shown_state),
                ("repository", &repository, &shown_repository),
            ] {
                if real.starts_with(dir) {
                    c.push(
                        format!("/stores/{}/{}", file.store, file.field),
                        format!(
                            "{} lies inside the {what} folder {shown_dir}; keep store files and \
                             keys outside it",
                            shown(file.path, &real),
                        ),
                    );
                }
            }
        }
        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError {
                path: path.to_path_buf(),
                problems: c.problems,
            })
        }
    }
}

/// A file of a store (see [`Manifest::store_files`]).
pub(crate) struct StoreFile<'a> {
    /// The store's name.
    pub store: &'a str,
    /// The field, as a JSON Pointer below the store (`identity`, `auth/token_file`).
    pub field: &'static str,
    /// What the file is, for people (`identity`, `token file`).
    pub what: &'static str,
    /// The path, as the manifest resolved it.
    pub path: &'a Path,
}

/// `path`, and what it resolves to when a symlink (or a `..`) makes that differ.
pub(crate) fn shown(path: &Path, real: &Path) -> String {
    if path == real {
        path.display().to_string()
    } else {
        format!("{} (resolves to {})", path.display(), real.display())
    }
}

/// One step of a path walk.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::CurDir => None,
        Component::ParentDir => Some(Step::Up),
        Component::Normal(n) => Some(Step::Name(n.to_os_string())),
    })
}

/// Linux's limit on the symlinks followed in one path resolution (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// `path` made absolute with every symlink resolved, also when its tail does not exist yet
/// (a restore target, a store file not created yet): the part that exists is resolved as the
/// kernel resolves it (`..` after a link climbs from the link's target), the missing part is
/// kept as written, and a `..` after a missing folder removes it — where `mkdir -p` and then
/// the kernel would land. The result names the place the path would name once created, so two
/// paths can be compared with `==` and `starts_with`.
///
/// Never hangs: after 40 links (Linux's limit; a loop), a link is kept as written, like a
/// missing component — the kernel refuses such a path (`ELOOP`), so nothing can be created
/// through it. An unreadable component is treated as missing too.
pub fn real_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // A stack: the next step is last, so a link's target can be pushed in front of the rest.
    let mut todo: Vec<Step> = steps(&absolute).rev().collect();
    let mut out = PathBuf::from("/");
    // How many trailing components of `out` do not exist (0: all of `out` exists, resolved).
    let mut missing = 0usize;
    let mut links = 0usize;
    while let Some(step) = todo.pop() {
        match step {
            Step::Root => {
                out = PathBuf::from("/");
                missing = 0;
            }
            // `out` holds no link, so its lexical parent is its physical parent.
            Step::Up => {
                if out.pop() {
                    missing = missing.saturating_sub(1);
                }
            }
            Step::Name(name) => {
                out.push(&name);
                if missing > 0 {
                    missing += 1;
                    continue;
                }
                let is_link = std::fs::symlink_metadata(&out).map(|m| m.file_type().is_symlink());
                match is_link {
                    Ok(true) if links < MAX_LINKS => match std::fs::read_link(&out) {
                        Ok(target) => {
                            links += 1;
                            out.pop();
                            // On top of the stack: the target's steps come before the rest.
                            todo.extend(steps(&target).rev());
                        }
                        Err(_) => missing = 1,
                    },
                    Ok(true) | Err(_) => missing = 1,
                    Ok(false) => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::os::unix::fs::symlink;

    /// `root/{real/sub, alias -> real, up -> real/sub/..}` with `root` itself canonical.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink(root.join("real"), root.join("alias")).unwrap();
        symlink("real/sub", root.join("rel")).unwrap();
        (dir, root)
    }

    #[test]
    fn real_path_matches_canonicalize_where_the_path_exists() {
        let (_dir, root) = tree();
        for p in [
            root.join("real/sub"),
            root.join("alias"),
            root.join("alias/sub"),
            root.join("rel"),
            // `..` after a link climbs from the link's target, as the kernel does.
            root.join("rel/.."),
            root.join("alias/sub/../sub/./"),
            PathBuf::from("/"),
        ] {
            assert_eq!(real_path(&p), p.canonicalize().unwrap(), "{}", p.display());
        }
        assert_eq!(real_path(&root.join("rel/..")), root.join("real"));
    }

    #[test]
    fn real_path_resolves_the_existing_prefix_and_keeps_a_missing_tail() {
        let (_dir, root) = tree();
        assert_eq!(
            real_path(&root.join("alias/new/deeper")),
            root.join("real/new/deeper")
        );
        assert_eq!(real_path(&root.join("rel/x")), root.join("real/sub/x"));
        // A `..` after a missing folder lands where `mkdir -p` then the kernel would, and the
        // links met after it are still resolved.
        assert_eq!(
            real_path(&root.join("missing/../alias/sub")),
            root.join("real/sub")
        );
        assert_eq!(
            real_path(&root.join("a/b/../../rel/../x")),
            root.join("real/x")
        );
        assert_eq!(real_path(Path::new("/../..")), PathBuf::from("/"));
    }

    #[test]
    fn real_path_makes_a_relative_path_absolute_against_the_current_folder() {
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(
            real_path(Path::new("no-such-folder-here/x")),
            cwd.join("no-such-folder-here/x")
        );
    }

    #[test]
    fn real_path_stops_at_a_symlink_loop() {
        let (_dir, root) = tree();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        symlink("self", root.join("self")).unwrap();
        // Every step grows the path: only the link budget ends it.
        symlink("grow/x", root.join("grow")).unwrap();
        let loop_a = real_path(&root.join("a/x"));
        assert!(loop_a.ends_with("x"), "{}", loop_a.display());
        assert!(loop_a.starts_with(&root), "{}", loop_a.display());
        assert_eq!(real_path(&root.join("self")), root.join("self"));
        assert!(real_path(&root.join("grow/y")).starts_with(root.join("grow")));
        // Past the budget a path is one the kernel refuses too (ELOOP): nothing can be
        // created through it, so keeping the rest as written hides nothing.
        let past = root.join("self/../alias");
        assert_eq!(
            fs::metadata(&past).unwrap_err().raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        assert!(real_path(&past).starts_with(&root));
    }
}
