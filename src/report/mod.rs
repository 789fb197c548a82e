//! Rendering of reports for people and machines: human text, JSON, SARIF 2.1.0.
//!
//! Renderers take a report and return a `String`; `cli` writes it. Invariant: a renderer
//! shows only what a report holds, and reports hold masked previews, never values.

pub mod scan;
pub mod verify;
