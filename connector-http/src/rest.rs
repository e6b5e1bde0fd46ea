//! REST endpoints as datasets: pagination of every common style, concurrent page fetches when
//! the total is known, incremental reads, and a sink that POSTs or PUTs records in batches.
//!
//! # Pagination
//! | style | config | next page | stops when |
//! |---|---|---|---|
//! | page number | `{"style": "page_number", "param": "page", "start": 1, "size_param": "per_page", "size": 100}` | `page + 1` | empty page, short page, total reached |
//! | offset/limit | `{"style": "offset_limit", "offset_param": "offset", "limit_param": "limit", "limit": 100}` (or `end_param` for `_start`/`_end` APIs) | `offset + limit` | empty page, short page, total reached |
//! | cursor | `{"style": "cursor", "param": "cursor", "pointer": "/meta/next"}` | cursor from the body | no cursor |
//! | next URL | `{"style": "next_url", "pointer": "/links/next"}` | URL from the body | no URL |
//! | `Link` header | `{"style": "link_header"}` | RFC 8288 `rel="next"` | no next link |
//!
//! The total comes from a header (`X-Total-Count`) or a pointer into the body (`total`). A
//! server that answers the same page twice, or hands out a cursor or next URL already seen, is
//! stopped with an error instead of looping forever (`max_pages` caps a read too).
//!
//! # Concurrency and order
//! With page-number or offset pagination and a known total, the first page tells how many pages
//! there are, and the rest are fetched `concurrency` at a time. Batches are still yielded in page
//! order (a bounded, ordered buffer), so memory holds at most `concurrency` pages whatever the
//! page count.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use connector_core::residual::{Pushed, apply};
use connector_core::{
    DatasetInfo, Error, ErrorKind, Location, Partition, ReadRequest, ReadTarget, Result,
    SendableRecordBatchStream, Sink, SinkCapabilities, Source, SourceCapabilities, WriteMode,
    WriteReport, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{
    ApiKeyLocation, Auth, Body, ClientConfig, ClientSettings, HttpClient, RequestSpec, Response,
};
use crate::records::{
    KeyOrder, ResponseFormat, extract_records, infer_schema, records_at, to_batch, value_as_cursor,
};

const NAME: &str = "rest";

/// HTTP method of a read endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReadMethod {
    /// GET (always retried on temporary errors).
    #[default]
    Get,
    /// POST (retried only if the endpoint is declared `idempotent`).
    Post,
}

/// How an endpoint pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request.
    #[default]
    None,
    /// `?page=N` (and optionally a page-size parameter).
    PageNumber {
        /// Page parameter.
        #[serde(default = "default_page_param")]
        param: String,
        /// First page number.
        #[serde(default = "default_one")]
        start: u64,
        /// Page-size parameter, if the API takes one.
        #[serde(default)]
        size_param: Option<String>,
        /// Page size to ask for.
        #[serde(default)]
        size: Option<u64>,
    },
    /// `?offset=N&limit=M`, or `?_start=N&_end=N+M` with `end_param`.
    OffsetLimit {
        /// Offset parameter.
        #[serde(default = "default_offset_param")]
        offset_param: String,
        /// Limit parameter (ignored when `end_param` is set).
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Exclusive end parameter, for APIs that take start/end instead of offset/limit.
        #[serde(default)]
        end_param: Option<String>,
        /// Rows per page.
        #[serde(default = "default_limit")]
        limit: u64,
    },
    /// A cursor from the body, sent back as a parameter.
    Cursor {
        /// Parameter that carries the cursor.
        #[serde(default = "default_cursor_param")]
        param: String,
        /// JSON pointer of the next cursor in the body.
        pointer: String,
    },
    /// The next page's URL from the body.
    NextUrl {
        /// JSON pointer of the next URL.
        pointer: String,
    },
    /// The next page's URL from an RFC 8288 `Link` header.
    LinkHeader,
}

fn default_page_param() -> String {
    "page".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_one() -> u64 {
    1
}
fn default_limit() -> u64 {
    100
}
fn default_concurrency() -> usize {
    1
}

/// Where the total row count is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotalFrom {
    /// A response header, e.g. `X-Total-Count`.
    #[serde(default)]
    pub header: Option<String>,
    /// A JSON pointer into the body, e.g. `/meta/total`.
    #[serde(default)]
    pub pointer: Option<String>,
}

/// Incremental reads: a parameter filled from the largest cursor value of the last read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Query parameter, e.g. `updated_since`.
    pub param: String,
    /// JSON pointer of the cursor field in each record, e.g. `/updated_at`.
    pub field: String,
    /// Value for the first read, if any.
    #[serde(default)]
    pub initial: Option<String>,
}

/// One endpoint: a dataset.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Dataset name.
    pub name: String,
    /// Path relative to `base_url` (or an absolute URL).
    pub path: String,
    /// Method.
    #[serde(default)]
    pub method: ReadMethod,
    /// Query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// JSON body (for POST).
    #[serde(default)]
    pub body: Option<Value>,
    /// JSON pointer of the records in a JSON body ("" for the root).
    #[serde(default)]
    pub records: String,
    /// Body format.
    #[serde(default)]
    pub format: ResponseFormat,
    /// Pagination.
    #[serde(default)]
    pub pagination: Pagination,
    /// Where the total count is, if the API gives one.
    #[serde(default)]
    pub total: Option<TotalFrom>,
    /// Pages fetched at once when the total is known.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Stop after this many pages.
    #[serde(default)]
    pub max_pages: Option<u64>,
    /// Incremental reads.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// POST reads may be retried.
    #[serde(default)]
    pub idempotent: bool,
    /// Explicit Arrow schema (arrow's JSON form); inferred from the first page otherwise.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub schema: Option<Schema>,
    /// Primary key fields, reported by discovery.
    #[serde(default)]
    pub primary_key: Vec<String>,
}

/// How the sink sends records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// A JSON array of records per request.
    #[default]
    JsonArray,
    /// NDJSON lines per request.
    Ndjson,
    /// One record per request (as a JSON object), for APIs without bulk endpoints.
    Object,
}

/// HTTP method of the sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WriteMethod {
    /// POST (retried only if declared idempotent).
    #[default]
    Post,
    /// PUT (retried).
    Put,
}

/// What the sink does after a batch fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnBatchError {
    /// Stop at the first failed batch.
    #[default]
    Fail,
    /// Send every batch, then fail listing every failed one.
    Continue,
}

/// Sink settings.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Method.
    #[serde(default)]
    pub method: WriteMethod,
    /// Body format.
    #[serde(default)]
    pub format: SinkFormat,
    /// Records per request (for array and NDJSON formats).
    #[serde(default = "default_limit")]
    pub batch_size: u64,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The endpoint tolerates a repeated request (POST retries are allowed).
    #[serde(default)]
    pub idempotent: bool,
    /// After a failed batch.
    #[serde(default)]
    pub on_error: OnBatchError,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            method: WriteMethod::Post,
            format: SinkFormat::JsonArray,
            batch_size: default_limit(),
            concurrency: 1,
            idempotent: false,
            on_error: OnBatchError::Fail,
        }
    }
}

/// Config of the `rest` kind.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Base URL, e.g. `https://api.example.com/v1/`.
    pub base_url: String,
    /// Authentication, headers, rate limit, timeout and retries (flattened: `auth`, `headers`,
    /// `requests_per_second`, `timeout_ms`, `retry` are keys of this config).
    #[serde(flatten)]
    pub client: ClientSettings,
    /// Endpoints, each a dataset.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Sink settings (the write target is a path relative to `base_url`).
    #[serde(default)]
    pub sink: SinkConfig,
}

impl RestConfig {
    fn client_config(&self) -> ClientConfig {
        ClientConfig::from(self.client.clone())
    }
}

struct Shared {
    config: RestConfig,
    base: url::Url,
    client: HttpClient,
    cursors: Mutex<BTreeMap<String, String>>,
}

/// A REST API as a source (and sink). Cheap to clone.
#[derive(Clone)]
pub struct Rest {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("base_url", &self.shared.base.as_str())
            .field("client", &self.shared.client)
            .finish()
    }
}

/// Parse a base URL, making sure relative paths join under it.
pub(crate) fn parse_base(base: &str, connector: &'static str) -> Result<url::Url> {
    let mut u = url::Url::parse(base).map_err(|e| {
        Error::invalid_config(format!("invalid base_url {base:?}: {e}"))
            .with_connector(connector)
            .with_operation("build")
    })?;
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(u)
}

impl Rest {
    /// Build from a config.
    pub fn new(config: RestConfig) -> Result<Self> {
        let base = parse_base(&config.base_url, NAME)?;
        if let Auth::ApiKey {
            location: ApiKeyLocation::Query,
            name,
            ..
        } = &config.client.auth
            && name.is_empty()
        {
            return Err(
                Error::invalid_config("api_key auth needs a parameter name").with_connector(NAME)
            );
        }
        let mut names = HashSet::new();
        for e in &config.endpoints {
            if !names.insert(e.name.as_str()) {
                return Err(Error::invalid_config(format!(
                    "endpoint name {:?} is used twice",
                    e.name
                ))
                .with_connector(NAME)
                .with_operation("build"));
            }
            if e.concurrency == 0 {
                return Err(Error::invalid_config(format!(
                    "endpoint {:?}: concurrency must be at least 1",
                    e.name
                ))
                .with_connector(NAME));
            }
        }
        let client = HttpClient::new(NAME, &config.client_config())?;
        let cursors = config
            .endpoints
            .iter()
            .filter_map(|e| {
                e.incremental
                    .as_ref()
                    .and_then(|i| i.initial.clone())
                    .map(|v| (e.name.clone(), v))
            })
            .collect();
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                base,
                client,
                cursors: Mutex::new(cursors),
            }),
        })
    }

    /// The client (for request counters).
    #[must_use]
    pub fn client(&self) -> &HttpClient {
        &self.shared.client
    }

    /// The incremental cursor of `endpoint`: the largest cursor value the last complete read
    /// saw (or the configured initial value). Persist it and hand it back with
    /// [`Rest::set_cursor`] to resume.
    #[must_use]
    pub fn cursor(&self, endpoint: &str) -> Option<String> {
        self.shared
            .cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(endpoint)
            .cloned()
    }

    /// Set the incremental cursor of `endpoint`.
    pub fn set_cursor(&self, endpoint: &str, value: impl Into<String>) {
        self.shared
            .cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(endpoint.to_owned(), value.into());
    }

    fn endpoint(&self, name: &str, op: &'static str) -> Result<&Endpoint> {
        self.shared
            .config
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("no endpoint named {name:?}"))
                    .with_connector(NAME)
                    .with_operation(op)
                    .with_context(
                        "endpoints",
                        self.shared
                            .config
                            .endpoints
                            .iter()
                            .map(|e| e.name.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    )
            })
    }

    fn url_for(&self, path: &str, op: &'static str) -> Result<url::Url> {
        self.shared
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| {
                Error::invalid_config(format!("invalid path {path:?}: {e}"))
                    .with_connector(NAME)
                    .with_operation(op)
            })
    }

    /// Fetch the first page and build the page stream.
    async fn open(
        &self,
        ep: &Endpoint,
        request: &ReadRequest,
        op: &'static str,
    ) -> Result<SendableRecordBatchStream> {
        let url = self.url_for(&ep.path, op)?;
        let mut base_query: Vec<(String, String)> = ep
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(inc) = &ep.incremental
            && let Some(v) = self.cursor(&ep.name)
        {
            base_query.push((inc.param.clone(), v));
        }
        let pager = Pager {
            rest: self.clone(),
            ep: Arc::new(ep.clone()),
            url,
            base_query,
            page_cap: ep.max_pages,
            // Without a filter, a limit caps the pages to fetch.
            limit: request
                .limit
                .filter(|_| request.filter.is_none())
                .map(|l| l as u64),
            step: 0,
            op,
        };
        let first = pager.fetch(pager.first_request()).await?;
        let schema: SchemaRef = if let Some(s) = &ep.schema {
            Arc::new(s.clone())
        } else {
            let inferred = infer_schema(&first.records, &first.url)
                .map_err(|e| e.with_connector(NAME).with_operation(op))?;
            // Columns in the server's field order, not serde_json's sorted key order.
            match KeyOrder::from_body(&first.body, ep.format, &ep.records) {
                Some(order) => order.apply(&inferred),
                None => inferred,
            }
        };
        // A limited read is partial: it must not move the incremental cursor.
        let tracker = CursorTracker::new(self.clone(), ep, request.limit.is_none());
        let page_stream = pager.pages(first);
        let schema2 = schema.clone();
        let batches = page_stream.map(move |page| {
            let page = page?;
            tracker.observe(&page.records);
            if page.last {
                tracker.commit();
            }
            to_batch(&page.records, &schema2, &page.url)
                .map_err(|e| e.with_connector(NAME).with_operation(op))
        });
        let stream = connector_core::RecordBatchStreamAdapter::boxed(
            schema,
            batches.try_filter(|b| futures::future::ready(b.num_rows() > 0)),
        );
        apply(stream, request, Pushed::NONE).map_err(|e| {
            e.with_connector(NAME)
                .with_operation(op)
                .with_location(Location::table(&ep.name))
        })
    }
}

/// Tracks the largest incremental cursor value of a read and stores it when the read completes.
struct CursorTracker {
    rest: Rest,
    endpoint: String,
    field: Option<String>,
    max: Mutex<Option<Value>>,
}

impl CursorTracker {
    fn new(rest: Rest, ep: &Endpoint, complete_read: bool) -> Self {
        Self {
            rest,
            endpoint: ep.name.clone(),
            field: ep
                .incremental
                .as_ref()
                .filter(|_| complete_read)
                .map(|i| i.field.clone()),
            max: Mutex::new(None),
        }
    }

    fn observe(&self, records: &[Value]) {
        let Some(field) = &self.field else { return };
        let mut max = self
            .max
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            if let Some(v) = r.pointer(field).filter(|v| !v.is_null())
                && max.as_ref().is_none_or(|m| cursor_greater(v, m))
            {
                *max = Some(v.clone());
            }
        }
    }

    fn commit(&self) {
        if let Some(v) = self
            .max
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(value_as_cursor)
        {
            self.rest.set_cursor(&self.endpoint, v);
        }
    }
}

/// Numbers compare as numbers, everything else as strings (ISO-8601 timestamps sort as text).
fn cursor_greater(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x > y,
        _ => value_as_cursor(a).unwrap_or_default() > value_as_cursor(b).unwrap_or_default(),
    }
}

/// One fetched page.
struct Page {
    records: Vec<Value>,
    /// The raw body (shared, not copied), for the field order of the first page.
    body: bytes::Bytes,
    url: String,
    next: Option<RequestSpec>,
    total: Option<u64>,
    hash: u64,
    /// No page follows (set by the pager on the page it yields last).
    last: bool,
    /// What identifies the next page (a cursor or a URL), for loop detection.
    next_key: Option<String>,
}

#[derive(Clone)]
struct Pager {
    rest: Rest,
    ep: Arc<Endpoint>,
    url: url::Url,
    base_query: Vec<(String, String)>,
    /// Fetch at most this many pages (`max_pages`, or what a limit needs).
    page_cap: Option<u64>,
    /// Rows the reader wants at most (a limit without a filter).
    limit: Option<u64>,
    /// Rows per page as the server serves them (it may cap the size asked for); set from the
    /// first page.
    step: u64,
    /// The operation errors name (`read`, `check`, `discover`).
    op: &'static str,
}

impl Pager {
    fn request(&self, url: url::Url, extra: Vec<(String, String)>) -> RequestSpec {
        let mut query = self.base_query.clone();
        query.extend(extra);
        RequestSpec {
            method: match self.ep.method {
                ReadMethod::Get => reqwest::Method::GET,
                ReadMethod::Post => reqwest::Method::POST,
            },
            url,
            query,
            body: self.ep.body.clone().map(Body::Json),
            idempotent: self.ep.idempotent,
        }
    }

    /// Parameters of page `index` (0-based) that starts at row `offset`.
    fn page_params(&self, index: u64, offset: u64) -> Vec<(String, String)> {
        match &self.ep.pagination {
            Pagination::PageNumber {
                param,
                start,
                size_param,
                size,
            } => {
                let mut q = vec![(param.clone(), (start + index).to_string())];
                if let (Some(p), Some(s)) = (size_param, size) {
                    q.push((p.clone(), s.to_string()));
                }
                q
            }
            Pagination::OffsetLimit {
                offset_param,
                limit_param,
                end_param,
                limit,
            } => {
                let off = offset;
                match end_param {
                    Some(end) => vec![
                        (offset_param.clone(), off.to_string()),
                        (end.clone(), (off + limit).to_string()),
                    ],
                    None => vec![
                        (offset_param.clone(), off.to_string()),
                        (limit_param.clone(), limit.to_string()),
                    ],
                }
            }
            _ => Vec::new(),
        }
    }

    fn first_request(&self) -> RequestSpec {
        self.request(self.url.clone(), self.page_params(0, 0))
    }

    /// The page size asked for, if the pagination style fixes one.
    fn page_size(&self) -> Option<u64> {
        match &self.ep.pagination {
            Pagination::PageNumber { size, .. } => *size,
            Pagination::OffsetLimit { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    async fn fetch(&self, spec: RequestSpec) -> Result<Page> {
        let resp = self
            .rest
            .shared
            .client
            .send(&spec, self.op)
            .await
            .map_err(|e| e.with_location(Location::table(&self.ep.name)))?;
        // CSV bodies go through connector-file's codec (async), before the sync page parsing.
        let csv = match self.ep.format {
            ResponseFormat::Csv => Some(crate::records::csv_records(&resp.body, &resp.url).await),
            _ => None,
        };
        self.parse(&spec, &resp, csv).map_err(|e| {
            e.with_connector(NAME)
                .with_operation(self.op)
                .with_location(Location::table(&self.ep.name))
        })
    }

    fn parse(
        &self,
        spec: &RequestSpec,
        resp: &Response,
        csv: Option<Result<Vec<Value>>>,
    ) -> Result<Page> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        resp.body.hash(&mut hasher);
        let hash = hasher.finish();
        let url = resp.url.clone();
        let (records, doc) = match self.ep.format {
            ResponseFormat::Json => {
                let doc = crate::records::parse_json(&resp.body, &url)?;
                let recs = records_at(doc.clone(), &self.ep.records, &url)?;
                (recs, Some(doc))
            }
            ResponseFormat::Ndjson => (
                extract_records(&resp.body, ResponseFormat::Ndjson, "", &url)?,
                None,
            ),
            ResponseFormat::Csv => (
                csv.unwrap_or_else(|| Err(Error::internal("CSV body was not decoded")))?,
                None,
            ),
        };
        let total = match &self.ep.total {
            None => None,
            Some(t) => {
                let from_header = t
                    .header
                    .as_ref()
                    .and_then(|h| resp.headers.get(h.as_str()))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.trim().parse().ok());
                let from_body = t
                    .pointer
                    .as_ref()
                    .and_then(|p| doc.as_ref()?.pointer(p)?.as_u64());
                from_header.or(from_body)
            }
        };
        let (next, next_key) = match &self.ep.pagination {
            Pagination::None | Pagination::PageNumber { .. } | Pagination::OffsetLimit { .. } => {
                (None, None)
            }
            Pagination::Cursor { param, pointer } => {
                match doc
                    .as_ref()
                    .and_then(|d| d.pointer(pointer))
                    .and_then(value_as_cursor)
                    .filter(|c| !c.is_empty())
                {
                    Some(c) => {
                        let mut q: Vec<(String, String)> = spec
                            .query
                            .iter()
                            .filter(|(k, _)| k != param)
                            .cloned()
                            .collect();
                        q.push((param.clone(), c.clone()));
                        let mut r = spec.clone();
                        r.query = q;
                        (Some(r), Some(c))
                    }
                    None => (None, None),
                }
            }
            Pagination::NextUrl { pointer } => match doc
                .as_ref()
                .and_then(|d| d.pointer(pointer))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(next) => {
                    let u = spec.url.join(next).map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("invalid next URL {next:?}: {e}"),
                        )
                        .with_location(Location::url(&url))
                    })?;
                    let mut r = spec.clone();
                    r.url = u.clone();
                    r.query = Vec::new();
                    (Some(r), Some(u.to_string()))
                }
                None => (None, None),
            },
            Pagination::LinkHeader => {
                let next = resp
                    .headers
                    .get_all(reqwest::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_link);
                match next {
                    Some(next) => {
                        let u = spec.url.join(&next).map_err(|e| {
                            Error::new(
                                ErrorKind::InvalidInput,
                                format!("invalid Link URL {next:?}: {e}"),
                            )
                            .with_location(Location::url(&url))
                        })?;
                        let mut r = spec.clone();
                        r.url = u.clone();
                        r.query = Vec::new();
                        (Some(r), Some(u.to_string()))
                    }
                    None => (None, None),
                }
            }
        };
        Ok(Page {
            records,
            body: resp.body.clone(),
            url,
            next,
            total,
            hash,
            last: false,
            next_key,
        })
    }

    /// The stream of pages, starting with the already fetched `first`.
    fn pages(self, first: Page) -> futures::stream::BoxStream<'static, Result<Page>> {
        let numbered = matches!(
            self.ep.pagination,
            Pagination::PageNumber { .. } | Pagination::OffsetLimit { .. }
        );
        // Servers cap page sizes (asked for 100, served 50): with a total that says there is
        // more, the first page's length is the real page size.
        let served = first.records.len() as u64;
        let size = match self.page_size() {
            Some(asked)
                if served > 0 && served < asked && first.total.is_some_and(|t| t > served) =>
            {
                served
            }
            Some(asked) => asked,
            None => served,
        };
        let mut this = self;
        this.step = size;
        if let (Some(limit), true) = (this.limit, size > 0) {
            let cap = limit.div_ceil(size).max(1);
            this.page_cap = Some(this.page_cap.map_or(cap, |m| m.min(cap)));
        }
        if numbered
            && this.ep.concurrency > 1
            && size > 0
            && let Some(total) = first.total
        {
            return this.concurrent(first, total, size);
        }
        this.sequential(first)
    }

    fn concurrent(
        self,
        mut first: Page,
        total: u64,
        size: u64,
    ) -> futures::stream::BoxStream<'static, Result<Page>> {
        let pages = total.div_ceil(size).max(1);
        let pages = self.page_cap.map_or(pages, |m| pages.min(m.max(1)));
        let first_hash = first.hash;
        first.last = pages == 1 || first.records.is_empty();
        let concurrency = self.ep.concurrency;
        let this = self.clone();
        let rest = futures::stream::iter(1..pages)
            .map(move |i| {
                let this = this.clone();
                async move {
                    let req = this.request(this.url.clone(), this.page_params(i, i * size));
                    let mut p = this.fetch(req).await?;
                    p.last = i + 1 == pages;
                    if p.hash == first_hash && !p.records.is_empty() {
                        return Err(loop_error(&p.url, i, 0, this.op));
                    }
                    Ok(p)
                }
            })
            .buffered(concurrency);
        let empty_first = first.records.is_empty();
        let head = futures::stream::once(futures::future::ready(Ok(first)));
        if empty_first {
            head.boxed()
        } else {
            head.chain(rest).boxed()
        }
    }

    /// Pages one after another. Each page is yielded as soon as it arrived; the next one is
    /// requested only when the consumer asks for it, so a limit or a dropped stream stops the
    /// requests at once.
    fn sequential(self, first: Page) -> futures::stream::BoxStream<'static, Result<Page>> {
        struct State {
            pager: Pager,
            pending: Option<Page>,
            next: Option<RequestSpec>,
            index: u64,
            rows: u64,
            hashes: BTreeMap<u64, u64>,
            keys: HashSet<String>,
        }
        let state = State {
            pager: self,
            pending: Some(first),
            next: None,
            index: 0,
            rows: 0,
            hashes: BTreeMap::new(),
            keys: HashSet::new(),
        };
        futures::stream::try_unfold(state, |mut st| async move {
            let mut page = match (st.pending.take(), st.next.take()) {
                (Some(p), _) => p,
                (None, Some(req)) => {
                    st.index += 1;
                    st.pager.fetch(req).await?
                }
                (None, None) => return Ok(None),
            };
            if !page.records.is_empty()
                && let Some(prev) = st.hashes.insert(page.hash, st.index)
            {
                return Err(loop_error(&page.url, st.index, prev, st.pager.op));
            }
            st.rows += page.records.len() as u64;
            let ep = &st.pager.ep;
            // A short page ends the read only when no total says there is more.
            let short = page.total.is_none()
                && st
                    .pager
                    .page_size()
                    .is_some_and(|s| (page.records.len() as u64) < s);
            let reached_total = page.total.is_some_and(|t| st.rows >= t);
            let capped = st.pager.page_cap.is_some_and(|m| st.index + 1 >= m);
            st.next = if page.records.is_empty() || reached_total || capped {
                None
            } else {
                match &ep.pagination {
                    Pagination::None => None,
                    Pagination::PageNumber { .. } | Pagination::OffsetLimit { .. } => {
                        if short {
                            None
                        } else {
                            Some(st.pager.request(
                                st.pager.url.clone(),
                                st.pager.page_params(st.index + 1, st.rows),
                            ))
                        }
                    }
                    _ => {
                        if let Some(k) = &page.next_key
                            && !st.keys.insert(k.clone())
                        {
                            return Err(Error::new(
                                ErrorKind::InvalidInput,
                                format!(
                                    "pagination loop: the server handed out the same {} twice after page {}; stopping instead of looping",
                                    if matches!(ep.pagination, Pagination::Cursor { .. }) { "cursor" } else { "next URL" },
                                    st.index
                                ),
                            )
                            .with_connector(NAME)
                            .with_operation(st.pager.op)
                            .with_location(Location::url(&page.url)));
                        }
                        page.next.take()
                    }
                }
            };
            page.last = st.next.is_none();
            Ok(Some((page, st)))
        })
        .boxed()
    }
}

fn loop_error(url: &str, page: u64, same_as: u64, op: &'static str) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("pagination loop: page {page} repeats page {same_as}; stopping instead of duplicating rows"))
        .with_connector(NAME)
        .with_operation(op)
        .with_location(Location::url(url))
}

/// The `rel="next"` target of one `Link` header value (RFC 8288).
///
/// Hand-written (about 20 lines) rather than a dependency: we need only `rel="next"`, and the
/// parser must not fail the read on other, malformed links.
#[must_use]
pub fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let part = part.trim();
        let Some(end) = part.find('>') else { continue };
        let Some(target) = part.strip_prefix('<').map(|p| &p[..end - 1]) else {
            continue;
        };
        let is_next = part[end + 1..].split(';').any(|param| {
            let mut kv = param.trim().splitn(2, '=');
            let k = kv.next().unwrap_or("").trim();
            let v = kv.next().unwrap_or("").trim().trim_matches('"');
            k.eq_ignore_ascii_case("rel")
                && v.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
    }
    None
}

#[async_trait]
impl Source for Rest {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none()
    }

    async fn check(&self) -> Result<()> {
        let Some(ep) = self.shared.config.endpoints.first() else {
            let spec = RequestSpec::get(self.shared.base.clone());
            return self.shared.client.send(&spec, "check").await.map(|_| ());
        };
        let pager = Pager {
            rest: self.clone(),
            ep: Arc::new(ep.clone()),
            url: self.url_for(&ep.path, "check")?,
            base_query: ep
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            page_cap: Some(1),
            limit: None,
            step: 0,
            op: "check",
        };
        pager.fetch(pager.first_request()).await.map(|_| ())
    }

    async fn discover(&self) -> Result<Vec<DatasetInfo>> {
        let mut out = Vec::new();
        for ep in &self.shared.config.endpoints {
            let schema = match &ep.schema {
                Some(s) => Arc::new(s.clone()),
                None => self
                    .open(
                        ep,
                        &ReadRequest::dataset(&ep.name).with_limit(1),
                        "discover",
                    )
                    .await?
                    .schema(),
            };
            out.push(DatasetInfo {
                name: ep.name.clone(),
                schema,
                primary_key: ep.primary_key.clone(),
                row_estimate: None,
            });
        }
        Ok(out)
    }

    async fn plan(&self, request: &ReadRequest, _max_partitions: usize) -> Result<Vec<Partition>> {
        match &request.target {
            ReadTarget::Dataset(d) => {
                self.endpoint(d, "plan")?;
                Ok(vec![Partition::single(request.clone())])
            }
            ReadTarget::Query(_) => Err(Error::unsupported(
                "REST endpoints take no queries; name an endpoint",
            )
            .with_connector(NAME)
            .with_operation("plan")),
        }
    }

    async fn read(&self, partition: Partition) -> Result<SendableRecordBatchStream> {
        let request = partition.request;
        let Some(name) = request.dataset_name() else {
            return Err(
                Error::unsupported("REST endpoints take no queries; name an endpoint")
                    .with_connector(NAME)
                    .with_operation("read"),
            );
        };
        let ep = self.endpoint(name, "read")?.clone();
        self.open(&ep, &request, "read").await
    }
}

#[async_trait]
impl Sink for Rest {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::none()
            .with_append()
            .with_create_if_missing()
    }

    async fn check(&self) -> Result<()> {
        Source::check(self).await
    }

    async fn write(
        &self,
        request: WriteRequest,
        data: SendableRecordBatchStream,
    ) -> Result<WriteReport> {
        if request.mode != WriteMode::Append {
            return Err(Error::unsupported(format!(
                "the REST sink only appends (POST/PUT), not {:?}",
                request.mode
            ))
            .with_connector(NAME)
            .with_operation("write"));
        }
        crate::sink::write(
            self.shared.client.clone(),
            self.url_for(&request.target, "write")?,
            &self.shared.config.sink,
            data,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        let h = r#"<http://x/posts?_page=1>; rel="first", <http://x/posts?_page=3>; rel="next", <http://x/posts?_page=9>; rel="last""#;
        assert_eq!(next_link(h).as_deref(), Some("http://x/posts?_page=3"));
        assert_eq!(next_link(r#"<http://x/a>; rel="prev""#), None);
        assert_eq!(next_link("garbage, <x"), None);
    }

    #[test]
    fn config_parses_with_defaults() {
        let c: RestConfig = serde_json::from_value(serde_json::json!({
            "base_url": "http://127.0.0.1:3001",
            "endpoints": [{"name": "posts", "path": "posts", "pagination": {"style": "page_number", "param": "_page", "size_param": "_limit", "size": 10}, "total": {"header": "X-Total-Count"}}]
        }))
        .unwrap();
        let r = Rest::new(c).unwrap();
        assert_eq!(r.shared.base.as_str(), "http://127.0.0.1:3001/");
    }

    #[test]
    fn client_keys_stay_top_level_and_unknown_keys_are_refused() {
        let c: RestConfig = serde_json::from_value(serde_json::json!({
            "base_url": "http://h/",
            "auth": {"type": "bearer", "token": "t"},
            "headers": {"X-A": "1"},
            "requests_per_second": 5,
            "timeout_ms": 1000,
            "retry": {"max_retries": 1}
        }))
        .unwrap();
        assert!(matches!(c.client.auth, Auth::Bearer { .. }));
        assert_eq!(c.client.headers.get("X-A").map(String::as_str), Some("1"));
        assert_eq!(c.client.requests_per_second, Some(5.0));
        assert_eq!(c.client.timeout_ms, Some(1000));
        assert_eq!(c.client.retry.max_retries, 1);
        for bad in [
            serde_json::json!({"base_url": "http://h/", "nope": 1}),
            serde_json::json!({"base_url": "http://h/", "danger_accept_invalid_certs": true}),
            serde_json::json!({"base_url": "http://h/", "retry": {"nope": 1}}),
        ] {
            let e = serde_json::from_value::<RestConfig>(bad.clone()).unwrap_err();
            assert!(
                e.to_string().contains("nope") || e.to_string().contains("danger"),
                "{bad}: {e}"
            );
        }
        #[cfg(feature = "graphql")]
        {
            let e = serde_json::from_value::<crate::GraphQLConfig>(
                serde_json::json!({"url": "http://h/", "timeout_ms": 5, "nope": 1}),
            )
            .unwrap_err();
            assert!(e.to_string().contains("nope"), "{e}");
        }
        let e = serde_json::from_value::<ClientConfig>(serde_json::json!({"nope": 1})).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        // The published schema keeps the client keys at the top level, and closed.
        let schema = serde_json::to_value(schemars::schema_for!(RestConfig)).unwrap();
        for k in [
            "base_url",
            "auth",
            "headers",
            "requests_per_second",
            "timeout_ms",
            "retry",
        ] {
            assert!(schema["properties"].get(k).is_some(), "{k}: {schema}");
        }
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    }
}
