//! Arbitrary input never panics a redactor, and what one redacts without a warning
//! rehydrates byte for byte: the fuzz targets' property (`fuzz/`), run by `cargo test` on
//! every machine. Inputs are raw bytes, and text drawn from each format's own syntax so that
//! the parsers get past their first byte.

use agentbak::manifest::Locator;
use agentbak::redact::round_trip_property;
use proptest::prelude::*;

fn syntax(pieces: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(pieces), 0..40).prop_map(|v| v.concat().into_bytes())
}

fn input(pieces: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..200), syntax(pieces)]
}

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"a\"",
    "\"b\"",
    "\"token-12345\"",
    "\"x\\\"y\"",
    "\"\\u00e9\"",
    "0",
    "1.5e3",
    "null",
    "true",
    " ",
    "\n",
    "\"\\ud83d\"",
];
const YAML: &[&str] = &[
    "a:",
    "b:",
    " ",
    "\n",
    "- ",
    "  ",
    "'q''s'",
    "\"d\\\"q\"",
    "|",
    ">",
    "|-",
    ">+",
    "|2",
    "# c",
    "&x ",
    "*x",
    "!!str ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "token-12345",
    "v",
    ": ",
    "---\n",
    "\t",
    "?",
];
const TOML: &[&str] = &[
    "a",
    "b",
    " = ",
    "\n",
    "[a]",
    "[[a]]",
    "\"s\"",
    "'l'",
    "\"\"\"",
    "'''",
    "\\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "0",
    "b = ",
    "token-12345",
    "# c",
    ".",
    "\r\n",
];
const DOTENV: &[&str] = &[
    "KEY",
    "=",
    "export ",
    " ",
    "\n",
    "'",
    "\"",
    "\\",
    "#",
    "token-12345",
    "v",
    "\\n",
    "\t",
    "\r",
];
const INI: &[&str] = &[
    "[s]",
    "[t]",
    "key",
    " = ",
    ":",
    "\n",
    "\"",
    "v",
    ";c",
    "#c",
    "  ",
    "token-12345",
    "\r",
];
const TEXT: &[&str] = &[
    "token=",
    "token-12345",
    ";",
    " ",
    "\n",
    "\0",
    "\u{ff}",
    "+agentbak:env:KNOWN+",
    "\"",
    "\\",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_never_breaks(doc in input(JSON)) {
        let r = round_trip_property("c.json", &doc, Locator::Json("/a/0/b".into()));
        prop_assert!(r.is_ok(), "{:?}", r);
        let r = round_trip_property("c.json", &doc, Locator::Json("/a".into()));
        prop_assert!(r.is_ok(), "{:?}", r);
    }

    #[test]
    fn yaml_never_breaks(doc in input(YAML)) {
        for pointer in ["/a", "/a/0", "/b"] {
            let r = round_trip_property("c.yaml", &doc, Locator::Yaml(pointer.into()));
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    #[test]
    fn toml_never_breaks(doc in input(TOML)) {
        for pointer in ["/a", "/a/b", "/a/0/b", "/b"] {
            let r = round_trip_property("c.toml", &doc, Locator::Toml(pointer.into()));
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    #[test]
    fn dotenv_never_breaks(doc in input(DOTENV)) {
        let r = round_trip_property(".env", &doc, Locator::Env("KEY".into()));
        prop_assert!(r.is_ok(), "{:?}", r);
    }

    #[test]
    fn ini_never_breaks(doc in input(INI)) {
        for name in ["s.key", "key"] {
            let r = round_trip_property("a.ini", &doc, Locator::Ini(name.into()));
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    #[test]
    fn text_never_breaks(doc in input(TEXT)) {
        let r = round_trip_property("run.log", &doc, Locator::Regex(r"(?-u)token=([^\s;]+)".into()));
        prop_assert!(r.is_ok(), "{:?}", r);
    }
}
