//! The path of each scalar: where the parser's events are inside a document's mappings and
//! sequences, as JSON Pointer tokens.
//!
//! Invariants: a scalar in key position names the value that follows and has no path of its
//! own; a collection used as a mapping key (YAML allows it) and everything inside it name
//! nothing, and the value after it gets the [`COMPLEX_KEY`] token, which no pointer can spell.

/// Where the walk is inside the document's collections.
#[derive(Default)]
pub(super) struct Walk {
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
pub(super) const COMPLEX_KEY: &str = "\u{0}complex";

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

    pub(super) fn in_flow(&self) -> bool {
        self.frames.last().is_some_and(|f| f.flow)
    }

    pub(super) fn open(&mut self, map: bool, flow: bool) {
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

    pub(super) fn close(&mut self) {
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
    pub(super) fn scalar(&mut self, value: &str) -> Option<Vec<String>> {
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
    pub(super) fn value_path(&mut self) -> Option<Vec<String>> {
        self.scalar(COMPLEX_KEY)
    }
}
