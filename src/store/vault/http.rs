//! The HTTP client under every request to Vault: TLS, timeout, and a redirect policy that keeps
//! the token at the origin the manifest names.
//!
//! vaultrs builds a reqwest client that follows up to ten redirects anywhere. reqwest drops
//! `Authorization` and cookies when a redirect leaves the origin, but not custom headers, so
//! `X-Vault-Token` went wherever a `307` pointed: a proxy in front of OpenBao that redirected to
//! another port received the token on every retry (issue 17). This module builds the client
//! itself, with the TLS settings vaultrs applies (rustls, the timeout, `tls_verify`, extra CA
//! certificates, no roots for a plain-http address), and installs it into every `VaultClient`
//! the store makes ([`vault_client`] is the one place a `VaultClient` is built).
//!
//! Invariant: a request with the token goes only to the scheme, host and port of the configured
//! address. A redirect within that origin is followed (the token goes nowhere new: a path
//! rewrite behind a load balancer keeps working); a redirect to any other origin — another
//! port, another host, https to http — is not followed and fails the request with
//! [`RedirectRefused`], which [`super::errors::classify`] turns into a non-retryable error.
//! A standby node's `307` to the active node is refused too: point `address` at the active node
//! or at a load balancer that forwards.

use std::fmt;

use reqwest::redirect::Policy;
use rustify::clients::reqwest::Client as HttpClient;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{Client, VaultClient, VaultClientSettings};
use zeroize::Zeroize;

/// Redirects followed within the origin before giving up (reqwest's own default).
const MAX_REDIRECTS: usize = 10;

/// Why a redirect was not followed. Carries the status and the target's origin (scheme, host,
/// port: no path, query or user info), never a header or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RedirectRefused {
    /// The redirect's HTTP status.
    pub status: u16,
    /// What was wrong with it.
    pub reason: RefusedBecause,
}

/// The reasons a redirect is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefusedBecause {
    /// It points at another origin (shown as `scheme://host:port`).
    OtherOrigin(String),
    /// More than [`MAX_REDIRECTS`] redirects in a row within the origin.
    TooMany,
}

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            RefusedBecause::OtherOrigin(to) => write!(
                f,
                "HTTP {}: the server redirected to {to}; agentbak does not follow redirects to \
                 another origin (credentials would go with them): set the store's `address` to \
                 the server that answers (the active node, or a proxy that forwards)",
                self.status
            ),
            RefusedBecause::TooMany => write!(
                f,
                "HTTP {}: more than {MAX_REDIRECTS} redirects in a row; check the store's \
                 `address`",
                self.status
            ),
        }
    }
}

impl std::error::Error for RedirectRefused {}

/// Whether a request to `address` may follow a redirect (answered with `status`) to `next`,
/// after `hops` earlier redirects.
fn check(
    address: &reqwest::Url,
    status: u16,
    next: &reqwest::Url,
    hops: usize,
) -> Result<(), RedirectRefused> {
    let to = next.origin();
    if to != address.origin() {
        return Err(RedirectRefused {
            status,
            reason: RefusedBecause::OtherOrigin(to.ascii_serialization()),
        });
    }
    if hops >= MAX_REDIRECTS {
        return Err(RedirectRefused {
            status,
            reason: RefusedBecause::TooMany,
        });
    }
    Ok(())
}

/// The redirect policy for a store at `address`: follow within its origin only. The origin is
/// the configured address's, not the previous hop's, so no chain of redirects can walk away.
fn policy(address: &reqwest::Url) -> Policy {
    let address = address.clone();
    Policy::custom(move |attempt| {
        // `previous` starts with the request's own URL, which is not a redirect.
        let hops = attempt.previous().len().saturating_sub(1);
        match check(&address, attempt.status().as_u16(), attempt.url(), hops) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// Builds the reqwest client for a store: the same TLS and timeout settings vaultrs 0.8
/// applies (`VaultClient::new`), plus the origin-bound redirect policy. Errors name the CA
/// file, never its content.
pub(super) fn build(settings: &VaultClientSettings) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::ClientBuilder::new()
        .tls_backend_rustls()
        .redirect(policy(&settings.address))
        .tls_danger_accept_invalid_certs(!settings.verify);
    if let Some(timeout) = settings.timeout {
        builder = builder.timeout(timeout);
    }
    if settings.address.scheme() == "http" {
        // As vaultrs does (reqwest issue 2988): no TLS to set up, so no platform roots to load.
        builder = builder.tls_certs_only(Vec::new());
    } else {
        for path in &settings.ca_certs {
            let pem = std::fs::read(path).map_err(|e| format!("CA certificate `{path}`: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("CA certificate `{path}`: {e}"))?;
            builder = builder.tls_certs_merge(certs);
        }
    }
    if let Some(identity) = &settings.identity {
        builder = builder.identity(identity.clone());
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A `VaultClient` with `settings` over `http` (a client from [`build`]; clones share its
/// connection pool). This is what `VaultClient::new` does, minus building its own client.
pub(super) fn vault_client(settings: VaultClientSettings, http: &reqwest::Client) -> TokenClient {
    let middle = EndpointMiddleware {
        token: settings.token.clone(),
        version: format!("v{}", settings.version),
        wrap: None,
        namespace: settings.namespace.clone(),
    };
    TokenClient(VaultClient {
        http: HttpClient::new(settings.address.as_str(), http.clone()),
        middle,
        settings,
    })
}

/// A `VaultClient` whose copies of the token are wiped when it is dropped or given a new one.
///
/// vaultrs keeps the token in two plain `String`s (the settings and the request middleware),
/// and a store replaces its client at every login or renewal: without this, every token the
/// process ever held stayed in freed memory. What is out of reach: the per-request copy the
/// middleware puts into each request's headers (inside rustify, reqwest and hyper).
pub(super) struct TokenClient(VaultClient);

impl TokenClient {
    /// Zeroes both copies of the token (and leaves them empty).
    fn wipe(&mut self) {
        self.0.settings.token.zeroize();
        self.0.middle.token.zeroize();
    }
}

impl Drop for TokenClient {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl std::ops::Deref for TokenClient {
    type Target = VaultClient;
    fn deref(&self) -> &VaultClient {
        &self.0
    }
}

impl Client for TokenClient {
    fn http(&self) -> &HttpClient {
        &self.0.http
    }
    fn middle(&self) -> &EndpointMiddleware {
        &self.0.middle
    }
    fn settings(&self) -> &VaultClientSettings {
        &self.0.settings
    }
    fn set_token(&mut self, token: &str) {
        // vaultrs's own `set_token` overwrites the old copies without wiping them.
        self.wipe();
        self.0.set_token(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    #[test]
    fn same_origin_is_followed_and_any_other_origin_is_refused() {
        let address = url("http://127.0.0.1:8200");
        assert_eq!(
            check(&address, 307, &url("http://127.0.0.1:8200/v1/other?x=1"), 0),
            Ok(())
        );
        // The default port is the same origin whether it is written or not.
        let https = url("https://vault.example");
        assert_eq!(
            check(&https, 301, &url("https://vault.example:443/v1/a"), 3),
            Ok(())
        );
        for (other, shown) in [
            ("http://127.0.0.1:8201/v1/a", "http://127.0.0.1:8201"),
            ("https://127.0.0.1:8200/v1/a", "https://127.0.0.1:8200"),
            ("http://localhost:8200/v1/a", "http://localhost:8200"),
            (
                "http://user:pw@evil.example/v1/a?t=1",
                "http://evil.example",
            ),
        ] {
            let refused = check(&address, 307, &url(other), 0).unwrap_err();
            assert_eq!(
                refused.reason,
                RefusedBecause::OtherOrigin(shown.into()),
                "{other}"
            );
            let message = refused.to_string();
            assert!(message.starts_with("HTTP 307: "), "{message}");
            assert!(message.contains("does not follow redirects to another origin"));
            assert!(
                !message.contains("pw") && !message.contains("/v1"),
                "{message}"
            );
        }
        // https to http on the same host is a downgrade, not the same origin.
        assert!(check(&https, 302, &url("http://vault.example/v1/a"), 0).is_err());
    }

    #[test]
    fn redirect_loops_within_the_origin_end() {
        let address = url("http://127.0.0.1:8200");
        let next = url("http://127.0.0.1:8200/v1/a");
        assert_eq!(check(&address, 307, &next, MAX_REDIRECTS - 1), Ok(()));
        let refused = check(&address, 307, &next, MAX_REDIRECTS).unwrap_err();
        assert_eq!(refused.reason, RefusedBecause::TooMany);
    }

    #[test]
    fn both_copies_of_the_token_are_wiped_and_a_new_token_replaces_them() {
        let http = reqwest::Client::new();
        let mut settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address("http://127.0.0.1:8200")
            .build()
            .unwrap();
        settings.token = "hvs.PlantedToken0123".into();
        let mut client = vault_client(settings, &http);
        assert_eq!(client.settings().token, "hvs.PlantedToken0123");
        assert_eq!(client.middle().token, "hvs.PlantedToken0123");
        client.set_token("hvs.Next");
        assert_eq!(
            (
                client.settings().token.as_str(),
                client.middle().token.as_str()
            ),
            ("hvs.Next", "hvs.Next")
        );
        client.wipe();
        assert_eq!(
            (
                client.settings().token.as_str(),
                client.middle().token.as_str()
            ),
            ("", "")
        );
    }

    #[test]
    fn clients_build_for_http_and_https_and_name_a_bad_ca_file() {
        let mut settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address("http://127.0.0.1:8200")
            .build()
            .unwrap();
        assert!(build(&settings).is_ok());
        settings.address = url("https://127.0.0.1:8200");
        settings.ca_certs = vec!["/nonexistent/agentbak-ca.pem".into()];
        let err = build(&settings).unwrap_err();
        assert!(err.contains("/nonexistent/agentbak-ca.pem"), "{err}");
    }
}
