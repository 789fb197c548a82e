//! Pass 1 of discovery: structured files, read by their redactor, key by key; and PEM
//! private keys, which are whole-file secrets.
//!
//! Whether a string value is a secret is [`classify`]'s call: a provider rule inside it, or a
//! credential key with a value of a credential's shape; references, hints and ids are not.
//! Invariant: a finding inside a value found here is not proposed again by pass 2; findings
//! outside every value (in a comment) go on to pass 2, as do all the findings of a file that
//! does not parse.

use crate::detect::Finding;
use crate::manifest::Locator;
use crate::redact::Format;
use crate::secret::Secret;

use super::classify::{WEAK_RULES, classify};
use super::{Attention, Candidate};

/// A PEM private key file: the whole file is the secret.
pub(super) fn whole_file_key(rel: &str, bytes: &[u8], findings: &[Finding]) -> Option<Candidate> {
    let text = std::str::from_utf8(bytes).ok()?;
    let trimmed = text.trim();
    let pem = trimmed.starts_with("-----BEGIN ")
        && trimmed.ends_with("-----")
        && trimmed.contains("PRIVATE KEY-----");
    if !pem || !findings.iter().any(|f| f.rule == "private-key") {
        return None;
    }
    Some(Candidate {
        file: rel.to_string(),
        files: vec![rel.to_string()],
        locator: Locator::WholeFile,
        value: Secret::from_slice(bytes),
        reason: "private-key".into(),
        name: "private_key".into(),
        ephemeral: false,
    })
}

/// Pass 1 for a structured file: every string value that is a secret becomes a candidate.
/// Returns the findings that sit outside every string value (in a comment, say), for pass 2;
/// a file that does not parse is returned as an [`Attention`], and pass 2 takes all its
/// findings.
pub(super) fn structured(
    rel: &str,
    bytes: &[u8],
    findings: &[Finding],
    out: &mut Vec<Candidate>,
) -> std::result::Result<Vec<Finding>, Attention> {
    let Some(format) = Format::of_path(rel) else {
        return Ok(findings.to_vec());
    };
    // `is_binary` looks at the first block only: a later invalid byte makes it plain text.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(findings.to_vec());
    };
    let unparsed = |line, message: String| Attention {
        file: rel.to_string(),
        line,
        message,
    };
    let redactor = format.redactor();
    let keys = redactor.keys(text).map_err(|e| match e {
        crate::redact::FormatError::Parse { line, column, .. } => unparsed(
            Some(line),
            format!("not valid {format} (column {column}): its findings get regex rules"),
        ),
        _ => unparsed(None, format!("not readable as {format}")),
    })?;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let sites = redactor
        .locate(text, &refs)
        .map_err(|_| unparsed(None, format!("not readable as {format}")))?;
    let mut covered = vec![false; findings.len()];
    for (key, sites) in keys.iter().zip(sites) {
        let Some(first) = sites.first() else { continue };
        let value = &first.value;
        if value.is_empty() {
            continue;
        }
        let mut reason = None;
        for (i, f) in findings.iter().enumerate() {
            let start = f.offset as usize;
            let inside = sites
                .iter()
                .any(|s| start >= s.range.start && start < s.range.end.max(s.range.start + 1));
            if inside {
                covered[i] = true;
                // A provider rule names the secret better than a generic one.
                let weak =
                    |r: &Option<String>| r.as_deref().is_none_or(|r| WEAK_RULES.contains(&r));
                if weak(&reason) && !(reason.is_some() && WEAK_RULES.contains(&f.rule.as_str())) {
                    reason = Some(f.rule.clone());
                }
            }
        }
        let leaf = last_token(format, key);
        let reason = classify(&leaf, value.expose(), reason.as_deref());
        let Some(reason) = reason else { continue };
        out.push(Candidate {
            file: rel.to_string(),
            files: vec![rel.to_string()],
            locator: locator(format, key),
            value: value.clone(),
            reason,
            name: field_name(format, key),
            ephemeral: false,
        });
    }
    Ok(findings
        .iter()
        .zip(covered)
        .filter(|(_, c)| !c)
        .map(|(f, _)| f.clone())
        .collect())
}

fn locator(format: Format, key: &str) -> Locator {
    match format {
        Format::Json => Locator::Json(key.into()),
        Format::Yaml => Locator::Yaml(key.into()),
        Format::Toml => Locator::Toml(key.into()),
        Format::Dotenv => Locator::Env(key.into()),
        Format::Ini => Locator::Ini(key.into()),
    }
}

/// The last name in a locator: a pointer's last non-index token, a dotenv key, an INI key.
pub(super) fn last_token(format: Format, key: &str) -> String {
    match format {
        Format::Json | Format::Yaml | Format::Toml => crate::json_span::pointer_tokens(key)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|t| t.parse::<usize>().is_err())
            .unwrap_or_default(),
        Format::Dotenv => key.to_string(),
        Format::Ini => key.rsplit('.').next().unwrap_or(key).to_string(),
    }
}

/// The handle field for a locator: a pointer's tokens joined by `_`, or the key.
pub(super) fn field_name(format: Format, key: &str) -> String {
    match format {
        Format::Json | Format::Yaml | Format::Toml => crate::json_span::pointer_tokens(key)
            .unwrap_or_default()
            .join("_"),
        Format::Dotenv | Format::Ini => key.to_string(),
    }
}
