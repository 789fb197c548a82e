//! Maps both shapes of vaultrs errors to [`StoreErrorKind`]s.
//!
//! vaultrs reports a server error as `APIError { code, errors }` when the body is Vault's
//! `{"errors": [...]}`, and as `RestClientError(ServerResponseError { code, content })` when it
//! is not — which is what a read of a soft-deleted or destroyed version returns (`data: null`
//! with the version's metadata), and what a proxy or load balancer returns. Connection
//! failures and timeouts arrive as `RestClientError(RequestError | ResponseError)`, and so
//! does a redirect our client refused ([`RedirectRefused`] in the source chain): that one is a
//! misconfiguration (`Other`), never retried, never served from a cache.
//!
//! Messages are built from the status code, Vault's error strings and version metadata only,
//! never from a response body verbatim: a body could hold a value.

use rustify::errors::ClientError as RestError;
use vaultrs::error::ClientError;

use super::http::RedirectRefused;
use crate::store::StoreErrorKind;

/// The kind and a message for a vaultrs error.
pub(super) fn classify(err: &ClientError) -> (StoreErrorKind, String) {
    match err {
        ClientError::APIError { code, errors } => by_status(*code, errors, None),
        ClientError::RestClientError { source } => match source {
            RestError::ServerResponseError { code, content } => {
                let errors = content
                    .as_deref()
                    .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
                let strings: Vec<String> = errors
                    .as_ref()
                    .and_then(|v| v.get("errors"))
                    .and_then(|e| e.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                by_status(*code, &strings, errors.as_ref())
            }
            RestError::RequestError { source, .. } => match refused_redirect(source.as_ref()) {
                Some(refused) => (StoreErrorKind::Other, refused.to_string()),
                None => (StoreErrorKind::Unreachable, chain(source.as_ref())),
            },
            RestError::ResponseError { source } => (
                StoreErrorKind::Unreachable,
                format!(
                    "connection lost while reading the answer: {}",
                    chain(source.as_ref())
                ),
            ),
            other => (StoreErrorKind::Other, other.to_string()),
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => (
            StoreErrorKind::Other,
            "the server answered without data; is the mount a KV version 2 engine?".into(),
        ),
        other => (StoreErrorKind::Other, other.to_string()),
    }
}

/// The refused redirect behind a request error, if that is what it was.
fn refused_redirect<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a RedirectRefused> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(refused) = e.downcast_ref::<RedirectRefused>() {
            return Some(refused);
        }
        cur = e.source();
    }
    None
}

/// An error and its sources, joined: reqwest puts "operation timed out" or "connection refused"
/// in the source, not in the top-level message.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

fn by_status(
    code: u16,
    errors: &[String],
    body: Option<&serde_json::Value>,
) -> (StoreErrorKind, String) {
    let joined = errors.join("; ");
    let detail = |fallback: &str| {
        if joined.is_empty() {
            format!("HTTP {code}: {fallback}")
        } else {
            format!("HTTP {code}: {joined}")
        }
    };
    match code {
        404 => (StoreErrorKind::Missing, missing_detail(body, &joined)),
        403 => (StoreErrorKind::Forbidden, detail("permission denied")),
        401 => (StoreErrorKind::Forbidden, detail("not authenticated")),
        400 if joined.contains("check-and-set") => (StoreErrorKind::Conflict, detail("")),
        503 if joined.to_lowercase().contains("sealed") => {
            (StoreErrorKind::Sealed, detail("the vault is sealed"))
        }
        // 429: rate limit or performance standby; 472/473: DR / performance standby;
        // 412: the node has not caught up yet (eventual consistency).
        429 | 412 | 472 | 473 | 500..=599 => (
            StoreErrorKind::Unavailable,
            detail("the server cannot serve now"),
        ),
        // A redirect the client did not follow (one without a usable `Location`): not retried.
        300..=399 => (
            StoreErrorKind::Other,
            format!(
                "HTTP {code}: a redirect agentbak did not follow (it follows none to another \
                 origin); set the store's `address` to the server that answers"
            ),
        ),
        _ => (StoreErrorKind::Other, detail("unexpected answer")),
    }
}

/// Says why a read found nothing: the path does not exist, or the version was deleted or
/// destroyed (the 404 body then carries the version's metadata, never its data).
fn missing_detail(body: Option<&serde_json::Value>, errors: &str) -> String {
    let meta = body.and_then(|b| b.pointer("/data/metadata"));
    if let Some(m) = meta {
        let version = m.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if m.get("destroyed").and_then(|d| d.as_bool()) == Some(true) {
            return format!("version {version} was destroyed");
        }
        if let Some(t) = m.get("deletion_time").and_then(|d| d.as_str())
            && !t.is_empty()
        {
            return format!("version {version} was deleted at {t}");
        }
    }
    if errors.is_empty() {
        "no such secret or version".into()
    } else {
        errors.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, content: &str) -> ClientError {
        ClientError::RestClientError {
            source: RestError::ServerResponseError {
                code,
                content: Some(content.to_string()),
            },
        }
    }

    #[test]
    fn api_error_shape_maps_by_status() {
        let cases = [
            (
                403,
                vec!["permission denied".to_string()],
                StoreErrorKind::Forbidden,
            ),
            (404, vec![], StoreErrorKind::Missing),
            (
                503,
                vec!["Vault is sealed".to_string()],
                StoreErrorKind::Sealed,
            ),
            (
                503,
                vec!["overloaded".to_string()],
                StoreErrorKind::Unavailable,
            ),
            (429, vec![], StoreErrorKind::Unavailable),
            (500, vec![], StoreErrorKind::Unavailable),
            (
                400,
                vec!["check-and-set parameter did not match the current version".into()],
                StoreErrorKind::Conflict,
            ),
            (418, vec![], StoreErrorKind::Other),
        ];
        for (code, errors, kind) in cases {
            let (k, _) = classify(&ClientError::APIError { code, errors });
            assert_eq!(k, kind, "{code}");
        }
    }

    #[test]
    fn rest_error_shape_reports_deleted_and_destroyed_versions() {
        let deleted = r#"{"data":{"data":null,"metadata":{"created_time":"2024-01-01T00:00:00Z","deletion_time":"2024-02-01T00:00:00Z","destroyed":false,"version":2}}}"#;
        let (k, m) = classify(&server(404, deleted));
        assert_eq!(k, StoreErrorKind::Missing);
        assert_eq!(m, "version 2 was deleted at 2024-02-01T00:00:00Z");
        let destroyed = r#"{"data":{"data":null,"metadata":{"deletion_time":"","destroyed":true,"version":1}}}"#;
        assert_eq!(
            classify(&server(404, destroyed)).1,
            "version 1 was destroyed"
        );
        let (k, _) = classify(&server(503, "<html>bad gateway</html>"));
        assert_eq!(k, StoreErrorKind::Unavailable);
    }

    #[test]
    fn a_refused_redirect_is_a_misconfiguration_not_a_transient_failure() {
        use super::super::http::RefusedBecause;
        let refused = RedirectRefused {
            status: 307,
            reason: RefusedBecause::OtherOrigin("http://127.0.0.1:9".into()),
        };
        // The shape vaultrs gives: reqwest's error (here any error) wrapping ours, in anyhow.
        #[derive(Debug, thiserror::Error)]
        #[error("error following redirect")]
        struct Outer(#[source] RedirectRefused);
        let err = ClientError::RestClientError {
            source: RestError::RequestError {
                source: Outer(refused.clone()).into(),
                url: "http://127.0.0.1:8/v1/secret/data/a".into(),
                method: "GET".into(),
            },
        };
        let (kind, message) = classify(&err);
        assert_eq!(kind, StoreErrorKind::Other);
        assert!(!kind.is_transient());
        assert_eq!(message, refused.to_string());
        let (kind, message) = classify(&server(302, "<html>moved</html>"));
        assert_eq!(kind, StoreErrorKind::Other);
        assert!(message.starts_with("HTTP 302: "), "{message}");
    }

    #[test]
    fn messages_never_repeat_a_body_verbatim() {
        let body = r#"{"data":{"data":{"k":"s3cr3t-in-a-body"}}}"#;
        for code in [404, 500, 418] {
            let (_, m) = classify(&server(code, body));
            assert!(!m.contains("s3cr3t"), "{code}: {m}");
        }
    }
}
