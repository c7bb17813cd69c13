//! A reconnecting WebSocket client.
//!
//! [`WsClient::connect`] spawns **one task per connection** that owns the socket, and returns
//! a cheap, cloneable [`WsHandle`] plus a [`WsEvents`] receiver. The task connects, reconnects
//! with the configured [`BackoffPolicy`], sends heartbeats, detects dead connections, and
//! reports everything on the one events channel, **in order**: connection-state changes and
//! incoming frames interleave exactly as they happened, so an adapter always knows which
//! connection a frame came from.
//!
//! # Sending: immediate lane and gated queue
//!
//! Adapters often need a handshake on every (re)connect before normal traffic may flow
//! (Genesys `configureSession`, TVox `widget.hello`, a Socket.IO CONNECT). So there are two
//! ways to send:
//!
//! - [`WsHandle::send_now`] writes at once on the current connection and fails when there is
//!   none. Use it for handshakes and heartbeats-of-your-own.
//! - [`WsHandle::send`] appends to a bounded queue. Queued frames flow only while the **gate**
//!   of the current connection is open; each new connection starts with the gate closed,
//!   and the adapter opens it with [`WsHandle::ready`], passing the connection number it got in
//!   [`WsEvent::Connected`] (a late `ready` for an older connection is ignored). Frames queued
//!   while disconnected are written once, in order, after the gate opens. A full queue is an
//!   error, never a silent drop. (If a write fails half-way the frame is written again on the
//!   next connection; the adapter's outbox dedupes such rare repeats.)
//!
//! Adapters without a handshake call `ready(connection)` as soon as they see `Connected`.
//!
//! ```no_run
//! # async fn demo() -> cc_core::Result<()> {
//! use cc_core::Vendor;
//! use cc_transport::{UrlProvider, WsClient, WsConfig, WsEvent};
//!
//! let url = url::Url::parse("wss://example.invalid/v1").unwrap();
//! let (handle, mut events) = WsClient::connect(WsConfig::new(Vendor::Genesys, UrlProvider::fixed(url)));
//! handle.send("queued until ready")?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         WsEvent::Connected { connection, .. } => {
//!             handle.send_now("handshake").await?;
//!             // ... after the handshake reply:
//!             handle.ready(connection);
//!         }
//!         WsEvent::Text(text) => println!("{text}"),
//!         WsEvent::GaveUp { .. } | WsEvent::Closed => break,
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Timers use `tokio::time`, so tests may run under `tokio::time::pause()`.
//!
//! Memory: the opening handshake is our own (a small head buffer, dropped once the head is
//! parsed), so an idle connection's read buffer is exactly [`WsConfig::read_buffer_size`]
//! (it grows only for a message larger than that). With the default 2 KiB an idle `ws://`
//! connection (task, channels, socket, buffers) adds about 9 KiB of resident memory in a
//! release build (8 KiB with 1 KiB, 15 KiB with 8 KiB; tungstenite's 128 KiB default would
//! make it about 139 KiB). Measure with
//! `cargo run -p cc-transport --release --example ws_idle_memory`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cc_core::{ConnectionState, Error, Result, Vendor};
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use url::Url;

use crate::backoff::BackoffPolicy;
use crate::tls::TlsConfig;

mod upgrade;

type Socket = WebSocketStream<upgrade::Stream>;

/// How long closing a connection may take: writing what was queued, the close frame, and
/// waiting for the server's close frame and the end of the stream.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// One outgoing WebSocket message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
}

impl From<String> for Frame {
    fn from(s: String) -> Self {
        Frame::Text(s)
    }
}

impl From<&str> for Frame {
    fn from(s: &str) -> Self {
        Frame::Text(s.to_owned())
    }
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Self {
        Frame::Binary(b)
    }
}

impl From<Vec<u8>> for Frame {
    fn from(b: Vec<u8>) -> Self {
        Frame::Binary(b.into())
    }
}

impl Frame {
    fn into_message(self) -> Message {
        match self {
            Frame::Text(s) => Message::Text(s.into()),
            Frame::Binary(b) => Message::Binary(b),
        }
    }
}

/// The future a [`UrlProvider`] returns.
pub type UrlFuture = Pin<Box<dyn Future<Output = Result<Url>> + Send>>;

/// Gives the URL of each connection attempt (it may change, e.g. a fresh token in the query).
/// Its `Debug` never prints the URL.
#[derive(Clone)]
pub struct UrlProvider(Arc<dyn Fn(u32) -> UrlFuture + Send + Sync>);

impl UrlProvider {
    /// The same URL every time.
    pub fn fixed(url: Url) -> Self {
        UrlProvider(Arc::new(move |_| {
            let url = url.clone();
            Box::pin(async move { Ok(url) })
        }))
    }

    /// Calls `f(attempt)` before every attempt (0 = first connect, n = n-th retry in a row).
    /// An error that is not retryable (auth, invalid input) makes the client give up.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Url>> + Send + 'static,
    {
        UrlProvider(Arc::new(move |attempt| Box::pin(f(attempt))))
    }

    /// The URL for `attempt`.
    pub fn url(&self, attempt: u32) -> UrlFuture {
        (self.0)(attempt)
    }
}

impl fmt::Debug for UrlProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlProvider(..)")
    }
}

/// A keep-alive sent every `every` while connected. A connection may have several (Genesys
/// sends protocol pings every 15 s and an application `echo` every 30 s).
#[derive(Clone)]
pub enum Heartbeat {
    /// A WebSocket protocol ping frame, from the moment the connection is up.
    Ping {
        /// The interval.
        every: Duration,
    },
    /// An application text frame, built fresh each time (e.g. a Genesys
    /// `{"action":"echo",...}` with a new `tracingId`, or a TVox JSON-RPC `ping`).
    Text {
        /// The interval.
        every: Duration,
        /// Builds the frame.
        make: Arc<dyn Fn() -> String + Send + Sync>,
        /// Send only once the connection's gate is open (after the adapter's handshake);
        /// the interval then counts from [`WsHandle::ready`].
        after_ready: bool,
    },
}

impl Heartbeat {
    /// A protocol ping every `every`.
    pub fn ping(every: Duration) -> Self {
        Heartbeat::Ping { every }
    }

    /// An application text frame from `make` every `every`, once the gate is open.
    pub fn text(every: Duration, make: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Heartbeat::Text {
            every,
            make: Arc::new(make),
            after_ready: true,
        }
    }

    /// An application text frame from `make` every `every`, from the moment the connection
    /// is up (before any handshake).
    pub fn text_before_ready(
        every: Duration,
        make: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        Heartbeat::Text {
            every,
            make: Arc::new(make),
            after_ready: false,
        }
    }

    fn every(&self) -> Duration {
        match self {
            Heartbeat::Ping { every } | Heartbeat::Text { every, .. } => {
                (*every).max(Duration::from_millis(1))
            }
        }
    }

    fn needs_gate(&self) -> bool {
        matches!(
            self,
            Heartbeat::Text {
                after_ready: true,
                ..
            }
        )
    }

    fn message(&self) -> Message {
        match self {
            Heartbeat::Ping { .. } => Message::Ping(Bytes::new()),
            Heartbeat::Text { make, .. } => Message::Text(make().into()),
        }
    }
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Heartbeat::Ping { every } => f.debug_struct("Ping").field("every", every).finish(),
            Heartbeat::Text {
                every, after_ready, ..
            } => f
                .debug_struct("Text")
                .field("every", every)
                .field("after_ready", after_ready)
                .finish_non_exhaustive(),
        }
    }
}

/// Configuration of a [`WsClient`]. Start from [`WsConfig::new`] and set fields.
#[derive(Clone)]
pub struct WsConfig {
    /// The vendor, named in every error.
    pub vendor: Vendor,
    /// The URL of each attempt.
    pub url: UrlProvider,
    /// Extra request headers (`Origin`, `User-Agent`, …).
    pub headers: HeaderMap,
    /// Subprotocols offered in `Sec-WebSocket-Protocol` (e.g. `sip`); the server must pick one.
    pub subprotocols: Vec<String>,
    /// Trusted roots for `wss`.
    pub tls: TlsConfig,
    /// When to retry.
    pub backoff: BackoffPolicy,
    /// The keep-alives (none by default).
    pub heartbeats: Vec<Heartbeat>,
    /// Reconnect when nothing at all (frame, ping, pong) arrived for this long.
    pub dead_after: Option<Duration>,
    /// Limit for TCP + TLS + upgrade of one attempt.
    pub connect_timeout: Duration,
    /// The most frames [`WsHandle::send`] holds before it fails.
    pub queue_capacity: usize,
    /// Capacity of the events channel (the task waits when it is full).
    pub event_capacity: usize,
    /// tungstenite's read buffer: what one read from the socket takes at most, and what an
    /// idle connection keeps allocated (its 128 KiB default would cost ~145 KB per idle
    /// connection). A longer message is still read whole, in several reads.
    pub read_buffer_size: usize,
    /// tungstenite's write buffer target; 0 writes every frame at once.
    pub write_buffer_size: usize,
    /// The largest incoming message accepted.
    pub max_message_size: usize,
    /// Whether a close frame from the server is followed by reconnecting (true) or by
    /// [`WsEvent::GaveUp`] (false).
    pub reconnect_after_server_close: bool,
}

impl WsConfig {
    /// Defaults: no extra headers, web PKI roots, [`BackoffPolicy::default`], no heartbeats,
    /// 10 s connect timeout, queue of 256 frames, 256 events, 2 KiB read buffer, eager writes,
    /// 16 MiB messages, reconnect after a server close.
    pub fn new(vendor: Vendor, url: UrlProvider) -> Self {
        WsConfig {
            vendor,
            url,
            headers: HeaderMap::new(),
            subprotocols: Vec::new(),
            tls: TlsConfig::webpki(),
            backoff: BackoffPolicy::default(),
            heartbeats: Vec::new(),
            dead_after: None,
            connect_timeout: Duration::from_secs(10),
            queue_capacity: 256,
            event_capacity: 256,
            read_buffer_size: 2 * 1024,
            write_buffer_size: 0,
            max_message_size: 16 << 20,
            reconnect_after_server_close: true,
        }
    }

    fn tungstenite_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

impl fmt::Debug for WsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may carry credentials: show the names only.
        let headers: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("WsConfig")
            .field("vendor", &self.vendor)
            .field("headers", &headers)
            .field("subprotocols", &self.subprotocols)
            .field("tls", &self.tls)
            .field("backoff", &self.backoff)
            .field("heartbeats", &self.heartbeats)
            .field("dead_after", &self.dead_after)
            .field("connect_timeout", &self.connect_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("read_buffer_size", &self.read_buffer_size)
            .finish_non_exhaustive()
    }
}

/// Why a connection ended.
#[derive(Clone, Debug)]
pub enum Disconnect {
    /// The server sent a close frame (code 1005 when it carried none).
    ServerClosed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Nothing arrived for [`WsConfig::dead_after`].
    Dead {
        /// How long it was silent.
        silent_for: Duration,
    },
    /// [`WsHandle::reconnect`] asked for a new connection.
    Requested,
    /// The attempt or the connection failed.
    Error(Arc<Error>),
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::ServerClosed { code, reason } => {
                write!(f, "server closed the connection ({code}) {reason}")
            }
            Disconnect::Dead { silent_for } => write!(f, "no data for {silent_for:?}"),
            Disconnect::Requested => f.write_str("reconnect requested"),
            Disconnect::Error(e) => write!(f, "{e}"),
        }
    }
}

/// What the connection task reports, in order.
#[derive(Debug)]
pub enum WsEvent {
    /// An attempt starts (0 = the first connect, n = the n-th retry in a row).
    Connecting {
        /// The attempt.
        attempt: u32,
    },
    /// A connection is up; its gate is closed until [`WsHandle::ready`]`(connection)`.
    Connected {
        /// The connection number (1 for the first successful connection).
        connection: u64,
        /// The attempt that succeeded (0 = the first connect).
        attempt: u32,
        /// The subprotocol the server picked.
        protocol: Option<String>,
    },
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A connection or an attempt ended; [`WsEvent::Reconnecting`] or
    /// [`WsEvent::GaveUp`] follows.
    Disconnected {
        /// Why.
        reason: Disconnect,
    },
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// The attempt (1 = the first retry).
        attempt: u32,
        /// The wait.
        delay: Duration,
    },
    /// The task stopped for good (policy exhausted, fatal error, or server close with
    /// reconnecting disabled). The last event.
    GaveUp {
        /// The last failure.
        reason: Disconnect,
        /// Frames queued with [`WsHandle::send`] that were never written.
        unsent: Vec<Frame>,
    },
    /// [`WsHandle::close`] (or dropping every handle) stopped the task. The last event.
    Closed,
}

impl WsEvent {
    /// The [`ConnectionState`] this event means, if it changes the session's state.
    /// `Connecting` counts only for the first attempt (retries already reported
    /// `Reconnecting`); `Disconnected` is transient and maps to nothing.
    pub fn connection_state(&self) -> Option<ConnectionState> {
        match self {
            WsEvent::Connecting { attempt: 0 } => Some(ConnectionState::Connecting),
            WsEvent::Connected { .. } => Some(ConnectionState::Connected),
            WsEvent::Reconnecting { attempt, delay } => Some(ConnectionState::Reconnecting {
                attempt: *attempt,
                delay: *delay,
            }),
            WsEvent::GaveUp { reason, .. } => Some(ConnectionState::Disconnected {
                reason: reason.to_string().into(),
            }),
            WsEvent::Closed => Some(ConnectionState::Disconnected {
                reason: "closed".into(),
            }),
            _ => None,
        }
    }
}

/// The receiving end of a connection's events. Read it promptly: the task waits (and stops
/// reading the socket) while it is full. Dropping it stops the task.
#[derive(Debug)]
pub struct WsEvents {
    // Boxed: the channel preallocates a block of 32 items, and an idle connection keeps it.
    rx: mpsc::Receiver<Box<WsEvent>>,
}

impl WsEvents {
    /// The next event; `None` after [`WsEvent::GaveUp`] / [`WsEvent::Closed`].
    pub async fn recv(&mut self) -> Option<WsEvent> {
        self.rx.recv().await.map(|e| *e)
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<WsEvent> {
        self.rx.try_recv().ok().map(|e| *e)
    }
}

// Channel items are kept small: each channel preallocates a block of 32 of them, and an
// idle connection keeps that block.
enum Command {
    SendNow(Box<(Frame, oneshot::Sender<Result<()>>)>),
    Ready(u64),
    Reconnect,
    Close(oneshot::Sender<Vec<Frame>>),
}

struct Shared {
    vendor: Vendor,
    capacity: usize,
    cmd: mpsc::UnboundedSender<Command>,
    queue: mpsc::Sender<Box<Frame>>,
    /// The current connection number, 0 while disconnected.
    current: AtomicU64,
}

/// A cheap, cloneable handle to one reconnecting WebSocket. When every handle is dropped the
/// task closes the socket and stops.
#[derive(Clone)]
pub struct WsHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for WsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsHandle")
            .field("vendor", &self.shared.vendor)
            .field("connection", &self.connection())
            .finish()
    }
}

fn queue_full(vendor: Vendor, capacity: usize) -> Error {
    Error::transport(
        vendor,
        "websocket send",
        format!("send queue full ({capacity} frames waiting for the connection)"),
    )
}

fn not_connected(vendor: Vendor) -> Error {
    Error::transport(vendor, "websocket send", "not connected")
}

impl WsHandle {
    /// The vendor.
    pub fn vendor(&self) -> Vendor {
        self.shared.vendor
    }

    /// The current connection number, or `None` while disconnected.
    pub fn connection(&self) -> Option<u64> {
        match self.shared.current.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// Queues a frame; it is written once the current or a later connection's gate is open.
    /// Fails with a retryable [`Error::Transport`] when the queue is full, and with
    /// [`Error::Closed`] after the task stopped.
    pub fn send(&self, frame: impl Into<Frame>) -> Result<()> {
        self.shared
            .queue
            .try_send(Box::new(frame.into()))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    queue_full(self.shared.vendor, self.shared.capacity)
                }
                mpsc::error::TrySendError::Closed(_) => {
                    Error::closed(self.shared.vendor, "websocket")
                }
            })
    }

    /// Writes a frame on the current connection now, bypassing the gate; resolves once it is
    /// written. Fails when not connected (or the write fails).
    pub async fn send_now(&self, frame: impl Into<Frame>) -> Result<()> {
        let vendor = self.shared.vendor;
        if self.connection().is_none() {
            return Err(not_connected(vendor));
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .cmd
            .send(Command::SendNow(Box::new((frame.into(), tx))))
            .map_err(|_| Error::closed(vendor, "websocket"))?;
        rx.await.map_err(|_| Error::closed(vendor, "websocket"))?
    }

    /// Opens the gate of `connection` (from [`WsEvent::Connected`]): queued frames start to
    /// flow. Ignored if that connection is already gone.
    pub fn ready(&self, connection: u64) {
        let _ = self.shared.cmd.send(Command::Ready(connection));
    }

    /// Drops the current connection (if any) and connects again at once, e.g. with a new
    /// token from the [`UrlProvider`].
    pub fn reconnect(&self) {
        let _ = self.shared.cmd.send(Command::Reconnect);
    }

    /// Closes the connection and stops the task. When the connection's gate is open the
    /// frames already queued are written first; then the close frame (code 1000) is sent and
    /// the server's close frame awaited, all within one second, before the TCP connection
    /// is dropped. Returns the queued frames that were never written. Safe to call more
    /// than once.
    pub async fn close(&self) -> Vec<Frame> {
        let (tx, rx) = oneshot::channel();
        if self.shared.cmd.send(Command::Close(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// Entry point of the reconnecting WebSocket client.
#[derive(Debug)]
pub struct WsClient;

impl WsClient {
    /// Spawns the connection task (on the current tokio runtime) and returns its handle and
    /// events. The first attempt starts at once.
    pub fn connect(config: WsConfig) -> (WsHandle, WsEvents) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            vendor: config.vendor,
            capacity: config.queue_capacity.max(1),
            cmd: cmd_tx,
            queue: queue_tx,
            current: AtomicU64::new(0),
        });
        let task = Task {
            shared: Arc::downgrade(&shared),
            config: Arc::new(config),
            cmd: cmd_rx,
            queue: queue_rx,
            events: ev_tx,
            pending: None,
        };
        tokio::spawn(task.run());
        (WsHandle { shared }, WsEvents { rx: ev_rx })
    }
}

/// How one connected period ended.
enum End {
    Lost(Disconnect),
    /// Stop the task: close requested, every handle dropped, or the events receiver dropped.
    Stop(Option<oneshot::Sender<Vec<Frame>>>),
}

struct Task {
    shared: std::sync::Weak<Shared>,
    config: Arc<WsConfig>,
    cmd: mpsc::UnboundedReceiver<Command>,
    queue: mpsc::Receiver<Box<Frame>>,
    events: mpsc::Sender<Box<WsEvent>>,
    /// A queued frame taken off the queue whose write failed; it goes first next time.
    pending: Option<Frame>,
}

impl Task {
    fn set_current(&self, n: u64) {
        if let Some(shared) = self.shared.upgrade() {
            shared.current.store(n, Ordering::Release);
        }
    }

    /// Sends an event; false when nobody listens any more.
    async fn emit(&self, event: WsEvent) -> bool {
        self.events.send(Box::new(event)).await.is_ok()
    }

    fn drain_unsent(&mut self) -> Vec<Frame> {
        self.queue.close();
        let mut unsent: Vec<Frame> = self.pending.take().into_iter().collect();
        while let Ok(f) = self.queue.try_recv() {
            unsent.push(*f);
        }
        unsent
    }

    async fn run(mut self) {
        let vendor = self.config.vendor;
        let mut backoff = self.config.backoff.start();
        let mut attempt: u32 = 0;
        let mut connections: u64 = 0;
        loop {
            if !self.emit(WsEvent::Connecting { attempt }).await {
                return;
            }
            // Boxed so the handshake's state is freed once connected (idle connections stay
            // small).
            let mut connect = Box::pin(connect(self.config.clone(), attempt));
            // Commands still count while connecting.
            let result = loop {
                tokio::select! {
                    r = &mut connect => break r,
                    cmd = self.cmd.recv() => match cmd {
                        None => return self.stop(None).await,
                        Some(Command::Close(reply)) => return self.stop(Some(reply)).await,
                        Some(Command::SendNow(send)) => {
                            let _ = send.1.send(Err(not_connected(vendor)));
                        }
                        Some(Command::Ready(_) | Command::Reconnect) => {}
                    },
                }
            };
            // Free the handshake's state (about 10 KiB) before the connection's long life.
            drop(connect);
            let reason = match result {
                Ok((socket, protocol)) => {
                    backoff.reset();
                    connections += 1;
                    self.set_current(connections);
                    let event = WsEvent::Connected {
                        connection: connections,
                        attempt,
                        protocol,
                    };
                    attempt = 0;
                    if !self.emit(event).await {
                        return;
                    }
                    let end = self.drive(socket, connections).await;
                    self.set_current(0);
                    match end {
                        End::Stop(reply) => return self.stop(reply).await,
                        End::Lost(reason) => reason,
                    }
                }
                Err(e) => Disconnect::Error(Arc::new(e)),
            };
            tracing::debug!(%vendor, %reason, "websocket disconnected");
            let fatal = match &reason {
                Disconnect::Error(e) => is_fatal(e),
                Disconnect::ServerClosed { .. } => !self.config.reconnect_after_server_close,
                _ => false,
            };
            let retry_after = match &reason {
                Disconnect::Error(e) => e.retry_after(),
                _ => None,
            };
            let requested = matches!(reason, Disconnect::Requested);
            if !self
                .emit(WsEvent::Disconnected {
                    reason: reason.clone(),
                })
                .await
            {
                return;
            }
            let delay = if fatal {
                None
            } else if requested {
                Some(Duration::ZERO)
            } else {
                backoff.next_delay_with(Instant::now().into_std(), retry_after)
            };
            let Some(delay) = delay else {
                let unsent = self.drain_unsent();
                let _ = self.emit(WsEvent::GaveUp { reason, unsent }).await;
                return;
            };
            attempt += 1;
            if !self.emit(WsEvent::Reconnecting { attempt, delay }).await {
                return;
            }
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    cmd = self.cmd.recv() => match cmd {
                        None => return self.stop(None).await,
                        Some(Command::Close(reply)) => return self.stop(Some(reply)).await,
                        Some(Command::SendNow(send)) => {
                            let _ = send.1.send(Err(not_connected(vendor)));
                        }
                        Some(Command::Reconnect) => break,
                        Some(Command::Ready(_)) => {}
                    },
                }
            }
        }
    }

    async fn stop(mut self, reply: Option<oneshot::Sender<Vec<Frame>>>) {
        self.set_current(0);
        let unsent = self.drain_unsent();
        let _ = self.emit(WsEvent::Closed).await;
        if let Some(reply) = reply {
            let _ = reply.send(unsent);
        }
    }

    /// Ends a connection for good: writes what is queued when the gate is open (a frame
    /// whose write fails or runs out of time stays unsent and is returned by
    /// [`WsHandle::close`]), then closes the socket with the closing handshake.
    async fn finish(&mut self, socket: &mut Socket, gate_open: bool) {
        let deadline = Instant::now() + CLOSE_WAIT;
        if gate_open {
            while let Some(frame) = self
                .pending
                .take()
                .or_else(|| self.queue.try_recv().ok().map(|f| *f))
            {
                let write = socket.feed(frame.clone().into_message());
                if !matches!(tokio::time::timeout_at(deadline, write).await, Ok(Ok(()))) {
                    self.pending = Some(frame);
                    break;
                }
            }
        }
        // The close frame follows the queued frames and flushes them.
        close_socket(socket, deadline, true).await;
    }

    /// Runs one connection until it ends.
    async fn drive(&mut self, mut socket: Box<Socket>, connection: u64) -> End {
        let vendor = self.config.vendor;
        let mut gate_open = false;
        let mut last_rx = Instant::now();
        let config = self.config.clone();
        // When each heartbeat is due next; gated ones wait for the gate.
        let now = Instant::now();
        let mut due: Vec<Option<Instant>> = config
            .heartbeats
            .iter()
            .map(|h| (!h.needs_gate()).then(|| now + h.every()))
            .collect();
        let dead_after = self.config.dead_after;
        loop {
            // A frame whose write failed on the previous connection goes first.
            if gate_open
                && let Some(frame) = self.pending.take()
                && let Err(e) = socket.send(frame.clone().into_message()).await
            {
                self.pending = Some(frame);
                return End::Lost(write_error(vendor, e));
            }
            let dead = async {
                match dead_after {
                    Some(d) => tokio::time::sleep_until(last_rx + d).await,
                    None => std::future::pending().await,
                }
            };
            let next_beat = due.iter().flatten().min().copied();
            let tick = async move {
                match next_beat {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = self.cmd.recv() => match cmd {
                    None => {
                        self.finish(&mut socket, gate_open).await;
                        return End::Stop(None);
                    }
                    Some(Command::Close(reply)) => {
                        self.finish(&mut socket, gate_open).await;
                        return End::Stop(Some(reply));
                    }
                    Some(Command::SendNow(send)) => {
                        let (frame, reply) = *send;
                        let result = socket.send(frame.into_message()).await;
                        match result {
                            Ok(()) => {
                                let _ = reply.send(Ok(()));
                            }
                            Err(e) => {
                                let reason = write_error(vendor, e);
                                let _ = reply.send(Err(Error::transport(
                                    vendor,
                                    "websocket send",
                                    reason.to_string(),
                                )));
                                return End::Lost(reason);
                            }
                        }
                    }
                    Some(Command::Ready(n)) => {
                        if n == connection && !gate_open {
                            gate_open = true;
                            let now = Instant::now();
                            for (at, h) in due.iter_mut().zip(&config.heartbeats) {
                                if h.needs_gate() {
                                    *at = Some(now + h.every());
                                }
                            }
                        }
                    }
                    Some(Command::Reconnect) => {
                        close_socket(&mut socket, Instant::now() + CLOSE_WAIT, true).await;
                        return End::Lost(Disconnect::Requested);
                    }
                },
                msg = socket.next() => {
                    last_rx = Instant::now();
                    let event = match msg {
                        None => {
                            return End::Lost(Disconnect::Error(Arc::new(Error::transport(
                                vendor,
                                "websocket read",
                                "connection closed without a close frame",
                            ))));
                        }
                        Some(Err(e)) => {
                            return End::Lost(Disconnect::Error(Arc::new(Error::transport(
                                vendor,
                                "websocket read",
                                e,
                            ))));
                        }
                        Some(Ok(Message::Text(t))) => WsEvent::Text(t.as_str().to_owned()),
                        Some(Ok(Message::Binary(b))) => WsEvent::Binary(b),
                        Some(Ok(Message::Close(frame))) => {
                            // Let tungstenite answer the close handshake.
                            close_socket(&mut socket, Instant::now() + CLOSE_WAIT, true).await;
                            let (code, reason) = match frame {
                                Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                                None => (1005, String::new()),
                            };
                            return End::Lost(Disconnect::ServerClosed { code, reason });
                        }
                        // Pings are answered by tungstenite; pongs only prove liveness.
                        Some(Ok(_)) => continue,
                    };
                    if !self.emit(event).await {
                        close_socket(&mut socket, Instant::now() + CLOSE_WAIT, true).await;
                        return End::Stop(None);
                    }
                }
                frame = self.queue.recv(), if gate_open => {
                    let Some(frame) = frame else {
                        // Unreachable while a handle exists: `Shared` owns the sender.
                        close_socket(&mut socket, Instant::now() + CLOSE_WAIT, true).await;
                        return End::Stop(None);
                    };
                    let frame = *frame;
                    if let Err(e) = socket.send(frame.clone().into_message()).await {
                        self.pending = Some(frame);
                        return End::Lost(write_error(vendor, e));
                    }
                }
                () = tick => {
                    let now = Instant::now();
                    for (at, h) in due.iter_mut().zip(&config.heartbeats) {
                        if at.is_some_and(|t| t <= now) {
                            // Missed beats are not made up: the next one is a full interval away.
                            *at = Some(now + h.every());
                            if let Err(e) = socket.send(h.message()).await {
                                return End::Lost(write_error(vendor, e));
                            }
                        }
                    }
                }
                () = dead => {
                    let silent_for = Instant::now().saturating_duration_since(last_rx);
                    // The peer looks dead: no waiting for its close frame.
                    close_socket(&mut socket, Instant::now() + CLOSE_WAIT, false).await;
                    return End::Lost(Disconnect::Dead { silent_for });
                }
            }
        }
    }
}

/// Sends a close frame (code 1000) and, with `await_reply`, waits for the server's close
/// frame and the end of the stream, all until `deadline` (a dead peer must not hold the
/// task). Only then is the TCP stream dropped: dropping it while input is unread makes the
/// kernel reset the connection, and a reset makes the server discard what it has not read
/// yet, such as the last frames written before the close.
async fn close_socket(socket: &mut Socket, deadline: Instant, await_reply: bool) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let sent = tokio::time::timeout_at(deadline, socket.close(Some(frame))).await;
    if !matches!(sent, Ok(Ok(()))) || !await_reply {
        return;
    }
    // The stream ends after the server's close frame (tungstenite answers or completes the
    // handshake); frames still arriving until then are no longer wanted.
    let _ = tokio::time::timeout_at(deadline, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

fn write_error(vendor: Vendor, e: tungstenite::Error) -> Disconnect {
    Disconnect::Error(Arc::new(Error::transport(vendor, "websocket write", e)))
}

/// Errors after which retrying the same connection cannot help.
fn is_fatal(e: &Error) -> bool {
    use cc_core::ErrorKind as K;
    match e.kind() {
        K::Auth | K::InvalidInput | K::Unsupported | K::Closed => true,
        K::Rejected => !e.is_retryable(),
        _ => false,
    }
}

async fn connect(config: Arc<WsConfig>, attempt: u32) -> Result<(Box<Socket>, Option<String>)> {
    let url = config.url.url(attempt).await?;
    let upgraded = upgrade::upgrade(&config, &url).await?;
    // The bytes read past the response head start the read buffer, whose capacity is
    // `read_buffer_size`: nothing of the handshake's buffers stays with the connection.
    let socket = WebSocketStream::from_partially_read(
        upgraded.stream,
        upgraded.tail,
        Role::Client,
        Some(config.tungstenite_config()),
    )
    .await;
    Ok((Box::new(socket), upgraded.protocol))
}
