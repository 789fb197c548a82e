//! The secret value type.
//!
//! A [`Secret`] holds bytes that must never leave the process: it has no `Display`, its
//! `Debug` shows only the length, and its memory is zeroed on drop. Anything derived from a
//! secret that is as sensitive as the secret itself (encoded forms, search patterns) is kept in
//! a `Secret` too. The only way to read the bytes is [`Secret::expose`], which makes every use
//! greppable in review.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// A secret value: redacted in `Debug`, zeroed on drop, never `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of the bytes; the caller's buffer is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// Copies the bytes of a slice into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret::new(bytes.to_vec())
    }

    /// The raw bytes. Every call site is a place where a value is handled in the clear.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes; safe to show.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A masked preview safe for reports: the first four and last two characters of a value
    /// of at least 16 characters, and its length, e.g. `sk-p…Qx (52 chars)`. Shorter values
    /// show only their length, since a partial preview would reveal too much of them.
    pub fn masked(&self) -> String {
        mask(self.expose())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED; {} bytes])", self.0.len())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Secret::new(v)
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// Masks any byte string the way [`Secret::masked`] does. Use it for matches that are not yet
/// in a `Secret` (a finding of a pattern rule).
pub fn mask(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    if n < 16 {
        return format!("… ({n} chars)");
    }
    // Control characters are escaped so a preview stays on one line (a PEM value ends in `\n`).
    let show = |cs: &[char]| -> String {
        cs.iter()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    format!(
        "{}…{} ({n} chars)",
        show(&chars[..4]),
        show(&chars[n - 2..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFQx";

    #[test]
    fn debug_holds_no_value() {
        let s = Secret::from(VALUE.to_string());
        let shown = format!("{s:?} {s:#?} {:?}", vec![s.clone()]);
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn masked_preview_shows_only_the_edges() {
        let s = Secret::from(VALUE.to_string());
        assert_eq!(s.masked(), "sk-p…Qx (52 chars)");
        assert_eq!(Secret::from("short".to_string()).masked(), "… (5 chars)");
        let pem = "-----BEGIN KEY-----\nabcdef\n-----END KEY-----\n";
        assert_eq!(mask(pem.as_bytes()), "----…-\\n (45 chars)");
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut s = Secret::from(VALUE.to_string());
        s.zeroize();
        assert!(s.expose().iter().all(|b| *b == 0) || s.is_empty());
    }
}
