//! The secret value type.
//!
//! A [`Secret`] holds bytes that must never leave the process: it has no `Display`, its
//! `Debug` shows only the length, and its memory is zeroed on drop. Anything derived from a
//! secret that is as sensitive as the secret itself (encoded forms, search patterns) is kept in
//! a `Secret` too. The only way to read the bytes is [`Secret::expose`], which makes every use
//! greppable in review.
//!
//! The wipe is this type's own `Drop`, not a wrapper's, so that its unit test observes it: in
//! test builds the drop hands the wiped buffer (address and bytes, still at full length) to
//! the test before the allocation is freed. The crate forbids `unsafe`, so the freed memory
//! itself cannot be read; what the test proves is that the very bytes the value lived in are
//! zero when they are given back.

use std::fmt;

use zeroize::Zeroize;

/// A secret value: redacted in `Debug`, zeroed on drop, never `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of the bytes; the caller's buffer is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
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

impl Drop for Secret {
    fn drop(&mut self) {
        // The bytes in place first, at their full length (what the test observes), then the
        // spare capacity too (`Vec`'s own wipe, which also empties it).
        self.0.as_mut_slice().zeroize();
        #[cfg(test)]
        tests::observe_drop(&self.0);
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

    thread_local! {
        /// Whether this thread's drops are recorded (only the tests below ask, so that the
        /// other tests of the crate do not pile up records).
        static WATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// Every buffer a `Secret` gave back on this thread while watched: its address and
        /// its bytes at the moment of release.
        static RELEASED: std::cell::RefCell<Vec<(usize, Vec<u8>)>> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }

    pub(super) fn observe_drop(bytes: &[u8]) {
        if !WATCHING.with(std::cell::Cell::get) {
            return;
        }
        RELEASED.with(|r| {
            r.borrow_mut()
                .push((bytes.as_ptr() as usize, bytes.to_vec()))
        });
    }

    /// What the buffer at `address` held when its secret was dropped.
    fn released(address: usize) -> Vec<u8> {
        RELEASED.with(|r| {
            r.borrow()
                .iter()
                .rev()
                .find(|(at, _)| *at == address)
                .map(|(_, bytes)| bytes.clone())
                .expect("the secret's drop ran and released its buffer")
        })
    }

    #[test]
    fn the_buffer_a_secret_lived_in_is_zero_when_it_is_dropped() {
        WATCHING.with(|w| w.set(true));
        // Built the ways the crate builds them: from a String, a Vec, a slice, and a clone.
        let made = [
            Secret::from(VALUE.to_string()),
            Secret::from(VALUE.as_bytes().to_vec()),
            Secret::from_slice(VALUE.as_bytes()),
        ];
        for secret in made {
            let copy = secret.clone();
            for s in [secret, copy] {
                assert_eq!(s.expose(), VALUE.as_bytes());
                let address = s.expose().as_ptr() as usize;
                drop(s);
                assert_eq!(released(address), vec![0u8; VALUE.len()]);
            }
        }
    }

    #[test]
    fn a_moved_secret_is_wiped_once_where_it_ends() {
        WATCHING.with(|w| w.set(true));
        let s = Secret::from(VALUE.to_string());
        let address = s.expose().as_ptr() as usize;
        // Moving the value moves the buffer, it does not copy it: one release, at the end.
        let moved = vec![s];
        RELEASED.with(|r| assert!(r.borrow().iter().all(|(at, _)| *at != address)));
        drop(moved);
        assert_eq!(released(address), vec![0u8; VALUE.len()]);
    }
}
