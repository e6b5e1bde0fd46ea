//! What a caller asks of a source or a sink: read requests with a small filter language,
//! partitions, dataset descriptions, write requests and reports.

use std::fmt;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

/// What to read: a named dataset (table, file glob, endpoint, collection) or a native query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadTarget {
    /// A dataset as listed by [`crate::Source::discover`].
    Dataset(String),
    /// A query in the backend's own language (SQL, a GraphQL document, a `MongoDB` pipeline as JSON).
    Query(String),
}

impl fmt::Display for ReadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dataset(d) => write!(f, "dataset {d}"),
            Self::Query(q) => write!(f, "query {q}"),
        }
    }
}

/// A read request. Build with [`ReadRequest::dataset`] or [`ReadRequest::query`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReadRequest {
    /// What to read.
    pub target: ReadTarget,
    /// Columns to return, in this order; `None` for all.
    pub projection: Option<Vec<String>>,
    /// Rows to keep; `None` for all.
    pub filter: Option<Expr>,
    /// At most this many rows in total (over all partitions).
    pub limit: Option<usize>,
    /// Preferred rows per batch.
    pub batch_rows: Option<usize>,
    /// Preferred bytes per batch (Arrow memory size, approximate).
    pub batch_bytes: Option<usize>,
}

impl ReadRequest {
    /// Default rows per batch when the caller gives no hint.
    pub const DEFAULT_BATCH_ROWS: usize = 8192;

    /// Read a whole dataset.
    pub fn dataset(name: impl Into<String>) -> Self {
        Self::new(ReadTarget::Dataset(name.into()))
    }

    /// Run a native query.
    pub fn query(query: impl Into<String>) -> Self {
        Self::new(ReadTarget::Query(query.into()))
    }

    fn new(target: ReadTarget) -> Self {
        Self {
            target,
            projection: None,
            filter: None,
            limit: None,
            batch_rows: None,
            batch_bytes: None,
        }
    }

    /// Keep only these columns, in this order.
    #[must_use]
    pub fn with_projection<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.projection = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Keep only rows matching `filter`.
    #[must_use]
    pub fn with_filter(mut self, filter: Expr) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Return at most `limit` rows.
    #[must_use]
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Preferred rows per batch.
    #[must_use]
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = Some(rows.max(1));
        self
    }

    /// Preferred bytes per batch.
    #[must_use]
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = Some(bytes.max(1));
        self
    }

    /// The dataset name, if the target is a dataset.
    #[must_use]
    pub fn dataset_name(&self) -> Option<&str> {
        match &self.target {
            ReadTarget::Dataset(d) => Some(d),
            ReadTarget::Query(_) => None,
        }
    }

    /// The rows-per-batch hint or [`Self::DEFAULT_BATCH_ROWS`].
    #[must_use]
    pub fn batch_rows_or_default(&self) -> usize {
        self.batch_rows.unwrap_or(Self::DEFAULT_BATCH_ROWS)
    }
}

/// A literal value in a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Literal {
    /// SQL NULL (comparisons with it are never true; use [`Expr::IsNull`]).
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string.
    String(String),
    /// A date, as days since 1970-01-01.
    Date(i32),
    /// An instant, as microseconds since 1970-01-01T00:00:00Z.
    TimestampMicros(i64),
}

impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Self::Date(d) => write!(f, "date({d})"),
            Self::TimestampMicros(t) => write!(f, "timestamp_us({t})"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CmpOp {
    /// The SQL spelling.
    #[must_use]
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
        }
    }
}

/// A small filter language that every backend can push down or evaluate locally
/// ([`crate::residual::evaluate`]). SQL three-valued logic: a comparison with NULL is not true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// `column op literal`
    Compare {
        /// Column name.
        column: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        value: Literal,
    },
    /// All must hold.
    And(Vec<Expr>),
    /// At least one must hold.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `column IS NULL`
    IsNull(String),
    /// `column IS NOT NULL`
    IsNotNull(String),
    /// `column IN (values…)`
    In {
        /// Column name.
        column: String,
        /// Candidate values.
        values: Vec<Literal>,
    },
}

impl Expr {
    /// `column = value`
    pub fn eq(column: impl Into<String>, value: impl Into<Literal>) -> Self {
        Self::cmp(column, CmpOp::Eq, value)
    }

    /// `column op value`
    pub fn cmp(column: impl Into<String>, op: CmpOp, value: impl Into<Literal>) -> Self {
        Self::Compare {
            column: column.into(),
            op,
            value: value.into(),
        }
    }

    /// `column IN (values…)`
    pub fn is_in<I, V>(column: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Literal>,
    {
        Self::In {
            column: column.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// `self AND other`
    #[must_use]
    pub fn and(self, other: Expr) -> Self {
        match self {
            Self::And(mut v) => {
                v.push(other);
                Self::And(v)
            }
            e => Self::And(vec![e, other]),
        }
    }

    /// `self OR other`
    #[must_use]
    pub fn or(self, other: Expr) -> Self {
        match self {
            Self::Or(mut v) => {
                v.push(other);
                Self::Or(v)
            }
            e => Self::Or(vec![e, other]),
        }
    }

    /// `NOT self`
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Self::Not(Box::new(self))
    }

    /// Every column the expression names, in order of appearance (with repeats removed).
    #[must_use]
    pub fn columns(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Compare { column, .. }
                | Expr::IsNull(column)
                | Expr::IsNotNull(column)
                | Expr::In { column, .. } => {
                    if !out.contains(&column.as_str()) {
                        out.push(column);
                    }
                }
                Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| walk(e, out)),
                Expr::Not(e) => walk(e, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// One independently readable slice of a read, as planned by [`crate::Source::plan`].
/// Serializable so that partitions can be shipped to other workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// The request this partition is part of.
    pub request: ReadRequest,
    /// 0-based index among the planned partitions.
    pub index: usize,
    /// How many partitions were planned.
    pub count: usize,
    /// Backend-specific description (key range, file list, snapshot id, page range …).
    pub spec: serde_json::Value,
    /// Estimated rows, if known.
    pub row_estimate: Option<u64>,
}

impl Partition {
    /// The single partition of an unpartitioned read.
    #[must_use]
    pub fn single(request: ReadRequest) -> Self {
        Self {
            request,
            index: 0,
            count: 1,
            spec: serde_json::Value::Null,
            row_estimate: None,
        }
    }
}

/// A dataset a source offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Name to use in [`ReadRequest::dataset`].
    pub name: String,
    /// The Arrow schema a full read returns.
    pub schema: SchemaRef,
    /// Primary key columns, if the backend knows them.
    pub primary_key: Vec<String>,
    /// Estimated row count, if the backend knows it.
    pub row_estimate: Option<u64>,
}

/// How a sink applies the incoming rows to the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "keys")]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace the target's rows with the incoming rows.
    Overwrite,
    /// Insert rows, replacing existing rows with equal keys.
    Upsert(Vec<String>),
    /// Delete the target's rows whose keys equal an incoming row's keys.
    Delete(Vec<String>),
}

/// What a sink does when incoming columns differ from the target's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaDriftPolicy {
    /// Any difference is a [`crate::ErrorKind::SchemaMismatch`] error.
    #[default]
    Fail,
    /// Add incoming columns the target lacks (nullable); missing incoming columns are written as NULL.
    AddColumns,
    /// Drop incoming columns the target lacks.
    IgnoreExtra,
}

/// A write request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WriteRequest {
    /// Table, file path, object prefix, endpoint or collection.
    pub target: String,
    /// How rows are applied.
    pub mode: WriteMode,
    /// Create the target from the stream's schema when it does not exist.
    pub create_if_missing: bool,
    /// What to do about schema differences.
    pub schema_drift: SchemaDriftPolicy,
}

impl WriteRequest {
    /// Append to `target`, creating it if missing, failing on schema drift.
    pub fn append(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            mode: WriteMode::Append,
            create_if_missing: true,
            schema_drift: SchemaDriftPolicy::Fail,
        }
    }

    /// Overwrite `target`, creating it if missing.
    pub fn overwrite(target: impl Into<String>) -> Self {
        Self {
            mode: WriteMode::Overwrite,
            ..Self::append(target)
        }
    }

    /// Upsert into `target` by `keys`.
    pub fn upsert<I, S>(target: impl Into<String>, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            mode: WriteMode::Upsert(keys.into_iter().map(Into::into).collect()),
            ..Self::append(target)
        }
    }

    /// Delete from `target` by `keys`.
    pub fn delete<I, S>(target: impl Into<String>, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            mode: WriteMode::Delete(keys.into_iter().map(Into::into).collect()),
            create_if_missing: false,
            ..Self::append(target)
        }
    }

    /// Set whether a missing target is created.
    #[must_use]
    pub fn with_create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Set the schema-drift policy.
    #[must_use]
    pub fn with_schema_drift(mut self, policy: SchemaDriftPolicy) -> Self {
        self.schema_drift = policy;
        self
    }
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WriteReport {
    /// Rows received from the stream and applied (appended, upserted or used as delete keys).
    pub rows: u64,
    /// Rows actually deleted, for [`WriteMode::Delete`] where the backend reports it.
    pub rows_deleted: Option<u64>,
    /// Arrow bytes received.
    pub bytes: u64,
    /// Wall time of the write.
    pub elapsed: Duration,
    /// Columns added to the target under [`SchemaDriftPolicy::AddColumns`].
    pub columns_added: Vec<String>,
    /// Incoming columns dropped under [`SchemaDriftPolicy::IgnoreExtra`].
    pub columns_ignored: Vec<String>,
    /// Objects, files or tables written.
    pub outputs: Vec<String>,
}

impl WriteReport {
    /// A report of `rows` rows and `bytes` bytes written in `elapsed`.
    #[must_use]
    pub fn new(rows: u64, bytes: u64, elapsed: Duration) -> Self {
        Self {
            rows,
            bytes,
            elapsed,
            ..Self::default()
        }
    }
}
