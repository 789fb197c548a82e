//! Writing a value into a YAML scalar of a given style (rehydration, and the quoted forms of
//! stray values).
//!
//! A value keeps its scalar's style when it fits: a plain scalar only if the value reads as
//! plain text of the same type (a rotated `8080` stays a number, `yes` stays a boolean, a
//! string that would read as one is quoted); a block scalar only if its final line breaks
//! and first line fit the block's header. Otherwise it becomes a double-quoted scalar, which
//! holds any text, replacing a block's header when there is one.

use std::sync::LazyLock;

use super::{BlockStyle, YamlStyle};
use crate::detect::encode::{self, yaml_needs_escape};
use crate::redact::{Splice, Unfit, utf8};

static TYPED: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(concat!(
        r"^(?:~|null|Null|NULL|y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE",
        r"|on|On|ON|off|Off|OFF|[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+",
        r"|[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*",
        // YAML 1.1 (PyYAML): sexagesimal numbers, and `=`, the "value" key it cannot load.
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|=)$"
    ))
    .expect("a valid regex")
});

/// Whether a plain scalar reads as something other than a string in YAML 1.2's core schema
/// or the YAML 1.1 schema many loaders still use (`yes`, dates, `1:30`, PyYAML's `=`).
pub(super) fn looks_typed(v: &str) -> bool {
    TYPED.is_match(v)
}

/// The body of a double-quoted scalar: any text fits.
pub(crate) fn double_body(v: &str) -> String {
    encode::yaml_double_body(v)
}

/// The body of a single-quoted scalar, if the value fits one on a single line.
pub(crate) fn single_body(v: &str) -> Option<String> {
    encode::yaml_single_body(v)
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
    // PyYAML refuses a tab anywhere in a plain scalar (YAML 1.2 allows one inside).
    let breaks_plain = v.contains('\t')
        || v.starts_with(' ')
        || v.ends_with([' ', '\t', ':'])
        || [": ", ":\t", " #", "\t#"].iter().any(|p| v.contains(p))
        || v.chars()
            .any(|c| c == '\n' || c == '\r' || yaml_needs_escape(c))
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
        || body.chars().any(|c| c == '\r' || yaml_needs_escape(c))
    {
        return None;
    }
    Some(encode::yaml_block_body(v, b.literal, b.indent))
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
        // Regression (issue 20): PyYAML does not read a plain scalar holding a tab.
        assert_eq!(enc("a\tb"), b"\"a\\tb\"");
        assert_eq!(enc("1:30"), b"\"1:30\"");
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
