//! The decryption identity of `restore` and `verify`: a file, or a handle of a configured store
//! (`vault:agents/kevin/backup-key#identity`) fetched through the resolver.

use std::path::Path;

use crate::archive::Identity;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::store::{ResolveOptions, Status, Stores, resolve_one};

/// `given` is a handle when it parses as one for a store of the manifest, else a file path.
/// A handle that does not resolve is [`Error::IdentityUnresolved`] (exit 6). The key itself
/// never appears in an error.
pub fn load_identity(given: &str, stores: &Stores) -> Result<Identity> {
    let handle = Handle::parse(given)
        .ok()
        .filter(|h| stores.get(&h.store).is_some());
    let Some(handle) = handle else {
        return Identity::from_file(Path::new(given));
    };
    let handle = handle.with_agent(stores.agent());
    let resolution = resolve_one(stores, &handle, &ResolveOptions::default());
    match (&resolution.status, &resolution.value) {
        (Status::Resolved { .. } | Status::FromCache { .. }, Some(value)) => {
            Identity::parse(value, given)
        }
        (status, _) => Err(Error::IdentityUnresolved {
            handle: given.to_string(),
            status: status_detail(status),
        }),
    }
}

/// A status with its message, for reports and errors (messages never hold values).
pub fn status_detail(status: &Status) -> String {
    match status {
        Status::Missing { message }
        | Status::Forbidden { message }
        | Status::Unreachable { message }
        | Status::Other { message } => format!("{}: {message}", status.label()),
        other => other.label().to_string(),
    }
}
