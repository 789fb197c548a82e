//! What a well-formed index or sidecar holds beyond what its serde parse enforces.
//!
//! Parsing already refuses unknown fields (every struct denies them), missing fields and wrong
//! types or signs. What is left are constraints on *values*: ids, digests, keys and signatures
//! of the right shape, permission bits that fit in 12 bits, each entry type with exactly the
//! fields it has. They are stated once, here: the `#[schemars]` attributes on the model take
//! their patterns from these constants, so `schemas/*.schema.json` say what
//! [`index_problems`] and [`sidecar_problems`] check, which is what `verify` runs on every
//! snapshot (`index` and `sidecar` checks).
//!
//! Invariant: a problem names a place (a JSON Pointer into the file) and the rule it breaks,
//! never the offending text: a forged index or sidecar can hold a secret value in any field.

use std::sync::OnceLock;

use regex::Regex;

use super::{EntryKind, INDEX_FORMAT, Index, SIDECAR_FORMAT, SIDECAR_FORMAT_PACKS, Sidecar};
use crate::signing::{ALGORITHM, Signature};

/// A snapshot id: its UTC time and 8 random hex digits, so that ids sort by time.
pub const SNAPSHOT_ID: &str = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$";
/// An archive's file name: the snapshot id and `.tar.zst`, or `.tar.zst.age` when encrypted.
pub const ARCHIVE_NAME: &str = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}(\.tar\.zst(\.age)?|\.refs)$";
/// A blake3 digest: 64 lowercase hex digits.
pub const BLAKE3: &str = r"^[0-9a-f]{64}$";
/// A path inside the archive: `state`, or `state/` and `/`-separated names…
pub const ARCHIVE_PATH: &str = r"^state(/[^/]+)*$";
/// …none of which is `.` or `..`.
pub const DOT_SEGMENT: &str = r"(^|/)\.{1,2}(/|$)";
/// A condition of a degraded snapshot: a lowercase word, and what it concerns after `:`.
pub const DEGRADED: &str = r"^[a-z][a-z0-9-]*(:.+)?$";
/// An Ed25519 public key: `ed25519:` and the 32 bytes in base64.
pub const PUBLIC_KEY: &str = r"^ed25519:[A-Za-z0-9+/]{43}=$";
/// An Ed25519 signature: its 64 bytes in base64.
pub const SIGNATURE: &str = r"^[A-Za-z0-9+/]{86}==$";
/// The largest permission bits an entry may record (`0o7777`).
pub const MAX_MODE: u32 = 0o7777;

/// Problems listed at most per file; a forged index can have a million bad entries.
const MAX_PROBLEMS: usize = 20;

struct Patterns {
    snapshot_id: Regex,
    archive_name: Regex,
    blake3: Regex,
    archive_path: Regex,
    dot_segment: Regex,
    degraded: Regex,
    public_key: Regex,
    signature: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("the format patterns compile");
        Patterns {
            snapshot_id: re(SNAPSHOT_ID),
            archive_name: re(ARCHIVE_NAME),
            blake3: re(BLAKE3),
            archive_path: re(ARCHIVE_PATH),
            dot_segment: re(DOT_SEGMENT),
            degraded: re(DEGRADED),
            public_key: re(PUBLIC_KEY),
            signature: re(SIGNATURE),
        }
    })
}

/// Problems found so far, each `POINTER: RULE`, capped at [`MAX_PROBLEMS`].
#[derive(Default)]
struct Problems {
    list: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, at: impl std::fmt::Display, rule: &str) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(format!("{at}: {rule}"));
        } else {
            self.more += 1;
        }
    }

    fn check(&mut self, ok: bool, at: impl std::fmt::Display, rule: &str) {
        if !ok {
            self.push(at, rule);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list
                .push(format!("and {} more problem(s) not listed", self.more));
        }
        self.list
    }
}

fn is_archive_path(path: &str) -> bool {
    let p = patterns();
    p.archive_path.is_match(path) && !p.dot_segment.is_match(path)
}

/// Where a parsed index breaks its format (`schemas/index.schema.json`), each as
/// `POINTER: RULE`; empty when it is well-formed.
pub fn index_problems(index: &Index) -> Vec<String> {
    let p = patterns();
    let mut out = Problems::default();
    out.check(
        index.format == INDEX_FORMAT,
        "/format",
        "not a known index format",
    );
    out.check(
        p.snapshot_id.is_match(&index.snapshot_id),
        "/snapshot_id",
        "not a snapshot id",
    );
    for (i, e) in index.entries.iter().enumerate() {
        let at = format!("/entries/{i}");
        out.check(
            is_archive_path(&e.path),
            format!("{at}/path"),
            "not a path under state",
        );
        out.check(e.mode <= MAX_MODE, format!("{at}/mode"), "more than 0o7777");
        out.check(e.mtime >= 0, format!("{at}/mtime"), "before 1970");
        if let Some(b) = &e.blake3 {
            out.check(
                p.blake3.is_match(b),
                format!("{at}/blake3"),
                "not 64 lowercase hex digits",
            );
        }
        if let Some(link) = &e.link {
            out.check(!link.is_empty(), format!("{at}/link"), "empty");
        }
        let kind = e.kind.as_str();
        match e.kind {
            EntryKind::File => {
                out.check(e.blake3.is_some(), &at, "a file without `blake3`");
            }
            EntryKind::Symlink => {
                out.check(e.link.is_some(), &at, "a symlink without `link`");
            }
            EntryKind::Dir => {}
        }
        if e.kind != EntryKind::File {
            out.check(
                e.blake3.is_none(),
                format!("{at}/blake3"),
                "only files have one",
            );
            out.check(
                e.size == 0,
                format!("{at}/size"),
                &format!("not 0 for a {kind}"),
            );
        }
        if e.kind != EntryKind::Symlink {
            out.check(
                e.link.is_none(),
                format!("{at}/link"),
                "only symlinks have one",
            );
        }
    }
    for (i, s) in index.secrets.iter().enumerate() {
        let at = format!("/secrets/{i}");
        out.check(
            is_archive_path(&s.file),
            format!("{at}/file"),
            "not a path under state",
        );
        if let Some(v) = s.store_version {
            out.check(v >= 1, format!("{at}/store_version"), "not a version (≥ 1)");
        }
        out.check(
            s.context.is_object(),
            format!("{at}/context"),
            "not an object",
        );
    }
    out.finish()
}

/// Where a parsed sidecar breaks its format (`schemas/sidecar.schema.json`), each as
/// `POINTER: RULE`; empty when it is well-formed.
pub fn sidecar_problems(sidecar: &Sidecar) -> Vec<String> {
    let p = patterns();
    let mut out = Problems::default();
    let packs = sidecar.format == SIDECAR_FORMAT_PACKS;
    out.check(
        sidecar.format == SIDECAR_FORMAT || packs,
        "/format",
        "not a known sidecar format",
    );
    // Format 2 names its refs file where format 1 names its archive; only it has a tree.
    out.check(
        packs == sidecar.tree.is_some(),
        "/tree",
        "present exactly in format 2",
    );
    if let Some(tree) = &sidecar.tree {
        out.check(
            p.blake3.is_match(&tree.blake3),
            "/tree/blake3",
            "not 64 lowercase hex digits",
        );
        out.check(
            !tree.chunks.is_empty() && tree.chunks.iter().all(|c| super::tree::is_chunk_id(c)),
            "/tree/chunks",
            "not a list of chunk ids (64 lowercase hex digits)",
        );
    }
    out.check(
        p.snapshot_id.is_match(&sidecar.id),
        "/id",
        "not a snapshot id",
    );
    let expected_name = if packs {
        sidecar.archive == format!("{}.refs", sidecar.id)
    } else {
        p.archive_name.is_match(&sidecar.archive) && !sidecar.archive.ends_with(".refs")
    };
    out.check(
        expected_name,
        "/archive",
        "not an archive name (ID.tar.zst or ID.tar.zst.age; ID.refs in format 2)",
    );
    out.check(
        p.blake3.is_match(&sidecar.blake3),
        "/blake3",
        "not 64 lowercase hex digits",
    );
    for (i, d) in sidecar.degraded.iter().enumerate() {
        out.check(
            p.degraded.is_match(d),
            format!("/degraded/{i}"),
            "not a condition (word[:detail])",
        );
    }
    if let Some(sig) = &sidecar.signature {
        signature_problems(sig, &mut out);
    }
    out.finish()
}

fn signature_problems(sig: &Signature, out: &mut Problems) {
    let p = patterns();
    out.check(
        sig.algorithm == ALGORITHM,
        "/signature/algorithm",
        "not ed25519",
    );
    out.check(
        sig.version >= 1,
        "/signature/version",
        "not a version (≥ 1)",
    );
    out.check(
        p.public_key.is_match(&sig.public_key),
        "/signature/public_key",
        "not ed25519:BASE64 of 32 bytes",
    );
    out.check(
        p.signature.is_match(&sig.value),
        "/signature/value",
        "not the base64 of 64 bytes",
    );
    if let Some(cert) = &sig.certificate {
        out.check(
            p.public_key.is_match(&cert.identity),
            "/signature/certificate/identity",
            "not ed25519:BASE64 of 32 bytes",
        );
        out.check(
            p.signature.is_match(&cert.value),
            "/signature/certificate/value",
            "not the base64 of 64 bytes",
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const ID: &str = "20261128T225501Z-3f9a2c1b";
    /// A change to a well-formed file.
    type Edit = Box<dyn FnOnce(&mut Value)>;

    /// A value a forged file could carry; no problem may quote it.
    const PLANTED: &str = "sk_live_Planted0123456789";

    fn index_value() -> Value {
        json!({
            "format": 1, "tool_version": "0.1.0", "agent": "kevin", "snapshot_id": ID,
            "created_at": "2026-11-28T22:55:01Z",
            "entries": [
                {"path": "state", "type": "dir", "mode": 0o755, "size": 0, "mtime": 1},
                {"path": "state/a.json", "type": "file", "mode": 0o600, "size": 3, "mtime": 1,
                 "blake3": "ab".repeat(32)},
                {"path": "state/l", "type": "symlink", "mode": 0o777, "size": 0, "mtime": 1,
                 "link": "a.json"}
            ],
            "secrets": [
                {"file": "state/a.json", "locator": {"json": "/k"},
                 "handle": "vault:agents/kevin/x#k", "store_version": 2, "context": {}}
            ]
        })
    }

    fn index_problems_of(edit: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut v = index_value();
        edit(&mut v);
        let index: Index = serde_json::from_value(v).expect("the edit keeps it parseable");
        index_problems(&index)
    }

    fn sidecar_value() -> Value {
        json!({
            "format": 1, "id": ID, "agent": "kevin", "host": "h",
            "created_at": "2026-11-28T22:55:01Z", "tags": [], "tool_version": "0.1.0",
            "archive": format!("{ID}.tar.zst.age"), "size": 1, "blake3": "0f".repeat(32),
            "counts": {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "secrets": 0},
            "encrypted": true, "degraded": ["store-unreachable:vault"],
            "signature": {
                "algorithm": "ed25519", "signer": "local:k#private_key", "version": 1,
                "public_key": format!("ed25519:{}=", "A".repeat(43)),
                "value": format!("{}==", "B".repeat(86)),
                "certificate": {
                    "identity": format!("ed25519:{}=", "C".repeat(43)),
                    "value": format!("{}==", "D".repeat(86))
                }
            }
        })
    }

    fn sidecar_problems_of(edit: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut v = sidecar_value();
        edit(&mut v);
        let sidecar: Sidecar = serde_json::from_value(v).expect("the edit keeps it parseable");
        sidecar_problems(&sidecar)
    }

    #[test]
    fn a_well_formed_index_and_sidecar_have_no_problems() {
        assert_eq!(index_problems_of(|_| {}), Vec::<String>::new());
        assert_eq!(sidecar_problems_of(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn each_index_rule_names_its_place_and_never_the_text() {
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["format"] = json!(2)),
                "/format: not a known index format",
            ),
            (
                Box::new(|v| v["snapshot_id"] = json!(PLANTED)),
                "/snapshot_id: not a snapshot id",
            ),
            (
                Box::new(|v| v["entries"][1]["path"] = json!(format!("state/../{PLANTED}"))),
                "/entries/1/path: not a path under state",
            ),
            (
                Box::new(|v| v["entries"][1]["path"] = json!(format!("etc/{PLANTED}"))),
                "/entries/1/path: not a path under state",
            ),
            (
                Box::new(|v| v["entries"][1]["mode"] = json!(0o10000)),
                "/entries/1/mode: more than 0o7777",
            ),
            (
                Box::new(|v| v["entries"][1]["mtime"] = json!(-1)),
                "/entries/1/mtime: before 1970",
            ),
            (
                Box::new(|v| v["entries"][1]["blake3"] = json!(PLANTED)),
                "/entries/1/blake3: not 64 lowercase hex digits",
            ),
            (
                Box::new(|v| v["entries"][1]["blake3"] = json!("AB".repeat(32))),
                "/entries/1/blake3: not 64 lowercase hex digits",
            ),
            (
                Box::new(|v| {
                    v["entries"][1].as_object_mut().unwrap().remove("blake3");
                }),
                "/entries/1: a file without `blake3`",
            ),
            (
                Box::new(|v| v["entries"][1]["link"] = json!(PLANTED)),
                "/entries/1/link: only symlinks have one",
            ),
            (
                Box::new(|v| {
                    v["entries"][2].as_object_mut().unwrap().remove("link");
                }),
                "/entries/2: a symlink without `link`",
            ),
            (
                Box::new(|v| v["entries"][2]["link"] = json!("")),
                "/entries/2/link: empty",
            ),
            (
                Box::new(|v| v["entries"][2]["size"] = json!(5)),
                "/entries/2/size: not 0 for a symlink",
            ),
            (
                Box::new(|v| v["entries"][0]["blake3"] = json!("ab".repeat(32))),
                "/entries/0/blake3: only files have one",
            ),
            (
                Box::new(|v| v["entries"][0]["size"] = json!(1)),
                "/entries/0/size: not 0 for a dir",
            ),
            (
                Box::new(|v| v["secrets"][0]["file"] = json!(PLANTED)),
                "/secrets/0/file: not a path under state",
            ),
            (
                Box::new(|v| v["secrets"][0]["store_version"] = json!(0)),
                "/secrets/0/store_version: not a version (≥ 1)",
            ),
            (
                Box::new(|v| v["secrets"][0]["context"] = json!(PLANTED)),
                "/secrets/0/context: not an object",
            ),
        ];
        for (edit, expected) in cases {
            let problems = index_problems_of(edit);
            assert_eq!(problems, vec![expected.to_string()]);
        }
    }

    #[test]
    fn each_sidecar_rule_names_its_place_and_never_the_text() {
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["format"] = json!(0)),
                "/format: not a known sidecar format",
            ),
            (
                Box::new(|v| v["id"] = json!(PLANTED)),
                "/id: not a snapshot id",
            ),
            (
                Box::new(|v| v["archive"] = json!(format!("{ID}.tar"))),
                "/archive: not an archive name (ID.tar.zst or ID.tar.zst.age; ID.refs in format 2)",
            ),
            (
                Box::new(|v| v["blake3"] = json!(PLANTED)),
                "/blake3: not 64 lowercase hex digits",
            ),
            (
                Box::new(|v| v["degraded"] = json!(["ok", PLANTED])),
                "/degraded/1: not a condition (word[:detail])",
            ),
            (
                Box::new(|v| v["signature"]["algorithm"] = json!("rsa")),
                "/signature/algorithm: not ed25519",
            ),
            (
                Box::new(|v| v["signature"]["version"] = json!(0)),
                "/signature/version: not a version (≥ 1)",
            ),
            (
                Box::new(|v| v["signature"]["public_key"] = json!(PLANTED)),
                "/signature/public_key: not ed25519:BASE64 of 32 bytes",
            ),
            (
                Box::new(|v| v["signature"]["value"] = json!(PLANTED)),
                "/signature/value: not the base64 of 64 bytes",
            ),
            (
                Box::new(|v| v["signature"]["certificate"]["identity"] = json!(PLANTED)),
                "/signature/certificate/identity: not ed25519:BASE64 of 32 bytes",
            ),
            (
                Box::new(|v| v["signature"]["certificate"]["value"] = json!(PLANTED)),
                "/signature/certificate/value: not the base64 of 64 bytes",
            ),
        ];
        for (edit, expected) in cases {
            let problems = sidecar_problems_of(edit);
            assert_eq!(problems, vec![expected.to_string()]);
        }
    }

    #[test]
    fn problems_are_capped_and_the_rest_counted() {
        let problems = index_problems_of(|v| {
            let entry = v["entries"][1].clone();
            let entries = v["entries"].as_array_mut().unwrap();
            for _ in 0..30 {
                let mut e = entry.clone();
                e["mode"] = json!(0o20000);
                entries.push(e);
            }
        });
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(
            problems.last().unwrap(),
            "and 10 more problem(s) not listed"
        );
    }
}
