//! Mapping of [`object_store::Error`] into the connector error, for every store (local files,
//! S3, Azure, GCS, HTTP, in-memory).
//!
//! | `object_store` error | HTTP status / code in the body | [`ErrorKind`] |
//! |---|---|---|
//! | `NotFound` | 404, `NoSuchKey`, `NoSuchBucket`, `ContainerNotFound` | `NotFound` |
//! | `Unauthenticated` | 401 | `Authentication` |
//! | `PermissionDenied` | 403 with `SignatureDoesNotMatch`, `InvalidAccessKeyId`, `AuthenticationFailed`, `InvalidToken`, `ExpiredToken`, or Azure's "…formed correctly including the signature" | `Authentication` |
//! | `PermissionDenied` | other 403 | `Permission` |
//! | `Precondition`, `AlreadyExists` | 409, 412 | `Conflict` |
//! | `NotSupported`, `NotImplemented` | | `Unsupported` |
//! | `InvalidPath`, `UnknownConfigurationKey` | | `InvalidConfig` |
//! | `Generic` with a status | 400 → `InvalidInput`, 408/504 → `Timeout`, 429/503 → `RateLimited`, other 5xx → `Connection` | |
//! | `Generic`, transport | a [`TransportClassifier`]'s answer, else an I/O error's kind, else timeout → `Timeout` | |
//!
//! `object_store`'s HTTP client error type exists only with its cloud features, which this crate
//! does not enable: a crate that does (connector-object-store) passes a [`TransportClassifier`]
//! ([`crate::StoreRoot::with_transport_classifier`]) to tell timeouts from refused connections.
//!
//! Errors name the object by URL or path. `object_store`'s own messages name the request URL but
//! never a credential: `SigV4`, shared-key and OAuth credentials travel in headers, and SAS query
//! strings are not part of its messages (see [`redact_query`], applied anyway). The
//! `object_store` error is not attached as the source for the same reason: its text, redacted,
//! is the message.

use connector_core::{Error, ErrorKind, Location};

/// Tells the kind of a transport error in an `object_store` error's source chain (called for each
/// error of the chain; `None`: not one it knows).
pub type TransportClassifier = fn(&(dyn std::error::Error + 'static)) -> Option<ErrorKind>;

/// Where an object is, for an error: a URL (`s3://bucket/key`) or a local path.
#[must_use]
pub fn location_of(name: &str) -> Location {
    if name.contains("://") {
        Location::url(name)
    } else {
        Location::file(name)
    }
}

/// Convert an `object_store` error about `url` into a connector error of `connector`
/// (`"s3"`, `"azure"`, `"file"`, …) during `operation`.
#[must_use]
pub fn map_store_error(
    err: &object_store::Error,
    connector: &'static str,
    operation: &'static str,
    url: &str,
) -> Error {
    store_error_with(err, url, None)
        .with_connector(connector)
        .with_operation(operation)
}

/// Convert an `object_store` error about the object `name` (URL or path) into a connector error,
/// without connector or operation (the caller sets them), refining transport errors with
/// `transport`.
#[must_use]
pub fn store_error_with(
    err: &object_store::Error,
    name: &str,
    transport: Option<TransportClassifier>,
) -> Error {
    let (kind, status, text) = classify_with(err, transport);
    let mut e = Error::new(kind, text).with_location(location_of(name));
    if let Some(s) = status {
        e = e.with_vendor_code(i64::from(s));
    }
    // The source is not attached: its Display could carry a request URL with a SAS query
    // string. The redacted text above keeps everything else it said.
    e
}

/// The kind, HTTP status and redacted message of an `object_store` error.
#[must_use]
pub fn classify(err: &object_store::Error) -> (ErrorKind, Option<u16>, String) {
    classify_with(err, None)
}

/// [`classify`], asking `transport` about the errors of a transport failure's source chain.
#[must_use]
pub fn classify_with(
    err: &object_store::Error,
    transport: Option<TransportClassifier>,
) -> (ErrorKind, Option<u16>, String) {
    use object_store::Error as E;
    let text = redact_query(&err.to_string());
    let status = find_status(&text);
    let kind = match err {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::Unauthenticated { .. } => ErrorKind::Authentication,
        E::PermissionDenied { .. } => {
            if is_bad_credential(&text) {
                ErrorKind::Authentication
            } else {
                ErrorKind::Permission
            }
        }
        E::Precondition { .. } | E::AlreadyExists { .. } | E::NotModified { .. } => {
            ErrorKind::Conflict
        }
        E::NotSupported { .. } | E::NotImplemented { .. } => ErrorKind::Unsupported,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorKind::InvalidConfig,
        E::JoinError { .. } => ErrorKind::Internal,
        _ => kind_of_generic(err, status, &text, transport),
    };
    (kind, status, text)
}

/// Re-label an error under another connector name: find an `object_store` error in its source
/// chain and classify it again, set `connector` (keeping the previous connector name, such as
/// a format's, as the `format` context), the operation and the object URL.
#[must_use]
pub fn refine(e: Error, connector: &'static str, operation: &'static str, url: &str) -> Error {
    if e.connector() == Some(connector) {
        return e
            .with_operation(operation)
            .with_location(Location::url(url));
    }
    rebuild(e, connector, operation).with_location(Location::url(url))
}

/// Name `connector` and `operation` in an error (where not set yet). An error that already names
/// another connector (a format's error, `"parquet"`) is rebuilt as [`refine`] does, keeping
/// that name as the `format` context.
#[must_use]
pub fn relabel(e: Error, connector: &'static str, operation: &'static str) -> Error {
    match e.connector() {
        None => e.with_connector(connector).with_operation(operation),
        Some(c) if c == connector => e.with_operation(operation),
        Some(_) => rebuild(e, connector, operation),
    }
}

fn rebuild(e: Error, connector: &'static str, operation: &'static str) -> Error {
    let mut store_err: Option<&object_store::Error> = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = cur {
        if let Some(os) = s.downcast_ref::<object_store::Error>() {
            store_err = Some(os);
            break;
        }
        cur = s.source();
    }
    let (kind, status, message) = match store_err {
        Some(os) => {
            let (k, s, _) = classify(os);
            (k, s, redact_query(e.message()))
        }
        None => (e.kind(), None, redact_query(e.message())),
    };
    let mut out = Error::new(kind, message)
        .with_connector(connector)
        .with_operation(e.operation().map_or(operation, |_| operation));
    if kind == e.kind() {
        out = out.with_status(e.status());
    }
    if let Some(from) = e.connector() {
        out = out.with_context("format", from.to_owned());
    }
    for (k, v) in e.context() {
        out = out.with_context(k, v);
    }
    if let Some(loc) = e.location() {
        out = out.with_location(loc.clone());
    }
    if let Some(s) = status.map(i64::from).or(e.vendor_code()) {
        out = out.with_vendor_code(s);
    }
    if let Some(r) = e.retry_after() {
        out = out.with_retry_after(r);
    }
    if store_err.is_none() {
        // A codec's error (arrow, parquet): safe to keep as the source.
        out = out.with_source(e);
    }
    out
}

fn kind_of_generic(
    err: &object_store::Error,
    status: Option<u16>,
    text: &str,
    transport: Option<TransportClassifier>,
) -> ErrorKind {
    if text.contains("NoSuchBucket")
        || text.contains("ContainerNotFound")
        || text.contains("NoSuchKey")
    {
        return ErrorKind::NotFound;
    }
    if is_bad_credential(text) {
        return ErrorKind::Authentication;
    }
    if let Some(s) = status {
        return match s {
            400 => ErrorKind::InvalidInput,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            409 | 412 => ErrorKind::Conflict,
            429 | 503 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::Connection,
            _ => ErrorKind::Io,
        };
    }
    // Walk the source chain for the transport error and its kind.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        if let Some(kind) = transport.and_then(|t| t(s)) {
            return kind;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Error::from(std::io::Error::new(io.kind(), "")).kind();
        }
        source = s.source();
    }
    if text.contains("timed out") || text.contains("timeout") {
        ErrorKind::Timeout
    } else {
        ErrorKind::Io
    }
}

fn is_bad_credential(text: &str) -> bool {
    [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AuthenticationFailed",
        "InvalidToken",
        "ExpiredToken",
        "AccessKeyNotFound",
        // Azure (and Azurite, which answers AuthorizationFailure) on a bad shared-key signature.
        "including the signature",
    ]
    .iter()
    .any(|c| text.contains(c))
}

/// The HTTP status in an `object_store` message (`... status code: 403 Forbidden ...`).
fn find_status(text: &str) -> Option<u16> {
    const MARKERS: [&str; 2] = ["status code: ", "status: "];
    for m in MARKERS {
        if let Some(pos) = text.find(m) {
            let digits: String = text[pos + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(s) = digits.parse::<u16>()
                && (100..600).contains(&s)
            {
                return Some(s);
            }
        }
    }
    None
}

/// Remove query strings from every URL in `text` (a SAS token travels in the query string).
#[must_use]
pub fn redact_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        // Copy through the scheme separator, then the URL up to whitespace.
        out.push_str(&rest[..pos + 3]);
        rest = &rest[pos + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '>')
            .unwrap_or(rest.len());
        let url = &rest[..end];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?<redacted>");
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(msg: &str) -> Box<dyn std::error::Error + Send + Sync> {
        msg.to_owned().into()
    }

    #[test]
    fn kinds_by_variant_and_status() {
        let url = "s3://b/k";
        let nf = object_store::Error::NotFound {
            path: "k".into(),
            source: boxed("x"),
        };
        let e = map_store_error(&nf, "s3", "read", url);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.location().and_then(|l| l.url.as_deref()), Some(url));
        assert_eq!(e.connector(), Some("s3"));
        assert_eq!(e.operation(), Some("read"));

        let sig = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: boxed("<Code>SignatureDoesNotMatch</Code>"),
        };
        assert_eq!(
            map_store_error(&sig, "s3", "read", url).kind(),
            ErrorKind::Authentication
        );
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: boxed("<Code>AccessDenied</Code>"),
        };
        assert_eq!(
            map_store_error(&denied, "s3", "read", url).kind(),
            ErrorKind::Permission
        );
        let pre = object_store::Error::Precondition {
            path: "k".into(),
            source: boxed("x"),
        };
        assert_eq!(
            map_store_error(&pre, "s3", "write", url).kind(),
            ErrorKind::Conflict
        );
        for (msg, kind) in [
            (
                "Server returned non-2xx status code: 503 Service Unavailable: slow",
                ErrorKind::RateLimited,
            ),
            (
                "Server returned non-2xx status code: 500 Internal Server Error: x",
                ErrorKind::Connection,
            ),
            (
                "Server returned non-2xx status code: 400 Bad Request: x",
                ErrorKind::InvalidInput,
            ),
            (
                "Server returned error response: <Code>NoSuchBucket</Code>",
                ErrorKind::NotFound,
            ),
            ("request timed out", ErrorKind::Timeout),
        ] {
            let g = object_store::Error::Generic {
                store: "S3",
                source: boxed(msg),
            };
            assert_eq!(map_store_error(&g, "s3", "read", url).kind(), kind, "{msg}");
        }
        let g = object_store::Error::Generic {
            store: "S3",
            source: boxed("Server returned non-2xx status code: 503 Service Unavailable"),
        };
        let e = map_store_error(&g, "s3", "read", url);
        assert!(e.is_temporary());
        assert_eq!(e.vendor_code(), Some(503));
    }

    #[test]
    fn query_strings_are_redacted() {
        let s = redact_query(
            "Error performing GET http://a.blob.core.windows.net/c/k?sv=2020&sig=SECRETSIG in 1s",
        );
        assert!(!s.contains("SECRETSIG"), "{s}");
        assert!(
            s.contains("http://a.blob.core.windows.net/c/k?<redacted> in 1s"),
            "{s}"
        );
        let g = object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: boxed("GET https://x/c/k?sig=TOPSECRET failed"),
        };
        let e = map_store_error(&g, "azure", "read", "az://c/k");
        assert!(!e.to_string().contains("TOPSECRET"));
        assert!(!format!("{e:?}").contains("TOPSECRET"));
    }
}
