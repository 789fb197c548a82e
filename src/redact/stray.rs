//! Stray known values: occurrences of a known value outside its declared locations (SPEC
//! "Snapshot" point 2).
//!
//! Each value is searched for raw and in each form a supported format escapes it to (JSON,
//! YAML double- and single-quoted, TOML basic, dotenv double-quoted), all at once with one
//! Aho-Corasick automaton, leftmost-longest. Where two forms are the same bytes, the form of
//! the file's own format wins, so that a rotated value is escaped as that file needs; the
//! context recorded is the form found. Text that already is a placeholder is never searched.

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use zeroize::Zeroizing;

use super::{Context, DotenvStyle, Format, JsonStyle, TomlStyle, YamlStyle};
use super::{dotenv, json, toml, yaml};
use crate::handle::Handle;
use crate::secret::Secret;

/// One occurrence of a known value.
#[derive(Debug)]
pub(crate) struct Hit {
    pub(crate) range: Range<usize>,
    /// Index of the value in the `known` slice given to [`find`].
    pub(crate) known: usize,
    pub(crate) context: Context,
}

/// The forms of one value, the file format's own first, without duplicates.
fn forms(value: &[u8], format: Option<Format>) -> Vec<(Zeroizing<Vec<u8>>, Context)> {
    let raw = (Zeroizing::new(value.to_vec()), Context::Raw);
    let Ok(text) = std::str::from_utf8(value) else {
        return vec![raw];
    };
    let z = |s: String| Zeroizing::new(s.into_bytes());
    let json = (
        Zeroizing::new(json::escape(&JsonStyle::default(), text)),
        Context::Json(JsonStyle::default()),
    );
    let yaml_double = (z(yaml::double_body(text)), Context::Yaml(YamlStyle::Double));
    let yaml_single = yaml::single_body(text).map(|s| (z(s), Context::Yaml(YamlStyle::Single)));
    let toml_basic = (z(toml::basic_body(text)), Context::Toml(TomlStyle::Basic));
    let dotenv_double = (
        z(dotenv::double_body(text)),
        Context::Dotenv(DotenvStyle::Double),
    );
    let mut all = match format {
        Some(Format::Json) => vec![json, raw, yaml_double, toml_basic, dotenv_double],
        Some(Format::Yaml) => vec![yaml_double, raw, json, toml_basic, dotenv_double],
        Some(Format::Toml) => vec![toml_basic, raw, json, yaml_double, dotenv_double],
        Some(Format::Dotenv) => vec![dotenv_double, raw, json, yaml_double, toml_basic],
        Some(Format::Ini) | None => vec![raw, json, yaml_double, toml_basic, dotenv_double],
    };
    all.extend(yaml_single);
    let mut out: Vec<(Zeroizing<Vec<u8>>, Context)> = Vec::with_capacity(all.len());
    for (bytes, context) in all {
        if !out.iter().any(|(b, _)| *b == bytes) {
            out.push((bytes, context));
        }
    }
    out
}

/// Values shorter than this are not searched outside their declared locations: a short value
/// matches inside unrelated words and syntax, and editing those would corrupt files. The leak
/// gate still sees them, so a short value left elsewhere stops the snapshot rather than leaking.
pub const MIN_STRAY_LEN: usize = 8;

static PLACEHOLDER: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r"\+agentbak:[A-Za-z0-9._/:@{}-]+\+").expect("a valid regex")
});

/// Byte ranges of text that looks like a placeholder: never searched for values.
pub(crate) fn placeholder_ranges(input: &[u8]) -> Vec<Range<usize>> {
    PLACEHOLDER.find_iter(input).map(|m| m.range()).collect()
}

/// Every occurrence of a known value (in any of its forms) in `input` that overlaps none of
/// the sorted, disjoint `skip` ranges. Values shorter than [`MIN_STRAY_LEN`] are not searched.
pub(crate) fn find(
    input: &[u8],
    known: &[(Handle, Secret)],
    format: Option<Format>,
    skip: &[Range<usize>],
) -> Vec<Hit> {
    let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut meta: Vec<(usize, Context)> = Vec::new();
    // Pattern indexes by an in-process hash of their bytes, to drop duplicates in linear time.
    let seed = std::collections::hash_map::RandomState::new();
    let mut seen: std::collections::HashMap<u64, Vec<usize>> = std::collections::HashMap::new();
    for (k, (_, value)) in known.iter().enumerate() {
        if value.len() < MIN_STRAY_LEN {
            continue;
        }
        for (bytes, context) in forms(value.expose(), format) {
            // The same bytes known under two handles: the first handle names them.
            let same = seen.entry(seed.hash_one(bytes.as_slice())).or_default();
            if !same.iter().any(|i| patterns[*i] == bytes) {
                same.push(patterns.len());
                patterns.push(bytes);
                meta.push((k, context));
            }
        }
    }
    if patterns.is_empty() {
        return Vec::new();
    }
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns.iter().map(|p| p.as_slice()))
        .expect("literal patterns always build");
    let mut hits = Vec::new();
    let mut s = 0;
    for m in automaton.find_iter(input) {
        while s < skip.len() && skip[s].end <= m.start() {
            s += 1;
        }
        if skip.get(s).is_some_and(|r| r.start < m.end()) {
            continue;
        }
        let (k, context) = &meta[m.pattern().as_usize()];
        hits.push(Hit {
            range: m.range(),
            known: *k,
            context: context.clone(),
        });
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(v: &str) -> Vec<(Handle, Secret)> {
        vec![(
            Handle::parse("env:TOKEN").unwrap(),
            Secret::from(v.to_string()),
        )]
    }

    #[test]
    fn finds_raw_and_escaped_forms_outside_skipped_ranges() {
        let input = br#"abcd"efgh and "abcd\"efgh" and abcd"efgh"#;
        let hits = find(
            input,
            &known("abcd\"efgh"),
            Some(Format::Json),
            &[Range { start: 0, end: 9 }],
        );
        let got: Vec<(&[u8], &Context)> = hits
            .iter()
            .map(|h| (&input[h.range.clone()], &h.context))
            .collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, br#"abcd\"efgh"#);
        assert!(matches!(got[0].1, Context::Json(_)));
        assert_eq!(got[1].0, b"abcd\"efgh");
        assert_eq!(*got[1].1, Context::Raw);
    }

    #[test]
    fn the_file_format_names_a_form_that_is_also_raw() {
        let hits = find(b"x=tok12345", &known("tok12345"), Some(Format::Toml), &[]);
        assert_eq!(hits[0].context, Context::Toml(TomlStyle::Basic));
        assert!(find(b"anything", &known("thing"), None, &[]).is_empty());
    }
}
