//! The pipelines of `secrets push` and `secrets status` (also used by `init --import` and
//! `verify --check-handles`): they read the state and ask the stores, and return reports.
//!
//! They sit here rather than in `store` because they are commands: `push` reads the state
//! with the redaction engine's parsers, so the store layer itself depends on neither.

pub mod push;
pub mod status;
