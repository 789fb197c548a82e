//! Checks beyond syntax: handles that fit their stores, locators that fit their format, globs
//! and regexes that compile, no duplicate rules, and a layout in which no folder holds another
//! (the repository and the state apart, store files outside both).
//!
//! Layout checks compare paths after resolving symlinks ([`real_path`]): an alias such as
//! `statealias -> state` must not carry a key into the state, and a repository reached through
//! one is still inside the state that a restore replaces.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use super::load::locate;
use super::{Locator, Manifest, ManifestError, Problem, StoreConfig, VaultAuth};
use crate::handle::{self, Target};

struct Collector<'a> {
    text: &'a [u8],
    problems: Vec<Problem>,
}

impl Collector<'_> {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let (line, column) = locate(self.text, &field);
        self.problems.push(Problem {
            line,
            column,
            field,
            message: message.into(),
        });
    }
}

fn glob_error(glob: &str) -> Option<String> {
    globset::Glob::new(glob).err().map(|e| e.kind().to_string())
}

/// Parses a cache TTL such as `90s`, `30m`, `24h`, `7d`.
pub fn parse_ttl(s: &str) -> Option<std::time::Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(unit)?))
}

fn bad_relative(file: &str) -> bool {
    file.starts_with('/') || file.split('/').any(|c| c == "..")
}

impl Manifest {
    pub(super) fn validate(&self, text: &[u8]) -> Vec<Problem> {
        let mut c = Collector {
            text,
            problems: Vec::new(),
        };
        if self.version != 1 {
            c.push(
                "/version",
                format!("unsupported version {}; expected 1", self.version),
            );
        }
        if self.agent.is_empty()
            || !self
                .agent
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        {
            c.push(
                "/agent",
                "expected a non-empty name of letters, digits, `.`, `_` and `-`",
            );
        }
        for (key, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, g) in globs.iter().enumerate() {
                if let Some(e) = glob_error(g) {
                    c.push(format!("/{key}/{i}"), format!("invalid glob: {e}"));
                }
            }
        }
        self.validate_encryption(&mut c);
        self.validate_stores(&mut c);
        self.validate_secrets(&mut c);
        self.validate_detect(&mut c);
        self.validate_signing(&mut c);
        if !(1..=19).contains(&self.compression.level) {
            c.push("/compression/level", "expected a zstd level from 1 to 19");
        }
        c.problems
    }

    fn validate_signing(&self, c: &mut Collector<'_>) {
        let Some(s) = &self.signing else { return };
        match (&s.key, &s.transit) {
            (Some(_), Some(_)) => {
                c.push("/signing", "expected one of `key` or `transit`, not both")
            }
            // A verify-only manifest (an auditor's) may know nothing but the identity.
            (None, None) if s.trust.is_empty() => c.push(
                "/signing",
                "expected `key` (a handle of an Ed25519 private key), `transit`, or `trust`",
            ),
            _ => {}
        }
        for (field, handle) in [("key", &s.key), ("identity", &s.identity)] {
            let Some(h) = handle else { continue };
            let at = format!("/signing/{field}");
            if h.is_env() {
                c.push(
                    &at,
                    "expected a handle of a key/value store (`STORE:PATH#FIELD`), not `env:`",
                );
            } else if !self.stores.contains_key(&h.store) {
                c.push(&at, format!("no store named `{}` in `stores`", h.store));
            } else if matches!(
                &h.target,
                crate::handle::Target::Kv {
                    version: Some(_),
                    ..
                }
            ) {
                c.push(
                    &at,
                    "a signing key handle names no version: each version of it is a key version",
                );
            }
        }
        if let Some(t) = &s.transit {
            if !matches!(self.stores.get(&t.store), Some(StoreConfig::Vault(_))) {
                c.push(
                    "/signing/transit/store",
                    format!(
                        "expected the name of a `vault` store; `{}` is not one",
                        t.store
                    ),
                );
            }
            if t.key.is_empty() || t.key.contains('/') {
                c.push("/signing/transit/key", "expected a transit key name");
            }
        }
        for (i, key) in s.trust.iter().enumerate() {
            if let Err(e) = crate::signing::parse_public_key(key) {
                c.push(format!("/signing/trust/{i}"), e.to_string());
            }
        }
    }

    fn validate_encryption(&self, c: &mut Collector<'_>) {
        let Some(enc) = &self.encryption else { return };
        if enc.recipients.is_empty() {
            c.push(
                "/encryption/recipients",
                "expected at least one recipient (remove `encryption` for unencrypted archives)",
            );
        }
        for (i, r) in enc.recipients.iter().enumerate() {
            let ok = age::x25519::Recipient::from_str(r).is_ok()
                || age::ssh::Recipient::from_str(r).is_ok();
            if !ok {
                c.push(
                    format!("/encryption/recipients/{i}"),
                    "expected an age recipient (`age1…`) or an `ssh-ed25519 …`/`ssh-rsa …` public key",
                );
            }
        }
    }

    fn validate_stores(&self, c: &mut Collector<'_>) {
        for (name, store) in &self.stores {
            let at = format!("/stores/{name}");
            if !handle::valid_store_name(name) {
                c.push(
                    &at,
                    "a store name starts with a lowercase letter and holds only lowercase letters, digits, `_` and `-`",
                );
            }
            match store {
                StoreConfig::Vault(v) => {
                    if let Some(addr) = &v.address
                        && !(addr.starts_with("http://") || addr.starts_with("https://"))
                    {
                        c.push(
                            format!("{at}/address"),
                            "expected an http:// or https:// URL",
                        );
                    }
                    if v.mount.is_empty() || v.mount.starts_with('/') || v.mount.ends_with('/') {
                        c.push(
                            format!("{at}/mount"),
                            "expected a mount path such as `secret`",
                        );
                    }
                    if v.timeout_s == Some(0) {
                        c.push(
                            format!("{at}/timeout_s"),
                            "expected a timeout of at least 1 second",
                        );
                    }
                    if let Some(cache) = &v.cache
                        && parse_ttl(&cache.ttl).is_none()
                    {
                        c.push(
                            format!("{at}/cache/ttl"),
                            "expected a duration such as `90s`, `30m`, `24h` or `7d`",
                        );
                    }
                }
                StoreConfig::Local(l) => {
                    if l.max_versions.is_some_and(|n| n < 2) {
                        c.push(
                            format!("{at}/max_versions"),
                            "expected at least 2 (the current and the previous version)",
                        );
                    }
                }
                StoreConfig::Env(_) => {}
            }
        }
    }

    fn validate_secrets(&self, c: &mut Collector<'_>) {
        let mut seen = BTreeSet::new();
        for (i, rule) in self.secrets.iter().enumerate() {
            let at = format!("/secrets/{i}");
            if rule.file.is_empty() || bad_relative(&rule.file) {
                c.push(
                    format!("{at}/file"),
                    "expected a path or glob relative to `state`, without `..`",
                );
            } else if let Some(e) = glob_error(&rule.file) {
                c.push(format!("{at}/file"), format!("invalid glob: {e}"));
            }
            let locators = rule.locators();
            if locators.len() != 1 {
                c.push(
                    &at,
                    format!(
                        "expected exactly one locator of json, yaml, toml, env, ini, regex, whole_file; found {}",
                        locators.len()
                    ),
                );
            } else {
                let loc = &locators[0];
                if rule.whole_file == Some(false) {
                    c.push(
                        format!("{at}/whole_file"),
                        "expected `true` (leave the field out when the value is not the whole file)",
                    );
                } else if let Some(msg) = locator_problem(loc) {
                    c.push(format!("{at}/{}", loc.field()), msg);
                }
                if !seen.insert((rule.file.clone(), loc.clone())) {
                    c.push(
                        format!("{at}/{}", loc.field()),
                        format!(
                            "duplicate rule: `{}` with {loc} is already declared",
                            rule.file
                        ),
                    );
                }
            }
            let handle_at = format!("{at}/handle");
            match self.stores.get(&rule.handle.store) {
                None => {
                    let known: Vec<&str> = self.stores.keys().map(String::as_str).collect();
                    c.push(
                        handle_at,
                        format!(
                            "handle `{}` names store `{}`, which `stores` does not define (defined: {})",
                            rule.handle,
                            rule.handle.store,
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                }
                Some(store) => {
                    let is_env_store = matches!(store, StoreConfig::Env(_));
                    match (&rule.handle.target, is_env_store) {
                        (Target::Env { .. }, false) => c.push(
                            handle_at,
                            format!(
                                "store `{}` is a {} store: expected `{}:PATH#FIELD`",
                                rule.handle.store,
                                store.kind(),
                                rule.handle.store
                            ),
                        ),
                        (Target::Kv { .. }, true) => c.push(
                            handle_at,
                            format!(
                                "store `{}` is an env store: expected `{}:NAME`",
                                rule.handle.store, rule.handle.store
                            ),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    fn validate_detect(&self, c: &mut Collector<'_>) {
        let mut ids = BTreeSet::new();
        for (i, rule) in self.detect.rules.iter().enumerate() {
            let at = format!("/detect/rules/{i}");
            if rule.id.is_empty() {
                c.push(format!("{at}/id"), "expected a non-empty rule id");
            } else if !ids.insert(rule.id.as_str()) {
                c.push(
                    format!("{at}/id"),
                    format!("duplicate rule id `{}`", rule.id),
                );
            }
            if let Err(e) = regex::bytes::Regex::new(&rule.regex) {
                c.push(
                    format!("{at}/regex"),
                    format!("invalid regex: {}", first_line(&e.to_string())),
                );
            }
            if rule
                .keywords
                .as_ref()
                .is_some_and(|k| k.iter().any(String::is_empty))
            {
                c.push(
                    format!("{at}/keywords"),
                    "keywords must be non-empty strings",
                );
            }
        }
        for (i, a) in self.detect.allow.iter().enumerate() {
            if a.is_empty() {
                c.push(
                    format!("/detect/allow/{i}"),
                    "expected a path glob, rule id or fingerprint",
                );
            } else if let Some(e) = glob_error(a) {
                c.push(format!("/detect/allow/{i}"), format!("invalid glob: {e}"));
            }
        }
    }

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

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn locator_problem(loc: &Locator) -> Option<String> {
    match loc {
        Locator::Json(p) | Locator::Yaml(p) | Locator::Toml(p) => (!p.starts_with('/'))
            .then(|| "expected a JSON Pointer such as `/openai/api_key`".to_string()),
        Locator::Env(k) => (k.is_empty()
            || !k
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)))
        .then(|| "expected a dotenv key such as `GITHUB_TOKEN`".to_string()),
        Locator::Ini(k) => (k.is_empty() || k.starts_with('.') || k.ends_with('.'))
            .then(|| "expected `section.key` (or `key` outside any section)".to_string()),
        Locator::Regex(r) => match regex::bytes::Regex::new(r) {
            Err(e) => Some(format!("invalid regex: {}", first_line(&e.to_string()))),
            Ok(re) if re.captures_len() < 2 => {
                Some("expected a capture group: group 1 is the secret value".to_string())
            }
            Ok(_) => None,
        },
        Locator::WholeFile => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("24h").unwrap().as_secs(), 86400);
        assert_eq!(parse_ttl("7d").unwrap().as_secs(), 7 * 86400);
        assert!(parse_ttl("24").is_none());
        assert!(parse_ttl("h").is_none());
        assert!(parse_ttl("1w").is_none());
    }

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
