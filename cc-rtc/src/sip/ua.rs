//! The user agent: one reconnecting WebSocket (subprotocol `sip`), registration, and the
//! transactions of its dialogs.
//!
//! # Machinery
//!
//! [`UserAgent::start`] opens a [`cc_transport::WsClient`] and spawns one **driver** task that
//! reads the socket's events in order. Every incoming frame is parsed with [`SipCodec`]; a
//! malformed one becomes [`UaEvent::Error`] and the UA goes on. Responses are matched to
//! their client transaction by the top `Via` branch and the `CSeq` method; requests are
//! answered here (`OPTIONS`, out-of-dialog `MESSAGE`, unknown dialogs with 481) or handed
//! to their [`Dialog`] / a new [`IncomingCall`].
//!
//! The transport is reliable, so there are no retransmission timers, only Timer B (INVITE,
//! until the first provisional response) and Timer F (other requests), both
//! [`UaConfig::transaction_timeout`] (32 s by default). The one exception is the 2xx to an
//! INVITE, which travels end to end: the UAS repeats it until the ACK arrives, and the UAC
//! answers a repeated 2xx with its ACK again.
//!
//! Registration: [`UserAgent::register`] sends `REGISTER` (answering a 401/407 digest
//! challenge with `qop=auth`, MD5, and a nonce count), then a refresher task renews it at 90 %
//! of the granted expiry, and again at once after every reconnect.
//! [`UserAgent::unregister`] sends `Expires: 0`.
//!
//! The wire follows what SIP.js writes (`shared/protocols/expertflow.md` §5.1): `Via:
//! SIP/2.0/WSS <random>.invalid`, `Contact: <sip:EXT@<random>.invalid;transport=wss>` (with
//! `;ob` on dialogs), `Supported: outbound`, custom headers in the caller's order.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cc_core::{Error, Result, Secret, Vendor};
use cc_transport::{
    BackoffPolicy, Heartbeat, TlsConfig, UrlProvider, WsClient, WsConfig, WsEvent, WsEvents,
    WsHandle,
};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use url::Url;

use super::codec::{
    Method, NameAddr, SipCodec, SipMessage, end_reason, list_entries, random_token,
};
use super::dialog::{Dialog, DialogShared, IncomingCall};
use super::digest::DigestChallenge;

/// The methods this UA accepts (sent in `Allow`).
pub(crate) const ALLOW: &str = "ACK,CANCEL,INVITE,MESSAGE,BYE,OPTIONS,INFO,NOTIFY,REFER";

/// Configuration of a [`UserAgent`]. Start from [`UaConfig::new`] and set fields.
#[derive(Clone)]
pub struct UaConfig {
    /// The switch's WebSocket URL (`wss://host:7443`, or `ws://` in tests).
    pub ws_url: Url,
    /// The SIP domain (`uriFs`): REGISTER goes to `sip:<domain>`, the AOR is
    /// `sip:<user>@<domain>`.
    pub domain: String,
    /// The user part of the AOR (the extension).
    pub user: String,
    /// The digest user name when it differs from `user`.
    pub auth_user: Option<String>,
    /// The digest password; `None` when the server does not challenge.
    pub password: Option<Secret>,
    /// Display name in `From`.
    pub display_name: Option<String>,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Requested registration lifetime in seconds (600, as SIP.js asks).
    pub register_expires: u32,
    /// Trusted roots for `wss`.
    pub tls: TlsConfig,
    /// Timer B / Timer F: how long a request waits for a (first) response. 32 s.
    pub transaction_timeout: Duration,
    /// How long [`UserAgent::start`] waits for the first connection. 10 s.
    pub connect_timeout: Duration,
    /// Reconnect policy of the WebSocket.
    pub backoff: BackoffPolicy,
    /// WebSocket ping interval (keeps NAT and proxies awake); `None` for none. 30 s.
    pub keepalive: Option<Duration>,
}

impl UaConfig {
    /// A configuration with the defaults: no password, `User-Agent: cc-rtc`, 600 s
    /// registrations, web PKI roots, 32 s transaction timeout, the Expertflow SIP reconnect
    /// policy, 30 s WebSocket pings.
    pub fn new(ws_url: Url, domain: impl Into<String>, user: impl Into<String>) -> Self {
        UaConfig {
            ws_url,
            domain: domain.into(),
            user: user.into(),
            auth_user: None,
            password: None,
            display_name: None,
            user_agent: concat!("cc-rtc/", env!("CARGO_PKG_VERSION")).to_owned(),
            register_expires: 600,
            tls: TlsConfig::webpki(),
            transaction_timeout: Duration::from_secs(32),
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffPolicy::expertflow_sip(),
            keepalive: Some(Duration::from_secs(30)),
        }
    }
}

impl fmt::Debug for UaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaConfig")
            .field("ws_url", &self.ws_url.origin().ascii_serialization())
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("auth_user", &self.auth_user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("display_name", &self.display_name)
            .field("user_agent", &self.user_agent)
            .field("register_expires", &self.register_expires)
            .field("transaction_timeout", &self.transaction_timeout)
            .finish_non_exhaustive()
    }
}

/// What the user agent reports (on [`UserAgent::events`]).
#[derive(Clone, Debug)]
pub enum UaEvent {
    /// The WebSocket is connected (first time or after a reconnect).
    TransportUp,
    /// The WebSocket dropped; it reconnects by itself (and re-registers).
    TransportDown {
        /// Why.
        reason: String,
    },
    /// A REGISTER (first or refresh) was accepted.
    Registered {
        /// The lifetime the registrar granted, in seconds.
        expires: u32,
    },
    /// The un-REGISTER was accepted.
    Unregistered,
    /// A REGISTER was refused (or timed out: status 408).
    RegistrationFailed {
        /// The status code.
        status: u16,
        /// The reason phrase or the server's reason text.
        reason: String,
    },
    /// A new call for us; answer, ring or reject it.
    Incoming(IncomingCall),
    /// A `MESSAGE` arrived (already answered with 200).
    Message {
        /// The `From` header value.
        from: String,
        /// The Call-ID (dialog id when sent inside a dialog).
        call_id: String,
        /// The `Content-Type` value.
        content_type: String,
        /// The body.
        body: String,
    },
    /// A frame could not be understood ([`Error::Protocol`] naming its first line), or the
    /// server broke the protocol; the UA goes on.
    Error(Arc<Error>),
}

/// A cheap, cloneable handle to one SIP user agent. When every handle is dropped, the
/// WebSocket closes (dialogs still held fail with [`Error::Closed`]).
#[derive(Clone)]
pub struct UserAgent {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAgent")
            .field("vendor", &self.inner.vendor)
            .field("aor", &self.inner.aor())
            .field("host", &self.inner.host)
            .finish()
    }
}

/// A client transaction waiting for responses.
struct ClientTx {
    responses: mpsc::UnboundedSender<SipMessage>,
    /// The connection that was up when the request was queued (`None`: none was, so it
    /// goes out on the next one).
    connection: Option<u64>,
}

#[derive(Default)]
struct RegState {
    /// The app wants to be registered (refresh and re-register after reconnects).
    wanted: bool,
    /// A digest challenge of the registrar, reused for refreshes with a growing nonce count.
    auth: Option<(DigestChallenge, &'static str, u32)>,
    /// CSeq of the registration Call-ID.
    cseq: u32,
    /// The refresher task.
    refresher: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub(crate) struct State {
    transactions: HashMap<(String, Method), ClientTx>,
    /// Dialogs by (Call-ID, local tag).
    pub(crate) dialogs: HashMap<(String, String), Arc<DialogShared>>,
    reg: RegState,
    connections: u64,
    /// The number of the current (or last) WebSocket connection.
    current: u64,
}

pub(crate) struct Inner {
    pub(crate) vendor: Vendor,
    pub(crate) config: UaConfig,
    pub(crate) codec: SipCodec,
    ws: WsHandle,
    /// `<random>.invalid`, the host of our Via and Contact.
    pub(crate) host: String,
    /// `ws` or `wss`.
    pub(crate) transport: &'static str,
    reg_call_id: String,
    reg_from_tag: String,
    pub(crate) events: broadcast::Sender<UaEvent>,
    pub(crate) state: Mutex<State>,
    reregister: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.lock().reg.refresher.take() {
            task.abort();
        }
    }
}

/// Outcome of a request whose transaction ended.
pub(crate) enum TxOutcome {
    Final(SipMessage),
    Timeout,
    Closed,
}

impl Inner {
    pub(crate) fn aor(&self) -> String {
        format!("sip:{}@{}", self.config.user, self.config.domain)
    }

    /// `"Display" <sip:user@domain>`
    pub(crate) fn local_identity(&self) -> String {
        match &self.config.display_name {
            Some(name) => format!("\"{}\" <{}>", name.replace('"', ""), self.aor()),
            None => format!("<{}>", self.aor()),
        }
    }

    /// Our contact URI (without `<>`), `;ob` for dialogs.
    pub(crate) fn contact_uri(&self, ob: bool) -> String {
        let ob = if ob { ";ob" } else { "" };
        format!(
            "sip:{}@{};transport={}{ob}",
            self.config.user, self.host, self.transport
        )
    }

    pub(crate) fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch}",
            self.transport.to_ascii_uppercase(),
            self.host
        )
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn emit(&self, event: UaEvent) {
        let _ = self.events.send(event);
    }

    /// Queues a message on the WebSocket (written once connected).
    pub(crate) fn send(&self, message: &SipMessage) -> Result<()> {
        tracing::debug!(vendor = %self.vendor, line = %message.first_line(), "sip send");
        self.ws.send(self.codec.print(message))
    }

    /// Sends a request as a new client transaction and returns its response channel. The
    /// request's top Via branch and CSeq method are the key.
    pub(crate) fn start_tx(
        &self,
        request: &SipMessage,
    ) -> Result<(mpsc::UnboundedReceiver<SipMessage>, TxKey)> {
        let branch = request
            .via_branch()
            .ok_or_else(|| Error::invalid(self.vendor, "sip.via", "request without a branch"))?
            .to_owned();
        let method = request
            .method()
            .cloned()
            .ok_or_else(|| Error::invalid(self.vendor, "sip.request", "not a request"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let key = (branch, method);
        let connection = self.ws.connection();
        self.lock().transactions.insert(
            key.clone(),
            ClientTx {
                responses: tx,
                connection,
            },
        );
        if let Err(e) = self.send(request) {
            self.lock().transactions.remove(&key);
            return Err(e);
        }
        Ok((rx, TxKey(key)))
    }

    pub(crate) fn end_tx(&self, key: &TxKey) {
        self.lock().transactions.remove(&key.0);
    }

    /// Waits for the final response of a non-INVITE transaction (Timer F).
    pub(crate) async fn wait_final(
        &self,
        rx: &mut mpsc::UnboundedReceiver<SipMessage>,
    ) -> TxOutcome {
        let deadline = tokio::time::Instant::now() + self.config.transaction_timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return TxOutcome::Timeout,
                Ok(None) => return TxOutcome::Closed,
                Ok(Some(r)) if r.status().is_some_and(|s| s < 200) => continue,
                Ok(Some(r)) => return TxOutcome::Final(r),
            }
        }
    }

    /// Sends a non-INVITE request and waits for its final response, answering up to two
    /// digest challenges. `next_cseq` gives the CSeq number of each resend.
    pub(crate) async fn request(
        &self,
        mut request: SipMessage,
        mut next_cseq: impl FnMut() -> u32,
    ) -> Result<SipMessage> {
        let method = request.method().cloned().unwrap_or(Method::Options);
        let mut answered_fresh = false;
        let mut round = 0;
        loop {
            round += 1;
            request.set_header("Via", self.via(&new_branch()));
            let (mut rx, key) = self.start_tx(&request)?;
            let outcome = self.wait_final(&mut rx).await;
            self.end_tx(&key);
            let response = match outcome {
                TxOutcome::Final(r) => r,
                TxOutcome::Timeout => {
                    return Err(Error::Timeout {
                        vendor: self.vendor,
                        operation: method_operation(&method),
                        after: self.config.transaction_timeout,
                    });
                }
                TxOutcome::Closed => return Err(connection_lost(self.vendor, &method)),
            };
            let status = response.status().unwrap_or_default();
            if matches!(status, 401 | 407) {
                let Some((header, challenge)) = challenge_of(&response) else {
                    return Ok(response);
                };
                // At most three rounds: a server that keeps saying `stale` gets its answer.
                if (answered_fresh && !challenge.stale) || round == 3 {
                    return Ok(response);
                }
                let uri = request.uri().unwrap_or_default().to_owned();
                let Some(value) = self.answer_challenge(&challenge, &method, &uri, 1)? else {
                    return Ok(response);
                };
                request.remove_header("Authorization");
                request.remove_header("Proxy-Authorization");
                request.push_header(header, value);
                request.set_header("CSeq", format!("{} {method}", next_cseq()));
                if method == Method::Register {
                    self.lock().reg.auth = Some((challenge, header, 1));
                }
                answered_fresh = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// The credentials for `challenge`, or `None` when no password is configured.
    pub(crate) fn answer_challenge(
        &self,
        challenge: &DigestChallenge,
        method: &Method,
        uri: &str,
        nc: u32,
    ) -> Result<Option<String>> {
        let Some(password) = &self.config.password else {
            return Ok(None);
        };
        let user = self
            .config
            .auth_user
            .as_deref()
            .unwrap_or(&self.config.user);
        challenge
            .authorization(user, password.expose(), method, uri, nc, &random_token(16))
            .map(Some)
            .map_err(|reason| Error::protocol(self.vendor, "SIP digest challenge", reason))
    }
}

/// The key of a client transaction (top Via branch, method).
pub(crate) struct TxKey((String, Method));

/// A fresh RFC 3261 branch.
pub(crate) fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

/// The digest challenge of a 401/407 and the header name its answer goes in.
pub(crate) fn challenge_of(response: &SipMessage) -> Option<(&'static str, DigestChallenge)> {
    let (name, answer) = match response.status()? {
        401 => ("WWW-Authenticate", "Authorization"),
        407 => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    response
        .headers_named(name)
        .find_map(|v| DigestChallenge::parse(v).ok())
        .map(|c| (answer, c))
}

fn method_operation(method: &Method) -> &'static str {
    match method {
        Method::Register => "SIP REGISTER",
        Method::Invite => "SIP INVITE",
        Method::Bye => "SIP BYE",
        Method::Info => "SIP INFO",
        Method::Message => "SIP MESSAGE",
        Method::Cancel => "SIP CANCEL",
        _ => "SIP request",
    }
}

/// The error of a request whose connection was lost before its final response.
pub(crate) fn connection_lost(vendor: Vendor, method: &Method) -> Error {
    Error::transport(
        vendor,
        method_operation(method),
        "the connection was lost before the final response",
    )
}

/// The error a refused request maps to (401/403/407 are authentication failures).
pub(crate) fn refusal(vendor: Vendor, response: &SipMessage) -> Error {
    let status = response.status().unwrap_or_default();
    let reason = end_reason(response).unwrap_or_default();
    match status {
        401 | 403 | 407 => Error::Auth {
            vendor,
            code: Some(status.to_string()),
            message: format!("SIP {status} {reason}"),
        },
        _ => Error::Rejected {
            vendor,
            code: status.to_string(),
            message: reason,
            retry_after: response
                .header("Retry-After")
                .and_then(|v| v.split(';').next()?.trim().parse().ok())
                .map(Duration::from_secs),
        },
    }
}

impl UserAgent {
    /// Connects the WebSocket (subprotocol `sip`) and starts the UA. Resolves once the first
    /// connection is up; fails on a bad configuration, when the connection is refused for
    /// good, or after [`UaConfig::connect_timeout`].
    pub async fn start(vendor: Vendor, config: UaConfig) -> Result<UserAgent> {
        let transport = match config.ws_url.scheme() {
            "wss" => "wss",
            "ws" => "ws",
            other => {
                return Err(Error::invalid(
                    vendor,
                    "sip.ws_url",
                    format!("scheme `{other}` is not ws or wss"),
                ));
            }
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b))
        };
        if !token(&config.user) {
            return Err(Error::invalid(
                vendor,
                "sip.user",
                "must be a non-empty SIP user part",
            ));
        }
        if config.domain.is_empty()
            || config
                .domain
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b"<>;@\"".contains(&b))
        {
            return Err(Error::invalid(
                vendor,
                "sip.domain",
                "must be a host name or address",
            ));
        }
        if config.register_expires == 0 {
            return Err(Error::invalid(
                vendor,
                "sip.register_expires",
                "must be above 0",
            ));
        }
        let mut ws_config = WsConfig::new(vendor, UrlProvider::fixed(config.ws_url.clone()));
        ws_config.subprotocols = vec!["sip".to_owned()];
        ws_config.tls = config.tls.clone();
        ws_config.backoff = config.backoff.clone();
        ws_config.connect_timeout = config.connect_timeout;
        if let Some(every) = config.keepalive {
            ws_config.heartbeats = vec![Heartbeat::ping(every)];
            ws_config.dead_after = Some(every * 3);
        }
        let (ws, ws_events) = WsClient::connect(ws_config);
        let (events, _) = broadcast::channel(64);
        let connect_timeout = config.connect_timeout;
        let inner = Arc::new(Inner {
            vendor,
            codec: SipCodec::new(vendor),
            ws,
            host: format!("{}.invalid", random_token(12)),
            transport,
            reg_call_id: random_token(22),
            reg_from_tag: random_token(10),
            events,
            state: Mutex::new(State::default()),
            reregister: Arc::new(Notify::new()),
            config,
        });
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(drive(Arc::downgrade(&inner), ws_events, first_tx));
        let ua = UserAgent { inner };
        match tokio::time::timeout(connect_timeout, first_rx).await {
            Ok(Ok(Ok(()))) => Ok(ua),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::closed(vendor, "SIP user agent")),
            Err(_) => {
                ua.inner.ws.close().await;
                Err(Error::Timeout {
                    vendor,
                    operation: "SIP WebSocket connect",
                    after: connect_timeout,
                })
            }
        }
    }

    /// The vendor named in errors.
    pub fn vendor(&self) -> Vendor {
        self.inner.vendor
    }

    /// Our address of record, `sip:<user>@<domain>`.
    pub fn aor(&self) -> String {
        self.inner.aor()
    }

    /// The random `<x>.invalid` host in our Via and Contact.
    pub fn contact_host(&self) -> &str {
        &self.inner.host
    }

    /// A receiver of the UA's events (each call gets its own; events sent before it was
    /// made are not replayed).
    pub fn events(&self) -> broadcast::Receiver<UaEvent> {
        self.inner.events.subscribe()
    }

    /// Registers (answering a digest challenge), then keeps the registration fresh: renewed
    /// at 90 % of the granted expiry and after every reconnect. Errors: 401/403/407 →
    /// [`Error::Auth`], other refusals → [`Error::Rejected`], no answer → [`Error::Timeout`].
    /// Each outcome is also sent as [`UaEvent::Registered`] /
    /// [`UaEvent::RegistrationFailed`].
    pub async fn register(&self) -> Result<()> {
        {
            let mut state = self.inner.lock();
            state.reg.wanted = true;
        }
        let result = register_once(&self.inner, self.inner.config.register_expires).await;
        match result {
            Ok(expires) => {
                self.ensure_refresher(expires);
                Ok(())
            }
            Err(e) => {
                self.inner.lock().reg.wanted = false;
                Err(e)
            }
        }
    }

    fn ensure_refresher(&self, expires: u32) {
        let mut state = self.inner.lock();
        if let Some(old) = state.reg.refresher.take() {
            old.abort();
        }
        state.reg.refresher = Some(tokio::spawn(refresh_loop(
            Arc::downgrade(&self.inner),
            expires,
        )));
    }

    /// Removes the registration (`Expires: 0`) and stops refreshing it.
    pub async fn unregister(&self) -> Result<()> {
        {
            let mut state = self.inner.lock();
            state.reg.wanted = false;
            if let Some(task) = state.reg.refresher.take() {
                task.abort();
            }
        }
        register_once(&self.inner, 0).await.map(|_| ())
    }

    /// Starts a call to `target` (`sip:...`): sends an INVITE with `sdp` and `headers`
    /// (written in the given order, after `Contact`), and returns the call at once. Its
    /// progress comes from [`Dialog::next_event`]: `Trying`, `Ringing`, then `Answered` or
    /// `Failed`. A 401/407 is answered with the credentials once.
    #[allow(clippy::unused_async)] // async in the shared API sketch (RTC.md); kept for callers
    pub async fn invite(
        &self,
        target: &str,
        headers: Vec<(String, String)>,
        sdp: String,
    ) -> Result<OutgoingCall> {
        let vendor = self.inner.vendor;
        if !(target.starts_with("sip:") || target.starts_with("sips:"))
            || target.contains(['<', '>', ' ', '\r', '\n'])
        {
            return Err(Error::invalid(
                vendor,
                "sip.target",
                format!("`{target}` is not a SIP URI"),
            ));
        }
        for (name, value) in &headers {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
            {
                return Err(Error::invalid(
                    vendor,
                    "sip.headers",
                    format!("`{name}` is not a header name"),
                ));
            }
            if value.contains(['\r', '\n']) {
                return Err(Error::invalid(
                    vendor,
                    "sip.headers",
                    format!("value of `{name}` has a line break"),
                ));
            }
        }
        Dialog::start_outgoing(&self.inner, target, headers, sdp)
    }

    /// Sends an out-of-dialog `MESSAGE` to `to` and waits for its final response (2xx →
    /// `Ok`).
    pub async fn message(&self, to: &str, content_type: &str, body: &str) -> Result<()> {
        let inner = &self.inner;
        if !(to.starts_with("sip:") || to.starts_with("sips:")) || to.contains(['<', '>', ' ']) {
            return Err(Error::invalid(
                inner.vendor,
                "sip.to",
                format!("`{to}` is not a SIP URI"),
            ));
        }
        let cseq = std::sync::atomic::AtomicU32::new(1);
        let request = SipMessage::request(Method::Message, to)
            .with_header("Via", inner.via(&new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("To", format!("<{to}>"))
            .with_header(
                "From",
                format!("{};tag={}", inner.local_identity(), random_token(10)),
            )
            .with_header("Call-ID", random_token(22))
            .with_header("CSeq", "1 MESSAGE")
            .with_header("Allow", ALLOW)
            .with_header("Supported", "outbound")
            .with_header("User-Agent", inner.config.user_agent.clone())
            .with_body(content_type, body);
        let response = inner
            .request(request, || {
                cseq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
            })
            .await?;
        match response.status() {
            Some(200..=299) => Ok(()),
            _ => Err(refusal(inner.vendor, &response)),
        }
    }

    /// Closes the WebSocket; the UA stops. Does not un-REGISTER (call
    /// [`UserAgent::unregister`] first for that).
    pub async fn close(&self) {
        if let Some(task) = self.inner.lock().reg.refresher.take() {
            task.abort();
        }
        self.inner.ws.close().await;
    }

    /// Drops the connection and connects again (the registration follows).
    pub fn reconnect(&self) {
        self.inner.ws.reconnect();
    }
}

/// An outgoing call: a [`Dialog`] that starts early (before the answer).
pub type OutgoingCall = Dialog;

/// One REGISTER transaction (with digest). Returns the granted expiry.
async fn register_once(inner: &Arc<Inner>, expires: u32) -> Result<u32> {
    let mut expires = expires;
    for _ in 0..2 {
        let (cseq, cached) = {
            let mut state = inner.lock();
            state.reg.cseq += 1;
            let cached = state.reg.auth.as_mut().map(|(c, header, nc)| {
                *nc += 1;
                (c.clone(), *header, *nc)
            });
            (state.reg.cseq, cached)
        };
        let uri = format!("sip:{}", inner.config.domain);
        let contact = format!("<{}>;expires={expires}", inner.contact_uri(false));
        let mut request = SipMessage::request(Method::Register, uri.clone())
            .with_header("Via", inner.via(&new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("To", format!("<{}>", inner.aor()))
            .with_header(
                "From",
                format!("{};tag={}", inner.local_identity(), inner.reg_from_tag),
            )
            .with_header("Call-ID", inner.reg_call_id.clone())
            .with_header("CSeq", format!("{cseq} REGISTER"))
            .with_header("Contact", contact)
            .with_header("Expires", expires.to_string())
            .with_header("Allow", ALLOW)
            .with_header("Supported", "path, gruu, outbound")
            .with_header("User-Agent", inner.config.user_agent.clone());
        if let Some((challenge, header, nc)) = cached
            && let Some(value) = inner.answer_challenge(&challenge, &Method::Register, &uri, nc)?
        {
            request.push_header(header, value);
        }
        let weak = Arc::downgrade(inner);
        let response = inner
            .request(request, move || match weak.upgrade() {
                Some(inner) => {
                    let mut state = inner.lock();
                    state.reg.cseq += 1;
                    state.reg.cseq
                }
                None => cseq + 1,
            })
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                if let Error::Timeout { .. } = e {
                    inner.emit(UaEvent::RegistrationFailed {
                        status: 408,
                        reason: "Request Timeout".to_owned(),
                    });
                }
                return Err(e);
            }
        };
        let status = response.status().unwrap_or_default();
        match status {
            200..=299 => {
                if expires == 0 {
                    inner.emit(UaEvent::Unregistered);
                    return Ok(0);
                }
                let granted = granted_expires(inner, &response).unwrap_or(expires);
                inner.emit(UaEvent::Registered { expires: granted });
                return Ok(granted);
            }
            423 => {
                // Interval Too Brief: ask again with the registrar's minimum.
                if let Some(min) = response
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|m| *m > expires)
                {
                    expires = min;
                    continue;
                }
            }
            _ => {}
        }
        if matches!(status, 401 | 407) {
            inner.lock().reg.auth = None;
        }
        let error = if matches!(status, 401 | 407) && inner.config.password.is_none() {
            Error::Auth {
                vendor: inner.vendor,
                code: Some(status.to_string()),
                message: "the registrar asks for credentials but no password is configured"
                    .to_owned(),
            }
        } else {
            refusal(inner.vendor, &response)
        };
        inner.emit(UaEvent::RegistrationFailed {
            status,
            reason: end_reason(&response).unwrap_or_default(),
        });
        return Err(error);
    }
    Err(Error::protocol(
        inner.vendor,
        "SIP REGISTER response",
        "423 Interval Too Brief twice",
    ))
}

/// The expiry the registrar granted our contact: its `expires` parameter in the 200's
/// Contact list, else the `Expires` header.
fn granted_expires(inner: &Inner, response: &SipMessage) -> Option<u32> {
    for value in response.headers_named("Contact") {
        for entry in list_entries(value) {
            let Ok(contact) = NameAddr::parse(entry) else {
                continue;
            };
            if contact.uri.contains(&inner.host)
                && let Some(e) = contact.param("expires").and_then(|e| e.parse().ok())
            {
                return Some(e);
            }
        }
    }
    response
        .header("Expires")
        .and_then(|e| e.trim().parse().ok())
}

/// When to renew a registration granted for `expires` seconds.
fn refresh_after(expires: u32) -> Duration {
    Duration::from_millis(u64::from(expires.max(1)) * 900)
}

async fn refresh_loop(inner: Weak<Inner>, mut expires: u32) {
    let mut failures: u32 = 0;
    loop {
        let wait = if failures == 0 {
            refresh_after(expires)
        } else {
            // After a failure: retry soon, but not in a tight loop.
            Duration::from_secs(u64::from(failures.min(6)) * 5)
        };
        {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let signal = strong.reregister.clone();
            drop(strong);
            let notified = signal.notified();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = notified => {}
            }
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !strong.lock().reg.wanted {
            return;
        }
        match register_once(&strong, strong.config.register_expires).await {
            Ok(granted) => {
                expires = granted;
                failures = 0;
            }
            Err(e) => {
                tracing::warn!(vendor = %strong.vendor, error = %e, "SIP re-REGISTER failed");
                if matches!(e, Error::Auth { .. }) {
                    strong.lock().reg.wanted = false;
                    return;
                }
                failures += 1;
            }
        }
    }
}

/// The driver: reads the WebSocket's events in order and dispatches frames.
async fn drive(inner: Weak<Inner>, mut events: WsEvents, first: oneshot::Sender<Result<()>>) {
    let mut first = Some(first);
    while let Some(event) = events.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            WsEvent::Connected {
                connection,
                protocol,
                ..
            } => {
                inner.ws.ready(connection);
                if protocol.as_deref() != Some("sip") {
                    inner.emit(UaEvent::Error(Arc::new(Error::protocol(
                        inner.vendor,
                        "WebSocket handshake",
                        format!("server picked subprotocol {protocol:?}, not \"sip\""),
                    ))));
                }
                let again = {
                    let mut state = inner.lock();
                    state.connections += 1;
                    state.current = connection;
                    state.connections > 1 && state.reg.wanted
                };
                inner.emit(UaEvent::TransportUp);
                if again {
                    inner.reregister.notify_one();
                }
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
            }
            WsEvent::Text(text) => handle_frame(&inner, text.as_bytes()),
            WsEvent::Binary(bytes) => handle_frame(&inner, &bytes),
            WsEvent::Disconnected { reason } => {
                // Responses to requests written on the lost connection cannot come on the
                // next one (the proxy answers along the old flow): end those transactions.
                {
                    let mut state = inner.lock();
                    let lost = state.current;
                    state
                        .transactions
                        .retain(|_, tx| tx.connection.is_none_or(|c| c > lost));
                }
                inner.emit(UaEvent::TransportDown {
                    reason: reason.to_string(),
                });
            }
            WsEvent::GaveUp { reason, .. } => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(connect_error(inner.vendor, &reason)));
                }
                shutdown(&inner, "gave up reconnecting");
                return;
            }
            WsEvent::Closed => {
                shutdown(&inner, "closed");
                return;
            }
            WsEvent::Connecting { .. } | WsEvent::Reconnecting { .. } => {}
        }
    }
}

/// The error `start` returns when the WebSocket gave up before its first connection.
fn connect_error(vendor: Vendor, reason: &cc_transport::Disconnect) -> Error {
    const OP: &str = "SIP WebSocket connect";
    match reason {
        cc_transport::Disconnect::Error(e) => match e.kind() {
            cc_core::ErrorKind::Auth => Error::Auth {
                vendor,
                code: None,
                message: e.to_string(),
            },
            cc_core::ErrorKind::InvalidInput => Error::invalid(vendor, "sip.ws_url", e.to_string()),
            _ => Error::transport(vendor, OP, e.to_string()),
        },
        other => Error::transport(vendor, OP, other.to_string()),
    }
}

/// The WebSocket is gone for good: end every transaction (their waiters see `Closed`).
fn shutdown(inner: &Inner, why: &str) {
    let mut state = inner.lock();
    state.transactions.clear();
    if let Some(task) = state.reg.refresher.take() {
        task.abort();
    }
    drop(state);
    inner.emit(UaEvent::TransportDown {
        reason: why.to_owned(),
    });
}

fn handle_frame(inner: &Arc<Inner>, frame: &[u8]) {
    // RFC 7118 allows keep-alive CRLFs between messages.
    if frame.iter().all(|b| b.is_ascii_whitespace()) {
        return;
    }
    let message = match inner.codec.parse_bytes(frame) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(vendor = %inner.vendor, error = %e, "malformed SIP frame");
            inner.emit(UaEvent::Error(Arc::new(e)));
            return;
        }
    };
    tracing::debug!(vendor = %inner.vendor, line = %message.first_line(), "sip recv");
    if message.is_request() {
        handle_request(inner, message);
    } else {
        handle_response(inner, message);
    }
}

fn handle_response(inner: &Arc<Inner>, response: SipMessage) {
    let (Some(branch), Some((_, method))) = (response.via_branch(), response.cseq()) else {
        return;
    };
    let key = (branch.to_owned(), method.clone());
    let sender = inner
        .lock()
        .transactions
        .get(&key)
        .map(|tx| tx.responses.clone());
    if let Some(sender) = sender {
        let _ = sender.send(response);
        return;
    }
    // A repeated 2xx to an INVITE: the dialog sends its ACK again.
    if method == Method::Invite
        && response.status().is_some_and(|s| (200..300).contains(&s))
        && let (Some(call_id), Some(tag)) = (response.call_id(), response.from_tag())
    {
        let dialog = inner
            .lock()
            .dialogs
            .get(&(call_id.to_owned(), tag.to_owned()))
            .cloned();
        if let Some(dialog) = dialog {
            dialog.on_repeated_2xx(inner, &response);
            return;
        }
    }
    tracing::debug!(vendor = %inner.vendor, line = %response.first_line(), "SIP response without a transaction");
}

fn handle_request(inner: &Arc<Inner>, request: SipMessage) {
    let method = request.method().cloned().unwrap_or(Method::Options);
    let call_id = request.call_id().unwrap_or_default().to_owned();
    if method == Method::Cancel {
        let dialog = find_incoming(inner, &request);
        match dialog {
            Some(d) => d.on_cancel(inner, &request),
            None => reply(inner, &request, 481, "Call/Transaction Does Not Exist"),
        }
        return;
    }
    if let Some(to_tag) = request.to_tag() {
        let dialog = inner
            .lock()
            .dialogs
            .get(&(call_id, to_tag.to_owned()))
            .cloned();
        match dialog {
            Some(d) => d.on_request(inner, request),
            None if method == Method::Ack => {}
            None => reply(inner, &request, 481, "Call/Transaction Does Not Exist"),
        }
        return;
    }
    match method {
        Method::Invite => {
            // A repeated INVITE for a call we already know is ignored.
            if find_incoming(inner, &request).is_some() {
                return;
            }
            let call = IncomingCall::new(inner, request);
            inner.emit(UaEvent::Incoming(call));
        }
        Method::Message => {
            reply(inner, &request, 200, "OK");
            inner.emit(UaEvent::Message {
                from: request.header("From").unwrap_or_default().to_owned(),
                call_id,
                content_type: request
                    .header("Content-Type")
                    .unwrap_or_default()
                    .to_owned(),
                body: request.body,
            });
        }
        Method::Options => {
            let response = SipMessage::response_to(&request, 200, "OK")
                .with_header("Allow", ALLOW)
                .with_header("Accept", "application/sdp")
                .with_header("Supported", "outbound")
                .with_header("User-Agent", inner.config.user_agent.clone());
            let _ = inner.send(&response);
        }
        Method::Ack => {}
        Method::Bye | Method::Info | Method::Update | Method::Prack => {
            reply(inner, &request, 481, "Call/Transaction Does Not Exist");
        }
        _ => reply(inner, &request, 501, "Not Implemented"),
    }
}

/// The incoming call an INVITE or CANCEL (same Call-ID and branch) belongs to.
fn find_incoming(inner: &Inner, request: &SipMessage) -> Option<Arc<DialogShared>> {
    let call_id = request.call_id()?;
    let branch = request.via_branch()?;
    inner
        .lock()
        .dialogs
        .iter()
        .find(|((cid, _), d)| cid == call_id && d.is_incoming_invite(branch))
        .map(|(_, d)| d.clone())
}

/// Answers `request` with a bare response.
pub(crate) fn reply(inner: &Inner, request: &SipMessage, status: u16, reason: &str) {
    let response = SipMessage::response_to(request, status, reason);
    if let Err(e) = inner.send(&response) {
        tracing::debug!(vendor = %inner.vendor, error = %e, "SIP reply not sent");
    }
}
