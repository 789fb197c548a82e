//! Driver tests: rules together, strays, binary files, records, errors. The per-format round
//! trips over arbitrary values are property tests in `tests/it/redact_roundtrip.rs`.

use std::collections::HashMap;

use super::*;

const KEY: &str = "sk-live-0123456789abcdefXYZ";

fn h(s: &str) -> Handle {
    Handle::parse(s).unwrap()
}

fn rule(locator: Locator, handle: &str) -> Rule {
    Rule {
        locator,
        handle: h(handle),
    }
}

fn values(pairs: &[(&str, &str)]) -> HashMap<Handle, Secret> {
    pairs
        .iter()
        .map(|(k, v)| (h(k), Secret::from(v.to_string())))
        .collect()
}

fn round_trip<'a>(
    path: &str,
    input: &'a str,
    rules: &[Rule],
    known: &[(Handle, Secret)],
) -> RedactedFile<'a> {
    let red = redact_file(path, input.as_bytes(), rules, known).unwrap();
    let mut vals: HashMap<Handle, Secret> = red.values.iter().cloned().collect();
    for (handle, value) in known {
        vals.entry(handle.clone()).or_insert_with(|| value.clone());
    }
    let back = rehydrate_file(path, &red.output, &red.replacements, &vals).unwrap();
    assert_eq!(String::from_utf8(back).unwrap(), input);
    red
}

#[test]
fn declared_and_stray_values_become_one_placeholder() {
    let input =
        format!("{{\"openai\": {{\"api_key\": \"{KEY}\"}}, \"note\": \"copy {KEY} here\"}}");
    let rules = [rule(
        Locator::Json("/openai/api_key".into()),
        "vault:a/openai#api_key",
    )];
    let red = round_trip("config/credentials.json", &input, &rules, &[]);
    let out = String::from_utf8(red.output.to_vec()).unwrap();
    assert!(!out.contains(KEY), "{out}");
    assert_eq!(out.matches("+agentbak:vault:a/openai:api_key+").count(), 2);
    assert_eq!(red.replacements.len(), 2);
    assert!(red.replacements.iter().any(|r| r.source == Source::Stray));
    assert_eq!(red.values.len(), 1);
    assert!(red.warnings.is_empty());
}

#[test]
fn rotated_values_switch_quoting_where_they_must() {
    let cases: [(&str, &str, Locator, &str); 5] = [
        (
            "c.yaml",
            "k: plain\n",
            Locator::Yaml("/k".into()),
            "k: \"a: b\"\n",
        ),
        (
            "c.yaml",
            "k: |\n  l1\n",
            Locator::Yaml("/k".into()),
            "k: \"a: b\"\n",
        ),
        (
            ".env",
            "K='v'\n",
            Locator::Env("K".into()),
            "K=\"a: b's\"\n",
        ),
        (
            "c.toml",
            "k = 'v'\n",
            Locator::Toml("/k".into()),
            "k = \"a: b's\"\n",
        ),
        (
            "c.json",
            "{\"k\": \"v\"}",
            Locator::Json("/k".into()),
            "{\"k\": \"a: b's\"}",
        ),
    ];
    for (path, input, locator, want) in cases {
        let rotated = if path.ends_with("yaml") {
            "a: b"
        } else {
            "a: b's"
        };
        let red = redact_file(path, input.as_bytes(), &[rule(locator, "env:K")], &[]).unwrap();
        let back = rehydrate_file(
            path,
            &red.output,
            &red.replacements,
            &values(&[("env:K", rotated)]),
        );
        assert_eq!(String::from_utf8(back.unwrap()).unwrap(), want, "{path}");
    }
}

#[test]
fn a_rule_that_finds_nothing_is_a_warning() {
    let rules = [rule(Locator::Env("MISSING".into()), "env:M")];
    let red = redact_file(".env", b"A=1\n", &rules, &[]).unwrap();
    assert_eq!(&*red.output, b"A=1\n");
    assert_eq!(red.warnings.len(), 1);
    assert_eq!(red.warnings[0].kind, WarningKind::NotFound);
}

#[test]
fn unusual_escaping_is_reported_as_inexact() {
    let rules = [rule(Locator::Json("/k".into()), "env:K")];
    let red = redact_file("c.json", br#"{"k": "\u0041b"}"#, &rules, &[]).unwrap();
    assert_eq!(red.warnings[0].kind, WarningKind::Inexact);
    let back = rehydrate_file(
        "c.json",
        &red.output,
        &red.replacements,
        &values(&[("env:K", "Ab")]),
    );
    assert_eq!(back.unwrap(), br#"{"k": "Ab"}"#);
}

#[test]
fn binary_files_block_on_known_values_and_take_only_whole_file_rules() {
    let mut input = b"\x00\x01header".to_vec();
    input.extend_from_slice(KEY.as_bytes());
    let known = [(h("env:K"), Secret::from(KEY.to_string()))];
    let red = redact_file("db.sqlite", &input, &[], &known).unwrap();
    assert_eq!(red.output, input);
    assert_eq!(red.blockers.len(), 1);
    assert_eq!(red.blockers[0].offset, 8);
    let e = redact_file(
        "db.sqlite",
        &input,
        &[rule(Locator::Env("K".into()), "env:K")],
        &[],
    );
    assert!(matches!(e, Err(RedactError::NotText { .. })));

    let whole = [rule(Locator::WholeFile, "vault:keys/id#key")];
    let red = redact_file("id.bin", &input, &whole, &[]).unwrap();
    assert_eq!(&*red.output, b"+agentbak:vault:keys/id:key+");
    let Context::WholeFile(style) = &red.replacements[0].context else {
        panic!()
    };
    assert_eq!(style.encoding, Encoding::Base64);
    let vals: HashMap<Handle, Secret> = red.values.iter().cloned().collect();
    let back = rehydrate_file("id.bin", &red.output, &red.replacements, &vals).unwrap();
    assert_eq!(back, input);
}

#[test]
fn regex_rules_take_every_match() {
    let input = "GET Authorization: Bearer tok.A1\nAuthorization: Bearer tok.A1\n";
    let rules = [rule(
        Locator::Regex("Authorization: Bearer ([A-Za-z0-9._-]+)".into()),
        "env:T",
    )];
    let red = round_trip("logs/a.log", input, &rules, &[]);
    assert_eq!(red.replacements[0].offsets.len(), 2);
    assert_eq!(red.values.len(), 1);
    // Two different values under one handle: both are reported, for the sync check to flag.
    let two = input.replacen("A1", "B2", 1);
    let red = redact_file("logs/a.log", two.as_bytes(), &rules, &[]).unwrap();
    assert_eq!(red.values.len(), 2);
}

#[test]
fn conflicting_rules_are_errors() {
    let mixed = [
        rule(Locator::Json("/a".into()), "env:A"),
        rule(Locator::Yaml("/b".into()), "env:B"),
    ];
    let e = redact_file("x", b"{}", &mixed, &[]).unwrap_err();
    assert!(matches!(e, RedactError::MixedFormats { .. }));
    let overlap = [
        rule(Locator::Json("/a".into()), "env:A"),
        rule(Locator::Regex("(x)".into()), "env:B"),
    ];
    let e = redact_file("x", br#"{"a": "x"}"#, &overlap, &[]).unwrap_err();
    assert!(matches!(e, RedactError::Overlap { .. }));
    let e = redact_file("x", br#"{"a": 1}"#, &overlap[..1], &[]).unwrap_err();
    assert!(matches!(
        e,
        RedactError::NotAString {
            found: "a number",
            ..
        }
    ));
}

#[test]
fn errors_name_places_never_values() {
    let cases: [(&str, &str, Locator); 4] = [
        (
            "c.json",
            "{\"k\": sk-live-0123456789abcdefXYZ}",
            Locator::Json("/k".into()),
        ),
        (
            "c.yaml",
            "k: [sk-live-0123456789abcdefXYZ\n",
            Locator::Yaml("/k".into()),
        ),
        (
            "c.toml",
            "k = sk-live-0123456789abcdefXYZ\n",
            Locator::Toml("/k".into()),
        ),
        (
            ".env",
            "K=\"sk-live-0123456789abcdefXYZ\n",
            Locator::Env("K".into()),
        ),
    ];
    for (path, input, locator) in cases {
        let e = redact_file(path, input.as_bytes(), &[rule(locator, "env:K")], &[]).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(matches!(e, RedactError::Parse { .. }), "{shown}");
        assert!(!shown.contains("sk-live"), "{shown}");
    }
}

#[test]
fn rehydration_refuses_what_it_cannot_prove() {
    let rules = [rule(Locator::Ini("db.password".into()), "env:P")];
    let red = redact_file("a.ini", b"[db]\npassword = pw\n", &rules, &[]).unwrap();
    let e = rehydrate_file("a.ini", &red.output, &red.replacements, &HashMap::new());
    assert!(matches!(e, Err(RedactError::MissingValue { .. })));
    let e = rehydrate_file(
        "a.ini",
        &red.output,
        &red.replacements,
        &values(&[("env:P", "a\nb")]),
    );
    let e = e.unwrap_err();
    assert!(matches!(e, RedactError::Unrepresentable { .. }));
    assert!(!format!("{e}").contains("a\nb"));
    let e = rehydrate_file(
        "a.ini",
        b"[db]\npassword = x\n",
        &red.replacements,
        &values(&[("env:P", "v")]),
    );
    assert!(matches!(e, Err(RedactError::NoPlaceholder { .. })));
}

#[test]
fn records_serialize_without_values() {
    let input = format!("k: '{KEY}'\nblock: |\n  {KEY}\n");
    let rules = [rule(Locator::Yaml("/k".into()), "local:a#k")];
    let red = round_trip("c.yaml", &input, &rules, &[]);
    let json = serde_json::to_string(&red.replacements).unwrap();
    assert!(!json.contains(KEY), "{json}");
    assert!(
        json.contains(r#""format":"yaml","style":"single""#),
        "{json}"
    );
    let back: Vec<Replacement> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, red.replacements);
    let shown = format!("{red:?}");
    assert!(!shown.contains(KEY));
}

#[test]
fn existing_placeholder_text_is_left_alone() {
    let input = "K=+agentbak:env:OTHER+\nL=+agentbak:env:OTHER+\n";
    let known = [(h("env:OTHER"), Secret::from("agentbak".to_string()))];
    let red = round_trip(".env", input, &[], &known);
    assert!(red.replacements.is_empty());
}

#[test]
fn yaml_anchors_and_tags_stay_and_aliases_are_refused() {
    let input = "a: &p !!str secret-value-1\nb: *p\n";
    let rules = [rule(Locator::Yaml("/a".into()), "env:A")];
    let red = round_trip("c.yaml", input, &rules, &[]);
    assert_eq!(&*red.output, b"a: &p !!str +agentbak:env:A+\nb: *p\n");
    let alias = [rule(Locator::Yaml("/b".into()), "env:A")];
    let e = redact_file("c.yaml", input.as_bytes(), &alias, &[]).unwrap_err();
    assert!(matches!(
        e,
        RedactError::NotAString {
            found: "an alias",
            ..
        }
    ));
}

#[test]
fn keys_name_every_string_and_locate_reads_them_back() {
    let cases: [(Format, &str, &[&str]); 5] = [
        (
            Format::Json,
            r#"{"a": {"k/x": "v1", "n": 3}, "l": ["v2", {"m": "v3"}], "t": true}"#,
            &["/a/k~1x", "/l/0", "/l/1/m"],
        ),
        (
            Format::Yaml,
            "a:\n  k: v1\n  n: 3\nl:\n  - v2\n  - {m: \"v3\"}\nz: ~\n---\nb: |\n  v4\n",
            &["/a/k", "/a/n", "/l/0", "/l/1/m", "/b"],
        ),
        (
            Format::Toml,
            "top = \"v0\"\n[a]\nk = 'v1'\nn = 3\nl = [\"v2\", { m = \"v3\" }]\n[[arr]]\nx = \"v4\"\n",
            &["/top", "/a/k", "/a/l/0", "/a/l/1/m", "/arr/0/x"],
        ),
        (
            Format::Dotenv,
            "export A=v1\n# c\nB=\"v2\"\nA=v3\nC=#none\n",
            &["A", "B"],
        ),
        (
            Format::Ini,
            "top = v0\n[s]\nk = v1\n[t]\nk = v2\n",
            &["top", "s.k", "t.k"],
        ),
    ];
    for (format, doc, want) in cases {
        let keys = format.redactor().keys(doc).unwrap();
        let mut got = keys.clone();
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{format}");
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let sites = format.redactor().locate(doc, &refs).unwrap();
        assert!(
            sites.iter().all(|s| !s.is_empty()),
            "{format}: every key locates"
        );
    }
    assert!(Format::Json.redactor().keys("{\"a\": ").is_err());
}

/// Every context a redactor records or a rehydration writes in (all JSON flavours, every YAML
/// scalar style with block indentations up to the deepest the gate lists, every TOML string
/// kind, every dotenv quoting, both INI styles).
fn every_context() -> Vec<Context> {
    let mut out = vec![Context::Raw];
    for bits in 0u8..16 {
        out.push(Context::Json(JsonStyle {
            ascii: bits & 1 != 0,
            slash: bits & 2 != 0,
            html: bits & 4 != 0,
            upper_hex: bits & 8 != 0,
        }));
    }
    for (flow, typed) in [(false, false), (false, true), (true, false), (true, true)] {
        out.push(Context::Yaml(YamlStyle::Plain { flow, typed }));
    }
    out.push(Context::Yaml(YamlStyle::Single));
    out.push(Context::Yaml(YamlStyle::Double));
    for literal in [true, false] {
        for indent in 1..=crate::detect::encode::MAX_BLOCK_INDENT {
            for trailing in 0..3 {
                for (explicit, header) in [(false, Some(3)), (true, Some(4)), (false, None)] {
                    out.push(Context::Yaml(YamlStyle::Block(BlockStyle {
                        literal,
                        indent,
                        trailing,
                        explicit,
                        header,
                    })));
                }
            }
        }
    }
    out.push(Context::Toml(TomlStyle::Basic));
    out.push(Context::Toml(TomlStyle::Literal));
    for newline in 0..3 {
        out.push(Context::Toml(TomlStyle::MultiBasic { newline }));
        out.push(Context::Toml(TomlStyle::MultiLiteral { newline }));
    }
    for style in [
        DotenvStyle::Unquoted,
        DotenvStyle::Single,
        DotenvStyle::Double,
    ] {
        out.push(Context::Dotenv(style));
    }
    for literal_percent in [false, true] {
        out.push(Context::Ini(IniStyle::Plain { literal_percent }));
    }
    out.push(Context::Ini(IniStyle::Quoted));
    out
}

/// Values with what each format escapes or refuses: `$`, quotes, `#`, `%`, white space, line
/// breaks, backslashes, braces, control characters and non-ASCII text.
fn awkward_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let pool: Vec<char> = "aZ09$\"'#% \t\n\r\\{}`~:-/<>&=é😀\u{1b}\u{85}\u{7f}\u{2028}"
        .chars()
        .collect();
    proptest::collection::vec(
        prop_oneof![4 => proptest::sample::select(pool), 1 => any::<char>()],
        8..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// The leak gate's known-value search finds every form a redactor or a rehydration can
    /// write: the two share one definition of each format (`crate::detect::encode`), and this
    /// holds them to it. Regression (issue 20): dotenv `\$`/`\r` and YAML `\e`/`\xNN` were
    /// written one way and searched for another.
    #[test]
    fn the_gate_finds_every_form_rehydration_writes(value in awkward_value()) {
        let known = crate::detect::KnownValues::new([(
            "vault:a/b#c".to_string(),
            Secret::from(value.clone()),
        )]);
        for context in every_context() {
            let Ok(splice) = context.encode(value.as_bytes()) else {
                continue;
            };
            // A block scalar's body is followed by its final line breaks (the chomping),
            // which stay in the file; a body shorter than the search's 8-byte word (a short
            // line and final breaks) is as unsearchable as a short value.
            let suffix = match &context {
                Context::Yaml(YamlStyle::Block(b)) if splice.before == 0 => {
                    if splice.bytes.len() < crate::detect::MIN_KNOWN_LEN {
                        continue;
                    }
                    format!("{}next: 1\n", "\n".repeat(b.trailing))
                }
                _ => " # end\n".to_string(),
            };
            let mut hay = b"key: ".to_vec();
            hay.extend_from_slice(&splice.bytes);
            hay.extend_from_slice(suffix.as_bytes());
            let hits = known.search(&hay, 0, 0);
            proptest::prop_assert!(
                !hits.is_empty(),
                "{context:?}: the form written is not found by the gate"
            );
        }
        // The forms only other tools write (never rehydration), which the stray search also
        // finds.
        for form in [
            crate::detect::encode::dotenv_double_escaped_body(&value),
            crate::detect::encode::shell_double_body(&value),
            crate::detect::encode::shell_single_body(&value),
        ] {
            proptest::prop_assert!(!known.search(form.as_bytes(), 0, 0).is_empty());
        }
    }
}
