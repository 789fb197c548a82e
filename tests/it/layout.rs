//! What agentbak needs stays out of a restore's reach (issue 17, item 2), through the real
//! binary: `restore` refuses (exit 2, nothing touched) a target that is, holds or lies inside
//! the repository, the manifest or a store file, also through a symlink alias; the manifest
//! refuses a layout in which the state and the repository overlap or a store file lies inside
//! either, symlinks resolved.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use crate::restore_fixture::{Project, Seen, all_output, state_entries, tree};

const MANIFEST: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "./state",
  "repository": "./backups",
  "stores": {
    "local": { "kind": "local", "path": "./store/local.age", "identity": "./keys/local.key" }
  },
  "secrets": [
    { "file": "config.json", "json": "/api_key", "handle": "local:agents/{agent}/api#key" }
  ]
}"#;

/// The same project seen from `conf/agentbak.json`: a manifest alone in its folder.
const MANIFEST_IN_CONF: &str = r#"{
  "version": 1,
  "agent": "kevin",
  "state": "../state",
  "repository": "../backups",
  "stores": {
    "local": { "kind": "local", "path": "../store/local.age", "identity": "../keys/local.key" }
  }
}"#;

const ID: &str = "20260101T000000Z-00000001";

/// `agentbak.json`, `conf/agentbak.json`, `state/`, `backups/` with one snapshot, the local
/// store and its identity; and `outside/` (another temporary folder) with aliases into it:
/// `outside/proj -> <project>`, `outside/bk -> <project>/backups`.
fn project() -> (Project, tempfile::TempDir) {
    let p = Project::new(MANIFEST);
    p.file(
        "config.json",
        0o600,
        br#"{ "api_key": "sk-planted-0123456789abcdef" }"#,
    );
    p.file("notes/today.md", 0o644, b"remember the milk\n");
    p.set(
        "local:agents/kevin/api#key",
        "sk-planted-0123456789abcdef",
        &[],
    );
    p.snapshot(ID, &BTreeMap::new());
    fs::create_dir(p.path().join("conf")).unwrap();
    fs::write(p.path().join("conf/agentbak.json"), MANIFEST_IN_CONF).unwrap();
    assert!(p.path().join("keys/local.key").is_file());
    assert!(p.path().join("store/local.age").is_file());
    let outside = tempfile::tempdir().unwrap();
    symlink(p.path(), outside.path().join("proj")).unwrap();
    symlink(p.path().join("backups"), outside.path().join("bk")).unwrap();
    (p, outside)
}

/// Every entry (kind, mode, mtime, content) of both folders, and every entry's mtime to the
/// nanosecond, the roots' own included: a staging folder made and removed again within the
/// second changes its parent's.
type Listing = (
    BTreeMap<String, Seen>,
    BTreeMap<String, Seen>,
    Vec<(String, i64)>,
);

fn listing(p: &Project, outside: &Path) -> Listing {
    let nanos = [p.path(), outside]
        .into_iter()
        .flat_map(state_entries)
        .map(|(_, path)| {
            let meta = fs::symlink_metadata(&path).unwrap();
            let ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            (path.display().to_string(), ns)
        })
        .collect();
    (tree(p.path()), tree(outside), nanos)
}

/// Runs `restore latest --target TARGET` with `extra` flags (and `-m manifest` when given),
/// expects exit 2 naming the target and `what`, and the two trees untouched.
fn refused(p: &Project, outside: &Path, manifest: Option<&str>, target: &str, what: &str) {
    for extra in [&["--force"][..], &[], &["--force", "--dry-run"]] {
        let before = listing(p, outside);
        let mut cmd = p.agentbak();
        if let Some(m) = manifest {
            cmd.args(["-m", m]);
        }
        let out = cmd
            .args(["restore", "latest", "--target", target])
            .args(extra)
            .output()
            .unwrap();
        let text = all_output(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--target {target} {extra:?}: {text}"
        );
        assert!(
            text.contains(&format!("restore target {target}")) && text.contains(what),
            "--target {target} {extra:?}: expected `{what}` in: {text}"
        );
        assert!(text.contains("restore elsewhere"), "{text}");
        assert!(!text.contains("sk-planted"), "{text}");
        let after = listing(p, outside);
        assert!(
            before == after,
            "--target {target} {extra:?} changed the tree: {:?}",
            diff(&before, &after)
        );
    }
}

/// The entries whose listing differs (for the failure message).
fn diff(a: &Listing, b: &Listing) -> Vec<String> {
    let changed = |x: &BTreeMap<String, Seen>, y: &BTreeMap<String, Seen>| {
        x.keys()
            .chain(y.keys())
            .filter(|k| x.get(*k) != y.get(*k))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut out = changed(&a.0, &b.0);
    out.extend(changed(&a.1, &b.1));
    out.extend(
        a.2.iter()
            .chain(&b.2)
            .filter(|e| !a.2.contains(e) || !b.2.contains(e))
            .map(|(path, ns)| format!("{path} mtime {ns}")),
    );
    out
}

#[test]
fn force_into_the_project_folder_deletes_nothing() {
    let (p, outside) = project();
    let root = p.path().display().to_string();
    // The layout `init` writes: the manifest's folder holds the repository and the state.
    refused(&p, outside.path(), None, ".", "holds the repository");
    refused(&p, outside.path(), None, &root, "holds the repository");
    refused(&p, outside.path(), None, "state/..", "holds the repository");
}

#[test]
fn force_into_the_manifests_own_folder_deletes_nothing() {
    let (p, outside) = project();
    refused(
        &p,
        outside.path(),
        Some("conf/agentbak.json"),
        "conf",
        "holds the manifest",
    );
    let file = p.path().join("agentbak.json").display().to_string();
    refused(&p, outside.path(), None, &file, "is the manifest");
}

#[test]
fn force_into_or_below_the_repository_deletes_nothing() {
    let (p, outside) = project();
    refused(&p, outside.path(), None, "backups", "is the repository");
    refused(
        &p,
        outside.path(),
        None,
        "backups/snapshots",
        "lies inside the repository",
    );
    refused(
        &p,
        outside.path(),
        None,
        "backups/new",
        "lies inside the repository",
    );
}

#[test]
fn force_into_a_stores_folder_deletes_nothing() {
    let (p, outside) = project();
    refused(
        &p,
        outside.path(),
        None,
        "keys",
        "holds the identity of store `local`",
    );
    refused(
        &p,
        outside.path(),
        None,
        "store",
        "holds the file of store `local`",
    );
}

#[test]
fn force_through_a_symlink_alias_deletes_nothing() {
    let (p, outside) = project();
    let o = |rel: &str| outside.path().join(rel).display().to_string();
    // An alias of a protected folder, and protected folders reached through a linked parent.
    refused(&p, outside.path(), None, &o("bk"), "is the repository");
    refused(
        &p,
        outside.path(),
        None,
        &o("bk/new"),
        "lies inside the repository",
    );
    refused(&p, outside.path(), None, &o("proj"), "holds the repository");
    refused(
        &p,
        outside.path(),
        None,
        &o("proj/backups"),
        "is the repository",
    );
    refused(
        &p,
        outside.path(),
        None,
        &o("proj/keys"),
        "holds the identity",
    );
    refused(&p, outside.path(), None, &o("proj/store"), "holds the file");
    refused(
        &p,
        outside.path(),
        Some("conf/agentbak.json"),
        &o("proj/conf"),
        "holds the manifest",
    );
    // A `..` behind a folder that does not exist yet.
    refused(
        &p,
        outside.path(),
        None,
        &o("new/../bk"),
        "is the repository",
    );
}

#[test]
fn restore_into_a_fresh_folder_and_into_the_state_still_works() {
    let (p, _outside) = project();
    let out = p
        .agentbak()
        .args(["restore", "latest", "--target", "restored"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(p.path().join("restored/notes/today.md").is_file());
    // The state is what a restore is for: replacing it is allowed.
    fs::write(p.state().join("notes/today.md"), b"changed\n").unwrap();
    let out = p
        .agentbak()
        .args(["restore", "latest", "--target", "state", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(
        fs::read(p.state().join("notes/today.md")).unwrap(),
        b"remember the milk\n"
    );
    assert!(p.path().join("backups/snapshots").is_dir());
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

/// A folder with `state/`, `backups/` and `agentbak.json` holding `manifest`.
fn layout(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("state/backups/snapshots")).unwrap();
    fs::create_dir_all(dir.path().join("backups/snapshots")).unwrap();
    fs::write(dir.path().join("agentbak.json"), manifest).unwrap();
    dir
}

fn manifest(state: &str, repository: &str, identity: &str) -> String {
    format!(
        r#"{{
  "version": 1,
  "agent": "kevin",
  "state": "{state}",
  "repository": "{repository}",
  "stores": {{
    "local": {{ "kind": "local", "path": "./store/local.age", "identity": "{identity}" }}
  }}
}}"#
    )
}

/// `agentbak list` with the manifest of `dir`: exit 2 with `file:line:col: field `FIELD``
/// (the line of `key` in the manifest) and `message`.
fn layout_error(dir: &Path, field: &str, key: &str, message: &str) {
    let out = assert_cmd::Command::cargo_bin("agentbak")
        .unwrap()
        .current_dir(dir)
        .env_remove("AGENTBAK_MANIFEST")
        .arg("list")
        .output()
        .unwrap();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let manifest = fs::read_to_string(dir.join("agentbak.json")).unwrap();
    let line = manifest
        .lines()
        .position(|l| l.contains(&format!("\"{key}\"")))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!("agentbak.json:{line}:"))
            && text.contains(&format!("field `{field}`")),
        "expected line {line} and field {field}: {text}"
    );
    assert!(text.contains(message), "expected `{message}`: {text}");
}

#[test]
fn a_repository_inside_the_state_is_a_manifest_error() {
    let dir = layout(&manifest("./state", "./state/backups", "./keys/k"));
    layout_error(
        dir.path(),
        "/repository",
        "repository",
        "lies inside the state folder",
    );
}

#[test]
fn a_repository_inside_the_state_through_a_symlink_is_a_manifest_error() {
    let dir = layout(&manifest("./state", "./statealias/backups", "./keys/k"));
    symlink("state", dir.path().join("statealias")).unwrap();
    layout_error(
        dir.path(),
        "/repository",
        "repository",
        "statealias/backups (resolves to ",
    );
    layout_error(
        dir.path(),
        "/repository",
        "repository",
        "lies inside the state folder",
    );
}

#[test]
fn the_state_inside_the_repository_or_the_same_folder_is_a_manifest_error() {
    let dir = layout(&manifest("./backups/state", "./backups", "./keys/k"));
    fs::create_dir_all(dir.path().join("backups/state")).unwrap();
    layout_error(
        dir.path(),
        "/state",
        "state",
        "lies inside the repository folder",
    );
    let dir = layout(&manifest("./state", "./state/.", "./keys/k"));
    layout_error(
        dir.path(),
        "/repository",
        "repository",
        "is the state folder",
    );
}

#[test]
fn a_store_identity_inside_the_state_through_a_symlink_is_a_manifest_error() {
    let dir = layout(&manifest("./state", "./backups", "./statealias/store.key"));
    symlink("state", dir.path().join("statealias")).unwrap();
    layout_error(
        dir.path(),
        "/stores/local/identity",
        "identity",
        "lies inside the state folder",
    );
    // The same through an alias of the repository.
    let dir = layout(&manifest("./state", "./backups", "./bk/store.key"));
    symlink("backups", dir.path().join("bk")).unwrap();
    layout_error(
        dir.path(),
        "/stores/local/identity",
        "identity",
        "lies inside the repository folder",
    );
}

/// The layout `init` writes (manifest, `./state`, `./backups` in one folder, the store under
/// `$HOME`) passes the manifest check, and is exactly the one where `--target .` ate
/// everything: refused now, while restoring into the state still works.
#[test]
fn the_layout_init_writes_loads_and_its_folder_is_not_a_restore_target() {
    let root = tempfile::tempdir().unwrap();
    let agent = root.path().join("kevin");
    fs::create_dir_all(agent.join("state/notes")).unwrap();
    fs::write(agent.join("state/notes/today.md"), b"remember the milk\n").unwrap();
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("agentbak")
            .unwrap()
            .current_dir(&agent)
            .env("HOME", root.path().join("home"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AGENTBAK_MANIFEST")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .unwrap()
    };
    for args in [&["init"][..], &["snapshot"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", all_output(&out));
    }
    let before = tree(root.path());
    // The absolute path, as in the report (`.` has no name to put a folder beside).
    let here = agent.display().to_string();
    let out = run(&["restore", "latest", "--target", &here, "--force"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("holds the repository"), "{text}");
    assert!(before == tree(root.path()), "the tree changed");
    fs::write(agent.join("state/notes/today.md"), b"changed\n").unwrap();
    let out = run(&["restore", "latest", "--target", "state", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(
        fs::read(agent.join("state/notes/today.md")).unwrap(),
        b"remember the milk\n"
    );
}
