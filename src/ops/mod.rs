//! The pipelines behind the commands: each takes options, does the work through the library
//! modules, and returns a report for `cli` to render. Nothing here prints or exits.

pub mod check;
pub mod discover;
pub mod export;
pub mod identity;
pub mod init;
pub mod inspect;
pub mod known;
pub mod restore;
pub mod scan;
pub mod secrets;
pub mod snapshot;
pub mod stats;
pub mod trust;
pub mod verify;
pub mod walk;
