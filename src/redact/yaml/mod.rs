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
//!
//! Three parts: `walk` follows the parser's events through mappings and sequences to the
//! pointer path of each scalar, `sites` turns a scalar's span into the bytes a placeholder
//! replaces and the style that says how to write a value there, and `encode` writes a value
//! back in that style (rehydration, and stray values in YAML quoting).

mod encode;
mod sites;
mod walk;

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};
use serde::{Deserialize, Serialize};

use super::{FormatError, Redactor, Site};
use crate::json_span::pointer_tokens;
use crate::secret::Secret;
use sites::{LineIndex, site};
use walk::{COMPLEX_KEY, Walk};

pub(crate) use encode::{double_body, encode, single_body};

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
}
