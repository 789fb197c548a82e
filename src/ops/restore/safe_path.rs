//! Path checks for extraction: where an archive entry lands, and whether a symlink stays inside
//! the restored tree.
//!
//! The archive reader already refuses absolute paths, `.`/`..`/empty segments, entries outside
//! `state/`, hard links, devices and duplicates (`archive::reader`). This module maps a clean
//! archive path to its place below the restore root (the contents of `state/`, not `state/`
//! itself) and decides whether a symlink's target stays inside that root.
//!
//! A link is judged by **resolving it against the archive's own links**, the way the kernel
//! will resolve it once the tree is on disk: a purely lexical check would accept `x -> y/..`
//! when `y -> .` (lexically inside, really the root's parent). Because the restore writes into
//! a fresh folder that holds nothing but the archive's entries, the archive's links are the
//! only links the kernel can meet below the root, so the resolution is exact.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::archive::state_relative;

/// Symlink hops allowed while resolving one link (Linux's own limit is 40).
const MAX_HOPS: usize = 40;

/// Why an entry or a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// Not under `state/`, or with a component other than a plain name.
    #[error("not a plain path under `state/`")]
    NotUnderState,
    /// A symlink whose target leaves the restore root (absolute, or too many `..`).
    #[error("the link's target leaves the restored folder")]
    EscapingLink,
    /// A symlink chain longer than the kernel follows.
    #[error("the link's target is a chain of more than {MAX_HOPS} links")]
    LinkLoop,
}

/// The path below the restore root of a clean archive path (`state/a/b` → `a/b`, `state` → ``).
pub fn relative(archive_path: &str) -> Result<PathBuf, PathRefusal> {
    let rel = state_relative(archive_path).ok_or(PathRefusal::NotUnderState)?;
    let path = PathBuf::from(rel);
    // Defence in depth: the reader checked this already, and a path that reaches the disk must
    // never depend on one check alone.
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(PathRefusal::NotUnderState);
    }
    Ok(path)
}

/// Checks that the symlink at `link` (relative to the root) pointing at `target` resolves
/// inside the root, following the archive's other `links` (relative path → stored target).
///
/// A target that names something missing is fine (a dangling link writes nothing); a target
/// that is absolute, climbs above the root, or loops is refused.
pub fn check_link(
    link: &Path,
    target: &Path,
    links: &HashMap<PathBuf, PathBuf>,
) -> Result<(), PathRefusal> {
    let mut at: Vec<OsString> = match link.parent() {
        Some(parent) => parent.iter().map(OsString::from).collect(),
        None => Vec::new(),
    };
    let mut pending: VecDeque<Component<'_>> = VecDeque::new();
    push_front(&mut pending, target)?;
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop().ok_or(PathRefusal::EscapingLink)?;
            }
            Component::Normal(name) => {
                at.push(name.to_os_string());
                let here: PathBuf = at.iter().collect();
                if let Some(next) = links.get(&here) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(PathRefusal::LinkLoop);
                    }
                    // The link's own target is relative to the folder that holds the link.
                    at.pop();
                    push_front(&mut pending, next)?;
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(PathRefusal::EscapingLink),
        }
    }
    Ok(())
}

/// Puts `target`'s components in front of what is left to resolve.
fn push_front<'a>(
    pending: &mut VecDeque<Component<'a>>,
    target: &'a Path,
) -> Result<(), PathRefusal> {
    if target.has_root() {
        return Err(PathRefusal::EscapingLink);
    }
    for part in target.components().rev() {
        pending.push_front(part);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> HashMap<PathBuf, PathBuf> {
        pairs
            .iter()
            .map(|(l, t)| (PathBuf::from(l), PathBuf::from(t)))
            .collect()
    }

    #[test]
    fn maps_state_paths_below_the_root() {
        assert_eq!(relative("state").unwrap(), PathBuf::new());
        assert_eq!(relative("state/a/b.json").unwrap(), Path::new("a/b.json"));
        assert_eq!(
            relative("agentbak/index.json"),
            Err(PathRefusal::NotUnderState)
        );
        assert_eq!(relative("state/../x"), Err(PathRefusal::NotUnderState));
        assert_eq!(relative("state//etc"), Err(PathRefusal::NotUnderState));
    }

    #[test]
    fn links_inside_the_root_pass() {
        let none = HashMap::new();
        let at = Path::new("config/link");
        assert!(check_link(at, Path::new("../memory/x"), &none).is_ok());
        assert!(check_link(at, Path::new("sibling"), &none).is_ok());
        assert!(check_link(at, Path::new("./a/../b"), &none).is_ok());
        assert!(check_link(Path::new("top"), Path::new("config/x"), &none).is_ok());
    }

    #[test]
    fn links_that_climb_out_or_are_absolute_are_refused() {
        let none = HashMap::new();
        let at = Path::new("config/link");
        // `state/` is not part of the restored tree: `../../state/x` leaves it.
        for bad in [
            "../../state/x",
            "../../../etc",
            "/etc/passwd",
            "a/../../../x",
        ] {
            assert_eq!(
                check_link(at, Path::new(bad), &none),
                Err(PathRefusal::EscapingLink),
                "{bad}"
            );
        }
    }

    #[test]
    fn links_are_resolved_through_other_links_like_the_kernel_does() {
        // y -> . makes `y/..` the root's parent, though it looks like the root lexically.
        let set = links(&[("y", ".")]);
        assert_eq!(
            check_link(Path::new("x"), Path::new("y/.."), &set),
            Err(PathRefusal::EscapingLink)
        );
        // A chain that ends outside.
        let set = links(&[("a/b", "../c"), ("c", "/etc")]);
        assert_eq!(
            check_link(Path::new("l"), Path::new("a/b/passwd"), &set),
            Err(PathRefusal::EscapingLink)
        );
        // A chain that stays inside.
        let set = links(&[("a/b", "../c"), ("c", "d")]);
        assert!(check_link(Path::new("l"), Path::new("a/b/file"), &set).is_ok());
        // A loop.
        let set = links(&[("p", "q"), ("q", "p")]);
        assert_eq!(
            check_link(Path::new("l"), Path::new("p"), &set),
            Err(PathRefusal::LinkLoop)
        );
    }
}
