//! Stray known values: occurrences of a known value outside its declared locations (SPEC
//! "Snapshot" point 2).
//!
//! Each value is searched for raw and in each form a supported format escapes it to (JSON,
//! YAML double- and single-quoted, TOML basic, dotenv double-quoted), all at once with one
//! Aho-Corasick automaton, leftmost-longest. Where two forms are the same bytes, the form of
//! the file's own format wins, so that a rotated value is escaped as that file needs; the
//! context recorded is the form found. Text that already is a placeholder is never searched.
//!
//! A snapshot knows hundreds of values and redacts thousands of files: the forms and their
//! automaton are built once, in a [`StrayMatcher`], and each file is searched with it. A
//! file's own declared values, when the matcher does not know them already (a value read
//! again after a rotation), are searched with a small automaton of their own, and the two
//! searches are merged into exactly the matches one automaton over both would give.
//!
//! Invariants: the forms are as secret as the values and live in zeroized buffers; the
//! matcher's `Debug` shows counts only. Where the same bytes are a form of two values, the
//! value given first names them, whatever the file's format.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, Input, Match, MatchKind};
use zeroize::Zeroizing;

use super::{Context, DotenvStyle, Format, JsonStyle, TomlStyle, YamlStyle};
use super::{dotenv, json, toml, yaml};
use crate::handle::Handle;
use crate::secret::Secret;

/// One occurrence of a known value.
#[derive(Debug)]
pub(crate) struct Hit {
    pub(crate) range: Range<usize>,
    /// Index of the value among the matcher's values followed by the file's own
    /// (see [`StrayMatcher::handle`]).
    pub(crate) known: usize,
    pub(crate) context: Context,
}

/// A form a value takes in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Raw,
    Json,
    YamlDouble,
    TomlBasic,
    DotenvDouble,
    YamlSingle,
}

impl Form {
    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn context(self) -> Context {
        match self {
            Form::Raw => Context::Raw,
            Form::Json => Context::Json(JsonStyle::default()),
            Form::YamlDouble => Context::Yaml(YamlStyle::Double),
            Form::TomlBasic => Context::Toml(TomlStyle::Basic),
            Form::DotenvDouble => Context::Dotenv(DotenvStyle::Double),
            Form::YamlSingle => Context::Yaml(YamlStyle::Single),
        }
    }

    /// The forms in the order a file of `format` prefers them: its own first, then raw, the
    /// other escapes, and YAML single-quoted last.
    fn preference(format: Option<Format>) -> [Form; 6] {
        use Form::*;
        match format {
            Some(Format::Json) => [Json, Raw, YamlDouble, TomlBasic, DotenvDouble, YamlSingle],
            Some(Format::Yaml) => [YamlDouble, Raw, Json, TomlBasic, DotenvDouble, YamlSingle],
            Some(Format::Toml) => [TomlBasic, Raw, Json, YamlDouble, DotenvDouble, YamlSingle],
            Some(Format::Dotenv) => [DotenvDouble, Raw, Json, YamlDouble, TomlBasic, YamlSingle],
            Some(Format::Ini) | None => {
                [Raw, Json, YamlDouble, TomlBasic, DotenvDouble, YamlSingle]
            }
        }
    }

    /// Of the forms in `set` (a mask of bits), the one a file of `format` prefers.
    fn preferred(set: u8, format: Option<Format>) -> Form {
        Form::preference(format)
            .into_iter()
            .find(|f| set & f.bit() != 0)
            .expect("a pattern comes from at least one form")
    }
}

/// Every form of one value (several may be the same bytes), as the format modules write it
/// through `crate::detect::encode`, the definition the leak gate searches with. A dotenv
/// value is found as rehydration writes it and with `\n` escapes, as other tools write it.
fn forms(value: &[u8]) -> Vec<(Form, Zeroizing<Vec<u8>>)> {
    let raw = (Form::Raw, Zeroizing::new(value.to_vec()));
    let Ok(text) = std::str::from_utf8(value) else {
        return vec![raw];
    };
    let z = |s: String| Zeroizing::new(s.into_bytes());
    let escaped_dotenv = crate::detect::encode::dotenv_double_escaped_body(text);
    let mut out = vec![
        raw,
        (
            Form::Json,
            Zeroizing::new(json::escape(&JsonStyle::default(), text)),
        ),
        (Form::YamlDouble, z(yaml::double_body(text))),
        (Form::TomlBasic, z(toml::basic_body(text))),
        (Form::DotenvDouble, z(dotenv::double_body(text))),
        (Form::DotenvDouble, z(escaped_dotenv)),
    ];
    out.extend(yaml::single_body(text).map(|s| (Form::YamlSingle, z(s))));
    out
}

/// Distinct byte strings to search for, each with the value that names it and the forms of
/// that value it is.
#[derive(Default)]
struct Patterns {
    bytes: Vec<Zeroizing<Vec<u8>>>,
    /// Per pattern: the value's index, and a mask of [`Form`] bits.
    owners: Vec<(usize, u8)>,
    /// Pattern indexes by an in-process hash of their bytes, to find duplicates in linear time.
    by_hash: HashMap<u64, Vec<usize>>,
    seed: RandomState,
}

impl Patterns {
    fn lookup(&self, bytes: &[u8]) -> Option<usize> {
        let same = self.by_hash.get(&self.seed.hash_one(bytes))?;
        same.iter().copied().find(|&i| *self.bytes[i] == bytes)
    }

    /// Adds the forms of value number `index`, except bytes that an earlier value (here or
    /// in `before`) already names.
    fn add(&mut self, index: usize, value: &[u8], before: Option<&Patterns>) {
        if value.len() < MIN_STRAY_LEN {
            return;
        }
        for (form, bytes) in forms(value) {
            match self.lookup(&bytes) {
                Some(i) if self.owners[i].0 == index => self.owners[i].1 |= form.bit(),
                Some(_) => {}
                None if before.is_some_and(|b| b.lookup(&bytes).is_some()) => {}
                None => {
                    let hash = self.seed.hash_one(bytes.as_slice());
                    self.by_hash.entry(hash).or_default().push(self.bytes.len());
                    self.bytes.push(bytes);
                    self.owners.push((index, form.bit()));
                }
            }
        }
    }

    fn automaton(&self) -> Option<AhoCorasick> {
        if self.bytes.is_empty() {
            return None;
        }
        let built = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(self.bytes.iter().map(|p| p.as_slice()))
            .expect("literal patterns always build");
        Some(built)
    }
}

/// The known values of a run and the automaton that finds them in every form: built once
/// (per snapshot) and used for every file, through [`super::redact_file_with`].
pub struct StrayMatcher {
    handles: Vec<Handle>,
    patterns: Patterns,
    automaton: Option<AhoCorasick>,
}

impl StrayMatcher {
    /// The matcher of `known` values, each named by its handle. Values shorter than
    /// [`MIN_STRAY_LEN`] are not searched; where two values share a form, the first names it.
    pub fn new(known: &[(Handle, Secret)]) -> StrayMatcher {
        let mut patterns = Patterns::default();
        for (i, (_, value)) in known.iter().enumerate() {
            patterns.add(i, value.expose(), None);
        }
        StrayMatcher {
            handles: known.iter().map(|(h, _)| h.clone()).collect(),
            automaton: patterns.automaton(),
            patterns,
        }
    }

    /// The length of the longest form searched for.
    pub fn max_pattern_len(&self) -> usize {
        self.patterns
            .bytes
            .iter()
            .map(|p| p.len())
            .max()
            .unwrap_or(0)
    }

    /// The number of values it was built from.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether it was built from no value.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The handle of value `index` of a [`Hit`]: the matcher's, then the file's own `extra`.
    pub(crate) fn handle<'h>(&'h self, index: usize, extra: &'h [(Handle, Secret)]) -> &'h Handle {
        match index.checked_sub(self.handles.len()) {
            None => &self.handles[index],
            Some(i) => &extra[i].0,
        }
    }

    /// Every occurrence, in any form, of a known value or of one of the file's own `extra`
    /// values (after the known ones: a form both share is named by the known value) in
    /// `input`, leftmost-longest, except those overlapping the sorted, disjoint `skip` ranges.
    /// The same hits as one automaton over the known and extra values together.
    pub(crate) fn find(
        &self,
        input: &[u8],
        format: Option<Format>,
        skip: &[Range<usize>],
        extra: &[(Handle, Secret)],
    ) -> Vec<Hit> {
        let mut own = Patterns::default();
        for (i, (_, value)) in extra.iter().enumerate() {
            own.add(self.handles.len() + i, value.expose(), Some(&self.patterns));
        }
        let own_automaton = own.automaton();
        let mut hits = Vec::new();
        let mut s = 0;
        let sources = [
            (self.automaton.as_ref(), &self.patterns),
            (own_automaton.as_ref(), &own),
        ];
        for (m, patterns) in Merged::new(input, sources) {
            while s < skip.len() && skip[s].end <= m.start() {
                s += 1;
            }
            if skip.get(s).is_some_and(|r| r.start < m.end()) {
                continue;
            }
            let (known, set) = patterns.owners[m.pattern().as_usize()];
            hits.push(Hit {
                range: m.range(),
                known,
                context: Form::preferred(set, format).context(),
            });
        }
        hits
    }
}

impl std::fmt::Debug for StrayMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrayMatcher")
            .field("values", &self.handles.len())
            .field("patterns", &self.patterns.bytes.len())
            .finish()
    }
}

/// The leftmost-longest matches of two automata over disjoint pattern sets, as one automaton
/// over their union would report them: from each position, the match that starts first
/// (the longer at the same start) wins, and the search goes on after its end. Each
/// automaton's next match is kept while it still starts at or after that end.
struct Merged<'a> {
    input: &'a [u8],
    at: usize,
    sources: [(Option<&'a AhoCorasick>, &'a Patterns); 2],
    next: [Option<Match>; 2],
}

impl<'a> Merged<'a> {
    fn new(input: &'a [u8], sources: [(Option<&'a AhoCorasick>, &'a Patterns); 2]) -> Self {
        let mut merged = Merged {
            input,
            at: 0,
            sources,
            next: [None, None],
        };
        for i in 0..2 {
            merged.next[i] = merged.search(i);
        }
        merged
    }

    fn search(&self, i: usize) -> Option<Match> {
        let automaton = self.sources[i].0?;
        automaton.find(Input::new(self.input).range(self.at..))
    }
}

impl<'a> Iterator for Merged<'a> {
    type Item = (Match, &'a Patterns);

    fn next(&mut self) -> Option<Self::Item> {
        let first = match (self.next[0], self.next[1]) {
            (None, None) => return None,
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some(a), Some(b)) => {
                // Equal starts and lengths cannot happen: no bytes are in both sets.
                usize::from(
                    (b.start(), std::cmp::Reverse(b.end()))
                        < (a.start(), std::cmp::Reverse(a.end())),
                )
            }
        };
        let m = self.next[first].expect("chosen among the present ones");
        // Patterns are never empty, so the search always moves on.
        self.at = m.end();
        for i in 0..2 {
            if self.next[i].is_some_and(|n| n.start() < self.at) {
                self.next[i] = self.search(i);
            }
        }
        Some((m, self.sources[first].1))
    }
}

/// Values shorter than this are not searched outside their declared locations: a short value
/// matches inside unrelated words and syntax, and editing those would corrupt files. The leak
/// gate does not search for them either (`detect::MIN_KNOWN_LEN`): docs/security.md "What is
/// not protected" is the one description of short values.
pub const MIN_STRAY_LEN: usize = 8;

static PLACEHOLDER: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r"\+agentbak:[A-Za-z0-9._/:@{}-]+\+").expect("a valid regex")
});

/// Byte ranges of text that looks like a placeholder: never searched for values.
pub(crate) fn placeholder_ranges(input: &[u8]) -> Vec<Range<usize>> {
    PLACEHOLDER.find_iter(input).map(|m| m.range()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn known(v: &str) -> Vec<(Handle, Secret)> {
        vec![(
            Handle::parse("env:TOKEN").unwrap(),
            Secret::from(v.to_string()),
        )]
    }

    fn find(
        input: &[u8],
        known: &[(Handle, Secret)],
        format: Option<Format>,
        skip: &[Range<usize>],
    ) -> Vec<Hit> {
        StrayMatcher::new(known).find(input, format, skip, &[])
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

    fn pair(handle: &str, value: &str) -> (Handle, Secret) {
        (
            Handle::parse(handle).unwrap(),
            Secret::from(value.to_string()),
        )
    }

    /// Regression: merging each automaton's own leftmost-longest matches is not enough. Here
    /// the known `BCD` hides the known `DX` from the prebuilt automaton, while the file's own
    /// `ABC`, found first, makes `DX` the next match of the union.
    #[test]
    fn a_file_value_that_overlaps_known_ones_gives_the_matches_of_one_automaton() {
        let [a, b, c, d, x] = ["AAAAAAAA", "BBBBBBBB", "CCCCCCCC", "DDDDDDDD", "XXXXXXXX"];
        let known = vec![
            pair("env:BCD", &format!("{b}{c}{d}")),
            pair("env:DX", &format!("{d}{x}")),
        ];
        let own = vec![pair("env:ABC", &format!("{a}{b}{c}"))];
        let input = format!("{a}{b}{c}{d}{x}");
        let hits = StrayMatcher::new(&known).find(input.as_bytes(), None, &[], &own);
        let got: Vec<(Range<usize>, usize)> =
            hits.iter().map(|h| (h.range.clone(), h.known)).collect();
        assert_eq!(got, [(0..24, 2), (24..40, 1)]);
        let matcher = StrayMatcher::new(&known);
        assert_eq!(matcher.handle(2, &own).to_string(), "env:ABC");
        assert_eq!(matcher.handle(1, &own).to_string(), "env:DX");
    }

    #[test]
    fn debug_shows_counts_not_values() {
        let matcher = StrayMatcher::new(&known("a-Secret-Value-1234"));
        let shown = format!("{matcher:?}");
        assert_eq!(shown, "StrayMatcher { values: 1, patterns: 1 }");
    }

    /// The forms of one value as they were computed before the matcher (the file format's
    /// own first, without duplicates): the reference's half.
    fn reference_forms(value: &[u8], format: Option<Format>) -> Vec<(Vec<u8>, Context)> {
        let raw = (value.to_vec(), Context::Raw);
        let Ok(text) = std::str::from_utf8(value) else {
            return vec![raw];
        };
        let json = (
            json::escape(&JsonStyle::default(), text),
            Context::Json(JsonStyle::default()),
        );
        let yaml_double = (
            yaml::double_body(text).into_bytes(),
            Context::Yaml(YamlStyle::Double),
        );
        let yaml_single =
            yaml::single_body(text).map(|s| (s.into_bytes(), Context::Yaml(YamlStyle::Single)));
        let toml_basic = (
            toml::basic_body(text).into_bytes(),
            Context::Toml(TomlStyle::Basic),
        );
        let dotenv_double = (
            dotenv::double_body(text).into_bytes(),
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
        let mut out: Vec<(Vec<u8>, Context)> = Vec::with_capacity(all.len());
        for (bytes, context) in all {
            if !out.iter().any(|(b, _)| *b == bytes) {
                out.push((bytes, context));
            }
        }
        out
    }

    /// The search as it was before the matcher (one automaton per file over the known values
    /// followed by the file's own), kept as the reference the matcher must equal.
    fn reference(
        input: &[u8],
        known: &[(Handle, Secret)],
        format: Option<Format>,
        skip: &[Range<usize>],
    ) -> Vec<(Range<usize>, usize, Context)> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut meta: Vec<(usize, Context)> = Vec::new();
        for (k, (_, value)) in known.iter().enumerate() {
            if value.len() < MIN_STRAY_LEN {
                continue;
            }
            for (bytes, context) in reference_forms(value.expose(), format) {
                if !patterns.contains(&bytes) {
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
            .build(&patterns)
            .unwrap();
        automaton
            .find_iter(input)
            .filter(|m| !skip.iter().any(|r| r.start < m.end() && m.start() < r.end))
            .map(|m| {
                let (k, context) = &meta[m.pattern().as_usize()];
                (m.range(), *k, context.clone())
            })
            .collect()
    }

    fn formats() -> impl Strategy<Value = Option<Format>> {
        prop_oneof![
            Just(None),
            Just(Some(Format::Json)),
            Just(Some(Format::Yaml)),
            Just(Some(Format::Toml)),
            Just(Some(Format::Dotenv)),
            Just(Some(Format::Ini)),
        ]
    }

    /// Pieces of values: plain ones, and pairs where one piece is another's JSON escape
    /// (`q"qq`, `q\"qq`) or YAML single-quoted escape (`r'rr`, `r''rr`), so that values
    /// overlap, contain each other, repeat, and share forms.
    const BLOCKS: [&str; 8] = [
        "aaaa", "bbbb", "cccc", "dddd", "q\"qq", "q\\\"qq", "r'rr", "r''rr",
    ];

    fn value_of(blocks: &[usize]) -> String {
        blocks.iter().map(|b| BLOCKS[*b]).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Values of 1 to 3 blocks (one block is too short to be searched); the input is
        /// blocks and whole forms of the values, so chains like `ABC` + `BCD` + `DX` occur.
        #[test]
        fn the_matcher_with_a_file_s_values_equals_one_automaton_over_all(
            values in prop::collection::vec(prop::collection::vec(0usize..8, 1..4), 1..8),
            own_count in 0usize..4,
            pieces in prop::collection::vec(
                prop_oneof![
                    (0usize..8).prop_map(|b| (None, b)),
                    (0usize..8, 0usize..6).prop_map(|(v, f)| (Some(v), f)),
                ],
                0..30,
            ),
            format in formats(),
            skip_at in prop::option::of((0usize..200, 1usize..20)),
        ) {
            let values: Vec<String> = values.iter().map(|v| value_of(v)).collect();
            let all: Vec<(Handle, Secret)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| pair(&format!("env:V{i}"), v))
                .collect();
            let split = all.len().saturating_sub(own_count);
            let (known, own) = all.split_at(split);
            let mut input = Vec::new();
            for (value, n) in &pieces {
                match value {
                    None => input.extend_from_slice(BLOCKS[*n].as_bytes()),
                    Some(v) => {
                        let mut shapes = forms(values[v % values.len()].as_bytes());
                        input.extend_from_slice(&shapes.swap_remove(n % shapes.len()).1);
                    }
                }
            }
            let skip: Vec<Range<usize>> = skip_at
                .map(|(s, l)| s.min(input.len())..(s + l).min(input.len()))
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect();
            let got: Vec<(Range<usize>, usize, Context)> = StrayMatcher::new(known)
                .find(&input, format, &skip, own)
                .into_iter()
                .map(|h| (h.range, h.known, h.context))
                .collect();
            prop_assert_eq!(got, reference(&input, &all, format, &skip));
        }
    }
}
