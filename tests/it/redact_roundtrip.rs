//! Property tests of redaction (issue 5): for every format and style, arbitrary values placed
//! in a document round-trip byte for byte when rehydrated with the same value, re-parse to the
//! new value when rehydrated with another, and never appear in the redacted output.
//!
//! Documents are written by this file's own writers (or a real one: `serde_json`), and the real
//! parsers (`serde_json`, `saphyr-parser`, `toml_edit`) confirm each writer wrote the value it
//! meant to, so a shared misunderstanding of a format cannot hide here.

use std::collections::HashMap;

use agentbak::handle::Handle;
use agentbak::manifest::Locator;
use agentbak::redact::{RedactError, Rule, WarningKind, redact_file, rehydrate_file};
use agentbak::secret::Secret;
use proptest::prelude::*;

const HANDLE: &str = "vault:agents/kevin/svc#key";

/// Values with everything that needs escaping somewhere.
fn nasty() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', 'Z', 'q', '0', '7', ' ', ' ', '\t', '\n', '"', '\'', '\\', '#', '=', ':', '-',
        '{', '[', ',', '$', '/', '|', '>', 'é', 'ß', '😀', '\u{1}', '\u{7f}', '\r',
    ]);
    prop::collection::vec(chars, 0..24).prop_map(|v| v.into_iter().collect())
}

/// Token-like values, which fit every style (API keys mostly look like this).
fn tame() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_./+=@~-]{0,40}"
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![nasty(), tame()]
}

fn rule(locator: Locator) -> Rule {
    Rule {
        locator,
        handle: Handle::parse(HANDLE).unwrap(),
    }
}

fn values(v: &str) -> HashMap<Handle, Secret> {
    HashMap::from([(Handle::parse(HANDLE).unwrap(), Secret::from(v.to_string()))])
}

/// The forms a value takes in the formats agentbak knows; none may survive redaction.
fn forms(v: &str) -> Vec<String> {
    let json = serde_json::to_string(v).unwrap();
    vec![
        v.to_string(),
        json[1..json.len() - 1].to_string(),
        yaml_double(v).unwrap_or_default(),
        v.replace('\'', "''"),
        toml_basic(v),
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .replace('\r', "\\r"),
    ]
}

fn assert_no_leak(output: &[u8], v: &str) {
    // Short values match by chance inside the document's own text; they are the leak gate's.
    if v.len() < agentbak::redact::MIN_STRAY_LEN {
        return;
    }
    let text = String::from_utf8_lossy(output);
    let placeholder = Handle::parse(HANDLE).unwrap().placeholder();
    let text = text.replace(&placeholder, "\u{0}");
    for form in forms(v) {
        if form.len() >= agentbak::redact::MIN_STRAY_LEN {
            assert!(
                !text.contains(&form),
                "a form of the value survived in {text:?}"
            );
        }
    }
}

/// Redacts `doc`, checks the value was found and hidden, rehydrates with the same value
/// (byte-identical) and with `rotated` (checked by `parse`, an independent reader).
fn check(
    path: &str,
    doc: &str,
    locator: Locator,
    v: &str,
    rotated: &str,
    parse: impl Fn(&str) -> Vec<String>,
) -> Result<(), TestCaseError> {
    check_with(path, doc, locator, v, rotated, true, parse)
}

/// [`check`]; when not `exact` (a dotenv value written in a quoting other loaders read
/// differently), the unrotated value may come back in another quoting, read as the same value.
fn check_with(
    path: &str,
    doc: &str,
    locator: Locator,
    v: &str,
    rotated: &str,
    exact: bool,
    parse: impl Fn(&str) -> Vec<String>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        parse(doc),
        vec![v.to_string()],
        "the writer or parser disagrees: {:?}",
        doc
    );
    let red = redact_file(path, doc.as_bytes(), &[rule(locator)], &[]).unwrap();
    prop_assert_eq!(red.values.len(), 1);
    prop_assert_eq!(red.values[0].1.expose(), v.as_bytes());
    if exact {
        prop_assert!(red.warnings.is_empty(), "{:?} in {:?}", red.warnings, doc);
    }
    assert_no_leak(&red.output, v);
    for (value, original) in [(v, true), (rotated, false)] {
        match rehydrate_file(path, &red.output, &red.replacements, &values(value)) {
            Ok(new) => {
                let new = String::from_utf8(new).unwrap();
                if original && exact {
                    prop_assert_eq!(&new, doc);
                }
                prop_assert_eq!(parse(&new), vec![value.to_string()], "{:?}", new);
            }
            Err(RedactError::Unrepresentable { .. }) => {
                prop_assert!(
                    !(original && exact) && refusable(path, value),
                    "refused {:?} in {}",
                    value,
                    path
                );
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        }
    }
    Ok(())
}

/// Whether a format may refuse `v` (docs/restore.md): INI cannot hold a line break, and a
/// plain INI value nothing configparser would trim or read as quoted; dotenv refuses what
/// python-dotenv expands in every quoting (`${NAME}`), and what neither single quotes (a
/// `'`, `\\`, a final `\`) nor double quotes (a `$` bash expands, a backquote) carry.
fn refusable(path: &str, v: &str) -> bool {
    if path.ends_with(".ini") {
        let padded = v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace);
        let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        return v.contains(['\n', '\r']) || padded || quoted;
    }
    if path.ends_with(".env") {
        let expands = regex::Regex::new(r"\$\{(?:[^}:]*|[^}:]*:-[^}]*)\}").unwrap();
        let bash = regex::Regex::new(r"\$[A-Za-z0-9_{(\[@*#?!$-]").unwrap();
        let single = v.contains('\'') || v.contains("\\\\") || v.ends_with('\\');
        let double = v.contains('`') || bash.is_match(v);
        return v.contains(['\0', '\r']) || expands.is_match(v) || (single && double);
    }
    false
}

// ---- JSON ----

fn json_value(doc: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    vec![
        v.pointer("/svc/list/1")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string(),
    ]
}

/// Python's `json.dumps` (ensure_ascii): non-ASCII as `\uXXXX`.
fn json_ascii(v: &str) -> String {
    let mut out = String::new();
    for c in serde_json::to_string(v).unwrap().chars() {
        if (c as u32) < 0x7f {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn json_round_trips(v in value(), rotated in value(), ascii in any::<bool>()) {
        let lit = if ascii { json_ascii(&v) } else { serde_json::to_string(&v).unwrap() };
        let doc = format!("{{\n  \"svc\": {{\"list\": [1, {lit}, null]}},\n  \"n\": 2\n}}\n");
        check("c.json", &doc, Locator::Json("/svc/list/1".into()), &v, &rotated, json_value)?;
    }
}

// ---- YAML ----

fn yaml_double(v: &str) -> Option<String> {
    let mut out = String::new();
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{1}' => out.push_str("\\x01"),
            '\u{7f}' => out.push_str("\\x7F"),
            c if (c as u32) < 0x20 => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn yaml_single(v: &str) -> Option<String> {
    let bad = v
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\t' || c == '\u{7f}');
    (!bad).then(|| v.replace('\'', "''"))
}

fn yaml_block(v: &str, literal: bool) -> Option<String> {
    let ok = !v.is_empty()
        && !v.starts_with([' ', '\t', '\n'])
        && !v.ends_with('\n')
        && !v
            .chars()
            .any(|c| (c as u32) < 0x20 && c != '\t' && c != '\n' || c == '\u{7f}');
    if !ok {
        return None;
    }
    let lines: Vec<&str> = v.split('\n').collect();
    let mut out = lines[0].to_string();
    let mut prev = lines[0];
    let mut breaks = 0;
    for line in &lines[1..] {
        breaks += 1;
        if line.is_empty() {
            continue;
        }
        let normal = |l: &str| !l.starts_with([' ', '\t']);
        let extra = usize::from(!literal && normal(prev) && normal(line));
        out.push_str(&"\n".repeat(breaks + extra));
        out.push_str("  ");
        out.push_str(line);
        prev = line;
        breaks = 0;
    }
    Some(out)
}

/// The string value of key `key` of the top-level mapping, or of item 1 of its flow list.
fn yaml_scalars(doc: &str) -> Vec<String> {
    use saphyr_parser::{Event, Parser};
    let events: Vec<Event> = Parser::new_from_str(doc).map(|e| e.unwrap().0).collect();
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let Event::Scalar(k, ..) = e
            && k == "key"
        {
            match &events[i + 1] {
                Event::Scalar(v, ..) => out.push(v.to_string()),
                Event::SequenceStart(..) => {
                    if let Event::Scalar(v, ..) = &events[i + 3] {
                        out.push(v.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn yaml_styles(v: &str) -> Vec<(&'static str, String)> {
    let mut docs = Vec::new();
    let fits_plain = !v.is_empty()
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./+=@~-".contains(c));
    if fits_plain {
        docs.push(("plain", format!("key: {v}")));
        docs.push(("flow", format!("key: [a, {v}, b]")));
    }
    if let Some(s) = yaml_single(v) {
        docs.push(("single", format!("key: '{s}'  # note")));
    }
    if let Some(d) = yaml_double(v) {
        docs.push(("double", format!("key: \"{d}\"")));
    }
    for (literal, head) in [(true, "|"), (false, ">")] {
        if let Some(body) = yaml_block(v, literal) {
            docs.push(("block-clip", format!("key: {head}\n  {body}")));
            docs.push(("block-strip", format!("key: {head}-\n  {body}")));
            docs.push(("block-keep", format!("key: {head}+\n  {body}\n")));
        }
    }
    docs
}

fn yaml_expected(style: &str, v: &str) -> String {
    match style {
        "block-clip" => format!("{v}\n"),
        "block-keep" => format!("{v}\n\n"),
        _ => v.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn yaml_round_trips(v in value(), rotated in value()) {
        for (style, body) in yaml_styles(&v) {
            let doc = format!("# agent config\nfirst: 1\n{body}\nlast:\n  - x\n");
            let pointer = if style == "flow" { "/key/1" } else { "/key" };
            let want = yaml_expected(style, &v);
            let parse = |d: &str| yaml_scalars(d);
            check("c.yaml", &doc, Locator::Yaml(pointer.into()), &want, &rotated, parse)?;
        }
    }
}

// ---- TOML ----

fn toml_basic(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

fn toml_value(doc: &str) -> Vec<String> {
    let d = toml_edit::Document::parse(doc).unwrap();
    vec![d["svc"]["key"].as_str().unwrap().to_string()]
}

fn toml_styles(v: &str) -> Vec<String> {
    let control = v
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\t' || c == '\u{7f}');
    let ml_control = v
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\t' && c != '\n' || c == '\u{7f}');
    let mut docs = vec![format!("\"{}\"", toml_basic(v))];
    if !control && !v.contains('\'') {
        docs.push(format!("'{v}'"));
    }
    if !ml_control && !v.contains("'''") && !v.ends_with('\'') {
        docs.push(format!("'''\n{v}'''"));
    }
    if !v.contains('"') {
        let body = toml_basic(v).replace("\\n", "\n").replace("\\t", "\t");
        docs.push(format!("\"\"\"\n{body}\"\"\""));
    }
    docs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn toml_round_trips(v in value(), rotated in value()) {
        for lit in toml_styles(&v) {
            let doc = format!("# settings\ntitle = \"t\"\n\n[svc]\nkey = {lit} # inline\nport = 1\n");
            check("s.toml", &doc, Locator::Toml("/svc/key".into()), &v, &rotated, toml_value)?;
        }
    }
}

// ---- dotenv and INI: no independent parser exists here, so the reader is the redactor's own,
// reached through a second redaction of the rehydrated file. ----

fn read_back(path: &str, locator: Locator) -> impl Fn(&str) -> Vec<String> {
    let path = path.to_string();
    move |doc: &str| {
        let red = redact_file(&path, doc.as_bytes(), &[rule(locator.clone())], &[]).unwrap();
        let mut found: Vec<String> = red
            .values
            .iter()
            .map(|(_, v)| v.expose_str().unwrap().to_string())
            .collect();
        found.dedup();
        found
    }
}

/// The value as a dotenv file may hold it, each with whether it is the quoting rehydration
/// itself writes for it (then the round trip is byte for byte).
fn dotenv_styles(v: &str) -> Vec<(String, bool)> {
    let mut docs = Vec::new();
    let readable_unquoted = !v.starts_with([' ', '\t', '\'', '"', '#'])
        && !v.ends_with([' ', '\t'])
        && !v.contains(['\n', '\r'])
        && !v.contains(" #")
        && !v.contains("\t#");
    let every_loader_unquoted = v.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || "_./:@%+,=-".contains(c)
            || (!c.is_ascii() && !c.is_whitespace())
    });
    let writable = !refusable(".env", v);
    if readable_unquoted {
        docs.push((v.to_string(), writable && every_loader_unquoted));
    }
    if !v.contains('\'') {
        let exact = writable && !v.contains("\\\\") && !v.ends_with('\\');
        docs.push((format!("'{v}'"), exact));
    }
    let bash = regex::Regex::new(r"\$[A-Za-z0-9_{(\[@*#?!$-]").unwrap();
    let literal = v.replace('\\', "\\\\").replace('"', "\\\"");
    let exact = writable && !v.contains('`') && !bash.is_match(v);
    docs.push((format!("\"{literal}\""), exact));
    let escaped = literal.replace('\n', "\\n").replace('\r', "\\r");
    if escaped != literal {
        docs.push((format!("\"{escaped}\""), false));
    }
    docs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn dotenv_round_trips(v in value(), rotated in value()) {
        // A carriage return in a value is refused at redaction (python-dotenv reads it as a
        // line feed).
        prop_assume!(!v.contains('\r'));
        let styles = dotenv_styles(&v);
        for (lit, exact) in &styles {
            // The key twice, in two quotings: every occurrence is redacted.
            let (other, other_exact) = styles
                .iter()
                .rev()
                .find(|s| s.1)
                .unwrap_or_else(|| styles.last().unwrap());
            let doc = format!("# env\nexport API_KEY={lit} # c\nOTHER=1\nAPI_KEY = {other}\n");
            let locator = Locator::Env("API_KEY".into());
            let exact = *exact && *other_exact;
            let read = read_back(".env", locator.clone());
            check_with(".env", &doc, locator, &v, &rotated, exact, read)?;
        }
    }

    #[test]
    fn ini_round_trips(v in value(), rotated in value()) {
        prop_assume!(!v.contains(['\n', '\r']));
        let mut styles = vec![format!("\"{v}\"")];
        if !v.starts_with([' ', '\t']) && !v.ends_with([' ', '\t']) && !v.starts_with('"') {
            // configparser's dialect: `%%` is one `%`.
            styles.push(v.replace('%', "%%"));
            // A lone `%` (configparser would refuse it) is another program's text, kept as is.
            if v.contains('%') && !v.contains("%%") && !v.contains("%(") {
                styles.push(v.clone());
            }
        }
        for lit in styles {
            let doc = format!("; db\n[db]\nhost = h\npassword = {lit}\n[other]\npassword = x\n");
            let locator = Locator::Ini("db.password".into());
            check("a.ini", &doc, locator.clone(), &v, &rotated, read_back("a.ini", locator))?;
        }
    }
}

// ---- regex, whole file, strays ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn regex_values_may_hold_any_bytes(v in prop::collection::vec(any::<u8>(), 1..32)) {
        prop_assume!(!v.contains(&b';'));
        let mut doc = b"line Authorization: Bearer ".to_vec();
        doc.extend_from_slice(&v);
        doc.extend_from_slice(b";\nend\n");
        let locator = Locator::Regex(r"(?s-u)Bearer ([^;]+);".into());
        if agentbak::redact::is_binary(&doc) {
            return Ok(());
        }
        let red = redact_file("a.log", &doc, &[rule(locator)], &[]).unwrap();
        prop_assert_eq!(red.values[0].1.expose(), &v[..]);
        let vals = HashMap::from([(Handle::parse(HANDLE).unwrap(), Secret::new(v.clone()))]);
        let back = rehydrate_file("a.log", &red.output, &red.replacements, &vals).unwrap();
        prop_assert_eq!(back, doc);
    }

    #[test]
    fn whole_files_round_trip_text_or_binary(v in prop::collection::vec(any::<u8>(), 1..64)) {
        let red = redact_file("k.pem", &v, &[rule(Locator::WholeFile)], &[]).unwrap();
        prop_assert_eq!(red.output, Handle::parse(HANDLE).unwrap().placeholder().into_bytes());
        let vals: HashMap<Handle, Secret> = red.values.iter().cloned().collect();
        let placeholder = Handle::parse(HANDLE).unwrap().placeholder();
        let back = rehydrate_file("k.pem", placeholder.as_bytes(), &red.replacements, &vals).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn stray_values_are_hidden_in_every_form(v in "[ -~]{8,30}", rotated in "[ -~]{8,30}") {
        let known = [(Handle::parse(HANDLE).unwrap(), Secret::from(v.clone()))];
        let json = serde_json::to_string(&v).unwrap();
        let doc = format!("log {v} end\n{{\"msg\": {json}}}\nyaml: \"{}\"\n", yaml_double(&v).unwrap());
        let red = redact_file("run.log", doc.as_bytes(), &[], &known).unwrap();
        assert_no_leak(&red.output, &v);
        let back = rehydrate_file("run.log", &red.output, &red.replacements, &values(&v)).unwrap();
        prop_assert_eq!(String::from_utf8(back).unwrap(), doc.as_str());
        let new = rehydrate_file("run.log", &red.output, &red.replacements, &values(&rotated)).unwrap();
        let new = String::from_utf8(new).unwrap();
        prop_assert!(new.contains(&format!("log {rotated} end")), "{}", new);
        // Where the escaped form differs from the raw one, the form found says how to write
        // the new value; where they are the same bytes, a file of no known format gets it raw.
        if v.contains(['"', '\\']) {
            let rotated_json = serde_json::to_string(&rotated).unwrap();
            prop_assert!(new.contains(&format!("{{\"msg\": {rotated_json}}}")), "{}", new);
        }
    }
}

#[test]
fn inexact_originals_are_warned_about_not_silently_changed() {
    let doc = "key: \"a\\x41b\"\n";
    let red = redact_file(
        "c.yaml",
        doc.as_bytes(),
        &[rule(Locator::Yaml("/key".into()))],
        &[],
    )
    .unwrap();
    assert_eq!(red.warnings[0].kind, WarningKind::Inexact);
    let back = rehydrate_file("c.yaml", &red.output, &red.replacements, &values("aAb")).unwrap();
    assert_eq!(
        yaml_scalars(std::str::from_utf8(&back).unwrap()),
        vec!["aAb".to_string()]
    );
}
