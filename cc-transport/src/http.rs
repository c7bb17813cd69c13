//! An HTTP client for vendor REST APIs, on reqwest with rustls.
//!
//! [`HttpClient`] holds a base URL, default headers, an optional bearer token (a
//! [`Secret`], sent only to the base URL's origin and never logged), a default timeout and
//! an [`ErrorMapper`] that turns non-2xx responses into [`cc_core::Error`]s. Every error
//! names the vendor; a body that does not parse becomes [`Error::Protocol`] naming the
//! endpoint (`GET /api/v2/messages`, never the query, which may hold tokens).
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_core::{Secret, Vendor};
//! use cc_transport::{HttpClient, HttpConfig};
//!
//! #[derive(serde::Deserialize)]
//! struct Page { entities: Vec<serde_json::Value> }
//!
//! let base = url::Url::parse("https://api.example.invalid/").unwrap();
//! let http = HttpClient::new(HttpConfig::new(Vendor::Genesys, base).with_bearer(Secret::new("jwt")))?;
//! let page: Page = http
//!     .request(http::Method::GET, "/api/v2/webmessaging/messages")
//!     .query(&[("pageSize", "25"), ("pageNumber", "1")])
//!     .send_json()
//!     .await?;
//! # let _ = page; Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cc_core::{Error, Result, Secret, Vendor};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::tls::TlsConfig;

/// Parses a `Retry-After` value: delay seconds (`120`) or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, also the obsolete RFC 850 and asctime forms).
/// A date in the past gives zero. `now` is passed in so tests are deterministic.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an HTTP date (RFC 9110 §5.6.7).
fn parse_http_date(s: &str) -> Option<u64> {
    let month = |m: &str| {
        [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .position(|x| *x == m)
        .map(|i| i as u32 + 1)
    };
    let time = |t: &str| -> Option<(u32, u32, u32)> {
        let mut it = t.split(':').map(|p| p.parse::<u32>().ok());
        let (h, m, s) = (it.next()??, it.next()??, it.next()??);
        (it.next().is_none() && h < 24 && m < 60 && s <= 60).then_some((h, m, s))
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (year, mon, day, hms) = match parts.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [_, d, m, y, t, "GMT"] if parts[0].ends_with(',') => {
            (y.parse::<i64>().ok()?, month(m)?, d.parse().ok()?, time(t)?)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [_, dmy, t, "GMT"] if parts[0].ends_with(',') => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            let y: i64 = y.parse().ok()?;
            let y = if y < 70 {
                2000 + y
            } else if y < 100 {
                1900 + y
            } else {
                y
            };
            (y, month(m)?, d.parse().ok()?, time(t)?)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [_, m, d, t, y] => (y.parse().ok()?, month(m)?, d.parse().ok()?, time(t)?),
        _ => return None,
    };
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, mon, day);
    let secs = days * 86_400 + i64::from(hms.0 * 3600 + hms.1 * 60 + hms.2);
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A non-2xx response, as given to an [`ErrorMapper`].
#[derive(Debug)]
pub struct ErrorResponse<'a> {
    /// `METHOD /path` (no query).
    pub endpoint: &'a str,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: &'a HeaderMap,
    /// The parsed `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// The raw body.
    pub body: &'a [u8],
}

impl ErrorResponse<'_> {
    /// The generic mapping, for vendors without their own table and as a fallback:
    /// 401/403 → [`Error::Auth`]; anything else → [`Error::Rejected`] with the vendor's code
    /// (`errorCode`/`code` of a JSON body) or else the HTTP status, the vendor's message
    /// (`message`, `errorMessage`, `error_description`, `detail`, `title`, `error`) and the
    /// `Retry-After`.
    pub fn default_error(&self, vendor: Vendor) -> Error {
        let json: Option<serde_json::Value> = serde_json::from_slice(self.body).ok();
        let field = |names: &[&str]| -> Option<String> {
            let obj = json.as_ref()?.as_object()?;
            names.iter().find_map(|n| match obj.get(*n)? {
                serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let vendor_code = field(&["errorCode", "code"]);
        let text = field(&[
            "message",
            "errorMessage",
            "error_description",
            "detail",
            "title",
            "error",
        ])
        .unwrap_or_else(|| {
            let body = String::from_utf8_lossy(self.body);
            body.chars().take(300).collect()
        });
        let message = format!(
            "HTTP {} on {}: {}",
            self.status.as_u16(),
            self.endpoint,
            text
        );
        let code = vendor_code.unwrap_or_else(|| self.status.as_u16().to_string());
        match self.status.as_u16() {
            401 | 403 => Error::Auth {
                vendor,
                code: Some(code),
                message,
            },
            _ => Error::Rejected {
                vendor,
                code,
                message,
                retry_after: self.retry_after,
            },
        }
    }
}

/// Turns a non-2xx response into an error. Adapters implement it (or pass a closure) to map
/// their vendor's codes; [`ErrorResponse::default_error`] is the generic fallback.
pub trait ErrorMapper: Send + Sync + 'static {
    /// The error for `response`.
    fn map(&self, vendor: Vendor, response: &ErrorResponse<'_>) -> Error;
}

impl<F> ErrorMapper for F
where
    F: Fn(Vendor, &ErrorResponse<'_>) -> Error + Send + Sync + 'static,
{
    fn map(&self, vendor: Vendor, response: &ErrorResponse<'_>) -> Error {
        self(vendor, response)
    }
}

/// The generic [`ErrorMapper`]: [`ErrorResponse::default_error`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultErrorMapper;

impl ErrorMapper for DefaultErrorMapper {
    fn map(&self, vendor: Vendor, response: &ErrorResponse<'_>) -> Error {
        response.default_error(vendor)
    }
}

/// Configuration of an [`HttpClient`].
#[derive(Clone)]
pub struct HttpConfig {
    /// The vendor, named in every error.
    pub vendor: Vendor,
    /// Relative paths are joined to this URL.
    pub base_url: Url,
    /// Headers sent with every request.
    pub headers: HeaderMap,
    /// A bearer token, sent only to the base URL's origin.
    pub bearer: Option<Secret>,
    /// The default whole-request timeout.
    pub timeout: Duration,
    /// The TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Trusted roots.
    pub tls: TlsConfig,
    /// The `User-Agent`.
    pub user_agent: String,
    /// Maps error responses.
    pub error_mapper: Arc<dyn ErrorMapper>,
}

impl HttpConfig {
    /// Defaults: no headers, no token, 30 s timeout, 10 s connect timeout, web PKI roots,
    /// `User-Agent: cc-sdk/<version>`, [`DefaultErrorMapper`].
    pub fn new(vendor: Vendor, base_url: Url) -> Self {
        HttpConfig {
            vendor,
            base_url,
            headers: HeaderMap::new(),
            bearer: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            tls: TlsConfig::webpki(),
            user_agent: concat!("cc-sdk/", env!("CARGO_PKG_VERSION")).to_owned(),
            error_mapper: Arc::new(DefaultErrorMapper),
        }
    }

    /// Sets the bearer token.
    pub fn with_bearer(mut self, token: Secret) -> Self {
        self.bearer = Some(token);
        self
    }

    /// Sets the trusted roots.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the default timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the error mapper.
    pub fn with_error_mapper(mut self, mapper: impl ErrorMapper) -> Self {
        self.error_mapper = Arc::new(mapper);
        self
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("HttpConfig")
            .field("vendor", &self.vendor)
            .field("base_url", &self.base_url.origin().ascii_serialization())
            .field("headers", &headers)
            .field("bearer", &self.bearer)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

struct Inner {
    vendor: Vendor,
    base: Url,
    client: reqwest::Client,
    /// Sent with every request that does not set the header itself.
    headers: Arc<HeaderMap>,
    bearer: RwLock<Option<Secret>>,
    timeout: Duration,
    mapper: Arc<dyn ErrorMapper>,
}

/// A vendor REST client. Cheap to clone.
///
/// Every client with the same trusted roots and connect timeout on the same tokio runtime
/// shares one reqwest client (its connection pool, TLS config and resolver), so a process
/// with thousands of sessions holds a handful of pools, not one per session; the per-session
/// parts (base URL, default headers, bearer token, timeout, error mapper) stay per client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("vendor", &self.inner.vendor)
            .field("base", &self.inner.base.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let vendor = config.vendor;
        let mut headers = config.headers;
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        if !headers.contains_key(header::USER_AGENT) {
            let agent = HeaderValue::from_str(&config.user_agent)
                .map_err(|_| Error::invalid(vendor, "user_agent", "not a valid header value"))?;
            headers.insert(header::USER_AGENT, agent);
        }
        let client = shared_client(vendor, &config.tls, config.connect_timeout)?;
        let headers = shared_headers(headers);
        Ok(HttpClient {
            inner: Arc::new(Inner {
                vendor,
                base: config.base_url,
                client,
                headers,
                bearer: RwLock::new(config.bearer),
                timeout: config.timeout,
                mapper: config.error_mapper,
            }),
        })
    }

    /// The vendor.
    pub fn vendor(&self) -> Vendor {
        self.inner.vendor
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Replaces the bearer token (e.g. after a refresh); `None` stops sending one.
    pub fn set_bearer(&self, token: Option<Secret>) {
        *self.inner.bearer.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// Starts a request. `path` is joined to the base URL, or used as is when it is an
    /// absolute `http(s)` URL (the bearer token then goes only to the base URL's origin).
    pub fn request(&self, method: Method, path: &str) -> HttpRequest {
        let vendor = self.inner.vendor;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path)
        } else {
            self.inner.base.join(path)
        };
        let (url, endpoint) = match url {
            Ok(url) => {
                let endpoint = format!("{method} {}", url.path());
                (Ok(url), endpoint)
            }
            Err(e) => (
                Err(Error::invalid(vendor, "path", format!("`{path}`: {e}"))),
                format!("{method} {path}"),
            ),
        };
        let mut error = None;
        let mut builder = None;
        match url {
            Ok(url) => {
                let same_origin = url.origin() == self.inner.base.origin();
                let mut b = self.inner.client.request(method, url);
                if same_origin {
                    let bearer = self.inner.bearer.read().unwrap_or_else(|e| e.into_inner());
                    if let Some(token) = bearer.as_ref() {
                        let mut value =
                            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(
                                |_| Error::invalid(vendor, "bearer", "not a valid header value"),
                            );
                        match &mut value {
                            Ok(v) => {
                                v.set_sensitive(true);
                                b = b.header(header::AUTHORIZATION, v.clone());
                            }
                            Err(_) => error = value.err(),
                        }
                    }
                }
                builder = Some(b);
            }
            Err(e) => error = Some(e),
        }
        HttpRequest {
            client: self.clone(),
            builder,
            endpoint,
            timeout: self.inner.timeout,
            error,
        }
    }

    /// `GET path`, JSON body.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request(Method::GET, path).send_json().await
    }

    /// `POST path` with a JSON body, JSON reply.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.request(Method::POST, path)
            .json(body)
            .send_json()
            .await
    }

    /// `PUT path` with a JSON body, JSON reply.
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.request(Method::PUT, path).json(body).send_json().await
    }

    /// `DELETE path`, body ignored.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.request(Method::DELETE, path).send_empty().await
    }

    /// `POST path` with a multipart form, JSON reply.
    pub async fn upload<T: DeserializeOwned>(&self, path: &str, form: Multipart) -> Result<T> {
        self.request(Method::POST, path)
            .multipart(form)
            .send_json()
            .await
    }

    /// `PUT` of raw bytes to a (usually presigned, absolute) URL with the given headers.
    /// No bearer token is sent unless the URL is on the base URL's origin.
    pub async fn put_bytes(
        &self,
        url: &str,
        content_type: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<()> {
        self.request(Method::PUT, url)
            .headers(headers)
            .bytes(body, content_type)
            .send_empty()
            .await
    }
}

/// How many reqwest clients [`shared_client`] keeps (one per runtime, roots and connect
/// timeout); the oldest is forgotten first (clients already handed out live on).
const SHARED_CLIENTS: usize = 8;

/// One entry of the shared-client cache.
struct SharedClient {
    runtime: Option<tokio::runtime::Id>,
    tls: TlsConfig,
    connect_timeout: Duration,
    client: reqwest::Client,
}

/// The reqwest client for these roots and connect timeout on the current runtime, built on
/// first use. Keyed by runtime because a pooled connection is driven by a task of the
/// runtime that opened it.
fn shared_client(
    vendor: Vendor,
    tls: &TlsConfig,
    connect_timeout: Duration,
) -> Result<reqwest::Client> {
    static CLIENTS: std::sync::Mutex<Vec<SharedClient>> = std::sync::Mutex::new(Vec::new());
    let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    let mut clients = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.iter().find(|c| {
        c.runtime == runtime && c.connect_timeout == connect_timeout && c.tls.shares_roots_with(tls)
    }) {
        return Ok(c.client.clone());
    }
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.http_client_config())
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| Error::invalid(vendor, "http", e.without_url().to_string()))?;
    // Outside a runtime the client is not shared: there is no runtime to key it by.
    if runtime.is_some() {
        if clients.len() >= SHARED_CLIENTS {
            clients.remove(0);
        }
        clients.push(SharedClient {
            runtime,
            tls: tls.clone(),
            connect_timeout,
            client: client.clone(),
        });
    }
    Ok(client)
}

/// How many distinct default header sets [`shared_headers`] keeps.
const SHARED_HEADERS: usize = 16;

/// `headers`, or an equal set already in use: thousands of sessions of one app send the same
/// default headers, and one copy of them is enough.
fn shared_headers(headers: HeaderMap) -> Arc<HeaderMap> {
    static HEADERS: std::sync::Mutex<Vec<Arc<HeaderMap>>> = std::sync::Mutex::new(Vec::new());
    let mut sets = HEADERS.lock().unwrap_or_else(|e| e.into_inner());
    // Equal values and equal sensitivity (a secret header stays marked sensitive).
    let same = |a: &HeaderMap| {
        a.len() == headers.len()
            && a.iter().zip(headers.iter()).all(|((n1, v1), (n2, v2))| {
                n1 == n2 && v1 == v2 && v1.is_sensitive() == v2.is_sensitive()
            })
    };
    if let Some(h) = sets.iter().find(|h| same(h)) {
        return Arc::clone(h);
    }
    let headers = Arc::new(headers);
    if sets.len() >= SHARED_HEADERS {
        sets.remove(0);
    }
    sets.push(Arc::clone(&headers));
    headers
}

/// A multipart form (uploads).
#[derive(Debug, Default)]
pub struct Multipart {
    parts: Vec<PartSpec>,
}

#[derive(Debug)]
struct PartSpec {
    name: String,
    value: PartValue,
}

#[derive(Debug)]
enum PartValue {
    Text(String),
    File {
        file_name: String,
        content_type: String,
        data: Bytes,
    },
}

impl Multipart {
    /// An empty form.
    pub fn new() -> Self {
        Multipart::default()
    }

    /// Adds a text field.
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parts.push(PartSpec {
            name: name.into(),
            value: PartValue::Text(value.into()),
        });
        self
    }

    /// Adds a file field.
    pub fn file(
        mut self,
        name: impl Into<String>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.parts.push(PartSpec {
            name: name.into(),
            value: PartValue::File {
                file_name: file_name.into(),
                content_type: content_type.into(),
                data: data.into(),
            },
        });
        self
    }

    fn into_form(self, vendor: Vendor) -> Result<reqwest::multipart::Form> {
        let mut form = reqwest::multipart::Form::new();
        for part in self.parts {
            form = match part.value {
                PartValue::Text(v) => form.text(part.name, v),
                PartValue::File {
                    file_name,
                    content_type,
                    data,
                } => {
                    let p = reqwest::multipart::Part::stream_with_length(
                        reqwest::Body::from(data.clone()),
                        data.len() as u64,
                    )
                    .file_name(file_name)
                    .mime_str(&content_type)
                    .map_err(|_| {
                        Error::invalid(
                            vendor,
                            "content_type",
                            format!("`{content_type}` is not a MIME type"),
                        )
                    })?;
                    form.part(part.name, p)
                }
            };
        }
        Ok(form)
    }
}

/// A successful response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// `METHOD /path`.
    pub endpoint: String,
    /// The status (2xx).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    vendor: Vendor,
}

impl HttpResponse {
    /// The body as JSON; a mismatch is [`Error::Protocol`] naming the endpoint.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::protocol(
                self.vendor,
                format!("response body of {}", self.endpoint),
                e.to_string(),
            )
        })
    }
}

/// A request being built; finish with [`HttpRequest::send_json`], [`HttpRequest::send_empty`]
/// or [`HttpRequest::send`].
pub struct HttpRequest {
    client: HttpClient,
    builder: Option<reqwest::RequestBuilder>,
    endpoint: String,
    timeout: Duration,
    error: Option<Error>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpRequest {
    fn map(mut self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        self.builder = self.builder.map(f);
        self
    }

    fn fail(mut self, e: Error) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// Adds query parameters (anything serde serializes as a map or a list of pairs).
    pub fn query<Q: Serialize + ?Sized>(self, query: &Q) -> Self {
        self.map(|b| b.query(query))
    }

    /// Adds a header.
    pub fn header(self, name: impl Into<Cow<'static, str>>, value: &str) -> Self {
        let vendor = self.client.inner.vendor;
        let name = name.into();
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::invalid(vendor, "header", format!("bad header name `{name}`")))
            .and_then(|n| {
                HeaderValue::from_str(value).map(|v| (n, v)).map_err(|_| {
                    Error::invalid(vendor, "header", format!("bad value for `{name}`"))
                })
            });
        match parsed {
            Ok((n, v)) => self.map(|b| b.header(n, v)),
            Err(e) => self.fail(e),
        }
    }

    /// Adds headers.
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.map(|b| b.headers(headers))
    }

    /// Sets a JSON body.
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.map(|b| {
                b.header(header::CONTENT_TYPE, "application/json")
                    .body(bytes)
            }),
            Err(e) => {
                let vendor = self.client.inner.vendor;
                self.fail(Error::invalid(vendor, "body", e.to_string()))
            }
        }
    }

    /// Sets a raw body.
    pub fn bytes(self, body: Bytes, content_type: &str) -> Self {
        self.header("content-type", content_type)
            .map(|b| b.body(body))
    }

    /// Sets a multipart body.
    pub fn multipart(self, form: Multipart) -> Self {
        let vendor = self.client.inner.vendor;
        match form.into_form(vendor) {
            Ok(form) => self.map(|b| b.multipart(form)),
            Err(e) => self.fail(e),
        }
    }

    /// Overrides the whole-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends and returns the raw successful response.
    pub async fn send(self) -> Result<HttpResponse> {
        let vendor = self.client.inner.vendor;
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(builder) = self.builder else {
            return Err(Error::invalid(vendor, "path", "no URL"));
        };
        let endpoint = self.endpoint;
        let timeout = self.timeout;
        let io_error = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout {
                    vendor,
                    operation: "HTTP request",
                    after: timeout,
                }
            } else {
                Error::transport(
                    vendor,
                    "HTTP request",
                    format!(
                        "{endpoint}: {}",
                        cc_core::error_with_causes(&e.without_url())
                    ),
                )
            }
        };
        let (client, request) = builder.timeout(timeout).build_split();
        let mut request = request.map_err(io_error)?;
        for (name, value) in self.client.inner.headers.iter() {
            if !request.headers().contains_key(name) {
                request.headers_mut().insert(name, value.clone());
            }
        }
        let response = client.execute(request).await.map_err(io_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(io_error)?;
        tracing::debug!(%vendor, %endpoint, status = status.as_u16(), "http response");
        if !status.is_success() {
            let retry_after = headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let error = ErrorResponse {
                endpoint: &endpoint,
                status,
                headers: &headers,
                retry_after,
                body: &body,
            };
            return Err(self.client.inner.mapper.map(vendor, &error));
        }
        Ok(HttpResponse {
            endpoint,
            status,
            headers,
            body,
            vendor,
        })
    }

    /// Sends and parses the JSON reply.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T> {
        self.send().await?.json()
    }

    /// Sends and ignores the reply body.
    pub async fn send_empty(self) -> Result<()> {
        self.send().await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:47 1994", now),
            Some(Duration::from_secs(10))
        );
        // In the past: retry now.
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now),
            None
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now),
            None
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Mon, 23 Nov 2026 12:00:00 GMT"),
            Some(1_795_435_200)
        );
    }

    fn response(status: u16, body: &'static str, retry: Option<u64>) -> Error {
        let headers = HeaderMap::new();
        ErrorResponse {
            endpoint: "GET /x",
            status: StatusCode::from_u16(status).unwrap(),
            headers: &headers,
            retry_after: retry.map(Duration::from_secs),
            body: body.as_bytes(),
        }
        .default_error(Vendor::Avaya)
    }

    #[test]
    fn default_mapping_keeps_codes() {
        let e = response(401, r#"{"code":"ACS-203","message":"token expired"}"#, None);
        assert!(
            matches!(&e, Error::Auth { code: Some(c), .. } if c == "ACS-203"),
            "{e:?}"
        );
        assert!(e.to_string().contains("token expired"));
        let e = response(429, "slow down", Some(7));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.vendor_code(), Some("429"));
        assert!(
            e.to_string().contains("HTTP 429 on GET /x: slow down"),
            "{e}"
        );
        let e = response(400, r#"{"errorCode":4011,"errorMessage":"too long"}"#, None);
        assert_eq!(e.vendor_code(), Some("4011"));
        assert!(!e.is_retryable());
        assert_eq!(e.vendor(), Some(Vendor::Avaya));
    }
}
