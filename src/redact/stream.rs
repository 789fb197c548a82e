//! Stray known values in a file too large to hold: the same replacements as
//! [`super::redact_file_with`] makes for a file without rules, computed window by window over
//! a reader, in bounded memory.
//!
//! A window is searched whole, and a match is taken only when it starts before the window's
//! last `overlap` bytes (longer than any pattern and any placeholder): such a match ends inside
//! the window, and is the match a search over the whole file makes there (leftmost-longest
//! from the end of the previous match). The unsearched tail is carried into the next window.
//! Text shaped like a placeholder that straddles the cut is carried whole, so it is skipped
//! as it would be in one search.
//!
//! The output is a pure function of the input bytes, so two passes over the same bytes give
//! the same output: the snapshot runs one to learn the redacted size (a tar header comes
//! before the content), and one to write it.

use std::collections::HashMap;
use std::io::Read;

use zeroize::Zeroizing;

use super::{Context, Format, Replacement, Source, StrayMatcher, stray};
use crate::handle::Handle;

/// Input bytes searched per window, besides the carried tail.
const WINDOW: usize = 4 << 20;

/// The longest text shaped like a placeholder that is carried whole across a window cut.
const MAX_PLACEHOLDER: usize = 4096;

/// A reader of `inner`'s bytes with stray known values replaced by placeholders.
pub struct StrayReader<'m, R> {
    inner: R,
    matcher: &'m StrayMatcher,
    format: Option<Format>,
    overlap: usize,
    /// Input read but not searched yet.
    pending: Zeroizing<Vec<u8>>,
    /// Output made but not read yet, from `out_at`.
    out: Zeroizing<Vec<u8>>,
    out_at: usize,
    /// Output bytes made so far (the offset of the next one).
    made: u64,
    eof: bool,
    replacements: Vec<Replacement>,
    groups: HashMap<(Handle, Context), usize>,
}

impl<'m, R: Read> StrayReader<'m, R> {
    /// Redacts `inner`, a file named `path` (its name gives the format of the contexts).
    pub fn new(inner: R, path: &str, matcher: &'m StrayMatcher) -> Self {
        StrayReader {
            inner,
            matcher,
            format: Format::of_path(path),
            overlap: matcher.max_pattern_len().max(MAX_PLACEHOLDER),
            pending: Zeroizing::new(Vec::new()),
            out: Zeroizing::new(Vec::new()),
            out_at: 0,
            made: 0,
            eof: false,
            replacements: Vec::new(),
            groups: HashMap::new(),
        }
    }

    /// The placeholders written so far, one record per (handle, context), offsets in the
    /// output.
    pub fn replacements(&self) -> &[Replacement] {
        &self.replacements
    }

    /// The records of the placeholders written, once the reader is read to its end.
    pub fn into_replacements(self) -> Vec<Replacement> {
        self.replacements
    }

    /// Reads more input, then searches what can be searched.
    fn fill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.out_at = 0;
        while !self.eof && self.pending.len() < WINDOW + self.overlap {
            let start = self.pending.len();
            let want = WINDOW + self.overlap - start;
            // Grow without a reallocation that would leave a copy behind unwiped.
            if self.pending.capacity() < start + want {
                let mut bigger = Zeroizing::new(Vec::with_capacity(start + want));
                bigger.extend_from_slice(&self.pending);
                self.pending = bigger;
            }
            self.pending.resize(start + want, 0);
            let n = loop {
                match self.inner.read(&mut self.pending[start..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.pending.truncate(start);
                    return Err(e);
                }
            };
            self.pending.truncate(start + n);
            if n == 0 {
                self.eof = true;
            }
        }
        self.search();
        Ok(())
    }

    fn search(&mut self) {
        let buf = &self.pending[..];
        let cut = if self.eof {
            buf.len()
        } else {
            buf.len().saturating_sub(self.overlap)
        };
        let skip = stray::placeholder_ranges(buf);
        let hits = self.matcher.find(buf, self.format, &skip, &[]);
        let mut cursor = 0;
        for hit in hits.iter().take_while(|h| h.range.start < cut) {
            self.out.extend_from_slice(&buf[cursor..hit.range.start]);
            let offset = self.made + self.out.len() as u64;
            let handle = self.matcher.handle(hit.known, &[]);
            self.out.extend_from_slice(handle.placeholder().as_bytes());
            cursor = hit.range.end;
            let key = (handle.clone(), hit.context.clone());
            let i = *self.groups.entry(key).or_insert_with(|| {
                self.replacements.push(Replacement {
                    source: Source::Stray,
                    handle: handle.clone(),
                    offsets: Vec::new(),
                    context: hit.context.clone(),
                });
                self.replacements.len() - 1
            });
            self.replacements[i].offsets.push(offset as usize);
        }
        let mut keep = cursor.max(cut);
        if let Some(r) = skip.iter().find(|r| r.start < keep && r.end > keep) {
            // Carried whole, unless the window holds nothing else (then it is too long to be a
            // placeholder, and the search must move on).
            if r.start > 0 {
                keep = r.start.max(cursor);
            }
        }
        if keep == 0 && !self.eof {
            keep = cut.max(1).min(buf.len());
        }
        self.out.extend_from_slice(&buf[cursor.min(keep)..keep]);
        self.made += self.out.len() as u64;
        self.pending.drain(..keep);
    }
}

impl<R: Read> Read for StrayReader<'_, R> {
    fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
        while self.out_at == self.out.len() {
            if self.eof && self.pending.is_empty() {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = into.len().min(self.out.len() - self.out_at);
        into[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::redact_file_with;
    use crate::secret::Secret;

    fn known() -> Vec<(Handle, Secret)> {
        vec![
            (
                Handle::parse("local:a/b#token").unwrap(),
                Secret::from("tok-0123456789abcdef".to_string()),
            ),
            (
                Handle::parse("local:a/b#pw").unwrap(),
                Secret::from("pa\"ss-word-42".to_string()),
            ),
        ]
    }

    /// A reader that gives at most `n` bytes per call, to move the window cuts around.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn streamed(input: &[u8], path: &str, m: &StrayMatcher) -> (Vec<u8>, Vec<Replacement>) {
        let mut r = StrayReader::new(Trickle(input, 1 << 20), path, m);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (out, r.into_replacements())
    }

    #[test]
    fn gives_what_the_whole_file_redaction_gives_across_window_cuts() {
        let m = StrayMatcher::new(&known());
        // Values and placeholders at every distance from the window cuts.
        let mut input = Vec::new();
        let mut i = 0usize;
        while input.len() < 3 * WINDOW + 50_000 {
            input.extend_from_slice(b"{\"line\": ");
            input.extend(std::iter::repeat_n(b'x', i % 4099));
            match i % 3 {
                0 => input.extend_from_slice(b"tok-0123456789abcdef"),
                1 => input.extend_from_slice(br#"pa\"ss-word-42"#),
                _ => input.extend_from_slice(b"+agentbak:local:a/b:token+"),
            }
            input.extend_from_slice(b"}\n");
            i += 1;
        }
        let whole = redact_file_with("t.jsonl", &input, &[], &m).unwrap();
        let (out, reps) = streamed(&input, "t.jsonl", &m);
        assert_eq!(out, whole.output.as_ref());
        let mut a: Vec<_> = reps.iter().flat_map(|r| r.offsets.clone()).collect();
        let mut b: Vec<_> = whole
            .replacements
            .iter()
            .flat_map(|r| r.offsets.clone())
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(!out.windows(20).any(|w| w == b"tok-0123456789abcdef"));
    }

    #[test]
    fn a_run_too_long_for_a_placeholder_does_not_stall_the_stream() {
        let m = StrayMatcher::new(&known());
        let mut input = b"+agentbak:".to_vec();
        input.extend(std::iter::repeat_n(b'a', 3 * WINDOW));
        input.extend_from_slice(b"+ tok-0123456789abcdef");
        let (out, _) = streamed(&input, "t.log", &m);
        assert_eq!(
            out.len(),
            input.len() - 20 + "+agentbak:local:a/b:token+".len()
        );
    }
}
