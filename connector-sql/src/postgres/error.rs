//! Conversion of driver and pool errors into [`connector_core::Error`].

use connector_core::{Error, ErrorKind, ErrorStatus, Location};

use super::tls::TlsError;

/// The connector name every error carries.
pub(crate) const CONNECTOR: &str = "postgres";

/// Kind and status for a SQLSTATE.
pub(crate) fn classify_sqlstate(code: &str) -> (ErrorKind, ErrorStatus) {
    use ErrorKind as K;
    use ErrorStatus::{Permanent as P, Temporary as T};
    match code {
        "28P01" | "28000" => (K::Authentication, P),
        "42501" => (K::Permission, P),
        "3D000" | "3F000" | "42P01" | "42703" | "42883" | "42704" => (K::NotFound, P),
        "57014" => (K::Timeout, T),
        "23505" => (K::Conflict, P),
        "40001" | "40P01" | "55P03" => (K::Conflict, T),
        "0A000" => (K::Unsupported, P),
        "57P01" | "57P02" | "57P03" => (K::Connection, T),
        c if c.starts_with("08") => (K::Connection, T),
        c if c.starts_with("53") => (K::Connection, T),
        c if c.starts_with("22") || c.starts_with("23") => (K::InvalidInput, P),
        _ => (K::Query, P),
    }
}

/// Convert a driver error. `operation` is `"read"`, `"write"`, …; `table` where known.
pub(crate) fn map_pg(
    e: &tokio_postgres::Error,
    operation: &'static str,
    table: Option<&str>,
) -> Error {
    let err = if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let (kind, status) = classify_sqlstate(code);
        let mut msg = db.message().to_owned();
        if let Some(d) = db.detail() {
            msg.push_str(" (detail: ");
            msg.push_str(d);
            msg.push(')');
        }
        if let Some(h) = db.hint() {
            msg.push_str(" (hint: ");
            msg.push_str(h);
            msg.push(')');
        }
        let mut err = Error::new(kind, msg)
            .with_status(status)
            .with_sqlstate(code);
        let mut loc = Location::default();
        if let Some(t) = db
            .table()
            .map(ToOwned::to_owned)
            .or_else(|| table.map(ToOwned::to_owned))
        {
            loc = loc.with_table(match db.schema() {
                Some(s) if db.table().is_some() => format!("{s}.{t}"),
                _ => t,
            });
        }
        if let Some(c) = db.column() {
            loc = loc.with_column(c);
        }
        if !loc.is_empty() {
            err = err.with_location(loc);
        }
        err
    } else if let Some(tls) = find_tls(e) {
        // Never temporary: retrying a rejected certificate or a broken handshake only hammers.
        let mut err = Error::new(ErrorKind::Connection, tls.to_string()).permanent();
        if let Some(t) = table {
            err = err.with_location(Location::table(t));
        }
        err
    } else {
        // Not a server error: the connection failed or broke.
        let io = find_io(e);
        let kind = match io.map(std::io::Error::kind) {
            Some(std::io::ErrorKind::TimedOut) => ErrorKind::Timeout,
            _ if e.to_string().contains("timeout") => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        let mut err = Error::new(kind, e.to_string()).temporary();
        if let Some(t) = table {
            err = err.with_location(Location::table(t));
        }
        err
    };
    err.with_connector(CONNECTOR).with_operation(operation)
}

fn find_tls(e: &tokio_postgres::Error) -> Option<&TlsError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        if let Some(t) = s.downcast_ref::<TlsError>() {
            return Some(t);
        }
        cur = s.source();
    }
    None
}

fn find_io(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = s.source();
    }
    None
}

/// Convert a pool error.
pub(crate) fn map_pool(e: deadpool_postgres::PoolError, operation: &'static str) -> Error {
    use deadpool_postgres::PoolError as PE;
    match e {
        PE::Backend(b) => map_pg(&b, operation, None),
        PE::Timeout(t) => Error::new(
            ErrorKind::Timeout,
            format!("timed out waiting for a connection ({t:?}); is the server reachable and the pool large enough?"),
        )
        .temporary()
        .with_connector(CONNECTOR)
        .with_operation(operation),
        other => Error::new(ErrorKind::Connection, other.to_string())
            .with_connector(CONNECTOR)
            .with_operation(operation),
    }
}

/// Attach connector and operation to one of our own errors.
pub(crate) fn ours(e: Error, operation: &'static str) -> Error {
    e.with_connector(CONNECTOR).with_operation(operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        assert_eq!(classify_sqlstate("28P01").0, ErrorKind::Authentication);
        assert_eq!(classify_sqlstate("42P01").0, ErrorKind::NotFound);
        assert_eq!(classify_sqlstate("42501").0, ErrorKind::Permission);
        assert_eq!(
            classify_sqlstate("57014"),
            (ErrorKind::Timeout, ErrorStatus::Temporary)
        );
        assert_eq!(classify_sqlstate("23505").0, ErrorKind::Conflict);
        assert_eq!(
            classify_sqlstate("08006"),
            (ErrorKind::Connection, ErrorStatus::Temporary)
        );
        assert_eq!(classify_sqlstate("40001").1, ErrorStatus::Temporary);
        assert_eq!(classify_sqlstate("40P01").1, ErrorStatus::Temporary);
        assert_eq!(classify_sqlstate("42601").0, ErrorKind::Query);
    }
}
