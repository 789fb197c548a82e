//! The JSON Schema and the serde model must accept the same manifests: every example in the
//! repository validates against both, and at every object level both accept exactly the same
//! field names and reject unknown ones.

use std::path::{Path, PathBuf};

use agentbak::manifest::Manifest;
use serde_json::{Value, json};

fn schema() -> Value {
    let text = std::fs::read_to_string("schemas/manifest.schema.json").unwrap();
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
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
    ("/encryption", "/properties/encryption"),
    ("/stores/vault", "/$defs/store/oneOf/0"),
    (
        "/stores/vault/cache",
        "/$defs/store/oneOf/0/properties/cache",
    ),
    ("/stores/vault/auth", "/$defs/vault_auth/oneOf/0"),
    ("/stores/bao2/auth", "/$defs/vault_auth/oneOf/1"),
    ("/stores/local", "/$defs/store/oneOf/1"),
    ("/stores/env", "/$defs/store/oneOf/2"),
    ("/secrets/0", "/$defs/secret"),
    ("/detect", "/properties/detect"),
    (
        "/detect/rules/0",
        "/properties/detect/properties/rules/items",
    ),
    ("/retention", "/properties/retention"),
    ("/rotation", "/properties/rotation"),
    ("/compression", "/properties/compression"),
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
