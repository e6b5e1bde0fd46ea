//! Mapping of [`object_store::Error`] into the connector error.
//!
//! The generic mapping (variants, HTTP statuses, error codes in response bodies, redaction of
//! query strings) lives in [`connector_file::store_error`], shared with local files; it is
//! re-exported here. This crate adds what needs `object_store`'s cloud features:
//! [`transport_kind`] tells a timeout from a refused or reset connection in the HTTP client's
//! errors, and every connector built here passes it to connector-file.
//!
//! Every error names the connector (`s3`, `azure`, `gcs`, `http_files`), the operation and the
//! object's URL (`s3://bucket/key`), and never a credential.

use connector_core::ErrorKind;

pub use connector_file::store_error::{classify, redact_query, refine};

/// Convert an `object_store` error about `url` into a connector error of `connector`, with
/// this crate's [`transport_kind`].
#[must_use]
pub fn map_store_error(
    err: &object_store::Error,
    connector: &'static str,
    operation: &'static str,
    url: &str,
) -> connector_core::Error {
    connector_file::store_error::store_error_with(err, url, Some(transport_kind))
        .with_connector(connector)
        .with_operation(operation)
}

/// The kind of a transport error of `object_store`'s HTTP client (`None` for other errors, and
/// always without a cloud feature).
#[must_use]
pub fn transport_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    #[cfg(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http"))]
    if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
        use object_store::client::HttpErrorKind;
        return Some(match h.kind() {
            HttpErrorKind::Timeout => ErrorKind::Timeout,
            HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                ErrorKind::Connection
            }
            HttpErrorKind::Decode => ErrorKind::Decode,
            _ => ErrorKind::Io,
        });
    }
    #[cfg(not(any(feature = "s3", feature = "azure", feature = "gcs", feature = "http")))]
    let _ = err;
    None
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
