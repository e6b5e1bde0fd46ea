//! The HTTP client under every REST and GraphQL connector: authentication (with an `OAuth2` token
//! cache), default headers, an optional client-side rate limit, and per-request retries that
//! honour `Retry-After`.
//!
//! Retries happen here, per request, and never above the page level: a page is only handed to
//! the caller once its response arrived whole, so a retried request cannot duplicate rows.
//! GET (and any request declared idempotent) is retried on temporary errors; POST is retried
//! only when the endpoint is declared idempotent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use connector_core::{Error, ErrorKind, Location, Result, Secret};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::Mutex;

/// How requests authenticate.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An API key in a header or a query parameter.
    ApiKey {
        /// Header or parameter name, e.g. `X-API-Key` or `api_key`.
        name: String,
        /// The key.
        value: Secret,
        /// Where the key goes.
        #[serde(default)]
        location: ApiKeyLocation,
    },
    /// `OAuth2` client credentials: a token is fetched from `token_url`, cached, and refreshed
    /// before it expires (and once more if the API answers 401).
    OAuth2ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Scopes, joined with spaces.
        #[serde(default)]
        scopes: Vec<String>,
        /// Extra form fields (e.g. `audience`).
        #[serde(default)]
        extra: BTreeMap<String, String>,
    },
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// A request header.
    #[default]
    Header,
    /// A query parameter (kept out of every URL shown in errors and logs).
    Query,
}

/// Retry settings of the client.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts after the first one.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// First backoff delay, in milliseconds.
    #[serde(default = "default_min_delay_ms")]
    pub min_delay_ms: u64,
    /// Largest backoff delay, in milliseconds.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Give up once this much time has passed since the first attempt, in milliseconds.
    #[serde(default = "default_max_elapsed_ms")]
    pub max_elapsed_ms: u64,
    /// Longest `Retry-After` honoured, in milliseconds; a server asking for more fails at once.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
}

fn default_max_retries() -> usize {
    3
}
fn default_min_delay_ms() -> u64 {
    100
}
fn default_max_delay_ms() -> u64 {
    5_000
}
fn default_max_elapsed_ms() -> u64 {
    60_000
}
fn default_max_retry_after_ms() -> u64 {
    120_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: default_max_retries(),
            min_delay_ms: default_min_delay_ms(),
            max_delay_ms: default_max_delay_ms(),
            max_elapsed_ms: default_max_elapsed_ms(),
            max_retry_after_ms: default_max_retry_after_ms(),
        }
    }
}

/// Client settings shared by REST and GraphQL configs, where they are flattened in (so this
/// struct does not deny unknown fields itself: the config that holds it does).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
pub struct ClientSettings {
    /// Authentication.
    #[serde(default)]
    pub auth: Auth,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Client-side limit, in requests per second (over all concurrent requests).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Per-request timeout, in milliseconds (default 30 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// The settings of an [`HttpClient`]: the [`ClientSettings`] of a config (flattened: the same
/// keys), and whether to accept invalid TLS certificates.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Authentication, headers, rate limit, timeout and retries.
    #[serde(flatten)]
    pub settings: ClientSettings,
    /// Accept invalid TLS certificates (test servers only).
    #[serde(default)]
    pub danger_accept_invalid_certs: bool,
}

impl From<ClientSettings> for ClientConfig {
    /// A client of a REST or GraphQL config (valid TLS certificates only).
    fn from(settings: ClientSettings) -> Self {
        Self {
            settings,
            danger_accept_invalid_certs: false,
        }
    }
}

/// The body of a request.
#[derive(Debug, Clone)]
pub enum Body {
    /// A JSON document.
    Json(serde_json::Value),
    /// Raw bytes with a content type.
    Bytes(Bytes, &'static str),
}

/// One request, before authentication.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Method.
    pub method: reqwest::Method,
    /// Absolute URL (may already carry query parameters).
    pub url: url::Url,
    /// Extra query parameters.
    pub query: Vec<(String, String)>,
    /// Body.
    pub body: Option<Body>,
    /// May be retried even if the method is not GET/HEAD/PUT/DELETE.
    pub idempotent: bool,
}

impl RequestSpec {
    /// A GET of `url`.
    #[must_use]
    pub fn get(url: url::Url) -> Self {
        Self {
            method: reqwest::Method::GET,
            url,
            query: Vec::new(),
            body: None,
            idempotent: true,
        }
    }

    /// The URL with query parameters, as shown in errors (no credentials: API keys in the
    /// query are added only when sending).
    #[must_use]
    pub fn display_url(&self) -> String {
        let mut u = self.url.clone();
        if !self.query.is_empty() {
            u.query_pairs_mut()
                .extend_pairs(self.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        u.to_string()
    }

    fn retryable(&self) -> bool {
        self.idempotent
            || matches!(
                self.method,
                reqwest::Method::GET
                    | reqwest::Method::HEAD
                    | reqwest::Method::PUT
                    | reqwest::Method::DELETE
            )
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: reqwest::StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (decompressed).
    pub body: Bytes,
    /// The URL as shown in errors.
    pub url: String,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
    /// Which fetch this token came from, so that concurrent requests rejected with the same
    /// token refresh it once, not once each.
    generation: u64,
}

/// Serialises request start times to at most `rps` per second.
#[derive(Debug)]
struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// An HTTP client with auth, rate limit and retries. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    auth: Auth,
    headers: HeaderMap,
    rate: Option<Arc<RateLimiter>>,
    retry: RetryConfig,
    connector: &'static str,
    token: Arc<Mutex<Option<CachedToken>>>,
    token_generation: Arc<std::sync::atomic::AtomicU64>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("connector", &self.connector)
            .field("auth", &self.auth)
            .field("rate", &self.rate)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Build a client for connector `connector` (`"rest"`, `"graphql"`).
    pub fn new(connector: &'static str, config: &ClientConfig) -> Result<Self> {
        let invalid = |msg: String| {
            Error::invalid_config(msg)
                .with_connector(connector)
                .with_operation("build")
        };
        let settings = &config.settings;
        let mut headers = HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = HeaderName::try_from(k.as_str())
                .map_err(|e| invalid(format!("invalid header name {k:?}: {e}")))?;
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|e| invalid(format!("invalid value for header {k:?}: {e}")))?;
            headers.insert(name, value);
        }
        let rate = match settings.requests_per_second {
            None => None,
            // `try_from`: a rate so small that the interval overflows is an error, not a panic.
            Some(r) if r.is_finite() && r > 0.0 => match Duration::try_from_secs_f64(1.0 / r) {
                Ok(interval) => Some(Arc::new(RateLimiter {
                    interval,
                    next: Mutex::new(Instant::now()),
                })),
                Err(_) => {
                    return Err(invalid(format!(
                        "requests_per_second {r} is too small (the interval overflows)"
                    )));
                }
            },
            Some(r) => {
                return Err(invalid(format!(
                    "requests_per_second must be positive, got {r}"
                )));
            }
        };
        let inner = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.unwrap_or(30_000)))
            .danger_accept_invalid_certs(config.danger_accept_invalid_certs)
            .gzip(true)
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner,
            auth: settings.auth.clone(),
            headers,
            rate,
            retry: settings.retry.clone(),
            connector,
            token: Arc::new(Mutex::new(None)),
            token_generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            requests: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// Requests sent so far (every attempt counts).
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Send with retries. A non-success status is an error.
    pub async fn send(&self, spec: &RequestSpec, operation: &'static str) -> Result<Response> {
        let started = Instant::now();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry.min_delay_ms))
            .with_max_delay(Duration::from_millis(self.retry.max_delay_ms))
            .with_max_times(self.retry.max_retries)
            .with_jitter()
            .build();
        let mut attempt = 0usize;
        let mut refreshed_token = false;
        loop {
            attempt += 1;
            let mut token_used = None;
            let err = match self.send_once(spec, &mut token_used).await {
                Ok(r) => return Ok(r),
                Err(e) => e.with_connector(self.connector).with_operation(operation),
            };
            // An expired OAuth2 token: refresh once and try again.
            if err.kind() == ErrorKind::Authentication
                && matches!(self.auth, Auth::OAuth2ClientCredentials { .. })
                && !refreshed_token
            {
                refreshed_token = true;
                let mut cached = self.token.lock().await;
                // Drop the token only if no concurrent request has replaced it already.
                if token_used.is_some() && cached.as_ref().map(|t| t.generation) == token_used {
                    *cached = None;
                }
                continue;
            }
            if !err.is_temporary() || !spec.retryable() {
                return Err(err.with_context("attempts", attempt));
            }
            let Some(mut delay) = backoff.next() else {
                return Err(err.persist().with_context("attempts", attempt));
            };
            if let Some(after) = err.retry_after() {
                if after > Duration::from_millis(self.retry.max_retry_after_ms) {
                    return Err(err
                        .persist()
                        .with_context("attempts", attempt)
                        .with_context("retry_after_s", after.as_secs()));
                }
                delay = delay.max(after);
            }
            if started.elapsed() + delay > Duration::from_millis(self.retry.max_elapsed_ms) {
                return Err(err.persist().with_context("attempts", attempt));
            }
            tracing::warn!(connector = self.connector, url = %self.display_url(spec), error = %err, ?delay, attempt, "retrying request");
            tokio::time::sleep(delay).await;
        }
    }

    /// The query parameter that carries the API key, if the key goes in the query.
    fn query_key_name(&self) -> Option<&str> {
        match &self.auth {
            Auth::ApiKey {
                name,
                location: ApiKeyLocation::Query,
                ..
            } => Some(name.as_str()),
            _ => None,
        }
    }

    /// Every secret value this client sends, longest first, for redaction.
    fn secrets(&self) -> Vec<&str> {
        let mut v: Vec<&str> = match &self.auth {
            Auth::None => Vec::new(),
            Auth::Bearer { token } => vec![token.expose()],
            Auth::Basic { password, .. } => vec![password.expose()],
            Auth::ApiKey { value, .. } => vec![value.expose()],
            Auth::OAuth2ClientCredentials { client_secret, .. } => vec![client_secret.expose()],
        };
        v.retain(|s| !s.is_empty());
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v
    }

    /// `text` with every secret of this client (and a query API key's parameter value)
    /// replaced by `***`: servers echo request URLs and headers into bodies and `Link` headers.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.secrets() {
            if out.contains(s) {
                out = out.replace(s, "***");
            }
        }
        out
    }

    /// The URL as shown in errors and logs: without a query API key (a next-page URL from the
    /// server may echo it back) and without a password.
    fn display_url(&self, spec: &RequestSpec) -> String {
        let mut u = spec.url.clone();
        if let Some(key) = self.query_key_name() {
            strip_query_param(&mut u, key);
        }
        let shown = RequestSpec {
            url: u,
            query: spec
                .query
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != self.query_key_name())
                .cloned()
                .collect(),
            ..spec.clone()
        };
        self.redact(&shown.display_url())
    }

    async fn send_once(
        &self,
        spec: &RequestSpec,
        token_used: &mut Option<u64>,
    ) -> Result<Response> {
        if let Some(r) = &self.rate {
            r.acquire().await;
        }
        let display = self.display_url(spec);
        let mut url = spec.url.clone();
        if let Some(key) = self.query_key_name() {
            // A next-page URL that echoes the key must not send it twice.
            strip_query_param(&mut url, key);
        }
        let mut req = self
            .inner
            .request(spec.method.clone(), url)
            .headers(self.headers.clone());
        if !spec.query.is_empty() {
            req = req.query(&spec.query);
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer { token } => req.bearer_auth(token.expose()),
            Auth::Basic { username, password } => req.basic_auth(username, Some(password.expose())),
            Auth::ApiKey {
                name,
                value,
                location: ApiKeyLocation::Header,
            } => req.header(name.as_str(), value.expose()),
            Auth::ApiKey {
                name,
                value,
                location: ApiKeyLocation::Query,
            } => req.query(&[(name.as_str(), value.expose())]),
            Auth::OAuth2ClientCredentials { .. } => {
                let (token, generation) = self.oauth_token().await?;
                *token_used = Some(generation);
                req.bearer_auth(token.expose())
            }
        };
        req = match &spec.body {
            None => req,
            Some(Body::Json(v)) => req.json(v),
            Some(Body::Bytes(b, ct)) => req
                .header(reqwest::header::CONTENT_TYPE, *ct)
                .body(b.clone()),
        };
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&e, &display, &|t| self.redact(t)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&e, &display, &|t| self.redact(t)))?;
        if !status.is_success() {
            let snippet = self.redact(&body_snippet(&body));
            return Err(status_error(status, &headers, &snippet, &display));
        }
        Ok(Response {
            status,
            headers,
            body,
            url: display,
        })
    }

    async fn oauth_token(&self) -> Result<(Secret, u64)> {
        let Auth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            extra,
        } = &self.auth
        else {
            return Err(Error::internal("oauth_token called without OAuth2 auth"));
        };
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok((t.token.clone(), t.generation));
        }
        let generation = self
            .token_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        form.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self
            .inner
            .post(token_url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&e, token_url, &|t| self.redact(t)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&e, token_url, &|t| self.redact(t)))?;
        if !status.is_success() {
            let snippet = self.redact(&body_snippet(&body));
            let mut e = status_error(status, &headers, &snippet, token_url);
            if matches!(e.kind(), ErrorKind::Query | ErrorKind::Permission)
                && status.as_u16() == 400
            {
                // RFC 6749: a bad client secret is `400 invalid_client`.
                e = Error::new(
                    ErrorKind::Authentication,
                    format!("the token endpoint rejected the client credentials ({status})"),
                )
                .with_location(Location::url(token_url));
            }
            return Err(e.with_context("during", "oauth2 token request"));
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("the token endpoint answered without a usable access_token: {e}"),
            )
            .with_location(Location::url(token_url))
        })?;
        // Refresh a little before expiry so a request never goes out with a token about to lapse.
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        let margin = (lifetime / 10).min(Duration::from_mins(1));
        let token = Secret::new(t.access_token);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
            generation,
        });
        Ok((token, generation))
    }
}

/// Remove every `name=…` pair from `url`'s query.
fn strip_query_param(url: &mut url::Url, name: &str) {
    if url.query_pairs().any(|(k, _)| k == name) {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
}

/// The first 300 bytes of a body as one line of text.
fn body_snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)])
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// The part of an RFC 6749 token response the client uses.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn transport_error(e: &reqwest::Error, url: &str, redact: &dyn Fn(&str) -> String) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connection
    } else if e.is_decode() || e.is_body() {
        ErrorKind::Io
    } else if e.is_builder() {
        ErrorKind::InvalidConfig
    } else {
        ErrorKind::Connection
    };
    // reqwest's message can contain the URL; ours is shown via the location instead.
    let mut msg = e.to_string();
    if let Some(u) = e.url() {
        msg = msg.replace(u.as_str(), "<url>");
    }
    let msg = redact(&msg);
    let mut err = Error::new(kind, msg).with_location(Location::url(url));
    if kind != ErrorKind::InvalidConfig {
        err = err.temporary();
    }
    err
}

/// Parse `Retry-After`: delay-seconds or an HTTP date.
#[must_use]
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(delta).unwrap_or(0)))
}

fn status_error(
    status: reqwest::StatusCode,
    headers: &HeaderMap,
    snippet: &str,
    url: &str,
) -> Error {
    let code = status.as_u16();
    let (kind, temporary) = match code {
        401 => (ErrorKind::Authentication, false),
        403 => (ErrorKind::Permission, false),
        404 | 410 => (ErrorKind::NotFound, false),
        408 => (ErrorKind::Timeout, true),
        409 | 412 => (ErrorKind::Conflict, false),
        429 => (ErrorKind::RateLimited, true),
        502..=504 => (ErrorKind::Connection, true),
        500..=599 => (ErrorKind::Query, true),
        _ => (ErrorKind::Query, false),
    };
    let mut e = Error::new(kind, format!("HTTP {status}: {snippet}"))
        .with_location(Location::url(url))
        .with_vendor_code(i64::from(code));
    if temporary {
        e = e.temporary();
    }
    if let Some(after) = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
    {
        e = e.with_retry_after(after);
        if code == 503 {
            e = Error::new(
                ErrorKind::RateLimited,
                format!("HTTP {status} with Retry-After: {snippet}"),
            )
            .with_location(Location::url(url))
            .with_vendor_code(i64::from(code))
            .with_retry_after(after)
            .temporary();
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let cfg: ClientConfig = serde_json::from_value(serde_json::json!({
            "auth": {"type": "basic", "username": "u", "password": "hunter2"}
        }))
        .unwrap();
        let c = HttpClient::new("rest", &cfg).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn bad_rates_are_config_errors_not_panics() {
        for rps in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e-300,
            f64::MIN_POSITIVE,
        ] {
            let cfg = ClientConfig::from(ClientSettings {
                requests_per_second: Some(rps),
                ..ClientSettings::default()
            });
            let e = HttpClient::new("rest", &cfg).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{rps}: {e}");
        }
        let cfg = ClientConfig::from(ClientSettings {
            requests_per_second: Some(1e-6),
            ..ClientSettings::default()
        });
        assert!(HttpClient::new("rest", &cfg).is_ok());
    }

    #[test]
    fn statuses_map_to_kinds() {
        let h = HeaderMap::new();
        assert_eq!(
            status_error(reqwest::StatusCode::UNAUTHORIZED, &h, "", "u").kind(),
            ErrorKind::Authentication
        );
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("2"));
        let e = status_error(reqwest::StatusCode::SERVICE_UNAVAILABLE, &h, "busy", "u");
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.is_temporary());
    }
}
