//! `snapshot`: walk the state, redact, gate, archive, commit.

pub mod walk;
