//! Every integration test in one binary: one link instead of twenty, which keeps a cold
//! build fast and its disk use small. Each module is the test suite of one area.

mod common;
mod repo_support;
mod restore_fixture;

mod archive;
mod cli;
mod cli_output;
mod crash;
mod detect_corpus;
mod discover;
mod discover_corpus;
mod discover_sqlite;
mod encodings;
mod init;
mod layout;
mod living;
mod loaders;
mod names_masked;
mod ops_inspect;
mod packs;
mod packs_check;
mod promises;
mod prune;
mod recover;
mod redact_arbitrary;
mod redact_roundtrip;
mod repo;
mod restore;
mod restore_malicious;
mod restore_vault;
mod scan;
mod schema;
mod secrets_cli;
mod snapshot;
mod sqlite;
mod store_local;
mod store_vault;
mod trust;
mod vault_http;
mod vault_smoke;
mod verify;
mod verify_e2e;
mod versions;
