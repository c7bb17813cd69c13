//! The client side of the WebSocket opening handshake (RFC 6455 §4.1).
//!
//! Done here rather than by tungstenite's client handshake so that the connection's read
//! buffer is the one [`WsConfig::read_buffer_size`] sizes: tungstenite hands its 4 KiB
//! handshake buffer on to the connection, and every idle connection keeps it. Here the
//! response head is read in small chunks into a buffer that is dropped once the head is
//! parsed; only the bytes the server sent after the head (a first frame in the same write)
//! are handed on.
//!
//! The parsing and checking parts are sans-IO ([`request`], [`head_end`], [`Head::parse`],
//! [`Head::verify`]); [`upgrade`] does the I/O.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use cc_core::{Error, Result, Vendor};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use url::{Host, Url};

use super::WsConfig;
use crate::http::parse_retry_after;

/// The stream of one connection: plain TCP or rustls over TCP.
pub(super) type Stream = MaybeTlsStream<TcpStream>;

/// The largest response head accepted.
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// How much is read from the socket at a time while looking for the end of the head.
const HEAD_CHUNK: usize = 512;
/// How much of a refusal's body is kept for the error message.
const BODY_EXCERPT: usize = 512;
/// How long the body of a refusal is waited for; after that the error is built from what
/// arrived.
const BODY_WAIT: Duration = Duration::from_secs(1);

const OPERATION: &str = "websocket connect";

/// Where a `ws://` or `wss://` URL points.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) secure: bool,
    pub(super) host: Host<String>,
    pub(super) port: u16,
    /// The `Host` header: the host, plus the port when it is not the scheme's default.
    pub(super) authority: String,
    /// Path and query.
    pub(super) resource: String,
}

impl Target {
    pub(super) fn parse(vendor: Vendor, url: &Url) -> Result<Self> {
        let secure = match url.scheme() {
            "wss" => true,
            "ws" => false,
            other => {
                return Err(Error::invalid(
                    vendor,
                    "url",
                    format!("unsupported WebSocket scheme `{other}` (want ws or wss)"),
                ));
            }
        };
        let host = url
            .host()
            .ok_or_else(|| Error::invalid(vendor, "url", "the WebSocket URL has no host"))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        let mut authority = url.host_str().unwrap_or_default().to_owned();
        if let Some(port) = url.port() {
            let _ = write!(authority, ":{port}");
        }
        let mut resource = url.path().to_owned();
        if resource.is_empty() {
            resource.push('/');
        }
        if let Some(query) = url.query() {
            resource.push('?');
            resource.push_str(query);
        }
        Ok(Target {
            secure,
            host,
            port,
            authority,
            resource,
        })
    }
}

/// Headers the handshake writes itself; the configured extra headers may not repeat them.
const RESERVED: [HeaderName; 5] = [
    header::HOST,
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
];

/// Writes a header name in the usual capitalisation (`user-agent` → `User-Agent`): names
/// are case-insensitive, but some servers compare them as written.
fn push_name(out: &mut Vec<u8>, name: &HeaderName) {
    let mut upper = true;
    for b in name.as_str().bytes() {
        out.push(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
}

fn push_header(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    push_name(out, name);
    push_value(out, value);
}

fn push_value(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The offered subprotocols: [`WsConfig::subprotocols`], or else a `Sec-WebSocket-Protocol`
/// among the extra headers.
fn offered_protocols(vendor: Vendor, config: &WsConfig) -> Result<Option<HeaderValue>> {
    if config.subprotocols.is_empty() {
        return Ok(config.headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned());
    }
    HeaderValue::from_str(&config.subprotocols.join(", "))
        .map(Some)
        .map_err(|e| Error::invalid(vendor, "subprotocols", e.to_string()))
}

/// The upgrade request for `target` with the key `key`: `Host`, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, the extra headers in order, then
/// `Sec-WebSocket-Protocol`.
pub(super) fn request(
    vendor: Vendor,
    config: &WsConfig,
    target: &Target,
    key: &str,
) -> Result<Vec<u8>> {
    if let Some(name) = RESERVED.iter().find(|n| config.headers.contains_key(*n)) {
        return Err(Error::invalid(
            vendor,
            "headers",
            format!("`{name}` is written by the WebSocket handshake itself"),
        ));
    }
    let protocols = offered_protocols(vendor, config)?;
    let mut out = Vec::with_capacity(256);
    let _ = write!(
        Writer(&mut out),
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        target.resource,
        target.authority
    );
    for (name, value) in &config.headers {
        if *name != header::SEC_WEBSOCKET_PROTOCOL {
            push_header(&mut out, name, value.as_bytes());
        }
    }
    if let Some(value) = protocols {
        out.extend_from_slice(b"Sec-WebSocket-Protocol");
        push_value(&mut out, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// `fmt::Write` into a byte vector.
struct Writer<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Where the head in `buf` ends (just past its empty line), if it is complete. Lines end
/// with CRLF (a bare LF is tolerated).
pub(super) fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        if line_start > 0 && (line.is_empty() || line == b"\r") {
            return Some(i + 1);
        }
        line_start = i + 1;
    }
    None
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
}

fn malformed(vendor: Vendor, what: impl std::fmt::Display) -> Error {
    Error::transport(
        vendor,
        OPERATION,
        format!("malformed WebSocket upgrade response: {what}"),
    )
}

fn refused_upgrade(vendor: Vendor, what: impl std::fmt::Display) -> Error {
    Error::transport(
        vendor,
        OPERATION,
        format!("WebSocket upgrade response refused: {what}"),
    )
}

impl Head {
    /// Parses a complete head (as delimited by [`head_end`]).
    pub(super) fn parse(vendor: Vendor, head: &[u8]) -> Result<Self> {
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = lines.next().unwrap_or_default();
        let status_text = String::from_utf8_lossy(status_line);
        let mut parts = status_text.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(malformed(
                vendor,
                format!("status line `{}`", excerpt(&status_text, 80)),
            ));
        }
        let status = parts
            .next()
            .filter(|code| code.len() == 3)
            .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
            .ok_or_else(|| {
                malformed(
                    vendor,
                    format!("status line `{}`", excerpt(&status_text, 80)),
                )
            })?;
        let mut headers = HeaderMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let bad = || {
                malformed(
                    vendor,
                    format!(
                        "header line `{}`",
                        excerpt(&String::from_utf8_lossy(line), 80)
                    ),
                )
            };
            let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
            let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| bad())?;
            let value = line[colon + 1..].trim_ascii();
            let value = HeaderValue::from_bytes(value).map_err(|_| bad())?;
            headers.append(name, value);
        }
        Ok(Head { status, headers })
    }

    fn header_str(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks a 101 answer to the request with `key` offering `offered` subprotocols;
    /// returns the subprotocol the server picked.
    pub(super) fn verify(
        &self,
        vendor: Vendor,
        key: &str,
        offered: Option<&HeaderValue>,
    ) -> Result<Option<String>> {
        let upgrade = self.header_str(&header::UPGRADE).unwrap_or_default();
        if !upgrade.trim().eq_ignore_ascii_case("websocket") {
            return Err(refused_upgrade(
                vendor,
                "no `Upgrade: websocket` header in the 101 response",
            ));
        }
        let connection = self
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        if !connection {
            return Err(refused_upgrade(
                vendor,
                "no `Connection: Upgrade` header in the 101 response",
            ));
        }
        let expected = derive_accept_key(key.as_bytes());
        match self.header_str(&header::SEC_WEBSOCKET_ACCEPT) {
            Some(accept) if accept.trim() == expected => {}
            Some(_) => {
                return Err(refused_upgrade(
                    vendor,
                    "`Sec-WebSocket-Accept` does not match the key sent",
                ));
            }
            None => {
                return Err(refused_upgrade(
                    vendor,
                    "no `Sec-WebSocket-Accept` header in the 101 response",
                ));
            }
        }
        let picked = self
            .header_str(&header::SEC_WEBSOCKET_PROTOCOL)
            .map(|p| p.trim().to_owned());
        let offered: Vec<&str> = offered
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').map(str::trim).collect())
            .unwrap_or_default();
        match &picked {
            None if !offered.is_empty() => Err(refused_upgrade(
                vendor,
                "the server picked none of the offered subprotocols",
            )),
            Some(p) if !offered.contains(&p.as_str()) => Err(refused_upgrade(
                vendor,
                format!("the server picked subprotocol `{p}`, which was not offered"),
            )),
            _ => Ok(picked),
        }
    }

    /// The error for a response other than 101, with up to [`BODY_EXCERPT`] bytes of `body`:
    /// 401/403 are [`Error::Auth`]; 408, 429 and 5xx without `Retry-After` are retryable
    /// transport errors; everything else is [`Error::Rejected`] with the `Retry-After`.
    pub(super) fn refusal(&self, vendor: Vendor, body: &[u8]) -> Error {
        let status = self.status;
        let body = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]);
        let retry_after = self
            .header_str(&header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let message = format!("WebSocket upgrade refused with HTTP {status}: {body}");
        match status.as_u16() {
            401 | 403 => Error::Auth {
                vendor,
                code: Some(status.as_u16().to_string()),
                message,
            },
            408 | 429 | 500..=599 if retry_after.is_none() => {
                Error::transport(vendor, OPERATION, message)
            }
            _ => Error::Rejected {
                vendor,
                code: status.as_u16().to_string(),
                message,
                retry_after,
            },
        }
    }

    /// How many body bytes to wait for after a refusal: up to the `Content-Length` (or to
    /// the end of the stream without one), never more than [`BODY_EXCERPT`]; nothing more
    /// for a chunked body (what arrived with the head is the excerpt).
    fn body_wanted(&self) -> usize {
        let chunked = self
            .header_str(&header::TRANSFER_ENCODING)
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        match self
            .header_str(&header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(len) => len.min(BODY_EXCERPT),
            None if chunked => 0,
            None => BODY_EXCERPT,
        }
    }
}

fn excerpt(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn io_error(vendor: Vendor, e: std::io::Error) -> Error {
    Error::transport(vendor, OPERATION, e)
}

/// TCP, then TLS for `wss` (SNI and certificate checks for the URL's host).
async fn open(vendor: Vendor, config: &WsConfig, target: &Target) -> Result<Stream> {
    let tcp = match &target.host {
        Host::Domain(domain) => TcpStream::connect((domain.as_str(), target.port)).await,
        Host::Ipv4(ip) => TcpStream::connect(SocketAddr::new(IpAddr::V4(*ip), target.port)).await,
        Host::Ipv6(ip) => TcpStream::connect(SocketAddr::new(IpAddr::V6(*ip), target.port)).await,
    }
    .map_err(|e| io_error(vendor, e))?;
    tcp.set_nodelay(true).map_err(|e| io_error(vendor, e))?;
    if !target.secure {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    use rustls::pki_types::ServerName;
    let name = match &target.host {
        Host::Domain(domain) => ServerName::try_from(domain.clone())
            .map_err(|e| Error::invalid(vendor, "url", format!("bad TLS server name: {e}")))?,
        Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(*ip).into()),
        Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(*ip).into()),
    };
    let connector = tokio_rustls::TlsConnector::from(config.tls.ws_client_config());
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| io_error(vendor, e))?;
    Ok(MaybeTlsStream::Rustls(tls))
}

/// Reads until the head is complete; returns the buffer and where the head ends in it.
async fn read_head(vendor: Vendor, stream: &mut Stream) -> Result<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(HEAD_CHUNK);
    let mut chunk = [0u8; HEAD_CHUNK];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io_error(vendor, e))?;
        if n == 0 {
            return Err(Error::transport(
                vendor,
                OPERATION,
                "connection closed before the WebSocket upgrade response was complete",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            if end > MAX_HEAD {
                return Err(head_too_large(vendor));
            }
            return Ok((buf, end));
        }
        if buf.len() > MAX_HEAD {
            return Err(head_too_large(vendor));
        }
    }
}

fn head_too_large(vendor: Vendor) -> Error {
    malformed(
        vendor,
        format!("the response head is larger than {} KiB", MAX_HEAD / 1024),
    )
}

/// Reads up to `wanted` bytes of a refusal's body into `body` (which holds what came with
/// the head), until the stream ends or fails.
async fn read_body(stream: &mut Stream, body: &mut Vec<u8>, wanted: usize) {
    let mut chunk = [0u8; 128];
    while body.len() < wanted {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A connection after a successful upgrade.
pub(super) struct Upgraded {
    pub(super) stream: Stream,
    /// Bytes the server sent after the head (the start of the first frames), in a buffer of
    /// at least `read_buffer_size` capacity that becomes the connection's read buffer.
    pub(super) tail: Vec<u8>,
    /// The subprotocol the server picked.
    pub(super) protocol: Option<String>,
}

/// Opens the connection to `url` and performs the upgrade, all within the connect timeout.
pub(super) async fn upgrade(config: &WsConfig, url: &Url) -> Result<Upgraded> {
    let vendor = config.vendor;
    let target = Target::parse(vendor, url)?;
    let key = generate_key();
    let request = request(vendor, config, &target, &key)?;
    let offered = offered_protocols(vendor, config)?;
    let timed_out = |_: tokio::time::error::Elapsed| Error::Timeout {
        vendor,
        operation: OPERATION,
        after: config.connect_timeout,
    };
    let (mut stream, buf, end) = tokio::time::timeout(config.connect_timeout, async {
        let mut stream = open(vendor, config, &target).await?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| io_error(vendor, e))?;
        stream.flush().await.map_err(|e| io_error(vendor, e))?;
        let (buf, end) = read_head(vendor, &mut stream).await?;
        Ok::<_, Error>((stream, buf, end))
    })
    .await
    .map_err(timed_out)??;
    let head = Head::parse(vendor, &buf[..end])?;
    if head.status != StatusCode::SWITCHING_PROTOCOLS {
        let mut body = buf[end..].to_vec();
        let wanted = head.body_wanted();
        let _ = tokio::time::timeout(BODY_WAIT, read_body(&mut stream, &mut body, wanted)).await;
        return Err(head.refusal(vendor, &body));
    }
    let protocol = head.verify(vendor, &key, offered.as_ref())?;
    let rest = &buf[end..];
    let mut tail = Vec::with_capacity(config.read_buffer_size.max(rest.len()));
    tail.extend_from_slice(rest);
    Ok(Upgraded {
        stream,
        tail,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::UrlProvider;

    const V: Vendor = Vendor::Genesys;

    fn config(url: &str) -> (WsConfig, Url) {
        let url = Url::parse(url).unwrap();
        (WsConfig::new(V, UrlProvider::fixed(url.clone())), url)
    }

    #[test]
    fn target_of_ws_and_wss_urls() {
        let (_, url) = config("wss://chat.example/v1/socket?token=t#frag");
        let t = Target::parse(V, &url).unwrap();
        assert!(t.secure);
        assert_eq!(t.port, 443);
        assert_eq!(t.authority, "chat.example");
        assert_eq!(t.resource, "/v1/socket?token=t");
        let (_, url) = config("ws://[::1]:8080");
        let t = Target::parse(V, &url).unwrap();
        assert!(!t.secure);
        assert_eq!(t.host, Host::<String>::Ipv6(std::net::Ipv6Addr::LOCALHOST));
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.resource, "/");
        let err = Target::parse(V, &Url::parse("http://chat.example/").unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("unsupported WebSocket scheme"),
            "{err}"
        );
    }

    #[test]
    fn request_lists_the_subprotocols_last() {
        let (mut c, url) = config("ws://127.0.0.1:9/ws");
        c.subprotocols = vec!["sip".into(), "v2".into()];
        c.headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        let target = Target::parse(V, &url).unwrap();
        let bytes = request(V, &c, &target, "a2V5").unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\
             Origin: https://a.example\r\nSec-WebSocket-Protocol: sip, v2\r\n\r\n"
        );
    }

    #[test]
    fn head_end_finds_the_empty_line() {
        assert_eq!(head_end(b"HTTP/1.1 101 X\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"HTTP/1.1 101 X\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"HTTP/1.1 101 X\nA: b\n\nrest"), Some(21));
        // An empty first line is not the end of a head.
        assert_eq!(head_end(b"\r\n"), None);
    }

    #[test]
    fn parse_and_verify_a_101() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n\
             Sec-WebSocket-Protocol: sip\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        let head = Head::parse(V, head.as_bytes()).unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        let offered = HeaderValue::from_static("sip, v2");
        assert_eq!(
            head.verify(V, key, Some(&offered)).unwrap().as_deref(),
            Some("sip")
        );
        // A subprotocol nobody offered is refused.
        let err = head.verify(V, key, None).unwrap_err();
        assert!(format!("{err:?}").contains("not offered"), "{err:?}");
        // So is a missing Accept header.
        let bare = Head::parse(
            V,
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        )
        .unwrap();
        let err = bare.verify(V, key, None).unwrap_err();
        assert!(
            format!("{err:?}").contains("no `Sec-WebSocket-Accept`"),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_heads_name_the_line() {
        let err = Head::parse(V, b"SIP/2.0 200 OK\r\n\r\n").unwrap_err();
        assert!(
            format!("{err:?}").contains("status line `SIP/2.0 200 OK`"),
            "{err:?}"
        );
        let err = Head::parse(V, b"HTTP/1.1 20 OK\r\n\r\n").unwrap_err();
        assert!(format!("{err:?}").contains("status line"), "{err:?}");
        let err = Head::parse(V, b"HTTP/1.1 101 OK\r\nno colon here\r\n\r\n").unwrap_err();
        assert!(
            format!("{err:?}").contains("header line `no colon here`"),
            "{err:?}"
        );
    }

    #[test]
    fn refusals_keep_the_error_mapping() {
        let head = |text: &str| Head::parse(V, text.as_bytes()).unwrap();
        let auth = head("HTTP/1.1 403 Forbidden\r\n\r\n").refusal(V, b"no");
        assert!(matches!(auth, Error::Auth { code: Some(ref c), .. } if c == "403"));
        let busy = head("HTTP/1.1 503 Busy\r\n\r\n").refusal(V, b"");
        assert!(matches!(busy, Error::Transport { .. }), "{busy:?}");
        let later = head("HTTP/1.1 503 Busy\r\nRetry-After: 3\r\n\r\n").refusal(V, b"");
        assert_eq!(later.retry_after(), Some(Duration::from_secs(3)));
        let gone = head("HTTP/1.1 404 Not Found\r\n\r\n").refusal(V, &[b'x'; 600]);
        match gone {
            Error::Rejected {
                code,
                message,
                retry_after: None,
                ..
            } => {
                assert_eq!(code, "404");
                assert!(message.ends_with(&"x".repeat(512)), "{message}");
                assert!(!message.contains(&"x".repeat(513)), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            head("HTTP/1.1 404 X\r\nContent-Length: 20\r\n\r\n").body_wanted(),
            20
        );
        assert_eq!(
            head("HTTP/1.1 404 X\r\nContent-Length: 9000\r\n\r\n").body_wanted(),
            512
        );
        assert_eq!(
            head("HTTP/1.1 404 X\r\nTransfer-Encoding: chunked\r\n\r\n").body_wanted(),
            0
        );
    }
}
