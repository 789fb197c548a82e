//! agentbak backs up the state of long-lived AI agents without their secrets, and restores it
//! with fresh credentials.
//!
//! The pipeline, in one paragraph: a [`manifest::Manifest`] says where the agent's state lives
//! and where each secret sits in it (a JSON Pointer, a dotenv key, a regex, a whole file), each
//! mapped to a [`handle::Handle`] into a secret store. `snapshot` walks the state, replaces
//! every secret value by the handle's placeholder touching only the value's bytes (`redact`),
//! proves with the detection engine that no known value or provider token remains in the exact
//! archive byte stream (`detect`), and writes a tar + zstd (+ age) archive with blake3 hashes
//! into the repository (`archive`, `repo`). `restore --rehydrate` checks and extracts the
//! archive safely, fetches every handle's *current* value from its store (`store`), and puts
//! it back with the escaping its format needs. Values travel only as [`secret::Secret`], which
//! cannot be printed.
//!
//! ```
//! use agentbak::handle::Handle;
//!
//! let handle = Handle::parse("vault:agents/kevin/openai#api_key").unwrap();
//! assert_eq!(handle.placeholder(), "+agentbak:vault:agents/kevin/openai:api_key+");
//! ```
//!
//! Dependencies point one way: `cli` → `ops` → (`detect`, `redact`, `store`, `archive`, `repo`)
//! → (`manifest`, `handle`, `secret`, `error`). `docs/architecture.md` has the map.

pub mod archive;
pub mod cli;
pub mod detect;
pub mod error;
pub mod handle;
pub mod hardening;
pub mod json_span;
pub mod manifest;
pub mod ops;
pub(crate) mod pool;
pub mod redact;
pub mod repo;
pub mod report;
#[cfg(feature = "schema")]
pub mod schema;
pub mod secret;
pub mod signing;
pub mod sqlite;
pub mod store;

pub use error::{Error, ExitCode, Result};
