//! `scripts/recover.py` against the real binary: `tests/recover/test_recover.sh` makes format-2
//! repositories with `agentbak snapshot` (plain and age-encrypted, two snapshots each),
//! restores every snapshot with `agentbak restore` and with recover.py, and compares the two
//! trees (contents, symlinks, types, modes, mtimes); it runs recover.py's unit tests first.
//! The script needs bash, python3, zstd, age and age-keygen (`scripts/tools.sh` installs
//! them); without them this test says SKIPPED, which CI (`AGENTBAK_NO_SKIP`) turns into a
//! failure.

use std::path::Path;
use std::process::Command;

use crate::common::skip;

/// What the script runs.
const TOOLS: [&str; 5] = ["bash", "python3", "zstd", "age", "age-keygen"];

/// Whether an executable `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[test]
fn recover_py_rebuilds_what_agentbak_restore_writes() {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        skip(&format!(
            "tests/recover/test_recover.sh needs {} (run `. scripts/tools.sh; ensure_tools`)",
            missing.join(", ")
        ));
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recover/test_recover.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("AGENTBAK_BIN", env!("CARGO_BIN_EXE_agentbak"))
        .env_remove("AGENTBAK_MANIFEST")
        .env_remove("AGENTBAK_IDENTITY")
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} exited {:?}:\n{stderr}",
        script.display(),
        out.status.code()
    );
    // The script's last word: both repositories were compared, not merely created.
    assert!(
        stderr.contains("PASS: recover.py agrees with agentbak restore"),
        "the script ended without its PASS line:\n{stderr}"
    );
}
