//! The pipelines behind the commands: each takes options, does the work through the lower
//! layers, and returns a report. Nothing here prints or exits.

pub mod snapshot;
