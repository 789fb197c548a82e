//! The JSON Schemas of agentbak's files, generated from the model (feature `schema`).
//!
//! `schemas/*.schema.json` are not written by hand: each is the `schemars` schema of the type
//! that reads or writes the file ([`Manifest`], [`Index`], [`Sidecar`], [`VerifyReport`]),
//! whose `JsonSchema` derive sits on the model type itself, next to its serde attributes, so a
//! field cannot be added, renamed or dropped without the schema following. Doc comments become
//! descriptions; `#[schemars(...)]` attributes on the model add what serde does not say
//! (patterns, ranges, "exactly one of"). `tests/it/schema.rs` regenerates every file and fails
//! when a committed one differs (`AGENTBAK_BLESS=1` rewrites them).
//!
//! The files describe what agentbak *writes*, and what a file may hold to be read:
//! - an optional field is absent when unset; `null` is never written, so the schemas do not
//!   offer it (serde would read `null` as absent, the schema is the stricter of the two);
//! - number formats (`uint32`, `double`, …) are `schemars`' own vocabulary, which JSON Schema
//!   tools ignore: dropped (unsigned types keep their `minimum: 0`);
//! - keys are sorted, and the text ends with a newline, so a file is a pure function of the
//!   model.
//!
//! Two types serialize by hand, [`Handle`] (its text) and [`ExitCode`] (its number): their
//! schemas are written here, next to nothing else that could drift from them but the handle
//! grammar of `docs/handles.md`. The patterns of the archive formats are
//! [`crate::archive::wellformed`]'s, the same constants verify checks with.
//!
//! This module and the derives exist only with the feature: a release build carries neither.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use crate::archive::{Index, Sidecar};
use crate::error::ExitCode;
use crate::handle::Handle;
use crate::manifest::Manifest;
use crate::ops::verify::VerifyReport;

/// The base of the schemas' `$id`s; the files themselves are under `schemas/`.
pub const BASE_ID: &str = "https://agentbak.dev/schemas/";

/// One generated schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFile {
    /// The file name under `schemas/`.
    pub file: &'static str,
    /// Its full text.
    pub text: String,
}

/// Every schema file, generated from the model.
pub fn all() -> Vec<SchemaFile> {
    vec![
        file::<Manifest>("manifest.schema.json", Contract::Deserialize),
        file::<Index>("index.schema.json", Contract::Deserialize),
        file::<Sidecar>("sidecar.schema.json", Contract::Deserialize),
        // The report is only written: its schema is what serialization produces.
        file::<VerifyReport>("verify-report.schema.json", Contract::Serialize),
    ]
}

fn file<T: JsonSchema>(name: &'static str, contract: Contract) -> SchemaFile {
    let settings = SchemaSettings::draft2020_12().with(|s| s.contract = contract);
    let mut schema = settings.into_generator().into_root_schema_for::<T>();
    schema.insert("$id".into(), format!("{BASE_ID}{name}").into());
    let mut value = schema.to_value();
    tidy(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("a schema serializes");
    text.push('\n');
    SchemaFile { file: name, text }
}

/// Formats `schemars` gives numbers: its own vocabulary, which JSON Schema tools ignore.
const SCHEMARS_FORMATS: &[&str] = &["int", "uint", "double", "float"];

/// Drops `null` from optional properties and `schemars`' integer formats, and joins the lines
/// of a description as rustdoc joins them (a blank line stays a paragraph break), everywhere.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| SCHEMARS_FORMATS.iter().any(|p| f.starts_with(p)))
            {
                map.remove("format");
            }
            if let Some(Value::String(d)) = map.get_mut("description") {
                *d = d
                    .split("\n\n")
                    .map(|p| p.replace('\n', " "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            let required: Vec<Value> = match map.get("required") {
                Some(Value::Array(r)) => r.clone(),
                _ => Vec::new(),
            };
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (name, prop) in props.iter_mut() {
                    if !required.contains(&Value::String(name.clone())) {
                        drop_null(prop);
                    }
                }
            }
            for v in map.values_mut() {
                tidy(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// `{"type": [T, "null"]}` becomes `{"type": T}`; `{"anyOf": [S, {"type": "null"}]}` becomes S
/// (with the property's own keywords beside it).
fn drop_null(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    let null = Value::String("null".into());
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| *t != null);
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    let null_schema = serde_json::json!({"type": "null"});
    if let Some(Value::Array(any)) = map.get("anyOf")
        && any.len() == 2
        && any[1] == null_schema
        && let Value::Object(inner) = any[0].clone()
    {
        map.remove("anyOf");
        map.extend(inner);
    }
}

impl JsonSchema for Handle {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Handle".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "STORE:PATH[?version=N]#FIELD, or STORE:NAME for an env store. See docs/handles.md.",
            "pattern": "^[a-z][a-z0-9_-]*:((?!\\.\\.?[/?#])[A-Za-z0-9._{}-]+(/(?!\\.\\.?[/?#])[A-Za-z0-9._{}-]+)*(\\?version=[1-9][0-9]*)?#[A-Za-z0-9._-]+|[A-Za-z_][A-Za-z0-9_]*)$"
        })
    }
}

impl JsonSchema for ExitCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExitCode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let codes: Vec<u8> = (0..=u8::MAX)
            .filter(|c| ExitCode::try_from(*c).is_ok())
            .collect();
        json_schema!({
            "enum": codes,
            "description": "0 clean, 3 needs attention, 4 secrets found, 5 integrity failure, 6 unresolved handles (docs/exit-codes.md)."
        })
    }
}
