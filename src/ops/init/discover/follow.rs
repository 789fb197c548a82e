//! Rules that follow the agent: one glob rule for files the agent makes by pattern.
//!
//! An agent writes a new transcript per session (`sessions/2025/06/01/rollout-…-<uuid>.jsonl`);
//! a rule naming today's file misses tomorrow's. A file is *patterned* when a folder of its
//! path is a date or a number (`2025`, `06`, `2025-06-01`), or its name holds a date, a UUID,
//! a ULID or a long number; its rule then names a glob from the fixed folders before the
//! first variable one (`sessions/**/*.jsonl`), or the folder and extension
//! (`projects/x/*.jsonl`) when only the name varies. Files that share a folder, an extension
//! and a locator are patterned too (`notes/*.json`).
//!
//! Invariants: candidates merge into one glob rule only when their locator is the same and
//! every one of them has the same value (one handle holds one value); otherwise each keeps its
//! own rule. A glob's fixed part is escaped, so a file name with glob metacharacters means
//! itself. [`check`](super::check) reads every file the glob names before the rule is kept.

use std::collections::BTreeMap;

use crate::manifest::Locator;

use super::Candidate;

/// Merges the candidates of patterned files into glob rules; the others pass unchanged, in
/// their order (a merged rule takes the place of its first file).
pub(super) fn follow(candidates: Vec<Candidate>) -> Vec<Candidate> {
    // The glob of each candidate: from its own path, else from siblings that share a folder,
    // an extension and a locator.
    let mut globs: Vec<Option<String>> = candidates.iter().map(|c| glob_of(&c.file)).collect();
    let mut siblings: BTreeMap<(String, String, &Locator), Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        if globs[i].is_none()
            && let Some((dir, ext)) = dir_and_ext(&c.file)
        {
            siblings
                .entry((dir.to_string(), ext.to_string(), &c.locator))
                .or_default()
                .push(i);
        }
    }
    for ((dir, ext, _), members) in &siblings {
        if members.len() >= 2 {
            for &i in members {
                globs[i] = Some(join(&globset::escape(dir), &format!("*.{ext}")));
            }
        }
    }

    // Group by (glob, locator); merge a group whose values agree.
    let mut groups: BTreeMap<(String, Locator), Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        if let Some(g) = &globs[i] {
            groups
                .entry((g.clone(), c.locator.clone()))
                .or_default()
                .push(i);
        }
    }
    let mut merged_into: Vec<Option<usize>> = vec![None; candidates.len()];
    let mut glob_file: BTreeMap<usize, String> = BTreeMap::new();
    for ((glob, _), members) in &groups {
        let first = members[0];
        let same = members
            .iter()
            .all(|&i| candidates[i].value == candidates[first].value);
        let ephemeral = members.iter().any(|&i| candidates[i].ephemeral);
        if same && !ephemeral {
            for &i in members {
                merged_into[i] = Some(first);
            }
            glob_file.insert(first, glob.clone());
        }
    }
    let mut out: Vec<Candidate> = Vec::with_capacity(candidates.len());
    let mut slot: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, c) in candidates.into_iter().enumerate() {
        match merged_into[i] {
            Some(first) if first != i => {
                let at = slot[&first];
                if !out[at].files.contains(&c.file) {
                    out[at].files.push(c.file);
                }
            }
            Some(first) => {
                slot.insert(i, out.len());
                let mut c = c;
                c.file = glob_file[&first].clone();
                out.push(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// The glob of a patterned file: `fixed/**/*.ext` when a folder varies, `dir/*.ext` when
/// only the name does; `None` for a file with a fixed path or no extension.
fn glob_of(file: &str) -> Option<String> {
    let (_, ext) = dir_and_ext(file)?;
    let segments: Vec<&str> = file.split('/').collect();
    let (name, dirs) = segments.split_last()?;
    if let Some(at) = dirs.iter().position(|d| variable_segment(d)) {
        let fixed = globset::escape(&dirs[..at].join("/"));
        return Some(join(&fixed, &format!("**/*.{ext}")));
    }
    variable_name(name).then(|| join(&globset::escape(&dirs.join("/")), &format!("*.{ext}")))
}

fn join(dir: &str, rest: &str) -> String {
    if dir.is_empty() {
        rest.to_string()
    } else {
        format!("{dir}/{rest}")
    }
}

/// The folder and extension of a file (`("a/b", "json")` for `a/b/c.json`); `None` without
/// an extension, or for a dotfile (`.env`) whose name is all extension.
fn dir_and_ext(file: &str) -> Option<(&str, &str)> {
    let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
    let (stem, ext) = name.rsplit_once('.')?;
    let ok = !stem.is_empty()
        && !ext.is_empty()
        && ext.len() <= 10
        && ext.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some((dir, ext))
}

/// A folder the agent names by date or number: `2025`, `06`, `2025-06-01`, `1748769180`.
fn variable_segment(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '_')
        && s.chars().any(|c| c.is_ascii_digit())
        || has_uuid(s)
        || has_date(s)
}

/// A file name that holds a date, a UUID, a ULID or a number of six digits or more.
fn variable_name(s: &str) -> bool {
    has_date(s) || has_uuid(s) || has_ulid(s) || longest(s, |c| c.is_ascii_digit()) >= 6
}

/// `2025-06-01` or `20250601`.
fn has_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b[i].is_ascii_digit());
    (0..b.len()).any(|i| {
        (i + 10 <= b.len()
            && digits(i..i + 4)
            && b[i + 4] == b'-'
            && digits(i + 5..i + 7)
            && b[i + 7] == b'-'
            && digits(i + 8..i + 10)
            && b[i..i + 2] == *b"20")
            || (i + 8 <= b.len() && digits(i..i + 8) && b[i..i + 2] == *b"20")
    })
}

fn has_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let uuid = |w: &[u8]| {
        w.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    };
    b.len() >= 36 && (0..=b.len() - 36).any(|i| uuid(&b[i..i + 36]))
}

fn has_ulid(s: &str) -> bool {
    longest(s, |c| {
        c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'L' | 'O' | 'U'))
    }) >= 26
}

fn longest(s: &str, f: impl Fn(char) -> bool) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if f(c) { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterned_files_get_a_glob() {
        assert_eq!(
            glob_of("sessions/2025/06/01/rollout-2025-06-01T09-13-00-7d81c5e2-0b9a-4c3e-8f1d-2a6b4c8e0f13.jsonl")
                .as_deref(),
            Some("sessions/**/*.jsonl")
        );
        assert_eq!(
            glob_of("projects/-home-k/7d81c5e2-0b9a-4c3e-8f1d-2a6b4c8e0f13.jsonl").as_deref(),
            Some("projects/-home-k/*.jsonl")
        );
        assert_eq!(
            glob_of("logs/agent-20250601.log").as_deref(),
            Some("logs/*.log")
        );
        assert_eq!(glob_of("2025/x.json").as_deref(), Some("**/*.json"));
        assert_eq!(
            glob_of("a[1]/2025-06-01/x.json").as_deref(),
            Some("a[[]1[]]/**/*.json")
        );
        for fixed in [
            "config.toml",
            ".env",
            "config/credentials.json",
            "v2/settings.json",
            "sessions/2025/06/01/notes",
        ] {
            assert_eq!(glob_of(fixed), None, "{fixed}");
        }
    }
}
