//! Path checks for extraction: which archive entries may be written, and where.
//!
//! Tar path traversal is a classic vulnerability class. Every entry name is checked lexically
//! before anything touches the disk: it must be relative, free of `..`, `.`-only and empty
//! components, and inside one of the archive's two top folders (`state/` and `agentbak/`). A
//! symlink's target is resolved lexically against the link's own folder and must stay inside
//! the restore root; since every folder on the way is created by the extraction itself (and
//! symlinks are never followed when writing), a lexical check is sufficient.

use std::path::{Component, Path, PathBuf};

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// An absolute path.
    #[error("absolute path")]
    Absolute,
    /// A `..` component.
    #[error("`..` component")]
    ParentDir,
    /// An empty path or a path with an unusual component (a Windows prefix, `.` only).
    #[error("empty or unusual path")]
    Unusual,
    /// Outside `state/` and `agentbak/`.
    #[error("outside `state/` and `agentbak/`")]
    OutsideTopFolders,
    /// A symlink whose target leaves the restore root.
    #[error("symlink target escapes the restore root")]
    EscapingLink,
}

/// The two top folders an archive may hold.
pub const TOP_FOLDERS: [&str; 2] = ["state", "agentbak"];

/// Checks an entry name and returns it as a clean relative path.
pub fn check_entry(name: &Path) -> Result<PathBuf, PathRefusal> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(PathRefusal::ParentDir),
            Component::RootDir => return Err(PathRefusal::Absolute),
            Component::Prefix(_) => return Err(PathRefusal::Unusual),
        }
    }
    let Some(Component::Normal(top)) = out.components().next() else {
        return Err(PathRefusal::Unusual);
    };
    if !TOP_FOLDERS.iter().any(|t| top == *t) {
        return Err(PathRefusal::OutsideTopFolders);
    }
    Ok(out)
}

/// Checks that a symlink at `entry` (a checked relative path) pointing at `target` stays inside
/// the restore root. Absolute targets are refused: they point outside by definition.
pub fn check_link(entry: &Path, target: &Path) -> Result<(), PathRefusal> {
    if target.is_absolute() {
        return Err(PathRefusal::EscapingLink);
    }
    // Depth of the link's folder below the root; each `..` climbs one level.
    let mut depth = entry.components().count().saturating_sub(1) as i64;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(PathRefusal::EscapingLink);
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(PathRefusal::EscapingLink),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_clean_entries() {
        assert_eq!(check_entry(Path::new("state/a/b.json")).unwrap(), Path::new("state/a/b.json"));
        assert_eq!(check_entry(Path::new("./state/./x")).unwrap(), Path::new("state/x"));
        assert_eq!(check_entry(Path::new("agentbak/index.json")).unwrap(), Path::new("agentbak/index.json"));
    }

    #[test]
    fn refuses_traversal_absolute_and_strays() {
        assert_eq!(check_entry(Path::new("/etc/passwd")), Err(PathRefusal::Absolute));
        assert_eq!(check_entry(Path::new("state/../../x")), Err(PathRefusal::ParentDir));
        assert_eq!(check_entry(Path::new("other/x")), Err(PathRefusal::OutsideTopFolders));
        assert_eq!(check_entry(Path::new("")), Err(PathRefusal::Unusual));
        assert_eq!(check_entry(Path::new(".")), Err(PathRefusal::Unusual));
    }

    #[test]
    fn links_must_stay_inside_the_root() {
        let at = Path::new("state/config/link");
        assert!(check_link(at, Path::new("../memory/x")).is_ok());
        assert!(check_link(at, Path::new("../../state/x")).is_ok());
        assert!(check_link(at, Path::new("sibling")).is_ok());
        assert_eq!(check_link(at, Path::new("../../../etc")), Err(PathRefusal::EscapingLink));
        assert_eq!(check_link(at, Path::new("/etc/passwd")), Err(PathRefusal::EscapingLink));
        assert_eq!(
            check_link(Path::new("state/l"), Path::new("a/../../../x")),
            Err(PathRefusal::EscapingLink)
        );
    }
}
