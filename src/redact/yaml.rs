//! YAML: values by JSON Pointer over mappings and sequences, in every document of a stream.
//!
//! `saphyr-parser` gives each scalar its decoded text, style and span; this module turns the
//! span into the bytes a placeholder replaces: a plain scalar's text, the body between a
//! quoted scalar's quotes, or a block scalar's lines from the first content character to the
//! end of the last non-blank line (its header, indentation and final line breaks stay).
//!
//! Encoding keeps the original style when the value fits it, else writes a double-quoted
//! scalar, which can hold any text. What a block needs (indentation, how many final line
//! breaks the value had, where the header is) is recorded in [`BlockStyle`]; a plain scalar
//! records whether it read as a number, boolean or null, so that a rotated value keeps the
//! type the application saw. The span's character index is not trusted (it drifts over
//! comments); line and column are.

use std::collections::HashMap;
use std::sync::LazyLock;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use serde::{Deserialize, Serialize};

use super::{Context, FormatError, Redactor, Site, Splice, Unfit, utf8};
use crate::json_span::pointer_tokens;
use crate::secret::Secret;

/// The YAML redactor.
pub(crate) struct Yaml;

/// The style of a YAML scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case")]
pub enum YamlStyle {
    /// A plain (unquoted) scalar.
    Plain {
        /// Inside a flow collection (`[...]`, `{...}`), where `,[]{}` end a scalar.
        flow: bool,
        /// It read as null, a boolean, a number or a date rather than a string.
        typed: bool,
    },
    /// `'single-quoted'`.
    Single,
    /// `"double-quoted"`.
    Double,
    /// A literal `|` or folded `>` block scalar.
    Block(BlockStyle),
}

/// What rehydration needs to write a block scalar's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockStyle {
    /// `|` (true) or `>` (false).
    pub literal: bool,
    /// Spaces before each content line.
    pub indent: usize,
    /// Line breaks at the end of the value (its chomping: 0 for `-`, 1 for clip, more for `+`).
    pub trailing: usize,
    /// The header has an indentation indicator, so the first line may start with a space.
    pub explicit: bool,
    /// Bytes from the `|`/`>` indicator to the body, when a switch to a quoted scalar must
    /// replace the header too; `None` when the header was not found.
    pub header: Option<usize>,
}

impl Redactor for Yaml {
    fn format(&self) -> super::Format {
        super::Format::Yaml
    }

    fn locate(&self, text: &str, locators: &[&str]) -> Result<Vec<Vec<Site>>, FormatError> {
        let mut wanted: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
        for (i, pointer) in locators.iter().enumerate() {
            let tokens = pointer_tokens(pointer).ok_or_else(|| FormatError::BadLocator {
                locator: i,
                reason: "a JSON Pointer is empty or starts with `/`".into(),
            })?;
            wanted.entry(tokens).or_default().push(i);
        }
        let mut out: Vec<Vec<Site>> = locators.iter().map(|_| Vec::new()).collect();
        leaves(
            text,
            |path| wanted.contains_key(path),
            |path, leaf| {
                let hits = &wanted[path];
                match leaf {
                    Leaf::Alias => Err(FormatError::NotAString {
                        locator: hits[0],
                        found: "an alias",
                    }),
                    Leaf::Scalar(site) => {
                        for i in hits {
                            out[*i].push(Site {
                                range: site.range.clone(),
                                value: Secret::from_slice(site.value.expose()),
                                context: site.context.clone(),
                            });
                        }
                        Ok(())
                    }
                }
            },
        )?;
        Ok(out)
    }

    fn keys(&self, text: &str) -> Result<Vec<String>, FormatError> {
        let mut out = Vec::new();
        leaves(
            text,
            |path| !path.iter().any(|t| t == COMPLEX_KEY),
            |path, leaf| {
                if let Leaf::Scalar(_) = leaf {
                    let pointer = crate::json_span::pointer(path);
                    if !out.contains(&pointer) {
                        out.push(pointer);
                    }
                }
                Ok(())
            },
        )?;
        Ok(out)
    }
}

/// What sits at a path in value position.
enum Leaf {
    /// An alias: no string a placeholder could replace.
    Alias,
    /// A scalar other than null.
    Scalar(Site),
}

/// Walks every document of `text` and calls `visit` with each value-position scalar or alias
/// whose path `want` accepts, in file order.
fn leaves(
    text: &str,
    want: impl Fn(&[String]) -> bool,
    mut visit: impl FnMut(&[String], Leaf) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let lines = LineIndex::new(text);
    let mut walk = Walk::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            FormatError::Parse {
                line: m.line(),
                column: m.col() + 1,
                reason: super::scrub(e.info()),
            }
        })?;
        let start = lines.byte(text, span.start);
        match event {
            Event::DocumentStart(_) => walk = Walk::default(),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let flow = matches!(text.as_bytes().get(start), Some(b'[' | b'{'));
                let map = matches!(event, Event::MappingStart(..));
                walk.open(map, flow);
            }
            Event::MappingEnd | Event::SequenceEnd => walk.close(),
            Event::Alias(_) => {
                if let Some(path) = walk.value_path().filter(|p| want(p)) {
                    visit(&path, Leaf::Alias)?;
                }
            }
            Event::Scalar(value, style, ..) => {
                let flow = walk.in_flow();
                let Some(path) = walk.scalar(&value).filter(|p| want(p)) else {
                    continue;
                };
                let end = lines.byte(text, span.end);
                if let Some(site) = site(text, &lines, &value, style, start..end, flow) {
                    visit(&path, Leaf::Scalar(site))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Builds the site of a scalar whose span is `span` (in bytes); `None` for a null.
fn site(
    text: &str,
    lines: &LineIndex,
    value: &str,
    style: ScalarStyle,
    span: std::ops::Range<usize>,
    flow: bool,
) -> Option<Site> {
    let (range, style) = match style {
        ScalarStyle::Plain => {
            if matches!(value, "" | "~" | "null" | "Null" | "NULL") {
                return None;
            }
            let typed = looks_typed(value);
            (
                skip_properties(text, span),
                YamlStyle::Plain { flow, typed },
            )
        }
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            let quote = if style == ScalarStyle::SingleQuoted {
                b'\''
            } else {
                b'"'
            };
            let bytes = text.as_bytes();
            // The span may start at an anchor or tag, and its end runs past a trailing
            // comment: the body is found from the opening quote by the style's own rules.
            let open = span.start + bytes[span.start..].iter().position(|b| *b == quote)?;
            let close = closing_quote(bytes, open + 1, quote)?;
            let style = if quote == b'"' {
                YamlStyle::Double
            } else {
                YamlStyle::Single
            };
            (open + 1..close, style)
        }
        ScalarStyle::Literal | ScalarStyle::Folded => {
            let (range, block) = block_site(text, lines, value, style, span)?;
            (range, YamlStyle::Block(block))
        }
    };
    Some(Site {
        range,
        value: Secret::from_slice(value.as_bytes()),
        context: Context::Yaml(style),
    })
}

/// A plain scalar's span without its anchor (`&a`) and tag (`!t`), which stay in the file.
fn skip_properties(text: &str, span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let mut start = span.start;
    while start < span.end && text[start..].starts_with(['&', '!']) {
        let token = text[start..span.end]
            .find([' ', '\t', '\n'])
            .unwrap_or(span.end - start);
        start += token;
        start += text[start..span.end].len() - text[start..span.end].trim_start().len();
    }
    start..span.end
}

/// The closing quote of a quoted scalar whose body starts at `i`: in single quotes `''` is a
/// quote, in double quotes a backslash escapes the next character.
fn closing_quote(b: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
            c if c == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The body and style of a block scalar. The body runs from the first content character to
/// the end of the last non-blank line, so the final line breaks (the chomping) stay in place.
fn block_site(
    text: &str,
    lines: &LineIndex,
    value: &str,
    style: ScalarStyle,
    span: std::ops::Range<usize>,
) -> Option<(std::ops::Range<usize>, BlockStyle)> {
    if value.trim_end_matches('\n').is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    let line_end = |p: usize| text[p..].find('\n').map_or(text.len(), |n| p + n);
    let blank = |p: usize| {
        text[p..line_end(p)]
            .bytes()
            .all(|b| b == b' ' || b == b'\r')
    };
    // The span starts at the body's indentation; leading empty lines are skipped, and the
    // body then starts after the first content line's indentation.
    let mut start = span.start;
    let mut moved = false;
    while blank(start) && line_end(start) < span.end {
        start = line_end(start) + 1;
        moved = true;
    }
    if moved {
        start += bytes[start..].iter().take_while(|b| **b == b' ').count();
    }
    let first_line = lines.line_of(start);
    let indent = start - lines.starts[first_line];
    // The body ends with the last line that is not blank: a line of no more spaces than the
    // indentation is an empty line, one with more is content (YAML 1.2, 8.1.1.2).
    let mut end = span.end.min(bytes.len());
    loop {
        let line_start = text[..end].rfind('\n').map_or(0, |p| p + 1).max(start);
        let line = text[line_start..end].trim_end_matches('\r');
        let blank = line.bytes().all(|b| b == b' ') && line.len() <= indent;
        if line_start <= start || !blank {
            end = line_start + line.len();
            break;
        }
        end = line_start - 1;
    }
    let header = header_len(text, start);
    let explicit = header.is_some_and(|h| {
        text[start - h..start]
            .chars()
            .skip(1)
            .take_while(|c| matches!(c, '-' | '+' | '0'..='9'))
            .any(|c| c.is_ascii_digit())
    });
    let trailing = value.len() - value.trim_end_matches('\n').len();
    let block = BlockStyle {
        literal: style == ScalarStyle::Literal,
        indent,
        trailing,
        explicit,
        header,
    };
    Some((start..end, block))
}

/// Bytes from a block scalar's `|`/`>` indicator to its body start `start`.
fn header_len(text: &str, start: usize) -> Option<usize> {
    let mut line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
    while line_start > 0 {
        let prev_end = line_start - 1;
        let prev_start = text[..prev_end].rfind('\n').map_or(0, |p| p + 1);
        let line = &text[prev_start..prev_end];
        line_start = prev_start;
        if line.trim().is_empty() {
            continue;
        }
        for (i, c) in line.char_indices().rev() {
            if c != '|' && c != '>' {
                continue;
            }
            let rest = line[i + 1..]
                .trim_start_matches(['-', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
            let rest = rest.trim_start_matches([' ', '\t']);
            if rest.is_empty() || rest.starts_with('#') || rest == "\r" {
                return Some(start - (prev_start + i));
            }
        }
        return None;
    }
    None
}

/// Where the walk is inside the document's collections.
#[derive(Default)]
struct Walk {
    frames: Vec<Frame>,
    /// Depth inside a collection used as a mapping key; such keys name nothing.
    skip: usize,
}

struct Frame {
    /// The token that leads to this collection from its parent (`None` at the root).
    token: Option<String>,
    map: bool,
    flow: bool,
    /// In a mapping: the key whose value comes next.
    key: Option<String>,
    /// In a sequence: the index of the next item.
    next: usize,
}

/// A key that no pointer can name: a collection used as a mapping key.
const COMPLEX_KEY: &str = "\u{0}complex";

enum Position {
    Key,
    Value(Option<String>),
}

impl Walk {
    fn position(&mut self) -> Position {
        match self.frames.last_mut() {
            None => Position::Value(None),
            Some(f) if f.map => match f.key.take() {
                None => Position::Key,
                Some(k) => Position::Value(Some(k)),
            },
            Some(f) => {
                f.next += 1;
                Position::Value(Some((f.next - 1).to_string()))
            }
        }
    }

    fn path_with(&self, token: Option<String>) -> Vec<String> {
        self.frames
            .iter()
            .filter_map(|f| f.token.clone())
            .chain(token)
            .collect()
    }

    fn in_flow(&self) -> bool {
        self.frames.last().is_some_and(|f| f.flow)
    }

    fn open(&mut self, map: bool, flow: bool) {
        if self.skip > 0 {
            self.skip += 1;
            return;
        }
        match self.position() {
            Position::Key => self.skip = 1,
            Position::Value(token) => self.frames.push(Frame {
                token,
                map,
                flow: flow || self.in_flow(),
                key: None,
                next: 0,
            }),
        }
    }

    fn close(&mut self) {
        if self.skip > 0 {
            self.skip -= 1;
            if self.skip == 0
                && let Some(f) = self.frames.last_mut()
            {
                f.key = Some(COMPLEX_KEY.to_string());
            }
            return;
        }
        self.frames.pop();
    }

    /// The path of a scalar, or `None` when it is a key (which is then recorded).
    fn scalar(&mut self, value: &str) -> Option<Vec<String>> {
        if self.skip > 0 {
            return None;
        }
        match self.position() {
            Position::Key => {
                if let Some(f) = self.frames.last_mut() {
                    f.key = Some(value.to_string());
                }
                None
            }
            Position::Value(token) => Some(self.path_with(token)),
        }
    }

    /// The path of an alias in value position.
    fn value_path(&mut self) -> Option<Vec<String>> {
        self.scalar(COMPLEX_KEY)
    }
}

/// Byte offsets of line starts, to turn (line, column) markers into byte offsets.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    fn byte(&self, text: &str, m: Marker) -> usize {
        let Some(&line_start) = self.starts.get(m.line().saturating_sub(1)) else {
            return text.len();
        };
        text[line_start..]
            .char_indices()
            .nth(m.col())
            .map_or(text.len(), |(i, _)| line_start + i)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|s| *s <= offset) - 1
    }
}

static TYPED: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(concat!(
        r"^(?:~|null|Null|NULL|y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE",
        r"|on|On|ON|off|Off|OFF|[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+",
        r"|[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*)$"
    ))
    .expect("a valid regex")
});

/// Whether a plain scalar reads as something other than a string in YAML 1.2's core schema
/// or the YAML 1.1 schema many loaders still use (`yes`, dates).
fn looks_typed(v: &str) -> bool {
    TYPED.is_match(v)
}

/// Characters YAML cannot hold literally in a quoted scalar (outside `c-printable`, plus the
/// byte order mark and the Unicode line separators some loaders treat as breaks).
fn needs_escape(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{feff}'
        | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}')
}

/// The body of a double-quoted scalar: any text fits.
pub(crate) fn double_body(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The body of a single-quoted scalar, if the value fits one on a single line.
pub(crate) fn single_body(v: &str) -> Option<String> {
    if v.chars().any(|c| c == '\n' || c == '\r' || needs_escape(c)) {
        return None;
    }
    Some(v.replace('\'', "''"))
}

fn fits_plain(v: &str, flow: bool) -> bool {
    const INDICATORS: &[char] = &[
        ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
    ];
    const FLOW: &[char] = &[',', '[', ']', '{', '}'];
    let Some(first) = v.chars().next() else {
        return false;
    };
    let second = v.chars().nth(1);
    let lead_ok = if matches!(first, '-' | '?' | ':') {
        // `- `, `-\t` (and `? `, `: `) start a collection entry, not a scalar.
        second.is_some_and(|c| c != ' ' && c != '\t' && !(flow && FLOW.contains(&c)))
    } else {
        !INDICATORS.contains(&first)
    };
    let breaks_plain = v.starts_with([' ', '\t'])
        || v.ends_with([' ', '\t', ':'])
        || [": ", ":\t", " #", "\t#"].iter().any(|p| v.contains(p))
        || v.chars().any(|c| c == '\n' || c == '\r' || needs_escape(c))
        || (flow && v.contains(FLOW))
        || (flow && word_indicator_at_end(v));
    lead_ok && !breaks_plain
}

/// Whether a word after a space starts with `-` or `?` and ends there: in a flow collection
/// the next byte is `,`, `]` or `}`, which the parser reads as an indicator (`[a, x -, b]` is
/// an error: found by `redact_roundtrip`).
fn word_indicator_at_end(v: &str) -> bool {
    let b = v.as_bytes();
    (1..b.len()).any(|i| {
        matches!(b[i - 1], b' ' | b'\t') && matches!(b[i], b'-' | b'?') && i + 1 == b.len()
    })
}

/// The body of a block scalar holding `v`, if `v` fits the block as it was.
fn block_body(b: &BlockStyle, v: &str) -> Option<String> {
    let body = v.trim_end_matches('\n');
    let first = body.split('\n').next()?;
    if v.len() - body.len() != b.trailing
        || first.is_empty()
        || (!b.explicit && first.starts_with([' ', '\t']))
        || body.chars().any(|c| c == '\r' || needs_escape(c))
    {
        return None;
    }
    let pad = " ".repeat(b.indent);
    let spaced = |l: &str| l.starts_with([' ', '\t']);
    let mut out = String::with_capacity(body.len() + 16);
    out.push_str(first);
    let mut prev = first;
    let mut breaks = 0;
    for line in body.split('\n').skip(1) {
        breaks += 1;
        if line.is_empty() {
            continue;
        }
        // A folded block turns one break between two unindented lines into a space, so each
        // break the value holds there is written as an empty line.
        let folds = !b.literal && !spaced(prev) && !spaced(line);
        let written = breaks + usize::from(folds);
        out.push_str(&"\n".repeat(written));
        out.push_str(&pad);
        out.push_str(line);
        prev = line;
        breaks = 0;
    }
    Some(out)
}

pub(crate) fn encode(style: &YamlStyle, value: &[u8]) -> Result<Splice, Unfit> {
    let v = utf8(value)?;
    let quoted = || format!("\"{}\"", double_body(v)).into_bytes();
    Ok(match style {
        YamlStyle::Plain { flow, typed } => {
            if fits_plain(v, *flow) && looks_typed(v) == *typed {
                Splice::inside(v.as_bytes().to_vec())
            } else {
                Splice::inside(quoted())
            }
        }
        YamlStyle::Single => match single_body(v) {
            Some(body) => Splice::inside(body.into_bytes()),
            None => Splice::widened(1, 1, quoted()),
        },
        YamlStyle::Double => Splice::inside(double_body(v).into_bytes()),
        YamlStyle::Block(b) => match (block_body(b, v), b.header) {
            (Some(body), _) => Splice::inside(body.into_bytes()),
            (None, Some(header)) => Splice::widened(header, 0, quoted()),
            (None, None) => return Err(Unfit("the value does not fit its YAML block scalar")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(doc: &str, pointer: &str) -> Site {
        Yaml.locate(doc, &[pointer])
            .unwrap()
            .pop()
            .unwrap()
            .remove(0)
    }

    #[test]
    fn finds_bodies_in_every_style() {
        let doc = "a: &p !t plain v\nb: 'it''s'\nc: &x \"d\\\"q\"\nd: |\n  l1\n  l2\n\ne: [x, y]\nf: *p\n";
        for (pointer, body, value) in [
            ("/a", "plain v", "plain v"),
            ("/b", "it''s", "it's"),
            ("/c", "d\\\"q", "d\"q"),
            ("/d", "l1\n  l2", "l1\nl2\n"),
            ("/e/1", "y", "y"),
        ] {
            let s = one(doc, pointer);
            assert_eq!(&doc[s.range.clone()], body, "{pointer}");
            assert_eq!(s.value.expose(), value.as_bytes(), "{pointer}");
        }
    }

    #[test]
    fn plain_switches_to_quotes_when_the_value_needs_them() {
        let plain = YamlStyle::Plain {
            flow: false,
            typed: false,
        };
        let enc = |v: &str| encode(&plain, v.as_bytes()).unwrap().bytes.to_vec();
        assert_eq!(enc("abc"), b"abc");
        assert_eq!(enc("a: b"), b"\"a: b\"");
        assert_eq!(enc("123"), b"\"123\"");
        assert_eq!(enc(" x"), b"\" x\"");
        assert_eq!(enc("a\tb"), b"a\tb");
        assert_eq!(enc("a\t#b"), b"\"a\\t#b\"");
        // Regression: in a flow collection `x -` before `,` does not parse as a plain scalar.
        let flow = YamlStyle::Plain {
            flow: true,
            typed: false,
        };
        let enc_flow = |v: &str| encode(&flow, v.as_bytes()).unwrap().bytes.to_vec();
        assert_eq!(enc_flow("\\ -"), b"\"\\\\ -\"");
        assert_eq!(enc_flow("x - y"), b"x - y");
        assert_eq!(enc("\\ -"), b"\\ -");
        // Regression: `-\t` starts a sequence entry.
        assert_eq!(enc("-\tx"), b"\"-\\tx\"");
        assert_eq!(enc("-x"), b"-x");
    }

    #[test]
    fn folded_blocks_write_each_break_as_an_empty_line() {
        let b = BlockStyle {
            literal: false,
            indent: 2,
            trailing: 1,
            explicit: false,
            header: Some(3),
        };
        assert_eq!(block_body(&b, "a\nb\n").unwrap(), "a\n\n  b");
        assert_eq!(block_body(&b, "a\n  b\n").unwrap(), "a\n    b");
        assert_eq!(block_body(&b, "a\nb"), None);
    }
}
