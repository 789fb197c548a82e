//! Pipelines that return reports: `scan` (and, as they land, snapshot, restore, verify, init).
//!
//! Nothing here prints or exits: each pipeline takes its options, does the work through the
//! library modules, and returns a report for `cli` to render.

pub mod scan;
