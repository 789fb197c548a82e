//! The round-trip property, as one function the fuzz targets (`fuzz/`) and the property tests
//! share: redaction never panics, and what it redacts without a warning comes back byte for
//! byte when rehydrated with the values it found.

use std::collections::HashMap;

use super::{RedactError, Rule, WarningKind, redact_file, rehydrate_file};
use crate::handle::Handle;
use crate::manifest::Locator;
use crate::secret::Secret;

/// Redacts `input` with one rule at `locator` and a known stray value, rehydrates the result
/// with the values found, and says which promise broke, if any. Inputs the redactor refuses
/// (a parse error, a binary file) pass: refusing is allowed, corrupting is not.
#[doc(hidden)]
pub fn round_trip_property(path: &str, input: &[u8], locator: Locator) -> Result<(), String> {
    let handle = Handle::parse("vault:fuzz/a#key").expect("a valid handle");
    let stray = Handle::parse("env:KNOWN").expect("a valid handle");
    let known = [(stray.clone(), Secret::from_slice(b"token-12345"))];
    let rules = [Rule { locator, handle }];
    let red = match redact_file(path, input, &rules, &known) {
        Ok(red) => red,
        // A stray value used as syntax (a TOML bare key) may make redaction refuse; a declared
        // value never may.
        Err(e @ RedactError::BrokeStructure { .. }) if !contains(input, known[0].1.expose()) => {
            return Err(e.to_string());
        }
        Err(_) => return Ok(()),
    };
    let mut values: HashMap<Handle, Secret> = HashMap::new();
    for (h, v) in red.values.iter().chain(&known) {
        // One handle with two different values (a regex matching twice) cannot round-trip.
        if values.get(h).is_some_and(|old| old != v) {
            return Ok(());
        }
        values.insert(h.clone(), v.clone());
    }
    let back = rehydrate_file(path, &red.output, &red.replacements, &values)
        .map_err(|e| format!("rehydrating an unchanged redaction failed: {e}"))?;
    let inexact = red.warnings.iter().any(|w| w.kind == WarningKind::Inexact);
    if !inexact && back != input {
        return Err(format!(
            "the round trip changed the file ({} bytes in, {} bytes out)",
            input.len(),
            back.len()
        ));
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
