//! SIP messages and their text form.
//!
//! [`SipMessage`] is a plain, owned message: a start line, the headers **in wire order** with
//! their names and values as text, and a UTF-8 body. [`SipCodec`] turns a WebSocket frame into
//! a `SipMessage` and back.
//!
//! Parsing goes through rsipstack's `sip` parser (start line, methods, versions, header
//! unfolding and compact names such as `v` for `Via`), and then checks what every message
//! needs (`Via`, `From`, `To`, `Call-ID`, a valid `CSeq`). Printing is ours: rsipstack writes the
//! standard reason phrase of a status code, while a switch needs its own phrases
//! (`480 NO_ANSWER`), and a UA needs its headers exactly in the order it chose.
//!
//! The same types serve both sides: the [`UserAgent`](super::UserAgent) builds requests, and a
//! simulated switch answers them with [`SipMessage::response_to`].
//!
//! ```
//! use cc_core::Vendor;
//! use cc_rtc::sip::{Method, SipCodec, SipMessage};
//!
//! let codec = SipCodec::new(Vendor::Expertflow);
//! let invite = SipMessage::request(Method::Invite, "sip:1000@sip.example")
//!     .with_header("Via", "SIP/2.0/WSS abc.invalid;branch=z9hG4bK1")
//!     .with_header("From", "<sip:99@sip.example>;tag=a1")
//!     .with_header("To", "<sip:1000@sip.example>")
//!     .with_header("Call-ID", "c1")
//!     .with_header("CSeq", "1 INVITE")
//!     .with_header("X-Customer-Name", "Ada");
//! let wire = codec.print(&invite);
//! let parsed = codec.parse(&wire).unwrap();
//! assert_eq!(parsed, invite);
//!
//! let ringing = SipMessage::response_to_tagged(&parsed, 180, "Ringing", "srv1");
//! assert_eq!(ringing.to_tag(), Some("srv1"));
//! assert_eq!(ringing.header("Call-ID"), Some("c1"));
//! ```

use std::fmt;
use std::str::FromStr;

use cc_core::{Error, Result, Vendor};

/// A SIP method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `INVITE`
    Invite,
    /// `ACK`
    Ack,
    /// `BYE`
    Bye,
    /// `CANCEL`
    Cancel,
    /// `REGISTER`
    Register,
    /// `OPTIONS`
    Options,
    /// `INFO`
    Info,
    /// `MESSAGE`
    Message,
    /// `UPDATE`
    Update,
    /// `PRACK`
    Prack,
    /// `SUBSCRIBE`
    Subscribe,
    /// `NOTIFY`
    Notify,
    /// `REFER`
    Refer,
    /// `PUBLISH`
    Publish,
}

impl Method {
    /// The method's name on the wire.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
        }
    }

    /// Every method, in a stable order.
    pub const ALL: [Method; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Register,
        Method::Options,
        Method::Info,
        Method::Message,
        Method::Update,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Refer,
        Method::Publish,
    ];
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;

    /// Case-sensitive, as RFC 3261 says.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown SIP method `{s}`"))
    }
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// The method.
        method: Method,
        /// The Request-URI, as written.
        uri: String,
    },
    /// `SIP/2.0 status reason`
    Response {
        /// The status code (100..=699).
        status: u16,
        /// The reason phrase, as written (may be empty).
        reason: String,
    },
}

/// One SIP message: start line, headers in order, body.
///
/// Header names keep the spelling they were built with; parsed messages carry rsipstack's
/// canonical names for the headers it knows (`Call-ID`, `CSeq`, `WWW-Authenticate`, full
/// names instead of compact ones) and the wire spelling for the others (`X-Customer-Name`).
/// Lookups ignore case. `Content-Length` is never stored: printing writes it from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipMessage {
    /// The first line.
    pub start: StartLine,
    /// `(name, value)` pairs in wire order, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (SDP, DTMF relay, text); empty when there is none.
    pub body: String,
}

/// Compact forms (RFC 3261 §7.3.3 and extensions) a lookup also matches.
fn compact_of(name: &str) -> Option<&'static str> {
    const PAIRS: [(&str, &str); 13] = [
        ("Call-ID", "i"),
        ("Contact", "m"),
        ("Content-Encoding", "e"),
        ("Content-Length", "l"),
        ("Content-Type", "c"),
        ("From", "f"),
        ("Subject", "s"),
        ("Supported", "k"),
        ("To", "t"),
        ("Via", "v"),
        ("Event", "o"),
        ("Refer-To", "r"),
        ("Referred-By", "b"),
    ];
    PAIRS
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|(_, short)| *short)
}

fn name_matches(have: &str, want: &str) -> bool {
    have.eq_ignore_ascii_case(want)
        || compact_of(want).is_some_and(|short| have.eq_ignore_ascii_case(short))
}

impl SipMessage {
    /// A request with no headers yet.
    pub fn request(method: Method, uri: impl Into<String>) -> Self {
        SipMessage {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A response with no headers yet (see [`SipMessage::response_to`] for the usual way).
    pub fn response(status: u16, reason: impl Into<String>) -> Self {
        SipMessage {
            start: StartLine::Response {
                status,
                reason: reason.into(),
            },
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// The response a server sends to `request`: copies every `Via`, `From`, `To`, `Call-ID`
    /// and `CSeq` in order (and `Record-Route` for 1xx/2xx answers to dialog-creating
    /// requests), and adds a fresh random To tag unless the To already has one or `status`
    /// is 100.
    pub fn response_to(request: &SipMessage, status: u16, reason: &str) -> Self {
        Self::response_to_tagged(request, status, reason, &random_token(10))
    }

    /// Like [`SipMessage::response_to`] with the To tag given (keep one tag per dialog:
    /// the same for `180` and `200`).
    pub fn response_to_tagged(request: &SipMessage, status: u16, reason: &str, tag: &str) -> Self {
        let mut response = SipMessage::response(status, reason);
        let dialog_creating = matches!(
            request.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer)
        ) && (101..300).contains(&status);
        for (name, value) in &request.headers {
            let copy = ["Via", "From", "To", "Call-ID", "CSeq"]
                .iter()
                .any(|n| name_matches(name, n))
                || (dialog_creating && name.eq_ignore_ascii_case("Record-Route"));
            if !copy {
                continue;
            }
            let value = if name_matches(name, "To") && status != 100 && tag_of(value).is_none() {
                format!("{value};tag={tag}")
            } else {
                value.clone()
            };
            response.headers.push((name.clone(), value));
        }
        response
    }

    /// Appends a header (builder style).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push_header(name, value);
        self
    }

    /// Sets the body and its `Content-Type` (builder style).
    #[must_use]
    pub fn with_body(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.set_header("Content-Type", content_type);
        self.body = body.into();
        self
    }

    /// Appends a header.
    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Replaces the first header named `name` (dropping any others of that name), or
    /// appends it.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        let mut placed = false;
        self.headers.retain_mut(|(n, v)| {
            if !name_matches(n, name) {
                return true;
            }
            if placed {
                return false;
            }
            placed = true;
            *v = value.clone();
            true
        });
        if !placed {
            self.headers.push((name.to_owned(), value));
        }
    }

    /// Removes every header named `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !name_matches(n, name));
    }

    /// The first value of header `name` (case-insensitive, compact forms too).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| name_matches(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order (one per header line; a line may still hold
    /// several comma-separated values, see [`split_list`]).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| name_matches(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// The method of a request (`None` for a response).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The `Call-ID`.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// The `CSeq` number and method.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        parse_cseq(self.header("CSeq")?).ok()
    }

    /// The tag of the `From` header.
    pub fn from_tag(&self) -> Option<&str> {
        tag_of(self.header("From")?)
    }

    /// The tag of the `To` header.
    pub fn to_tag(&self) -> Option<&str> {
        tag_of(self.header("To")?)
    }

    /// The `branch` parameter of the top `Via`.
    pub fn via_branch(&self) -> Option<&str> {
        let top = split_list(self.header("Via")?).into_iter().next()?;
        let top = self.header("Via")?.get(top)?;
        param_of(top, "branch")
    }

    /// The `Content-Type` without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        let value = self.header("Content-Type")?;
        Some(
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase(),
        )
    }

    /// The first line as text (for logs and error messages).
    pub fn first_line(&self) -> String {
        match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0"),
            StartLine::Response { status, reason } => format!("SIP/2.0 {status} {reason}"),
        }
    }
}

/// Prints the wire form: start line, headers in order, `Content-Length` from the body,
/// blank line, body.
impl fmt::Display for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\r\n", self.first_line().trim_end())?;
        for (name, value) in &self.headers {
            if name_matches(name, "Content-Length") {
                continue;
            }
            if value.is_empty() {
                write!(f, "{name}: \r\n")?;
            } else {
                write!(f, "{name}: {value}\r\n")?;
            }
        }
        write!(
            f,
            "Content-Length: {}\r\n\r\n{}",
            self.body.len(),
            self.body
        )
    }
}

/// Parses and prints SIP messages for one vendor (named in every error).
#[derive(Clone, Copy, Debug)]
pub struct SipCodec {
    vendor: Vendor,
}

impl SipCodec {
    /// A codec whose errors name `vendor`.
    pub const fn new(vendor: Vendor) -> Self {
        SipCodec { vendor }
    }

    /// The wire text of `message` (same as its `Display`).
    pub fn print(&self, message: &SipMessage) -> String {
        message.to_string()
    }

    /// Parses one SIP message from a WebSocket text frame.
    ///
    /// Errors are [`Error::Protocol`] whose `frame` is the frame's first line (cut to 80
    /// characters), e.g. `SIP frame "INVITE sip:a@b SIP/2.0"`, and whose `reason` says
    /// what is wrong. A missing `Content-Length` means the body runs to the end of the
    /// frame (RFC 7118 §5); a `Content-Length` beyond the frame is an error; bytes after it
    /// are ignored.
    pub fn parse(&self, frame: &str) -> Result<SipMessage> {
        self.parse_bytes(frame.as_bytes())
    }

    /// Like [`SipCodec::parse`] for a binary frame (must be UTF-8).
    pub fn parse_bytes(&self, frame: &[u8]) -> Result<SipMessage> {
        parse_message(frame)
            .map_err(|reason| Error::protocol(self.vendor, frame_name(frame), reason))
    }
}

fn frame_name(frame: &[u8]) -> String {
    let first = frame.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let first = first.trim();
    if first.is_empty() {
        return "SIP frame (empty first line)".to_owned();
    }
    let mut cut: String = first.chars().take(80).collect();
    if cut.len() < first.len() {
        cut.push('…');
    }
    format!("SIP frame {cut:?}")
}

fn parse_message(frame: &[u8]) -> std::result::Result<SipMessage, String> {
    use rsipstack::sip::{HasHeaders, SipMessage as RsMessage};

    let sep = find(frame, b"\r\n\r\n").ok_or("no blank line (CRLF CRLF) after the headers")?;
    let head = std::str::from_utf8(&frame[..sep]).map_err(|_| "headers are not UTF-8")?;
    let rest = &frame[sep + 4..];
    let first_line = head.split("\r\n").next().unwrap_or_default();
    if first_line.trim().is_empty() {
        return Err("empty start line".to_owned());
    }
    // Our own checks first: rsipstack skips lines it cannot read.
    for line in head.split("\r\n").skip(1) {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some(colon) = line.find(':') else {
            return Err(format!("header line without a colon: {:?}", cut(line)));
        };
        let name = line[..colon].trim_end();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("invalid header name {:?}", cut(name)));
        }
    }
    if let Some(line) = head.split("\r\n").find(|l| l.contains(['\r', '\n', '\0'])) {
        return Err(format!("bare CR, LF or NUL in line {:?}", cut(line)));
    }
    // rsipstack parses the start line (method, URI, version, status) and unfolds headers.
    let mut probe = Vec::with_capacity(sep + 4);
    probe.extend_from_slice(&frame[..sep]);
    probe.extend_from_slice(b"\r\n\r\n");
    let parsed = rsipstack::sip::parser::parse_message(&probe).map_err(|e| format!("{e}"))?;
    let start = match &parsed {
        RsMessage::Request(_) => {
            let mut parts = first_line.split([' ', '\t']).filter(|p| !p.is_empty());
            let method = parts.next().unwrap_or_default();
            let uri = parts.next().unwrap_or_default();
            let version = parts.next().unwrap_or_default();
            if parts.next().is_some() {
                return Err("extra text after the SIP version".to_owned());
            }
            if version != "SIP/2.0" {
                return Err(format!("unsupported version {:?}", cut(version)));
            }
            let method = method.parse::<Method>()?;
            StartLine::Request {
                method,
                uri: uri.to_owned(),
            }
        }
        RsMessage::Response(r) => {
            let mut parts = first_line.splitn(3, ' ');
            let version = parts.next().unwrap_or_default();
            let _code = parts.next();
            let reason = parts.next().unwrap_or_default().trim();
            if version != "SIP/2.0" {
                return Err(format!("unsupported version {:?}", cut(version)));
            }
            let status = r.status_code.code();
            if !(100..=699).contains(&status) {
                return Err(format!("status code {status} out of range 100..=699"));
            }
            StartLine::Response {
                status,
                reason: reason.to_owned(),
            }
        }
    };
    let mut headers = Vec::new();
    let mut content_length = None;
    let rs_headers = match &parsed {
        RsMessage::Request(r) => r.headers(),
        RsMessage::Response(r) => r.headers(),
    };
    for h in rs_headers.iter() {
        let name = h.name().to_owned();
        let value = h.value().trim().to_owned();
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: usize = value
                .parse()
                .map_err(|_| format!("invalid Content-Length {:?}", cut(&value)))?;
            content_length = Some(n);
            continue;
        }
        headers.push((name, value));
    }
    let body = match content_length {
        Some(n) if n > rest.len() => {
            return Err(format!(
                "Content-Length {n} but the frame holds {} body bytes",
                rest.len()
            ));
        }
        Some(n) => &rest[..n],
        None => rest,
    };
    let body = std::str::from_utf8(body)
        .map_err(|_| "body is not UTF-8".to_owned())?
        .to_owned();
    let message = SipMessage {
        start,
        headers,
        body,
    };
    check_mandatory(&message)?;
    Ok(message)
}

fn check_mandatory(message: &SipMessage) -> std::result::Result<(), String> {
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        match message.header(name) {
            None => return Err(format!("missing header `{name}`")),
            Some("") => return Err(format!("empty header `{name}`")),
            Some(_) => {}
        }
    }
    let (_, cseq_method) = parse_cseq(message.header("CSeq").unwrap_or_default())?;
    if let Some(method) = message.method()
        && *method != cseq_method
    {
        return Err(format!(
            "CSeq method {cseq_method} does not match the request method {method}"
        ));
    }
    Ok(())
}

/// Parses a `CSeq` value (`"42 INVITE"`).
pub fn parse_cseq(value: &str) -> std::result::Result<(u32, Method), String> {
    let mut parts = value.split_whitespace();
    let number = parts
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| format!("invalid CSeq {:?}", cut(value)))?;
    let method = parts
        .next()
        .ok_or_else(|| format!("CSeq {:?} has no method", cut(value)))?
        .parse::<Method>()?;
    if parts.next().is_some() {
        return Err(format!("invalid CSeq {:?}", cut(value)));
    }
    Ok((number, method))
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits a header value holding a comma-separated list (`Via`, `Record-Route`, `Contact`)
/// into the byte ranges of its entries, ignoring commas inside quotes and `<...>`.
pub fn split_list(value: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                push_trimmed(&mut out, value, start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    push_trimmed(&mut out, value, start..value.len());
    out
}

fn push_trimmed(out: &mut Vec<std::ops::Range<usize>>, value: &str, range: std::ops::Range<usize>) {
    let part = &value[range.clone()];
    let lead = part.len() - part.trim_start().len();
    let trail = part.len() - part.trim_end().len();
    if lead + trail < part.len() {
        out.push(range.start + lead..range.end - trail);
    }
}

/// The entries of a comma-separated header value as text (see [`split_list`]).
pub fn list_entries(value: &str) -> Vec<&str> {
    split_list(value).into_iter().map(|r| &value[r]).collect()
}

/// A `name-addr` or `addr-spec` with header parameters: `"Ada" <sip:a@b;ob>;tag=x;expires=60`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted.
    pub display_name: Option<String>,
    /// The URI, as written (without `<>`).
    pub uri: String,
    /// Header parameters after the URI (`tag`, `expires`, …), in order.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses one entry (`From`, `To`, one `Contact` or `Record-Route` entry).
    pub fn parse(value: &str) -> std::result::Result<NameAddr, String> {
        let value = value.trim();
        let (display_name, uri, rest) = if let Some(open) = find_unquoted(value, '<') {
            let close = value[open..]
                .find('>')
                .map(|i| open + i)
                .ok_or_else(|| format!("no closing `>` in {:?}", cut(value)))?;
            let display = value[..open].trim();
            let display = display.trim_matches('"').trim();
            (
                (!display.is_empty()).then(|| display.to_owned()),
                value[open + 1..close].trim().to_owned(),
                &value[close + 1..],
            )
        } else {
            // addr-spec: parameters after the first `;` belong to the header.
            let end = value.find(';').unwrap_or(value.len());
            (None, value[..end].trim().to_owned(), &value[end..])
        };
        if uri.is_empty() {
            return Err(format!("no URI in {:?}", cut(value)));
        }
        let params = rest
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                None => (p.to_owned(), None),
            })
            .collect();
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    /// The value of header parameter `name` (`Some("")` for a flag such as `lr`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "\"{name}\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

fn find_unquoted(value: &str, wanted: char) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The `tag` parameter of a `From`/`To` value.
pub fn tag_of(value: &str) -> Option<&str> {
    // Parameters after the URI: skip past `>` when the value has one.
    let params = match find_unquoted(value, '>') {
        Some(i) => &value[i + 1..],
        None => value.find(';').map_or("", |i| &value[i..]),
    };
    param_in(params, "tag")
}

/// The value of parameter `name` in a `;`-separated parameter list (e.g. a `Via` entry).
pub fn param_of<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    param_in(value, name)
}

fn param_in<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').skip(1).find_map(|p| {
        let p = p.trim();
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A random token of `len` lower-case letters and digits (tags, branches, Call-IDs).
pub fn random_token(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

/// The reason a failure response or a `BYE` gives, the way Expertflow's client reads it:
/// `X-Call-Dropped-Custom-Reason`, else the `text` of a `Reason` header, else (for a
/// response) the reason phrase.
pub fn end_reason(message: &SipMessage) -> Option<String> {
    if let Some(custom) = message.header("X-Call-Dropped-Custom-Reason")
        && !custom.is_empty()
    {
        return Some(custom.to_owned());
    }
    for reason in message.headers_named("Reason") {
        if let Some(text) = quoted_param(reason, "text")
            && !text.is_empty()
        {
            return Some(text);
        }
    }
    message
        .reason()
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

/// The (unquoted) value of `name` in a parameter list whose values may be quoted strings
/// containing `;` (`SIP;cause=486;text="Busy; here"`).
fn quoted_param(value: &str, name: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < value.len() {
        let at = value[i..].find(';')? + i + 1;
        let rest = value[at..].trim_start();
        let offset = value.len() - rest.len();
        let key_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let key = rest[..key_end].trim();
        let mut j = offset + key_end;
        if j < value.len() && bytes[j] == b'=' {
            j += 1;
            let v = value[j..].trim_start();
            let vstart = value.len() - v.len();
            if let Some(stripped) = v.strip_prefix('"') {
                let mut out = String::new();
                let mut escaped = false;
                let mut end = vstart + 1;
                for (k, c) in stripped.char_indices() {
                    end = vstart + 1 + k + c.len_utf8();
                    if escaped {
                        out.push(c);
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    } else {
                        out.push(c);
                    }
                }
                if key.eq_ignore_ascii_case(name) {
                    return Some(out);
                }
                i = end;
                continue;
            }
            let vend = v.find(';').map_or(value.len(), |k| vstart + k);
            if key.eq_ignore_ascii_case(name) {
                return Some(value[vstart..vend].trim().to_owned());
            }
            i = vend;
        } else {
            i = j;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> SipCodec {
        SipCodec::new(Vendor::Expertflow)
    }

    const INVITE: &str = "INVITE sip:1000@sip.example SIP/2.0\r\n\
        Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKx1\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:1000@sip.example>\r\n\
        From: \"Ada\" <sip:99@sip.example>;tag=t1\r\n\
        Call-ID: c1\r\n\
        CSeq: 2 INVITE\r\n\
        X-Customer-Name:Ada\r\n\
        X-Calltype: OUT\r\n\
        X-Customer-Number:\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn parses_a_request_keeping_header_order() {
        let m = codec().parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.uri(), Some("sip:1000@sip.example"));
        let names: Vec<&str> = m.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Via",
                "Max-Forwards",
                "To",
                "From",
                "Call-ID",
                "CSeq",
                "X-Customer-Name",
                "X-Calltype",
                "X-Customer-Number",
                "Content-Type"
            ]
        );
        assert_eq!(m.header("x-customer-name"), Some("Ada"));
        assert_eq!(m.header("X-Customer-Number"), Some(""));
        assert_eq!(m.body, "v=0\n");
        assert_eq!(m.cseq(), Some((2, Method::Invite)));
        assert_eq!(m.from_tag(), Some("t1"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.via_branch(), Some("z9hG4bKx1"));
        assert_eq!(m.content_type().as_deref(), Some("application/sdp"));
    }

    #[test]
    fn compact_names_are_expanded() {
        let frame = "BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/WS x.invalid;branch=z9hG4bK2\r\n\
            f: <sip:a@b>;tag=1\r\nt: <sip:c@b>;tag=2\r\ni: c2\r\nCSeq: 3 BYE\r\nl: 0\r\n\r\n";
        let m = codec().parse(frame).unwrap();
        assert_eq!(m.call_id(), Some("c2"));
        assert_eq!(m.headers[0].0, "Via");
        assert_eq!(m.to_tag(), Some("2"));
    }

    #[test]
    fn a_response_keeps_its_own_reason_phrase() {
        let frame = "SIP/2.0 480 NO_ANSWER\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK2\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@b>;tag=2\r\nCall-ID: c2\r\nCSeq: 3 INVITE\r\n\r\n";
        let m = codec().parse(frame).unwrap();
        assert_eq!(m.status(), Some(480));
        assert_eq!(m.reason(), Some("NO_ANSWER"));
        assert!(m.to_string().starts_with("SIP/2.0 480 NO_ANSWER\r\n"));
    }

    #[test]
    fn errors_name_the_first_line() {
        let e = codec()
            .parse("INVITE sip:a@b SIP/2.0\r\nFrom: <sip:x@y>\r\n\r\n")
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
        assert!(text.contains("INVITE sip:a@b SIP/2.0"), "{text}");
        assert!(text.contains("missing header `Via`"), "{text}");
        for bad in [
            "",
            "hello",
            "FOO sip:a@b SIP/2.0\r\n\r\n",
            "INVITE sip:a@b SIP/3.0\r\n\r\n",
            "SIP/2.0 99 Odd\r\n\r\n",
            "SIP/2.0 abc Odd\r\n\r\n",
        ] {
            assert!(codec().parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = codec().parse(&"X".repeat(500)).unwrap_err().to_string();
        assert!(long.len() < 300, "{long}");
    }

    #[test]
    fn content_length_is_checked() {
        let base = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK2\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@b>\r\nCall-ID: c2\r\nCSeq: 1 MESSAGE\r\n";
        let short = format!("{base}Content-Length: 10\r\n\r\nabc");
        assert!(
            codec()
                .parse(&short)
                .unwrap_err()
                .to_string()
                .contains("Content-Length 10")
        );
        let none = format!("{base}\r\nhello");
        assert_eq!(codec().parse(&none).unwrap().body, "hello");
        let mismatch = base.replace("1 MESSAGE", "1 INVITE") + "\r\n";
        assert!(
            codec()
                .parse(&mismatch)
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
    }

    #[test]
    fn response_to_copies_the_dialog_headers_and_adds_a_tag() {
        let mut req = codec().parse(INVITE).unwrap();
        req.headers
            .insert(1, ("Record-Route".into(), "<sip:p1;lr>".into()));
        let trying = SipMessage::response_to(&req, 100, "Trying");
        assert_eq!(trying.to_tag(), None);
        assert_eq!(trying.header("Record-Route"), None);
        let ok = SipMessage::response_to_tagged(&req, 200, "OK", "zz");
        assert_eq!(ok.to_tag(), Some("zz"));
        assert_eq!(ok.header("Record-Route"), Some("<sip:p1;lr>"));
        assert_eq!(ok.header("Via"), req.header("Via"));
        assert_eq!(ok.header("CSeq"), Some("2 INVITE"));
        assert_eq!(ok.header("X-Customer-Name"), None);
        let random = SipMessage::response_to(&req, 486, "Busy Here");
        assert!(random.to_tag().is_some_and(|t| t.len() == 10));
    }

    #[test]
    fn name_addr_and_params() {
        let n = NameAddr::parse("\"Ada, L\" <sip:99@h;transport=ws;ob>;tag=x;expires=60").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("Ada, L"));
        assert_eq!(n.uri, "sip:99@h;transport=ws;ob");
        assert_eq!(n.param("expires"), Some("60"));
        let rr = list_entries("<sip:p1;lr>, \"x,y\" <sip:p2;lr>,<sip:p3>");
        assert_eq!(rr, ["<sip:p1;lr>", "\"x,y\" <sip:p2;lr>", "<sip:p3>"]);
        assert_eq!(tag_of("sip:a@b;tag=9"), Some("9"));
        assert_eq!(tag_of("<sip:a@b;tag=no>"), None);
    }

    #[test]
    fn end_reason_prefers_the_custom_header_then_reason_text_then_phrase() {
        let base = SipMessage::response(486, "Busy Here");
        assert_eq!(end_reason(&base).as_deref(), Some("Busy Here"));
        let with_reason = base.with_header("Reason", "Q.850;cause=17;text=\"USER_BUSY; really\"");
        assert_eq!(
            end_reason(&with_reason).as_deref(),
            Some("USER_BUSY; really")
        );
        let custom = with_reason.with_header("X-Call-Dropped-Custom-Reason", "USER_BUSY");
        assert_eq!(end_reason(&custom).as_deref(), Some("USER_BUSY"));
        let bye = SipMessage::request(Method::Bye, "sip:a@b");
        assert_eq!(end_reason(&bye), None);
    }
}
