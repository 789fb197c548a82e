//! `schemas/` is generated from the model (`agentbak::schema`, feature `schema`): the committed
//! files must be exactly what the model generates today. And the generated schemas must mean
//! what the model means: every example manifest validates against both, at every object level
//! both accept exactly the same field names and reject unknown ones, and the newer parts
//! (signatures in sidecars and reports) are described with their constraints.

use std::path::{Path, PathBuf};

use agentbak::manifest::Manifest;
use serde_json::{Value, json};

fn schema() -> Value {
    schema_file("manifest.schema.json")
}

fn schema_file(name: &str) -> Value {
    let text = std::fs::read_to_string(Path::new("schemas").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

fn validator_of(name: &str) -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema_file(name)).expect("the schema compiles")
}

fn example_manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("manifest.schema.json") {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("examples"), &mut out);
    out
}

/// The full example with both auth methods, so every object kind of the model is present.
fn full_example() -> Value {
    let text = std::fs::read_to_string("examples/kevin/agentbak.json").unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["stores"]["vault"]["auth"] = json!({"method": "token", "token_file": "/run/token"});
    v["stores"]["bao2"] = json!({"kind": "vault", "auth": {"method": "approle",
        "role_id_file": "/run/role", "secret_id_file": "/run/secret", "mount": "approle"}});
    v["capture"] = json!({"store": "vault", "path": "agents/{agent}/captured"});
    v
}

fn parse(v: &Value) -> Result<Manifest, String> {
    Manifest::parse(Path::new("probe.json"), v.to_string().as_bytes()).map_err(|e| e.to_string())
}

#[test]
fn every_example_manifest_validates_against_schema_and_model() {
    let examples = example_manifests();
    assert!(examples.len() >= 2, "examples found: {examples:?}");
    let validator = validator();
    for path in examples {
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        parse(&value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let full = full_example();
    assert!(validator.is_valid(&full));
    parse(&full).unwrap();
}

/// (pointer into the full example, pointer into the schema of that object)
const LEVELS: &[(&str, &str)] = &[
    ("", ""),
    ("/encryption", "/$defs/Encryption"),
    ("/stores/vault", "/$defs/StoreConfig/oneOf/0"),
    ("/stores/vault/cache", "/$defs/CacheConfig"),
    ("/stores/vault/auth", "/$defs/VaultAuth/oneOf/0"),
    ("/stores/bao2/auth", "/$defs/VaultAuth/oneOf/1"),
    ("/stores/local", "/$defs/StoreConfig/oneOf/1"),
    ("/stores/env", "/$defs/StoreConfig/oneOf/2"),
    ("/secrets/0", "/$defs/SecretRule"),
    ("/detect", "/$defs/Detect"),
    ("/detect/rules/0", "/$defs/CustomRule"),
    ("/retention", "/$defs/Retention"),
    ("/rotation", "/$defs/Rotation"),
    ("/compression", "/$defs/Compression"),
    ("/capture", "/$defs/Capture"),
];

/// The field names serde accepts at a level, read from its "unknown field" message.
fn model_fields(pointer: &str) -> Vec<String> {
    let mut v = full_example();
    v.pointer_mut(pointer)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("__probe__".into(), json!(0));
    let err = parse(&v).expect_err("an unknown field is rejected");
    assert!(
        err.contains("unknown field `__probe__`"),
        "{pointer}: {err}"
    );
    let expected = err.split_once("expected").map(|(_, e)| e).unwrap_or("");
    let mut fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    fields.sort();
    fields
}

fn schema_fields(schema_pointer: &str) -> Vec<String> {
    let s = schema();
    let obj = s.pointer(schema_pointer).unwrap();
    let mut fields: Vec<String> = obj["properties"]
        .as_object()
        .unwrap()
        .keys()
        // The serde tag fields are consumed before the struct sees its fields.
        .filter(|k| *k != "kind" && *k != "method")
        .cloned()
        .collect();
    fields.sort();
    fields
}

#[test]
fn schema_and_model_accept_the_same_fields_at_every_level() {
    for (pointer, schema_pointer) in LEVELS {
        assert_eq!(
            model_fields(pointer),
            schema_fields(schema_pointer),
            "fields differ at {pointer:?}"
        );
    }
}

#[test]
fn schema_rejects_unknown_fields_at_every_level() {
    let validator = validator();
    for (pointer, _) in LEVELS {
        let mut v = full_example();
        v.pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("__probe__".into(), json!(0));
        assert!(
            !validator.is_valid(&v),
            "schema accepted an unknown field at {pointer:?}"
        );
    }
}

#[test]
fn schema_and_model_agree_on_locators() {
    let validator = validator();
    let mut two = full_example();
    two["secrets"][0]["yaml"] = json!("/x");
    assert!(!validator.is_valid(&two));
    assert!(parse(&two).unwrap_err().contains("exactly one locator"));

    let mut none = full_example();
    none["secrets"][0].as_object_mut().unwrap().remove("json");
    assert!(!validator.is_valid(&none));
    assert!(parse(&none).unwrap_err().contains("exactly one locator"));

    let mut bad_handle = full_example();
    bad_handle["secrets"][0]["handle"] = json!("vault:a/../b#f");
    assert!(!validator.is_valid(&bad_handle));
    assert!(parse(&bad_handle).is_err());
}

/// The command that rewrites `schemas/` from the model.
const BLESS: &str = "AGENTBAK_BLESS=1 cargo nextest run schema_files_are_generated_from_the_model";

#[test]
fn schema_files_are_generated_from_the_model() {
    let bless = std::env::var_os("AGENTBAK_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for generated in agentbak::schema::all() {
        let path = Path::new("schemas").join(generated.file);
        if bless {
            std::fs::write(&path, &generated.text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated.text {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the schemas the model generates; regenerate them with `{BLESS}` \
         and commit the result"
    );
}

#[test]
fn every_schema_is_draft_2020_12_with_its_id_and_title() {
    for (file, title) in [
        ("manifest.schema.json", "agentbak manifest"),
        ("index.schema.json", "agentbak archive index"),
        ("sidecar.schema.json", "agentbak snapshot sidecar"),
        ("verify-report.schema.json", "agentbak verify report"),
    ] {
        let s = schema_file(file);
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["$id"], format!("https://agentbak.dev/schemas/{file}"));
        assert_eq!(s["title"], title);
        assert!(
            s["description"].as_str().is_some_and(|d| d.len() > 40),
            "{file}"
        );
        jsonschema::draft202012::meta::validate(&s).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

/// A sidecar with every optional part: a signature with its certificate.
fn signed_sidecar() -> Value {
    json!({
        "format": 1, "id": "20261128T225501Z-3f9a2c1b", "agent": "kevin", "host": "h",
        "created_at": "2026-11-28T22:55:01Z", "tags": ["nightly"], "tool_version": "0.1.0",
        "archive": "20261128T225501Z-3f9a2c1b.tar.zst.age", "size": 1,
        "blake3": "0f".repeat(32),
        "counts": {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "secrets": 0},
        "encrypted": true, "degraded": [],
        "signature": {
            "algorithm": "ed25519", "signer": "local:agents/kevin/signing#private_key",
            "version": 2, "public_key": format!("ed25519:{}=", "A".repeat(43)),
            "value": format!("{}==", "B".repeat(86)),
            "certificate": {
                "identity": format!("ed25519:{}=", "C".repeat(43)),
                "value": format!("{}==", "D".repeat(86))
            }
        }
    })
}

#[test]
fn the_sidecar_schema_describes_signatures_and_their_certificates() {
    let validator = validator_of("sidecar.schema.json");
    let signed = signed_sidecar();
    let errors: Vec<String> = validator
        .iter_errors(&signed)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    agentbak::archive::Sidecar::from_json(signed.to_string().as_bytes()).unwrap();
    for (pointer, bad) in [
        ("/signature/algorithm", json!("rsa")),
        ("/signature/version", json!(0)),
        ("/signature/public_key", json!("ed25519:short=")),
        ("/signature/value", json!("not base64")),
        ("/signature/certificate/identity", json!("ssh-ed25519 AAAA")),
        ("/signature/extra", json!(1)),
        ("/signature/certificate/extra", json!(1)),
    ] {
        let mut v = signed.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        v.pointer_mut(parent).unwrap()[key] = bad;
        assert!(!validator.is_valid(&v), "accepted a bad {pointer}");
    }
}

#[test]
fn the_manifest_schema_describes_signing() {
    let validator = validator();
    let mut v = full_example();
    v["signing"] = json!({
        "transit": {"store": "vault", "key": "agent-signing"},
        "revoked": [1], "identity": "local:agents/kevin/identity#private_key",
        "trust": [format!("ed25519:{}=", "A".repeat(43))]
    });
    assert!(validator.is_valid(&v));
    parse(&v).unwrap();
    v["signing"]["revoked"] = json!([0]);
    assert!(!validator.is_valid(&v), "version 0 revoked");
    v["signing"]["revoked"] = json!([1]);
    v["signing"]["transit"]["extra"] = json!(1);
    assert!(!validator.is_valid(&v));
}

#[test]
fn the_report_schema_names_every_check_and_signature_status() {
    let report = schema_file("verify-report.schema.json");
    let names = &report["$defs"]["Check"]["properties"]["name"]["enum"];
    for name in ["signature", "declared", "leak-scan", "rotation"] {
        assert!(names.as_array().unwrap().contains(&json!(name)), "{name}");
    }
    let statuses: Vec<&Value> = report["$defs"]["SignatureStatus"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["properties"]["status"]["const"])
        .collect();
    assert_eq!(
        statuses,
        [
            &json!("signed"),
            &json!("unsigned"),
            &json!("invalid"),
            &json!("not_checked")
        ]
    );
}

/// The handle pattern is written by hand (a handle serializes as its text): it must agree with
/// `Handle::parse`, the grammar of docs/handles.md.
#[test]
fn the_handle_pattern_agrees_with_the_parser() {
    let handle = jsonschema::draft202012::new(&schema()["$defs"]["Handle"]).unwrap();
    for text in [
        "vault:agents/kevin/openai#api_key",
        "vault:agents/{agent}/openai?version=3#api_key",
        "local:a.b/c_d-e#f.g",
        "env:SESSION_TOKEN",
        "env:_x1",
        "vault",
        "Vault:a#b",
        "vault:a/../b#f",
        "vault:./a#f",
        "vault:a//b#f",
        "vault:a#",
        "vault:a?version=0#f",
        "vault:a?v=2#f",
        "vault:a b#f",
        "env:1ABC",
        "vault:a?version=2",
        "vault:a#f#g",
    ] {
        assert_eq!(
            handle.is_valid(&json!(text)),
            agentbak::handle::Handle::parse(text).is_ok(),
            "{text}"
        );
    }
}
