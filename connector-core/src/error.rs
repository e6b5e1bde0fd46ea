//! The one error type of every connector.
//!
//! An [`Error`] carries
//! - a [`ErrorKind`] that says *what* went wrong, independent of the backend;
//! - an [`ErrorStatus`] that says whether trying again may help (`Temporary`), will not help
//!   (`Permanent`), or was already tried and gave up (`Persistent`);
//! - the connector (`"postgres"`, `"csv"`, …) and the operation (`"read"`, `"write"`, …) it came from;
//! - a [`Location`] (file and line, object, table and column, URL) for errors about input;
//! - key-value context, a SQLSTATE or vendor code where the backend has one, a server's
//!   `Retry-After`, and the source chain.
//!
//! Backends keep their own error enums private and convert into this type at their boundary.
//! Secrets must never be put into a message or context value.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Result alias used across the connectors.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer could not be reached or the connection broke.
    Connection,
    /// Credentials were missing or rejected.
    Authentication,
    /// Authenticated, but not allowed to do this.
    Permission,
    /// The dataset, table, object or endpoint does not exist.
    NotFound,
    /// The connector configuration is invalid.
    InvalidConfig,
    /// Input data (a file, a response body, a value) is invalid; see [`Error::location`].
    InvalidInput,
    /// The backend rejected or failed a query.
    Query,
    /// Data does not match the target's schema.
    SchemaMismatch,
    /// The backend does not support this operation, type or option.
    Unsupported,
    /// The operation did not finish in time.
    Timeout,
    /// The peer asked us to slow down.
    RateLimited,
    /// A circuit breaker is open and failed the call fast.
    CircuitOpen,
    /// The operation was cancelled.
    Cancelled,
    /// Local or transport I/O failed.
    Io,
    /// Bytes could not be decoded into Arrow (corrupt or truncated data).
    Decode,
    /// A constraint or concurrent write conflicted (unique violation, precondition failed).
    Conflict,
    /// A bug or an unexpected state inside a connector.
    Internal,
}

impl ErrorKind {
    /// The status an error of this kind gets unless the backend says otherwise.
    #[must_use]
    pub fn default_status(self) -> ErrorStatus {
        match self {
            Self::Connection | Self::Timeout | Self::RateLimited | Self::Io => {
                ErrorStatus::Temporary
            }
            _ => ErrorStatus::Permanent,
        }
    }

    /// A short lower-case name, stable for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Authentication => "authentication",
            Self::Permission => "permission",
            Self::NotFound => "not found",
            Self::InvalidConfig => "invalid config",
            Self::InvalidInput => "invalid input",
            Self::Query => "query",
            Self::SchemaMismatch => "schema mismatch",
            Self::Unsupported => "unsupported",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate limited",
            Self::CircuitOpen => "circuit open",
            Self::Cancelled => "cancelled",
            Self::Io => "io",
            Self::Decode => "decode",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying the same operation again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// Trying again will not help (bad config, bad input, missing table).
    Permanent,
    /// Trying again may help (connection reset, timeout, rate limit).
    Temporary,
    /// It was temporary, but a retry layer already gave up; outer layers must not retry again.
    Persistent,
}

impl fmt::Display for ErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permanent => "permanent",
            Self::Temporary => "temporary",
            Self::Persistent => "persistent",
        })
    }
}

/// Where in the input an error was found. Every field is optional; set what is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// File path or object key.
    pub file: Option<String>,
    /// 1-based line in a text file.
    pub line: Option<u64>,
    /// 0-based record (row) index within the file, sheet or result.
    pub row: Option<u64>,
    /// Byte offset within the file or body.
    pub byte_offset: Option<u64>,
    /// Table, collection, sheet or endpoint name.
    pub table: Option<String>,
    /// Column or field name.
    pub column: Option<String>,
    /// URL of a request (never with credentials in it).
    pub url: Option<String>,
}

impl Location {
    /// A location in a file or object.
    #[must_use]
    pub fn file(path: impl Into<String>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }

    /// A location in a table (or collection, sheet, endpoint).
    #[must_use]
    pub fn table(name: impl Into<String>) -> Self {
        Self {
            table: Some(name.into()),
            ..Self::default()
        }
    }

    /// A location at a URL.
    #[must_use]
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// Set the 1-based line.
    #[must_use]
    pub fn with_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// Set the 0-based row.
    #[must_use]
    pub fn with_row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self
    }

    /// Set the byte offset.
    #[must_use]
    pub fn with_byte_offset(mut self, offset: u64) -> Self {
        self.byte_offset = Some(offset);
        self
    }

    /// Set the column.
    #[must_use]
    pub fn with_column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    /// Set the table.
    #[must_use]
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// True when no field is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(url) = &self.url {
            parts.push(format!("url {url}"));
        }
        if let Some(file) = &self.file {
            parts.push(format!("file {file}"));
        }
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(row) = self.row {
            parts.push(format!("row {row}"));
        }
        if let Some(off) = self.byte_offset {
            parts.push(format!("byte {off}"));
        }
        if let Some(table) = &self.table {
            parts.push(format!("table {table}"));
        }
        if let Some(column) = &self.column {
            parts.push(format!("column {column}"));
        }
        f.write_str(&parts.join(", "))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every connector operation. See the [module docs](self).
///
/// One pointer wide: the details live in a box, so `Result<T>` stays small on hot paths.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    status: ErrorStatus,
    message: String,
    connector: Option<Cow<'static, str>>,
    operation: Option<Cow<'static, str>>,
    location: Option<Box<Location>>,
    context: Vec<(&'static str, String)>,
    sqlstate: Option<String>,
    vendor_code: Option<i64>,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a human-readable message. The status is the kind's default.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            status: kind.default_status(),
            message: message.into(),
            connector: None,
            operation: None,
            location: None,
            context: Vec::new(),
            sqlstate: None,
            vendor_code: None,
            retry_after: None,
            source: None,
        }))
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for an [`ErrorKind::InvalidConfig`] error.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error at a location.
    pub fn invalid_input(message: impl Into<String>, location: Location) -> Self {
        Self::new(ErrorKind::InvalidInput, message).with_location(location)
    }

    /// Shorthand for an [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Set the connector name (`"postgres"`, `"csv"`, …) if not yet set.
    #[must_use]
    pub fn with_connector(mut self, connector: impl Into<Cow<'static, str>>) -> Self {
        if self.0.connector.is_none() {
            self.0.connector = Some(connector.into());
        }
        self
    }

    /// Set the operation (`"read"`, `"write"`, `"discover"`, …) if not yet set.
    #[must_use]
    pub fn with_operation(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        if self.0.operation.is_none() {
            self.0.operation = Some(operation.into());
        }
        self
    }

    /// Set the location, merging into an existing one (fields already set are kept).
    #[must_use]
    pub fn with_location(mut self, location: Location) -> Self {
        match &mut self.0.location {
            None => self.0.location = Some(Box::new(location)),
            Some(existing) => {
                let e = existing.as_mut();
                e.file = e.file.take().or(location.file);
                e.line = e.line.or(location.line);
                e.row = e.row.or(location.row);
                e.byte_offset = e.byte_offset.or(location.byte_offset);
                e.table = e.table.take().or(location.table);
                e.column = e.column.take().or(location.column);
                e.url = e.url.take().or(location.url);
            }
        }
        self
    }

    /// Add a key-value pair of context. Never put a secret here.
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.0.context.push((key, value.to_string()));
        self
    }

    /// Attach the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// Set the SQLSTATE reported by a database.
    #[must_use]
    pub fn with_sqlstate(mut self, sqlstate: impl Into<String>) -> Self {
        self.0.sqlstate = Some(sqlstate.into());
        self
    }

    /// Set the vendor-specific error code.
    #[must_use]
    pub fn with_vendor_code(mut self, code: i64) -> Self {
        self.0.vendor_code = Some(code);
        self
    }

    /// Set how long the peer asked us to wait before trying again.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.0.retry_after = Some(after);
        self
    }

    /// Override the status.
    #[must_use]
    pub fn with_status(mut self, status: ErrorStatus) -> Self {
        self.0.status = status;
        self
    }

    /// Mark as temporary: a retry may succeed.
    #[must_use]
    pub fn temporary(self) -> Self {
        self.with_status(ErrorStatus::Temporary)
    }

    /// Mark as permanent: a retry will not help.
    #[must_use]
    pub fn permanent(self) -> Self {
        self.with_status(ErrorStatus::Permanent)
    }

    /// Mark a temporary error as persistent: retried and given up on. Other statuses are kept.
    #[must_use]
    pub fn persist(mut self) -> Self {
        if self.0.status == ErrorStatus::Temporary {
            self.0.status = ErrorStatus::Persistent;
        }
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Whether a retry may help.
    #[must_use]
    pub fn status(&self) -> ErrorStatus {
        self.0.status
    }

    /// True when the status is [`ErrorStatus::Temporary`].
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        self.0.status == ErrorStatus::Temporary
    }

    /// The message, without connector, operation or context.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The connector name, if set.
    #[must_use]
    pub fn connector(&self) -> Option<&str> {
        self.0.connector.as_deref()
    }

    /// The operation, if set.
    #[must_use]
    pub fn operation(&self) -> Option<&str> {
        self.0.operation.as_deref()
    }

    /// Where in the input the error was found, if known.
    #[must_use]
    pub fn location(&self) -> Option<&Location> {
        self.0.location.as_deref()
    }

    /// Key-value context.
    #[must_use]
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.0.context
    }

    /// SQLSTATE, for database errors.
    #[must_use]
    pub fn sqlstate(&self) -> Option<&str> {
        self.0.sqlstate.as_deref()
    }

    /// Vendor-specific error code.
    #[must_use]
    pub fn vendor_code(&self) -> Option<i64> {
        self.0.vendor_code
    }

    /// How long the peer asked us to wait, if it said.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.connector, &self.0.operation) {
            (Some(c), Some(o)) => write!(f, "{c} {o}: ")?,
            (Some(c), None) => write!(f, "{c}: ")?,
            (None, Some(o)) => write!(f, "{o}: ")?,
            (None, None) => {}
        }
        write!(
            f,
            "{} error ({}): {}",
            self.0.kind, self.0.status, self.0.message
        )?;
        if let Some(loc) = self.0.location.as_deref().filter(|l| !l.is_empty()) {
            write!(f, " at {loc}")?;
        }
        if let Some(s) = &self.0.sqlstate {
            write!(f, " [sqlstate {s}]")?;
        }
        if let Some(c) = self.0.vendor_code {
            write!(f, " [code {c}]")?;
        }
        if !self.0.context.is_empty() {
            f.write_str(" {")?;
            for (i, (k, v)) in self.0.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
            }
            f.write_str("}")?;
        }
        if let Some(src) = &self.0.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("status", &self.0.status)
            .field("message", &self.0.message);
        if let Some(c) = &self.0.connector {
            d.field("connector", c);
        }
        if let Some(o) = &self.0.operation {
            d.field("operation", o);
        }
        if let Some(l) = &self.0.location {
            d.field("location", l);
        }
        if !self.0.context.is_empty() {
            d.field("context", &self.0.context);
        }
        if let Some(s) = &self.0.sqlstate {
            d.field("sqlstate", s);
        }
        if let Some(c) = &self.0.vendor_code {
            d.field("vendor_code", c);
        }
        if let Some(r) = &self.0.retry_after {
            d.field("retry_after", r);
        }
        if let Some(s) = &self.0.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        use arrow::error::ArrowError as A;
        // An ExternalError may already wrap one of ours (errors cross Arrow APIs that way).
        if let A::ExternalError(inner) = e {
            return match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::new(ErrorKind::Internal, "external error").with_source(other),
            };
        }
        let kind = match &e {
            A::ParseError(_)
            | A::CsvError(_)
            | A::JsonError(_)
            | A::ParquetError(_)
            | A::InvalidArgumentError(_) => ErrorKind::Decode,
            A::CastError(_) | A::SchemaError(_) => ErrorKind::SchemaMismatch,
            A::IoError(..) => ErrorKind::Io,
            A::NotYetImplemented(_) => ErrorKind::Unsupported,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::Permission,
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe => ErrorKind::Connection,
            K::TimedOut => ErrorKind::Timeout,
            K::InvalidData | K::UnexpectedEof => ErrorKind::Decode,
            _ => ErrorKind::Io,
        };
        Error::new(kind, e.to_string()).with_source(e)
    }
}

/// Turn our error into an `ArrowError` so it can cross Arrow APIs (e.g. a `RecordBatchReader`);
/// `From<ArrowError> for Error` recovers it unchanged.
impl From<Error> for arrow::error::ArrowError {
    fn from(e: Error) -> Self {
        arrow::error::ArrowError::ExternalError(Box::new(e))
    }
}

/// Attach connector and operation to the error of a `Result`.
pub trait ResultExt<T> {
    /// Set connector and operation on the error, if not yet set.
    fn during(self, connector: &'static str, operation: &'static str) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn during(self, connector: &'static str, operation: &'static str) -> Result<T> {
        self.map_err(|e| e.into().with_connector(connector).with_operation(operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_connector_operation_location_and_context() {
        let e = Error::new(ErrorKind::InvalidInput, "expected 3 fields, found 2")
            .with_connector("csv")
            .with_operation("read")
            .with_location(Location::file("data/a.csv").with_line(17))
            .with_context("delimiter", ',');
        let s = e.to_string();
        assert_eq!(
            s,
            "csv read: invalid input error (permanent): expected 3 fields, found 2 at file data/a.csv, line 17 {delimiter: ,}"
        );
    }

    #[test]
    fn default_status_by_kind_and_persist() {
        assert!(Error::new(ErrorKind::Connection, "x").is_temporary());
        assert_eq!(
            Error::new(ErrorKind::NotFound, "x").status(),
            ErrorStatus::Permanent
        );
        let p = Error::new(ErrorKind::Timeout, "x").persist();
        assert_eq!(p.status(), ErrorStatus::Persistent);
        // persist() never turns a permanent error into a persistent one
        assert_eq!(
            Error::new(ErrorKind::Query, "x").persist().status(),
            ErrorStatus::Permanent
        );
    }

    #[test]
    fn roundtrip_through_arrow_error_keeps_everything() {
        let e = Error::new(ErrorKind::Decode, "bad")
            .with_connector("parquet")
            .with_sqlstate("22P02");
        let a: arrow::error::ArrowError = e.into();
        let back: Error = a.into();
        assert_eq!(back.kind(), ErrorKind::Decode);
        assert_eq!(back.connector(), Some("parquet"));
        assert_eq!(back.sqlstate(), Some("22P02"));
    }

    #[test]
    fn first_connector_wins() {
        let e = Error::internal("x")
            .with_connector("inner")
            .with_connector("outer");
        assert_eq!(e.connector(), Some("inner"));
    }
}
