//! Mapping of [`object_store::Error`] into the connector error.
//!
//! The generic mapping (variants, HTTP statuses, error codes in response bodies, redaction of
//! query strings) lives in [`connector_file::store_error`], shared with local files; it is
//! re-exported here. This crate adds what needs `object_store`'s cloud features:
//! [`transport_kind`] tells a timeout from a refused or reset connection in the HTTP client's
//! errors. Every connector built here passes it to connector-file's `StoreRoot`; elsewhere pass
//! it to [`store_error_with`].
//!
//! Every error names the connector (`s3`, `azure`, `gcs`, `http_files`), the operation and the
//! object's URL (`s3://bucket/key`), and never a credential.

use connector_core::ErrorKind;

pub use connector_file::store_error::{
    classify, map_store_error, redact_query, refine, store_error_with,
};

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

    #[test]
    fn errors_name_this_connector_and_the_url() {
        // The classification itself is tested in connector-file (`store_error`).
        let url = "s3://b/k";
        let nf = object_store::Error::NotFound {
            path: "k".into(),
            source: "x".into(),
        };
        let e = store_error_with(&nf, url, Some(transport_kind))
            .with_connector("s3")
            .with_operation("read");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.connector(), Some("s3"));
        assert_eq!(e.operation(), Some("read"));
        assert_eq!(e.location().and_then(|l| l.url.as_deref()), Some(url));
        let plain = std::io::Error::other("not an HTTP error");
        assert_eq!(transport_kind(&plain), None);
    }
}
