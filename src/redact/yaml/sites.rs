//! From a scalar's span to its [`Site`]: the bytes a placeholder replaces, and the style that
//! says how a value is written there.
//!
//! The bytes are a plain scalar's text (without its anchor and tag), the body between a
//! quoted scalar's quotes, or a block scalar's lines from the first content character to the
//! end of the last non-blank line (its header, indentation and final line breaks stay).
//! The parser's character index is not trusted (it drifts over comments); its line and column
//! are, through [`LineIndex`].

use std::ops::Range;

use saphyr_parser::{Marker, ScalarStyle};

use super::encode::looks_typed;
use super::{BlockStyle, YamlStyle};
use crate::redact::{Context, Site};
use crate::secret::Secret;

/// Builds the site of a scalar whose span is `span` (in bytes); `None` for a null.
pub(super) fn site(
    text: &str,
    lines: &LineIndex,
    value: &str,
    style: ScalarStyle,
    span: Range<usize>,
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
fn skip_properties(text: &str, span: Range<usize>) -> Range<usize> {
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
    span: Range<usize>,
) -> Option<(Range<usize>, BlockStyle)> {
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

/// Byte offsets of line starts, to turn (line, column) markers into byte offsets.
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    pub(super) fn byte(&self, text: &str, m: Marker) -> usize {
        let Some(&line_start) = self.starts.get(m.line().saturating_sub(1)) else {
            return text.len();
        };
        text[line_start..]
            .char_indices()
            .nth(m.col())
            .map_or(text.len(), |(i, _)| line_start + i)
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|s| *s <= offset) - 1
    }
}
