//! The Socket.IO v5 client over Engine.IO v4, WebSocket transport only, on top of
//! [`WsClient`]. See the [module docs](super).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use cc_core::{ConnectionState, Error, Result, Vendor};
use http::HeaderMap;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use url::Url;

use super::packet::{EioPacket, OpenInfo, SioKind, SioPacket};
use crate::backoff::BackoffPolicy;
use crate::tls::TlsConfig;
use crate::ws::{Disconnect, UrlProvider, WsClient, WsConfig, WsEvent, WsEvents, WsHandle};

/// How to reach a Socket.IO server.
#[derive(Clone)]
pub struct SioConfig {
    /// The vendor, named in every error.
    pub vendor: Vendor,
    /// The socket URL as a deployment gives it (`https://host/web-channel-manager`). The
    /// client connects to its origin (`https`→`wss`, `http`→`ws`), and the Engine.IO path is
    /// `<pathname>/socket.io/` unless [`SioConfig::path`] is set.
    pub url: Url,
    /// An explicit Engine.IO path (e.g. `/socket.io/`), overriding the derived one.
    pub path: Option<String>,
    /// The namespace, `/` by default.
    pub namespace: String,
    /// The auth payload of every CONNECT (first connect and each reconnect).
    pub auth: Option<Value>,
    /// Extra request headers for the WebSocket upgrade.
    pub headers: HeaderMap,
    /// Trusted roots for `wss`.
    pub tls: TlsConfig,
    /// When to reconnect after a transport loss.
    pub backoff: BackoffPolicy,
    /// Limit for TCP + TLS + upgrade of one attempt.
    pub connect_timeout: Duration,
    /// Limit from the WebSocket upgrade to the namespace's CONNECT reply; a server that
    /// stays silent longer gets a new attempt.
    pub handshake_timeout: Duration,
    /// How long [`PendingAck::wait`] waits for an ack.
    pub ack_timeout: Duration,
}

impl fmt::Debug for SioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SioConfig")
            .field("vendor", &self.vendor)
            .field("url", &self.url.as_str())
            .field("path", &self.path)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth.as_ref().map(|_| "[set]"))
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl SioConfig {
    /// Defaults: namespace `/`, no auth, web PKI roots, the socket.io client's back-off
    /// ([`BackoffPolicy::expertflow_socketio`], 1 s→5 s with jitter, unlimited), 10 s connect
    /// and handshake timeouts, 20 s ack timeout.
    pub fn new(vendor: Vendor, url: Url) -> Self {
        SioConfig {
            vendor,
            url,
            path: None,
            namespace: "/".to_owned(),
            auth: None,
            headers: HeaderMap::new(),
            tls: TlsConfig::default(),
            backoff: BackoffPolicy::expertflow_socketio(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(20),
        }
    }

    /// The same configuration with this auth payload.
    pub fn with_auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The Engine.IO path: [`SioConfig::path`], else the URL's pathname + `/socket.io/`
    /// (`/socket.io/` for an empty pathname).
    pub fn engine_path(&self) -> String {
        if let Some(p) = &self.path {
            let mut p = p.clone();
            if !p.starts_with('/') {
                p.insert(0, '/');
            }
            if !p.ends_with('/') {
                p.push('/');
            }
            return p;
        }
        let base = self.url.path().trim_end_matches('/');
        format!("{base}/socket.io/")
    }

    /// The WebSocket URL of the Engine.IO endpoint:
    /// `ws(s)://host[:port]<path>?EIO=4&transport=websocket`.
    pub fn engine_url(&self) -> Result<Url> {
        let scheme = match self.url.scheme() {
            "https" | "wss" => "wss",
            "http" | "ws" => "ws",
            other => {
                return Err(Error::invalid(
                    self.vendor,
                    "socket_url",
                    format!("scheme {other:?} is not http, https, ws or wss"),
                ));
            }
        };
        let host = self
            .url
            .host_str()
            .ok_or_else(|| Error::invalid(self.vendor, "socket_url", "no host"))?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let text = format!(
            "{scheme}://{host}{port}{}?EIO=4&transport=websocket",
            self.engine_path()
        );
        Url::parse(&text).map_err(|e| Error::invalid(self.vendor, "socket_url", e.to_string()))
    }
}

/// Why a Socket.IO connection ended; the names are the reference client's `disconnect`
/// reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SioDisconnect {
    /// The server disconnected the socket (packet `1`); the client does not reconnect.
    ServerDisconnect,
    /// This client disconnected ([`SioHandle::disconnect`]).
    ClientDisconnect,
    /// No ping from the server within `pingInterval + pingTimeout`.
    PingTimeout,
    /// The transport closed (close frame, Engine.IO close packet).
    TransportClose,
    /// The transport failed.
    TransportError(String),
    /// The server refused the CONNECT (packet `4`); the client does not reconnect.
    Refused(String),
}

impl SioDisconnect {
    /// The reference client's reason string (`io server disconnect`, `ping timeout`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            SioDisconnect::ServerDisconnect => "io server disconnect",
            SioDisconnect::ClientDisconnect => "io client disconnect",
            SioDisconnect::PingTimeout => "ping timeout",
            SioDisconnect::TransportClose => "transport close",
            SioDisconnect::TransportError(_) => "transport error",
            SioDisconnect::Refused(_) => "connect error",
        }
    }

    /// Whether the client reconnects after it.
    pub fn will_reconnect(&self) -> bool {
        !matches!(
            self,
            SioDisconnect::ServerDisconnect
                | SioDisconnect::ClientDisconnect
                | SioDisconnect::Refused(_)
        )
    }
}

impl fmt::Display for SioDisconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SioDisconnect::TransportError(e) => write!(f, "transport error: {e}"),
            SioDisconnect::Refused(e) => write!(f, "connect error: {e}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// What the client reports, in order.
#[derive(Clone, Debug)]
pub enum SioEvent {
    /// An attempt starts (0 = the first connect).
    Connecting {
        /// The attempt.
        attempt: u32,
    },
    /// The namespace is connected (the server answered the CONNECT).
    Connected {
        /// The Socket.IO session id.
        sid: String,
        /// The WebSocket connection number (1 for the first).
        connection: u64,
        /// False for the first connection, true after a reconnect.
        reconnect: bool,
    },
    /// The server refused the CONNECT (packet `4`); the client does not retry.
    ConnectError {
        /// The server's message.
        message: String,
        /// Extra data the server attached.
        data: Option<Value>,
    },
    /// A server event.
    Event {
        /// The event name.
        name: String,
        /// The arguments after the name.
        args: Vec<Value>,
        /// Set when the server wants an ack: answer with [`SioHandle::ack`].
        ack: Option<u64>,
    },
    /// The namespace connection ended.
    Disconnected {
        /// Why.
        reason: SioDisconnect,
    },
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// The attempt (1 = the first retry).
        attempt: u32,
        /// The wait.
        delay: Duration,
    },
    /// A malformed or unsupported packet; the connection goes on.
    Error(Arc<Error>),
    /// The client stopped for good (server disconnect, refused CONNECT, retries exhausted,
    /// or [`SioHandle::close`]). The last event.
    Closed {
        /// Why.
        reason: String,
    },
}

impl SioEvent {
    /// The [`ConnectionState`] this event means, if it changes the session's state.
    pub fn connection_state(&self) -> Option<ConnectionState> {
        match self {
            SioEvent::Connecting { attempt: 0 } => Some(ConnectionState::Connecting),
            SioEvent::Connected { .. } => Some(ConnectionState::Connected),
            SioEvent::Reconnecting { attempt, delay } => Some(ConnectionState::Reconnecting {
                attempt: *attempt,
                delay: *delay,
            }),
            SioEvent::Closed { reason } => Some(ConnectionState::Disconnected {
                reason: reason.as_str().into(),
            }),
            _ => None,
        }
    }
}

/// The receiving end of a client's events. Dropping it stops the client.
#[derive(Debug)]
pub struct SioEvents {
    // Boxed: the channel preallocates a block of 32 items, and an idle connection keeps it.
    rx: mpsc::Receiver<Box<SioEvent>>,
}

impl SioEvents {
    /// The next event; `None` after [`SioEvent::Closed`].
    pub async fn recv(&mut self) -> Option<SioEvent> {
        self.rx.recv().await.map(|e| *e)
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<SioEvent> {
        self.rx.try_recv().ok().map(|e| *e)
    }
}

type AckSender = oneshot::Sender<Result<Vec<Value>>>;

struct Shared {
    vendor: Vendor,
    namespace: String,
    ack_timeout: Duration,
    auth: Mutex<Option<Value>>,
    acks: Mutex<HashMap<u64, AckSender>>,
    next_ack: AtomicU64,
    /// The WebSocket connection whose namespace is connected, 0 when none.
    connected: AtomicU64,
    sid: Mutex<Option<String>>,
}

impl Shared {
    fn fail_acks(&self, why: &str) {
        let pending: Vec<AckSender> = {
            let mut acks = self.acks.lock().expect("ack table lock");
            acks.drain().map(|(_, tx)| tx).collect()
        };
        for tx in pending {
            let _ = tx.send(Err(Error::transport(
                self.vendor,
                "socket.io ack",
                format!("the connection ended before the ack ({why})"),
            )));
        }
    }
}

/// A cheap, cloneable handle to one Socket.IO client.
#[derive(Clone)]
pub struct SioHandle {
    ws: WsHandle,
    shared: Arc<Shared>,
    stop: mpsc::UnboundedSender<()>,
}

impl fmt::Debug for SioHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SioHandle")
            .field("vendor", &self.shared.vendor)
            .field("namespace", &self.shared.namespace)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// An ack the server owes; see [`SioHandle::emit_with_ack`].
#[derive(Debug)]
pub struct PendingAck {
    vendor: Vendor,
    timeout: Duration,
    rx: oneshot::Receiver<Result<Vec<Value>>>,
}

impl PendingAck {
    /// Waits for the ack's arguments; fails with [`Error::Timeout`] after the configured ack
    /// timeout and with a retryable [`Error::Transport`] when the connection ends first.
    pub async fn wait(self) -> Result<Vec<Value>> {
        let (vendor, after) = (self.vendor, self.timeout);
        tokio::time::timeout(after, self)
            .await
            .unwrap_or(Err(Error::Timeout {
                vendor,
                operation: "socket.io ack",
                after,
            }))
    }
}

impl Future for PendingAck {
    type Output = Result<Vec<Value>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let vendor = self.vendor;
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Error::closed(vendor, "socket.io client"))))
    }
}

impl SioHandle {
    /// The vendor.
    pub fn vendor(&self) -> Vendor {
        self.shared.vendor
    }

    /// Whether the namespace is connected on the current WebSocket connection.
    pub fn is_connected(&self) -> bool {
        let c = self.shared.connected.load(Ordering::Acquire);
        c != 0 && self.ws.connection() == Some(c)
    }

    /// The Socket.IO session id of the current connection.
    pub fn sid(&self) -> Option<String> {
        self.shared.sid.lock().expect("sid lock").clone()
    }

    /// Replaces the auth payload sent with every later CONNECT.
    pub fn set_auth(&self, auth: Option<Value>) {
        *self.shared.auth.lock().expect("auth lock") = auth;
    }

    fn not_connected(&self) -> Error {
        Error::transport(self.shared.vendor, "socket.io emit", "not connected")
    }

    /// Emits `name` with `args` on the current connection, now. Fails (retryable) when the
    /// namespace is not connected: nothing is queued, so the caller's own outbox stays the
    /// only queue.
    pub async fn emit(&self, name: &str, args: &[Value]) -> Result<()> {
        if !self.is_connected() {
            return Err(self.not_connected());
        }
        let packet = SioPacket::event(&self.shared.namespace, None, name, args);
        self.ws.send_now(packet.to_frame()).await
    }

    /// Queues `name` with `args`: written once, in order, as soon as the namespace is
    /// connected (now, or after the next reconnect).
    pub fn emit_queued(&self, name: &str, args: &[Value]) -> Result<()> {
        let packet = SioPacket::event(&self.shared.namespace, None, name, args);
        self.ws.send(packet.to_frame())
    }

    /// Emits `name` with `args` asking for an ack, on the current connection, now. Resolves
    /// once written; the returned [`PendingAck`] resolves with the ack's arguments.
    pub async fn emit_with_ack(&self, name: &str, args: &[Value]) -> Result<PendingAck> {
        if !self.is_connected() {
            return Err(self.not_connected());
        }
        let id = self.shared.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared
            .acks
            .lock()
            .expect("ack table lock")
            .insert(id, tx);
        let packet = SioPacket::event(&self.shared.namespace, Some(id), name, args);
        if let Err(e) = self.ws.send_now(packet.to_frame()).await {
            self.shared.acks.lock().expect("ack table lock").remove(&id);
            return Err(e);
        }
        Ok(PendingAck {
            vendor: self.shared.vendor,
            timeout: self.shared.ack_timeout,
            rx,
        })
    }

    /// Answers a server event that asked for an ack ([`SioEvent::Event::ack`]).
    pub async fn ack(&self, id: u64, args: &[Value]) -> Result<()> {
        let packet = SioPacket::ack(&self.shared.namespace, id, args);
        self.ws.send_now(packet.to_frame()).await
    }

    /// Drops the current connection and reconnects at once (the auth payload is sent again).
    pub fn reconnect(&self) {
        self.ws.reconnect();
    }

    /// Sends a DISCONNECT, then closes the connection for good ([`SioEvent::Closed`]).
    pub async fn disconnect(&self) {
        if self.is_connected() {
            let _ = self
                .ws
                .send_now(SioPacket::disconnect(&self.shared.namespace).to_frame())
                .await;
        }
        self.close().await;
    }

    /// Closes the connection for good without a DISCONNECT.
    pub async fn close(&self) {
        let _ = self.stop.send(());
        self.shared.connected.store(0, Ordering::Release);
        self.ws.close().await;
        self.shared.fail_acks("client closed");
    }
}

/// Entry point of the Socket.IO client.
#[derive(Debug)]
pub struct SioClient;

impl SioClient {
    /// Spawns the client (on the current tokio runtime) and returns its handle and events.
    /// Fails only on a configuration error (bad URL).
    pub fn connect(config: SioConfig) -> Result<(SioHandle, SioEvents)> {
        let url = config.engine_url()?;
        let mut ws = WsConfig::new(config.vendor, UrlProvider::fixed(url));
        ws.headers = config.headers.clone();
        ws.tls = config.tls.clone();
        ws.backoff = config.backoff.clone();
        ws.connect_timeout = config.connect_timeout;
        ws.reconnect_after_server_close = true;
        let (ws_handle, ws_events) = WsClient::connect(ws);
        let shared = Arc::new(Shared {
            vendor: config.vendor,
            namespace: config.namespace.clone(),
            ack_timeout: config.ack_timeout,
            auth: Mutex::new(config.auth.clone()),
            acks: Mutex::new(HashMap::new()),
            next_ack: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            sid: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(256);
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            shared: Arc::clone(&shared),
            ws: ws_handle.clone(),
            events: tx,
            handshake_timeout: config.handshake_timeout,
            connection: 0,
            open: None,
            deadline: None,
            connects: 0,
            ended: None,
        };
        tokio::spawn(driver.run(ws_events, stop_rx));
        Ok((
            SioHandle {
                ws: ws_handle,
                shared,
                stop: stop_tx,
            },
            SioEvents { rx },
        ))
    }
}

struct Driver {
    shared: Arc<Shared>,
    ws: WsHandle,
    events: mpsc::Sender<Box<SioEvent>>,
    handshake_timeout: Duration,
    /// The current WebSocket connection, 0 while none.
    connection: u64,
    open: Option<OpenInfo>,
    /// When the current connection counts as dead (handshake or ping timeout).
    deadline: Option<(Instant, SioDisconnect)>,
    /// Namespace connects so far.
    connects: u64,
    /// Why this connection ended, when the driver decided it (ping timeout, server
    /// disconnect).
    ended: Option<SioDisconnect>,
}

enum Step {
    Go,
    Stop(String),
}

impl Driver {
    async fn run(mut self, mut ws_events: WsEvents, mut stop: mpsc::UnboundedReceiver<()>) {
        let reason = loop {
            let deadline = self.deadline.as_ref().map(|(t, _)| *t);
            let step = tokio::select! {
                ev = ws_events.recv() => match ev {
                    // Boxed: the driver future stays small while idle.
                    Some(ev) => Box::pin(self.on_ws(ev)).await,
                    None => Step::Stop("closed".to_owned()),
                },
                _ = stop.recv() => {
                    self.ended = Some(SioDisconnect::ClientDisconnect);
                    // Keep reading until the WebSocket task reports Closed.
                    Step::Go
                }
                () = sleep_until(deadline) => {
                    if let Some((_, why)) = self.deadline.take() {
                        self.ended = Some(why);
                        self.ws.reconnect();
                    }
                    Step::Go
                }
            };
            if let Step::Stop(reason) = step {
                break reason;
            }
        };
        self.shared.connected.store(0, Ordering::Release);
        self.shared.fail_acks(&reason);
        let _ = self
            .events
            .send(Box::new(SioEvent::Closed { reason }))
            .await;
    }

    async fn emit(&self, ev: SioEvent) {
        let _ = self.events.send(Box::new(ev)).await;
    }

    fn error(&self, frame: &'static str, reason: impl Into<String>) -> SioEvent {
        SioEvent::Error(Arc::new(Error::protocol(self.shared.vendor, frame, reason)))
    }

    async fn on_ws(&mut self, ev: WsEvent) -> Step {
        match ev {
            WsEvent::Connecting { attempt } => self.emit(SioEvent::Connecting { attempt }).await,
            WsEvent::Connected { connection, .. } => {
                self.connection = connection;
                self.open = None;
                self.ended = None;
                self.deadline = Some((
                    Instant::now() + self.handshake_timeout,
                    SioDisconnect::TransportError("no Socket.IO handshake".to_owned()),
                ));
            }
            WsEvent::Text(text) => return self.on_text(&text).await,
            WsEvent::Binary(_) => {
                let e = self.error("socket.io packet", "binary packets are not supported");
                self.emit(e).await;
            }
            WsEvent::Disconnected { reason } => {
                let was_connected = self.shared.connected.swap(0, Ordering::AcqRel) != 0;
                self.connection = 0;
                self.deadline = None;
                let why = self.ended.take().unwrap_or_else(|| match reason {
                    Disconnect::ServerClosed { .. } | Disconnect::Requested => {
                        SioDisconnect::TransportClose
                    }
                    Disconnect::Dead { .. } => SioDisconnect::PingTimeout,
                    Disconnect::Error(e) => SioDisconnect::TransportError(e.to_string()),
                });
                self.shared.fail_acks(why.as_str());
                if was_connected {
                    self.emit(SioEvent::Disconnected {
                        reason: why.clone(),
                    })
                    .await;
                }
                if !why.will_reconnect() {
                    self.ended = Some(why);
                }
            }
            WsEvent::Reconnecting { attempt, delay } => {
                if self.ended.is_none() {
                    self.emit(SioEvent::Reconnecting { attempt, delay }).await;
                }
            }
            WsEvent::GaveUp { reason, .. } => return Step::Stop(reason.to_string()),
            WsEvent::Closed => {
                let reason = self
                    .ended
                    .take()
                    .map_or_else(|| "closed".to_owned(), |r| r.to_string());
                return Step::Stop(reason);
            }
        }
        Step::Go
    }

    fn refresh_deadline(&mut self) {
        if let Some(open) = &self.open
            && self.shared.connected.load(Ordering::Acquire) != 0
        {
            self.deadline = Some((
                Instant::now() + open.dead_after(),
                SioDisconnect::PingTimeout,
            ));
        }
    }

    fn send_now(&self, frame: String) {
        let ws = self.ws.clone();
        tokio::spawn(async move {
            let _ = ws.send_now(frame).await;
        });
    }

    async fn on_text(&mut self, text: &str) -> Step {
        let packet = match EioPacket::decode(text) {
            Ok(p) => p,
            Err(e) => {
                let ev = self.error("engine.io packet", e.0);
                self.emit(ev).await;
                return Step::Go;
            }
        };
        self.refresh_deadline();
        match packet {
            EioPacket::Open(info) => {
                let timeout = self.handshake_timeout;
                self.open = Some(info);
                self.deadline = Some((
                    Instant::now() + timeout,
                    SioDisconnect::TransportError("no Socket.IO CONNECT reply".to_owned()),
                ));
                let auth = self.shared.auth.lock().expect("auth lock").clone();
                let connect = SioPacket::connect(&self.shared.namespace, auth);
                self.send_now(connect.to_frame());
            }
            EioPacket::Ping(data) => self.send_now(EioPacket::Pong(data).encode()),
            EioPacket::Close => {
                self.ended = Some(SioDisconnect::TransportClose);
                self.ws.reconnect();
            }
            EioPacket::Pong(_) | EioPacket::Noop | EioPacket::Upgrade => {}
            EioPacket::Message(body) => return self.on_socketio(&body).await,
        }
        Step::Go
    }

    async fn on_socketio(&mut self, body: &str) -> Step {
        let packet = match SioPacket::decode(body) {
            Ok(p) => p,
            Err(e) => {
                let ev = self.error("socket.io packet", e.0);
                self.emit(ev).await;
                return Step::Go;
            }
        };
        if packet.namespace != self.shared.namespace {
            let ev = self.error(
                "socket.io packet",
                format!("packet for namespace {:?}", packet.namespace),
            );
            self.emit(ev).await;
            return Step::Go;
        }
        match packet.kind {
            SioKind::Connect => {
                let sid = packet
                    .data
                    .as_ref()
                    .and_then(|d| d.get("sid"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                *self.shared.sid.lock().expect("sid lock") = Some(sid.clone());
                self.shared
                    .connected
                    .store(self.connection, Ordering::Release);
                self.deadline = None;
                self.refresh_deadline();
                self.ws.ready(self.connection);
                self.connects += 1;
                self.emit(SioEvent::Connected {
                    sid,
                    connection: self.connection,
                    reconnect: self.connects > 1,
                })
                .await;
            }
            SioKind::ConnectError => {
                let data = packet.data.unwrap_or(Value::Null);
                let message = data
                    .get("message")
                    .and_then(Value::as_str)
                    .or_else(|| data.as_str())
                    .unwrap_or("connection refused")
                    .to_owned();
                let extra = data.get("data").cloned();
                self.emit(SioEvent::ConnectError {
                    message: message.clone(),
                    data: extra,
                })
                .await;
                self.ended = Some(SioDisconnect::Refused(message));
                self.stop_ws();
            }
            SioKind::Disconnect => {
                self.ended = Some(SioDisconnect::ServerDisconnect);
                self.deadline = None;
                if self.shared.connected.swap(0, Ordering::AcqRel) != 0 {
                    self.shared.fail_acks("io server disconnect");
                    self.emit(SioEvent::Disconnected {
                        reason: SioDisconnect::ServerDisconnect,
                    })
                    .await;
                }
                self.stop_ws();
            }
            SioKind::Event => {
                let name = packet.event_name().unwrap_or_default().to_owned();
                let args = packet.args();
                self.emit(SioEvent::Event {
                    name,
                    args,
                    ack: packet.id,
                })
                .await;
            }
            SioKind::Ack => {
                let args = packet.args();
                let id = packet.id.unwrap_or_default();
                let tx = self.shared.acks.lock().expect("ack table lock").remove(&id);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(Ok(args));
                    }
                    None => {
                        let ev = self.error("socket.io ack", format!("ack {id} was not asked for"));
                        self.emit(ev).await;
                    }
                }
            }
            SioKind::BinaryEvent | SioKind::BinaryAck => {
                let ev = self.error("socket.io packet", "binary packets are not supported");
                self.emit(ev).await;
            }
        }
        Step::Go
    }

    fn stop_ws(&self) {
        let ws = self.ws.clone();
        tokio::spawn(async move {
            ws.close().await;
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_for(socket_url: &str) -> Result<String> {
        SioConfig::new(Vendor::Expertflow, Url::parse(socket_url).unwrap())
            .engine_url()
            .map(|u| u.to_string())
    }

    #[test]
    fn engine_url_follows_the_socket_url() {
        assert_eq!(
            url_for("https://cx.example.invalid/web-channel-manager").unwrap(),
            "wss://cx.example.invalid/web-channel-manager/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            url_for("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            url_for("http://[::1]:9/a/b/").unwrap(),
            "ws://[::1]:9/a/b/socket.io/?EIO=4&transport=websocket"
        );
        let e = url_for("ftp://x.invalid/").unwrap_err().to_string();
        assert!(e.contains("socket_url"), "{e}");
        let mut c = SioConfig::new(
            Vendor::Expertflow,
            Url::parse("https://h.invalid/x").unwrap(),
        );
        c.path = Some("custom/io".into());
        assert_eq!(c.engine_path(), "/custom/io/");
    }

    #[test]
    fn debug_hides_the_auth_payload() {
        let c = SioConfig::new(
            Vendor::Expertflow,
            Url::parse("https://h.invalid/").unwrap(),
        )
        .with_auth(serde_json::json!({"token": "s3cr3t"}));
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
    }

    #[test]
    fn disconnect_reasons() {
        assert!(!SioDisconnect::ServerDisconnect.will_reconnect());
        assert!(SioDisconnect::PingTimeout.will_reconnect());
        assert_eq!(SioDisconnect::TransportClose.to_string(), "transport close");
        let closed = SioEvent::Closed {
            reason: "io server disconnect".into(),
        };
        assert!(matches!(
            closed.connection_state(),
            Some(ConnectionState::Disconnected { .. })
        ));
    }
}
