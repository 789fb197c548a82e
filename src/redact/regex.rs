//! Regex rules: capture group 1 of every match is a value, whatever bytes it holds.
//!
//! The pattern runs over the file's bytes (`regex::bytes`), so a value may hold any bytes its
//! group matched. There is no structure to keep: values go back unescaped ([`Context::Raw`]).

use super::{Context, Site};
use crate::secret::Secret;

/// Every group-1 span of `pattern` in `input`. A match whose group 1 did not take part is
/// skipped. Errors carry the regex crate's message, which quotes the pattern, not the file.
pub(crate) fn locate(input: &[u8], pattern: &str) -> Result<Vec<Site>, String> {
    let re = regex::bytes::Regex::new(pattern).map_err(|e| e.to_string())?;
    if re.captures_len() < 2 {
        return Err("the regex has no capture group 1".into());
    }
    Ok(re
        .captures_iter(input)
        .filter_map(|c| c.get(1))
        .map(|m| Site {
            range: m.range(),
            value: Secret::from_slice(m.as_bytes()),
            context: Context::Raw,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_match_and_any_bytes() {
        let input = b"Bearer a\xffb;\nBearer cd;\n";
        let sites = locate(input, r"(?-u)Bearer ([^;]+);").unwrap();
        let got: Vec<&[u8]> = sites.iter().map(|s| s.value.expose()).collect();
        assert_eq!(got, vec![&b"a\xffb"[..], b"cd"]);
        assert!(locate(input, "Bearer").is_err());
    }
}
