//! The TVox session and engagement: a thin async driver around the [`Engine`].
//!
//! One task per session owns the engine and the reconnecting WebSocket
//! (`cc_transport::WsClient`); the public handles send it commands and read views it keeps
//! up to date. Every request the app awaits has a timeout
//! ([`TvoxConfig::request_timeout_ms`]).
//!
//! # Adapter extension
//!
//! TVox operations with no method in the neutral traits are inherent methods:
//!
//! - [`TvoxSession::visit_uri`] — `widgetVisitUri`: the page the customer is on;
//! - [`TvoxSession::send_customer_identifier`] — `sendCustomerIdentifier`: the channel and
//!   service the customer chose;
//! - [`TvoxSession::watch_service_status`] — `getServiceStatusForChannel` as a live
//!   stream (the neutral [`Session::service_status`] answers with the current value);
//! - [`TvoxSession::channels_enabled`] — `getChannelsEnabled`;
//! - [`TvoxEngagement::send_recap`] — `chatSendRecapOfSession`;
//! - [`TvoxEngagement::mark_received`] / [`TvoxEngagement::mark_read`] —
//!   `chatChannelReceivedMessage` / `chatChannelReadMessage`. They are not behind
//!   `Engagement::mark`, because the neutral receipt capabilities also promise receipts
//!   *from* the agent, which TVox does not report.
//!
//! # Calls
//!
//! [`Session::start_call`] creates a `PHONE_CALL` (audio) or `VIDEO` session, starts a
//! `cc_rtc::media::MediaSession` with the request's devices and signals it over the widget
//! socket; the returned [`TvoxCall`] is the neutral `CallSession`. The driver task owns the
//! media handles of the session's calls: it applies what TVox sends (answer, candidates,
//! re-offers) and reports the media's own events (connected, failed) back to the engine.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use cc_chat::OutboxConfig;
use cc_core::{
    CallRequest, CallSession, CallState, CallStats, Capabilities, ChatRequest, ConnectionState,
    Content, Customer, Engagement, EngagementId, EngagementState, Error, Event, EventBus,
    EventStream, Message, MessageId, Participant, Receipt, Result, Role, Secret, SentMessage,
    ServiceStatus, Session, StatusQuery, Timestamp, Vendor,
};
use cc_rtc::CallCommand;
use cc_rtc::media::{
    IceServer as MediaIceServer, IceTransportPolicy, MediaConfig, MediaEvent, MediaSession,
};
use cc_transport::{BackoffPolicy, TlsConfig, UrlProvider, WsClient, WsConfig, WsEvent, WsHandle};
use futures::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::TvoxConfig;
use crate::engine::{
    ChatView, Engine, EngineConfig, MediaOp, Now, Output, SharedTranscript, StartCall, StartChat,
    to_service_status,
};
use crate::wire::codec::{ChatCreate, Hello, SUBPROTOCOL};
use crate::wire::{self, Call, CustomerInfo, MultiChannelType};

const V: Vendor = Vendor::Tvox;

/// How long a shutdown waits for TVox to acknowledge the hang-up of the session's calls.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

type StatusKey = (MultiChannelType, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> Now {
    Now {
        at: tokio::time::Instant::now().into_std(),
        wall: Timestamp::now(),
    }
}

/// The commands' channel. Its items are boxed: an unbounded channel allocates its slots 32
/// at a time, and every idle session holds one such block.
type CmdSender = mpsc::UnboundedSender<Box<Cmd>>;

enum Cmd {
    StartChat(Box<StartChat>, oneshot::Sender<Result<Arc<TvoxEngagement>>>),
    Send(EngagementId, Content, oneshot::Sender<Result<Message>>),
    Typing(EngagementId, bool, oneshot::Sender<Result<()>>),
    Mark(
        EngagementId,
        MessageId,
        Receipt,
        oneshot::Sender<Result<Value>>,
    ),
    Close(EngagementId, oneshot::Sender<Result<Value>>),
    Leave(EngagementId, oneshot::Sender<Result<()>>),
    App(Box<Call>, &'static str, oneshot::Sender<Result<Value>>),
    Status(MultiChannelType, String, oneshot::Sender<Result<Value>>),
    MediaMonitor(MultiChannelType, oneshot::Sender<Result<Value>>),
    MediaStop(MultiChannelType, oneshot::Sender<Result<Value>>),
    StartCall(Box<StartCall>, CallParts, oneshot::Sender<Result<Value>>),
    CallOp(Arc<str>, CallCommand, oneshot::Sender<Result<Value>>),
    MediaEvent(Arc<str>, MediaEvent),
    Shutdown(oneshot::Sender<()>),
}

/// What the driver keeps of a call: its media, and where its state and events go.
#[derive(Clone)]
struct CallParts {
    media: MediaSession,
    state: Arc<Mutex<CallState>>,
    bus: EventBus,
}

struct DriverCall {
    parts: CallParts,
    watcher: tokio::task::JoinHandle<()>,
}

enum ReplyTo {
    Chat(oneshot::Sender<Result<Arc<TvoxEngagement>>>),
    Value(oneshot::Sender<Result<Value>>),
}

struct Inner {
    config: TvoxConfig,
    bus: EventBus,
    cmd: CmdSender,
    chats: Mutex<Vec<Arc<TvoxEngagement>>>,
    /// A B-tree: empty, it takes half the room of a hash map (most sessions watch none).
    status: Mutex<BTreeMap<StatusKey, watch::Sender<Option<wire::ServiceStatus>>>>,
    channels: Mutex<Arc<BTreeMap<String, bool>>>,
    resume: Mutex<Option<Secret>>,
    ice_servers: Mutex<Arc<[wire::codec::IceServer]>>,
    /// Media-session updates for the monitors; made on the first monitor, so a session that
    /// never monitors does not carry the channel's 64 preallocated slots.
    media: std::sync::OnceLock<broadcast::Sender<MediaSessionUpdate>>,
    shut: AtomicBool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TvoxSession")
            .field("url", &self.config.url)
            .field("chats", &lock(&self.chats).len())
            .field("shut", &self.shut.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A TVox widget session: one WebSocket to TVox, any number of chats. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TvoxSession {
    inner: Arc<Inner>,
}

/// One TVox chat session.
pub struct TvoxEngagement {
    id: EngagementId,
    cmd: CmdSender,
    bus: EventBus,
    timeout: Duration,
    view: Mutex<ChatView>,
}

impl fmt::Debug for TvoxEngagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TvoxEngagement")
            .field("id", &self.id)
            .field("state", &lock(&self.view).state)
            .finish_non_exhaustive()
    }
}

async fn ask<T>(
    cmd: &CmdSender,
    timeout: Duration,
    operation: &'static str,
    make: impl FnOnce(oneshot::Sender<Result<T>>) -> Cmd,
) -> Result<T> {
    let (tx, rx) = oneshot::channel();
    cmd.send(Box::new(make(tx)))
        .map_err(|_| Error::closed(V, "session"))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(Error::closed(V, "session")),
        Err(_) => Err(Error::Timeout {
            vendor: V,
            operation,
            after: timeout,
        }),
    }
}

impl TvoxSession {
    /// Connects to TVox and waits for the first handshake (up to
    /// [`TvoxConfig::connect_timeout_ms`]); afterwards the session reconnects on its own,
    /// every `retry.interval_ms`, forever unless `retry.max_retries` is set.
    /// A `resume_token` in the configuration is presented in the handshake.
    pub async fn connect(config: TvoxConfig, tls: &cc_core::TlsSettings) -> Result<TvoxSession> {
        let token = config.resume_token.clone();
        Self::connect_with(config, tls, token).await
    }

    /// Like [`TvoxSession::connect`], presenting the resume token of an earlier session of
    /// the same customer ([`TvoxSession::resume_token`]) in the handshake.
    pub async fn connect_with(
        config: TvoxConfig,
        tls: &cc_core::TlsSettings,
        resume_token: Option<Secret>,
    ) -> Result<TvoxSession> {
        config.validate()?;
        let url = config.ws_url()?;
        let mut ws = WsConfig::new(V, UrlProvider::fixed(url));
        ws.subprotocols = vec![SUBPROTOCOL.to_owned()];
        ws.tls = TlsConfig::from_settings(V, tls)?;
        ws.backoff = BackoffPolicy::fixed(Duration::from_millis(config.retry.interval_ms))
            .with_max_attempts(config.retry.max_retries);
        ws.connect_timeout = Duration::from_millis(config.connect_timeout_ms.min(10_000));
        let hello = Hello {
            widget_id: config.widget_id.clone(),
            customer_info: config.customer_info(),
            services_configuration: config.services.clone(),
            webrtc: config.webrtc.clone(),
            user_agent: Some(format!("cc-adapter-tvox/{}", env!("CARGO_PKG_VERSION"))),
            resume_token: None,
        };
        let mut customer = Participant::new(Role::Customer);
        if let Some(info) = config.customer_info() {
            customer.display_name = Some(info.customer_display_name);
            customer.id = info.customer_id.map(Arc::from);
        }
        let mut engine = Engine::new(EngineConfig {
            hello,
            heartbeat: config.heartbeat(),
            outbox: OutboxConfig::default(),
            customer,
            media_timeout: Duration::from_millis(config.calls.media_timeout_ms),
        });
        engine.set_resume_token(resume_token);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            config: config.clone(),
            bus: EventBus::default(),
            cmd: cmd_tx,
            chats: Mutex::new(Vec::new()),
            status: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(Arc::default()),
            resume: Mutex::new(None),
            ice_servers: Mutex::new(Arc::from([])),
            media: std::sync::OnceLock::new(),
            shut: AtomicBool::new(false),
        });
        let (handle, events) = WsClient::connect(ws);
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = Driver {
            engine,
            ws: handle,
            inner: Arc::downgrade(&inner),
            bus: inner.bus.clone(),
            replies: HashMap::new(),
            ready: Some(ready_tx),
            calls: BTreeMap::new(),
            starting: BTreeMap::new(),
        };
        tokio::spawn(driver.run(events, cmd_rx));
        let session = TvoxSession { inner };
        let wait = Duration::from_millis(config.connect_timeout_ms);
        match tokio::time::timeout(wait, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(session),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::closed(V, "session")),
            Err(_) => {
                let _ = session.shutdown().await;
                Err(Error::Timeout {
                    vendor: V,
                    operation: "connect",
                    after: wait,
                })
            }
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.request_timeout_ms)
    }

    /// The configuration.
    pub fn config(&self) -> &TvoxConfig {
        &self.inner.config
    }

    /// `getChannelsEnabled()`: channel → enabled, as the last handshake said.
    pub fn channels_enabled(&self) -> BTreeMap<String, bool> {
        BTreeMap::clone(&lock(&self.inner.channels))
    }

    /// The TVox handle of one of this session's chats, for the adapter extension
    /// ([`TvoxEngagement::mark_read`], [`TvoxEngagement::send_recap`], …).
    pub fn chat(&self, id: &EngagementId) -> Option<Arc<TvoxEngagement>> {
        lock(&self.inner.chats)
            .iter()
            .find(|e| &e.id == id)
            .cloned()
    }

    /// The token that re-attaches this widget's sessions in a later handshake.
    pub fn resume_token(&self) -> Option<Secret> {
        lock(&self.inner.resume).clone()
    }

    async fn app(&self, call: Call, method: &'static str) -> Result<Value> {
        ask(&self.inner.cmd, self.timeout(), method, |tx| {
            Cmd::App(Box::new(call), method, tx)
        })
        .await
    }

    /// `widgetVisitUri`: tells TVox which page the customer is on (shown to the agent).
    pub async fn visit_uri(
        &self,
        linkable_uri: Option<&str>,
        uri: Option<&str>,
        uri_display: Option<&str>,
    ) -> Result<()> {
        self.app(
            Call::VisitUri {
                linkable_uri: linkable_uri.map(str::to_owned),
                uri: uri.map(str::to_owned),
                uri_display: uri_display.map(str::to_owned),
            },
            "widget.visitUri",
        )
        .await
        .map(|_| ())
    }

    /// `sendCustomerIdentifier`: tells TVox which channel and service the customer chose.
    pub async fn send_customer_identifier(
        &self,
        channel: MultiChannelType,
        service: &str,
    ) -> Result<()> {
        if service.trim().is_empty() {
            return Err(Error::invalid(V, "service", "empty"));
        }
        self.app(
            Call::CustomerIdentifier {
                channel,
                service: service.to_owned(),
            },
            "widget.customerIdentifier",
        )
        .await
        .map(|_| ())
    }

    /// The status of `service` on `channel` as TVox sends it; fails with `InvalidInput`
    /// when the pair is not in `tvox.services` (the vendor's "unmonitored" error).
    pub async fn wire_service_status(
        &self,
        channel: MultiChannelType,
        service: &str,
    ) -> Result<wire::ServiceStatus> {
        let v = ask(
            &self.inner.cmd,
            self.timeout(),
            "service.status.subscribe",
            |tx| Cmd::Status(channel, service.to_owned(), tx),
        )
        .await?;
        serde_json::from_value(v).map_err(|e| Error::protocol(V, "service status", e.to_string()))
    }

    /// `getServiceStatusForChannel`: the status now, then every change, live. The
    /// subscription is kept (and renewed after reconnects) for the life of the session.
    pub async fn watch_service_status(
        &self,
        channel: MultiChannelType,
        service: &str,
    ) -> Result<ServiceStatusStream> {
        let rx = {
            let mut map = lock(&self.inner.status);
            map.entry((channel.clone(), service.to_owned()))
                .or_insert_with(|| watch::channel(None).0)
                .subscribe()
        };
        self.wire_service_status(channel, service).await?;
        Ok(ServiceStatusStream {
            inner: tokio_stream::wrappers::WatchStream::new(rx),
        })
    }

    /// Checks that `channel` is a WebRTC channel and WebRTC is enabled in the
    /// configuration (`[tvox.webrtc] enabled = true`).
    fn media_channel(&self, channel: &MultiChannelType) -> Result<()> {
        let feature = match channel {
            MultiChannelType::Video => cc_core::Feature::CallsVideo,
            MultiChannelType::PhoneCall => cc_core::Feature::CallsAudio,
            other => {
                return Err(Error::invalid(
                    V,
                    "channel",
                    format!("{other} has no sessions of its own (VIDEO or PHONE_CALL)"),
                ));
            }
        };
        if !self.inner.config.webrtc.as_ref().is_some_and(|w| w.enabled) {
            return Err(Error::unsupported(V, feature));
        }
        Ok(())
    }

    /// `videoChannelSessionNew` / `callChannelSessionNew`: asks TVox for a video or phone
    /// session on `service`; returns its id. The session's signalling and media are not
    /// implemented yet (see the crate docs, *Calls*): this creates and tracks the TVox
    /// session only.
    pub async fn media_session_new(
        &self,
        channel: MultiChannelType,
        service: &str,
        customer_name: Option<&str>,
        customer_mail: Option<&str>,
    ) -> Result<String> {
        self.media_channel(&channel)?;
        if service.trim().is_empty() {
            return Err(Error::invalid(V, "service", "empty"));
        }
        let info = self.inner.config.customer_info();
        let create = wire::codec::MediaCreate {
            service: service.to_owned(),
            customer_name: customer_name
                .map(str::to_owned)
                .or_else(|| info.as_ref().map(|i| i.customer_display_name.clone())),
            customer_mail: customer_mail
                .map(str::to_owned)
                .or_else(|| info.and_then(|i| i.customer_value)),
        };
        let (call, method) = if channel == MultiChannelType::Video {
            (Call::VideoCreate(create), "video.create")
        } else {
            (Call::CallCreate(create), "call.create")
        };
        let v = self.app(call, method).await?;
        let created: wire::codec::MediaCreated = serde_json::from_value(v)
            .map_err(|e| Error::protocol(V, format!("{method} result"), e.to_string()))?;
        Ok(created.session_id)
    }

    /// `videoChannelSessionClose` / `callChannelSessionClose`.
    pub async fn media_session_close(
        &self,
        channel: MultiChannelType,
        session_id: &str,
    ) -> Result<()> {
        self.media_channel(&channel)?;
        let session_id = session_id.to_owned();
        let (call, method) = if channel == MultiChannelType::Video {
            (Call::VideoClose { session_id }, "video.close")
        } else {
            (Call::CallClose { session_id }, "call.close")
        };
        self.app(call, method).await.map(|_| ())
    }

    /// `videoChannelSessionMonitor` / `callChannelSessionMonitor`: every change of the
    /// channel's sessions, with the neutral call state. The subscription is kept (and
    /// renewed after reconnects) until [`TvoxSession::media_session_monitor_stop`]; each
    /// change is also an `Event::Vendor` named `tvox.media_session`.
    pub async fn media_session_monitor(
        &self,
        channel: MultiChannelType,
    ) -> Result<MediaSessionStream> {
        self.media_channel(&channel)?;
        let rx = self
            .inner
            .media
            .get_or_init(|| broadcast::channel(64).0)
            .subscribe();
        let ch = channel.clone();
        ask(&self.inner.cmd, self.timeout(), "session monitor", |tx| {
            Cmd::MediaMonitor(ch, tx)
        })
        .await?;
        Ok(MediaSessionStream {
            channel,
            inner: tokio_stream::wrappers::BroadcastStream::new(rx),
        })
    }

    /// `…ChannelSessionMonitorStop`.
    pub async fn media_session_monitor_stop(&self, channel: MultiChannelType) -> Result<()> {
        self.media_channel(&channel)?;
        ask(
            &self.inner.cmd,
            self.timeout(),
            "session monitor stop",
            |tx| Cmd::MediaStop(channel, tx),
        )
        .await
        .map(|_| ())
    }

    /// The ICE servers of a new call: the handshake's (unless
    /// `tvox.calls.server_ice_servers = false`), then the configured ones.
    fn call_ice_servers(&self) -> Vec<MediaIceServer> {
        let cfg = &self.inner.config.calls;
        let mut out = Vec::new();
        if cfg.server_ice_servers {
            let servers = Arc::clone(&lock(&self.inner.ice_servers));
            for s in servers.iter() {
                out.push(MediaIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                });
            }
        }
        out.extend(cfg.ice_servers.iter().cloned());
        out
    }

    /// The local address of the interface that routes to the TVox host: what the media
    /// binds when `tvox.calls.bind` is unset. A UDP socket is connected (no packet is sent)
    /// and asked for its local address.
    async fn route_address(&self) -> Result<std::net::IpAddr> {
        let url = self.inner.config.ws_url()?;
        let host = url
            .host_str()
            .ok_or_else(|| Error::invalid(V, "tvox.url", "no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let fail = |e: std::io::Error| {
            Error::transport(
                V,
                "media address (set tvox.calls.bind)",
                format!("no route to {host}: {e}"),
            )
        };
        cc_rtc::media::route_address(&host, port)
            .await
            .map_err(fail)
    }

    /// `Session::start_call`: checks, media, create, offer.
    async fn place_call(&self, request: CallRequest) -> Result<Arc<TvoxCall>> {
        let cfg = &self.inner.config;
        if !cfg.capabilities().calls_audio {
            // The widget library's phone and video channels need `server.webrtc`.
            let feature = if request.video {
                cc_core::Feature::CallsVideo
            } else {
                cc_core::Feature::CallsAudio
            };
            return Err(Error::unsupported(V, feature));
        }
        let service = cfg.call_service(request.video, request.routing.target.as_deref())?;
        let info = customer_info(cfg, &request.customer);
        let bind = match cfg.calls.bind {
            Some(a) => a,
            None => self.route_address().await?,
        };
        let relay = cfg
            .webrtc
            .as_ref()
            .and_then(|w| w.ice_gather_policy.as_ref())
            == Some(&wire::IceGatherPolicy::Relay);
        let media_config = MediaConfig {
            ice_servers: self.call_ice_servers(),
            bind,
            video: request.video,
            opus: cfg.calls.opus,
            ice_transport_policy: if relay {
                IceTransportPolicy::Relay
            } else {
                IceTransportPolicy::All
            },
        };
        let media = MediaSession::start(V, media_config, request.devices).await?;
        let offer = match media.create_offer() {
            Ok(o) => o,
            Err(e) => {
                media.close().await;
                return Err(e);
            }
        };
        let plan = StartCall {
            video: request.video,
            create: wire::codec::MediaCreate {
                service,
                customer_name: info.as_ref().map(|i| i.customer_display_name.clone()),
                customer_mail: info.and_then(|i| i.customer_value),
            },
            offer,
        };
        let parts = CallParts {
            media: media.clone(),
            state: Arc::new(Mutex::new(CallState::Dialing)),
            bus: EventBus::default(),
        };
        let method = if request.video {
            "video.create"
        } else {
            "call.create"
        };
        let created = ask(&self.inner.cmd, self.timeout(), method, |tx| {
            Cmd::StartCall(Box::new(plan), parts.clone(), tx)
        })
        .await;
        let id = match created.and_then(|v| {
            v.get("sessionId")
                .and_then(Value::as_str)
                .map(Arc::<str>::from)
                .ok_or_else(|| Error::protocol(V, format!("{method} result"), "no session id"))
        }) {
            Ok(id) => id,
            Err(e) => {
                media.close().await;
                return Err(e);
            }
        };
        Ok(Arc::new(TvoxCall {
            id,
            video: request.video,
            cmd: self.inner.cmd.clone(),
            timeout: self.timeout(),
            parts,
        }))
    }

    fn chat_plan(&self, request: &ChatRequest) -> Result<StartChat> {
        let cfg = &self.inner.config;
        let service = request
            .routing
            .target
            .clone()
            .or_else(|| cfg.default_service.clone())
            .or_else(|| {
                cfg.services
                    .iter()
                    .find(|c| c.channel == MultiChannelType::Chat)
                    .and_then(|c| c.services.first())
                    .map(|s| s.code.clone())
            })
            .ok_or_else(|| {
                Error::invalid(
                    V,
                    "routing.target",
                    "no service: set routing.target or tvox.default_service",
                )
            })?;
        if service.trim().is_empty() {
            return Err(Error::invalid(V, "routing.target", "empty service code"));
        }
        let info = customer_info(cfg, &request.customer);
        let mut customer = request.customer.participant();
        if customer.display_name.is_none() {
            customer.display_name = info.as_ref().map(|i| i.customer_display_name.clone());
        }
        Ok(StartChat {
            service: service.clone(),
            customer,
            create: ChatCreate {
                service,
                customer_display_name: info.as_ref().map(|i| i.customer_display_name.clone()),
                customer_value: info.as_ref().and_then(|i| i.customer_value.clone()),
                customer_info: info,
            },
            bot_history: request.bot_history.clone(),
            first_message: request.first_message.clone(),
        })
    }
}

/// The customer of one chat: the request's details over the configured ones; `None` (an
/// anonymous contact) when no display name is known anywhere.
fn customer_info(cfg: &TvoxConfig, c: &Customer) -> Option<CustomerInfo> {
    let base = cfg.customer.clone().unwrap_or_default();
    let display = c.display_name().or(base.display_name)?;
    Some(CustomerInfo {
        customer_display_name: display,
        customer_first_name: c.first_name.clone().or(base.first_name),
        customer_last_name: c.last_name.clone().or(base.last_name),
        customer_id: c.id.clone().or(base.id),
        customer_value: c.email.clone().or(base.value),
        customer_phone_number: c.phone.clone().or(base.phone_number),
        customer_company: c.attributes.get("company").cloned().or(base.company),
    })
}

/// A live stream of one service's status ([`TvoxSession::watch_service_status`]): the
/// current value first, then each change.
pub struct ServiceStatusStream {
    inner: tokio_stream::wrappers::WatchStream<Option<wire::ServiceStatus>>,
}

impl fmt::Debug for ServiceStatusStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceStatusStream")
    }
}

impl Stream for ServiceStatusStream {
    type Item = wire::ServiceStatus;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Some(s))) => return Poll::Ready(Some(s)),
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// One push of a video or phone session monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaSessionUpdate {
    /// `VIDEO` or `PHONE_CALL`.
    pub channel: MultiChannelType,
    /// The session as TVox sent it (`state` is the vendor's `CallState`).
    pub session: wire::ChannelSession,
    /// The neutral call state, from the `cc_rtc::CallMachine` the pushes drive.
    pub state: cc_core::CallState,
}

/// What a [`MediaSessionStream`] yields.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaSessionEvent {
    /// A session changed.
    Update(Box<MediaSessionUpdate>),
    /// This reader fell behind and missed `missed` updates; the next update of each
    /// session carries its whole state.
    Lagged {
        /// How many were missed.
        missed: u64,
    },
}

/// The pushes of one channel's session monitor ([`TvoxSession::media_session_monitor`]).
pub struct MediaSessionStream {
    channel: MultiChannelType,
    inner: tokio_stream::wrappers::BroadcastStream<MediaSessionUpdate>,
}

impl fmt::Debug for MediaSessionStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSessionStream")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Stream for MediaSessionStream {
    type Item = MediaSessionEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(u))) if u.channel == self.channel => {
                    return Poll::Ready(Some(MediaSessionEvent::Update(Box::new(u))));
                }
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                    return Poll::Ready(Some(MediaSessionEvent::Lagged { missed }));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// One TVox audio or video call ([`Session::start_call`]): the neutral `CallSession`.
///
/// Its id is the TVox session id. The call lives until it is hung up (by either side) or
/// its session shuts down; dropping the handle does not end it. Mute goes to the media (no more packets) and, as
/// `webrtc.mediaState`, to the agent's UI; hold is a re-offer (`a=sendonly`, resumed with
/// `a=sendrecv`); DTMF travels in the media as RFC 4733 events; hang-up is
/// `call.close` / `video.close`.
pub struct TvoxCall {
    id: Arc<str>,
    video: bool,
    cmd: CmdSender,
    timeout: Duration,
    parts: CallParts,
}

impl fmt::Debug for TvoxCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TvoxCall")
            .field("id", &self.id)
            .field("video", &self.video)
            .field("state", &*lock(&self.parts.state))
            .finish_non_exhaustive()
    }
}

impl TvoxCall {
    async fn command(&self, operation: &'static str, command: CallCommand) -> Result<()> {
        let id = self.id.clone();
        ask(&self.cmd, self.timeout, operation, |tx| {
            Cmd::CallOp(id, command, tx)
        })
        .await
        .map(|_| ())
    }

    /// Whether video was asked for (a `VIDEO` session).
    pub fn is_video(&self) -> bool {
        self.video
    }
}

#[cc_core::async_trait]
impl CallSession for TvoxCall {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> Arc<str> {
        self.id.clone()
    }

    fn state(&self) -> CallState {
        lock(&self.parts.state).clone()
    }

    fn events(&self) -> EventStream {
        self.parts.bus.subscribe()
    }

    async fn mute_audio(&self, on: bool) -> Result<()> {
        self.command("mute audio", CallCommand::MuteAudio(on)).await
    }

    async fn mute_video(&self, on: bool) -> Result<()> {
        self.command("mute video", CallCommand::MuteVideo(on)).await
    }

    async fn hold(&self, on: bool) -> Result<()> {
        self.command("hold", CallCommand::Hold(on)).await
    }

    async fn dtmf(&self, digits: &str) -> Result<()> {
        self.command("dtmf", CallCommand::Dtmf(digits.to_owned()))
            .await
    }

    async fn hangup(&self) -> Result<()> {
        if matches!(self.state(), CallState::Ended { .. }) {
            return Ok(());
        }
        self.command("hang up", CallCommand::Hangup).await
    }

    fn stats(&self) -> Result<CallStats> {
        Ok(self.parts.media.stats())
    }
}

/// Reads a `StatusQuery::queue`: `service` (on CHAT) or `CHANNEL:service`.
fn parse_queue(cfg: &TvoxConfig, queue: Option<&str>) -> Result<(MultiChannelType, String)> {
    let Some(q) = queue else {
        let service = cfg
            .default_service
            .clone()
            .or_else(|| {
                cfg.services
                    .iter()
                    .find(|c| c.channel == MultiChannelType::Chat)
                    .and_then(|c| c.services.first())
                    .map(|s| s.code.clone())
            })
            .ok_or_else(|| {
                Error::invalid(
                    V,
                    "query.queue",
                    "no service: name one or set tvox.default_service",
                )
            })?;
        return Ok((MultiChannelType::Chat, service));
    };
    match q.split_once(':') {
        Some((ch, service)) => {
            let channel = MultiChannelType::from_wire(ch);
            if matches!(channel, MultiChannelType::Unknown(_)) || service.is_empty() {
                return Err(Error::invalid(
                    V,
                    "query.queue",
                    format!("{q:?} is not `<service>` or `<CHANNEL>:<service>`"),
                ));
            }
            Ok((channel, service.to_owned()))
        }
        None if q.trim().is_empty() => Err(Error::invalid(V, "query.queue", "empty")),
        None => Ok((MultiChannelType::Chat, q.to_owned())),
    }
}

#[cc_core::async_trait]
impl Session for TvoxSession {
    fn resume_settings(&self) -> Option<Secret> {
        let token = self.resume_token()?;
        Some(Secret::new(
            serde_json::json!({ "resume_token": token.expose() }).to_string(),
        ))
    }

    fn vendor(&self) -> Vendor {
        V
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.config.capabilities()
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe()
    }

    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(Error::closed(V, "session"));
        }
        let plan = self.chat_plan(&request)?;
        let eng = ask(&self.inner.cmd, self.timeout(), "chat.create", |tx| {
            Cmd::StartChat(Box::new(plan), tx)
        })
        .await?;
        Ok(eng)
    }

    async fn start_call(&self, request: CallRequest) -> Result<Arc<dyn CallSession>> {
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(Error::closed(V, "session"));
        }
        let call = self.place_call(request).await?;
        Ok(call)
    }

    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        Ok(lock(&self.inner.chats)
            .iter()
            .filter(|e| {
                !matches!(
                    e.state(),
                    EngagementState::Ended | EngagementState::Detached
                )
            })
            .map(|e| e.clone() as Arc<dyn Engagement>)
            .collect())
    }

    async fn service_status(&self, query: StatusQuery) -> Result<ServiceStatus> {
        let (channel, service) = parse_queue(&self.inner.config, query.queue.as_deref())?;
        let s = self.wire_service_status(channel, &service).await?;
        Ok(to_service_status(&s))
    }

    async fn shutdown(&self) -> Result<()> {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self.inner.cmd.send(Box::new(Cmd::Shutdown(tx))).is_ok() {
            let _ = tokio::time::timeout(self.timeout(), rx).await;
        }
        Ok(())
    }
}

impl TvoxEngagement {
    async fn ask_value(
        &self,
        operation: &'static str,
        make: impl FnOnce(oneshot::Sender<Result<Value>>) -> Cmd,
    ) -> Result<Value> {
        ask(&self.cmd, self.timeout, operation, make).await
    }

    /// `chatChannelReceivedMessage`: tells TVox the agent's message reached the customer.
    pub async fn mark_received(&self, message: &MessageId) -> Result<()> {
        let (id, m) = (self.id.clone(), message.clone());
        self.ask_value("chat.received", |tx| {
            Cmd::Mark(id, m, Receipt::Delivered, tx)
        })
        .await
        .map(|_| ())
    }

    /// `chatChannelReadMessage`: tells TVox the customer read the agent's message.
    pub async fn mark_read(&self, message: &MessageId) -> Result<()> {
        let (id, m) = (self.id.clone(), message.clone());
        self.ask_value("chat.read", |tx| Cmd::Mark(id, m, Receipt::Read, tx))
            .await
            .map(|_| ())
    }

    /// `chatSendRecapOfSession`: e-mails the transcript to `mail` (TVox needs its MAIL
    /// channel configured for tickets, else the call is rejected with code 1008).
    pub async fn send_recap(&self, mail: &str) -> Result<()> {
        if !mail.contains('@') {
            return Err(Error::invalid(V, "mail", "not an e-mail address"));
        }
        let call = Call::ChatRecap {
            session_id: self.id.to_string(),
            mail: mail.to_owned(),
        };
        self.ask_value("chat.recap", |tx| {
            Cmd::App(Box::new(call), "chat.recap", tx)
        })
        .await
        .map(|_| ())
    }
}

#[cc_core::async_trait]
impl Engagement for TvoxEngagement {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> EngagementId {
        self.id.clone()
    }

    fn state(&self) -> EngagementState {
        lock(&self.view).state
    }

    fn participants(&self) -> Vec<Participant> {
        lock(&self.view).participants.clone()
    }

    fn events(&self) -> EventStream {
        self.bus.subscribe_engagement(self.id.clone())
    }

    fn transcript(&self) -> Vec<Message> {
        let transcript = lock(&self.view).transcript.clone();
        transcript.messages()
    }

    async fn send(&self, content: Content) -> Result<SentMessage> {
        let id = self.id.clone();
        let m = ask(&self.cmd, self.timeout, "send", |tx| {
            Cmd::Send(id, content, tx)
        })
        .await?;
        Ok(cc_chat::sent_message(&m))
    }

    async fn typing(&self, on: bool) -> Result<()> {
        let id = self.id.clone();
        ask(&self.cmd, self.timeout, "typing", |tx| {
            Cmd::Typing(id, on, tx)
        })
        .await
    }

    async fn leave(&self) -> Result<()> {
        let id = self.id.clone();
        ask(&self.cmd, self.timeout, "leave", |tx| Cmd::Leave(id, tx)).await
    }

    async fn end(&self, _reason: Option<String>) -> Result<()> {
        let id = self.id.clone();
        self.ask_value("chat.close", |tx| Cmd::Close(id, tx))
            .await
            .map(|_| ())
    }
}

/// The I/O of one engine output ([`Driver::next_io`]).
enum Io {
    /// Write this frame.
    Send(String),
    /// Media work for a call.
    Media(Arc<str>, MediaOp, Option<u64>),
}

struct Driver {
    engine: Engine,
    ws: WsHandle,
    inner: std::sync::Weak<Inner>,
    bus: EventBus,
    replies: HashMap<u64, ReplyTo>,
    ready: Option<oneshot::Sender<Result<()>>>,
    /// The media of the session's calls, by TVox session id. The call tables are B-trees:
    /// empty, they take half the room of a hash map (a chat-only session never fills them).
    calls: BTreeMap<Arc<str>, DriverCall>,
    /// Calls whose create is on its way, by the engine's token.
    starting: BTreeMap<u64, CallParts>,
}

impl Driver {
    /// The session's task. An `async` block rather than an `async fn`: the future then
    /// holds the driver once (an `async fn` keeps its moved-in arguments apart from the
    /// body's state), which every idle session pays for.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold the driver twice"
    )]
    fn run(
        mut self,
        mut events: cc_transport::WsEvents,
        mut rx: mpsc::UnboundedReceiver<Box<Cmd>>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        async move {
            loop {
                let deadline = self.engine.poll_timeout();
                let sleep = async move {
                    match deadline {
                        Some(t) => {
                            tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await
                        }
                        None => std::future::pending().await,
                    }
                };
                let go_on = tokio::select! {
                    ev = events.recv() => match ev {
                        Some(ev) => self.on_ws(ev),
                        None => false,
                    },
                    cmd = rx.recv() => match cmd.map(|c| *c) {
                        Some(Cmd::Shutdown(done)) => {
                            // Boxed, as are the other rare branches below: an idle session's
                            // task does not carry their state inline.
                            Box::pin(self.shutdown(&mut events)).await;
                            let _ = done.send(());
                            false
                        }
                        Some(cmd) => { self.on_cmd(cmd); true }
                        None => { Box::pin(self.shutdown(&mut events)).await; false }
                    },
                    () = sleep => { self.engine.on_timeout(now()); true }
                };
                self.flush().await;
                if !go_on {
                    break;
                }
            }
            // The connection gave up for good: what calls are left end here.
            for (id, c) in std::mem::take(&mut self.calls) {
                c.watcher.abort();
                let state = CallState::Ended {
                    reason: Arc::from("failed: session closed"),
                };
                *lock(&c.parts.state) = state.clone();
                let ev = Event::Call { call: id, state };
                c.parts.bus.emit(ev.clone());
                self.bus.emit(ev);
                Box::pin(c.parts.media.close()).await;
            }
            for (_, r) in self.replies.drain() {
                match r {
                    ReplyTo::Chat(tx) => {
                        let _ = tx.send(Err(Error::closed(V, "session")));
                    }
                    ReplyTo::Value(tx) => {
                        let _ = tx.send(Err(Error::closed(V, "session")));
                    }
                }
            }
        }
    }

    async fn shutdown(&mut self, events: &mut cc_transport::WsEvents) {
        // The session's calls end with it (their media cannot outlive the session): each is
        // hung up, and TVox's answers to the `call.close`s are awaited (up to a second)
        // before `widget.bye`, so the closes are read before the socket goes.
        let calls: Vec<Arc<str>> = self.calls.keys().cloned().collect();
        for call in calls {
            let token = self.engine.call_command(now(), &call, CallCommand::Hangup);
            self.replies.remove(&token);
        }
        self.flush().await;
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while self.engine.is_up() && self.engine.closing_calls() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(ev)) => {
                    if !self.on_ws(ev) {
                        break;
                    }
                    self.flush().await;
                }
                Ok(None) | Err(_) => break,
            }
        }
        if self.engine.is_up() {
            let bye = wire::codec::encode_request(wire::RpcId::Str("bye".into()), &Call::Bye {});
            let _ = self.ws.send_now(bye).await;
        }
        self.ws.close().await;
        self.bus.emit(Event::ShutDown {
            reason: Arc::from("shutdown"),
        });
    }

    fn on_ws(&mut self, ev: WsEvent) -> bool {
        match ev {
            WsEvent::Connecting { attempt: 0 } => {
                self.bus
                    .emit(Event::Connection(ConnectionState::Connecting));
            }
            WsEvent::Connecting { .. } => {}
            WsEvent::Connected { connection, .. } => self.engine.on_connected(now(), connection),
            WsEvent::Text(t) => self.engine.on_text(now(), &t),
            WsEvent::Binary(_) => self.bus.emit(Event::error(Error::protocol(
                V,
                "WebSocket frame",
                "binary frame (the protocol is JSON text)",
            ))),
            WsEvent::Disconnected { reason } => {
                tracing::debug!(%reason, "tvox: disconnected");
                self.engine.on_disconnected(now());
            }
            WsEvent::Reconnecting { attempt, delay } => {
                self.bus
                    .emit(Event::Connection(ConnectionState::Reconnecting {
                        attempt,
                        delay,
                    }));
            }
            ev @ (WsEvent::GaveUp { .. } | WsEvent::Closed) => {
                self.engine.on_disconnected(now());
                if let Some(state) = ev.connection_state() {
                    self.bus.emit(Event::Connection(state.clone()));
                    if let Some(tx) = self.ready.take() {
                        let reason = match state {
                            ConnectionState::Disconnected { reason } => reason.to_string(),
                            _ => "closed".to_owned(),
                        };
                        let _ = tx.send(Err(Error::transport(V, "connect", reason)));
                    }
                }
                return false;
            }
        }
        true
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        let n = now();
        match cmd {
            Cmd::StartChat(plan, tx) => {
                let token = self.engine.start_chat(n, *plan);
                self.replies.insert(token, ReplyTo::Chat(tx));
            }
            Cmd::Send(id, content, tx) => {
                let _ = tx.send(self.engine.send(n, &id, content));
            }
            Cmd::Typing(id, on, tx) => {
                let _ = tx.send(self.engine.typing(n, &id, on));
            }
            Cmd::Mark(id, message, receipt, tx) => {
                match self.engine.mark(n, &id, &message, receipt) {
                    Ok(token) => {
                        self.replies.insert(token, ReplyTo::Value(tx));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            }
            Cmd::Close(id, tx) => match self.engine.close_chat(n, &id) {
                Ok(token) => {
                    self.replies.insert(token, ReplyTo::Value(tx));
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            },
            Cmd::App(call, method, tx) => {
                let token = self.engine.app_call(*call, method);
                self.replies.insert(token, ReplyTo::Value(tx));
            }
            Cmd::Status(channel, service, tx) => {
                let token = self.engine.service_status(channel, service);
                self.replies.insert(token, ReplyTo::Value(tx));
            }
            Cmd::Leave(id, tx) => {
                let _ = tx.send(self.engine.leave(n, &id));
            }
            Cmd::MediaMonitor(channel, tx) => {
                let token = self.engine.media_monitor(channel);
                self.replies.insert(token, ReplyTo::Value(tx));
            }
            Cmd::MediaStop(channel, tx) => {
                let token = self.engine.media_monitor_stop(&channel);
                self.replies.insert(token, ReplyTo::Value(tx));
            }
            Cmd::StartCall(plan, parts, tx) => {
                let token = self.engine.start_call(n, *plan);
                self.starting.insert(token, parts);
                self.replies.insert(token, ReplyTo::Value(tx));
            }
            Cmd::CallOp(call, command, tx) => {
                let token = self.engine.call_command(n, &call, command);
                self.replies.insert(token, ReplyTo::Value(tx));
            }
            Cmd::MediaEvent(call, ev) => match ev {
                MediaEvent::Connected => self.engine.on_media_connected(n, &call),
                MediaEvent::Failed(reason) => self.engine.on_media_failed(n, &call, &reason),
                other => tracing::debug!(call = %call, event = ?other, "tvox: media event"),
            },
            Cmd::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    /// Writes what the engine queued and does the media work it asked for. The outputs
    /// that need no I/O are handled by [`Driver::next_io`], so this future holds a frame
    /// at most (an idle session's task stays small).
    async fn flush(&mut self) {
        let inner = self.inner.upgrade();
        while let Some(io) = self.next_io(inner.as_ref()) {
            match io {
                Io::Send(text) => {
                    if let Err(e) = self.ws.send_now(text).await {
                        // The connection is gone; its Disconnected event follows.
                        tracing::debug!(error = %e, "tvox: write failed");
                    }
                }
                Io::Media(call, op, token) => Box::pin(self.media_op(call, op, token)).await,
            }
        }
    }

    /// Handles the engine's outputs up to the next one that needs I/O; when they are all
    /// done, publishes the chats' changed views.
    fn next_io(&mut self, inner: Option<&Arc<Inner>>) -> Option<Io> {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Event(ev) => {
                    if let Event::EngagementStarted {
                        engagement,
                        resumed: true,
                    } = &ev
                        && let Some(inner) = inner
                        && !lock(&inner.chats).iter().any(|e| &e.id == engagement)
                    {
                        let _ = self.new_engagement(Some(inner), engagement.clone());
                    }
                    if let Event::Call { call, state } = &ev
                        && let Some(c) = self.calls.get(call)
                    {
                        *lock(&c.parts.state) = state.clone();
                        c.parts.bus.emit(ev.clone());
                    }
                    if matches!(ev, Event::Connection(ConnectionState::Connected)) {
                        if let Some(inner) = inner {
                            *lock(&inner.channels) = Arc::clone(self.engine.channels_enabled());
                            *lock(&inner.resume) = self.engine.resume_token().cloned();
                            *lock(&inner.ice_servers) = Arc::clone(self.engine.ice_servers());
                        }
                        if let Some(tx) = self.ready.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    self.bus.emit(ev);
                }
                Output::Reply { token, result } => {
                    if let Some(parts) = self.starting.remove(&token)
                        && let Ok(v) = &result
                        && let Some(id) = v.get("sessionId").and_then(Value::as_str)
                    {
                        let id: Arc<str> = Arc::from(id);
                        // `start_call` gave up waiting (timeout, dropped): nobody holds the
                        // call, so it is hung up rather than left running.
                        let abandoned = match self.replies.get(&token) {
                            Some(ReplyTo::Value(tx)) => tx.is_closed(),
                            _ => true,
                        };
                        self.register_call(inner, id.clone(), parts);
                        if abandoned {
                            let t = self.engine.call_command(now(), &id, CallCommand::Hangup);
                            self.replies.remove(&t);
                        }
                    }
                    self.answer(token, result, inner);
                }
                Output::Send(text) => return Some(Io::Send(text)),
                Output::CallMedia { call, op, token } => return Some(Io::Media(call, op, token)),
                Output::Ready(connection) => self.ws.ready(connection),
                Output::Media {
                    channel,
                    session,
                    state,
                } => {
                    if let Some(media) = inner.and_then(|i| i.media.get()) {
                        // Nobody listening is fine: the monitor's subscribers come and go.
                        let _ = media.send(MediaSessionUpdate {
                            channel,
                            session,
                            state,
                        });
                    }
                }
                Output::Reconnect => self.ws.reconnect(),
                Output::Status {
                    channel,
                    service,
                    status,
                } => {
                    if let Some(inner) = inner {
                        let mut map = lock(&inner.status);
                        let tx = map
                            .entry((channel, service))
                            .or_insert_with(|| watch::channel(None).0);
                        tx.send_replace(Some(status));
                    }
                }
            }
        }
        if let Some(inner) = inner {
            let dirty = self.engine.take_dirty();
            if !dirty.is_empty() {
                let chats = lock(&inner.chats);
                for id in dirty {
                    if let (Some(eng), Some(view)) = (
                        chats.iter().find(|e| e.id == id),
                        self.engine.chat_view(&id),
                    ) {
                        *lock(&eng.view) = view;
                    }
                }
            }
        }
        None
    }

    /// Answers the app call waiting for `token`.
    fn answer(&mut self, token: u64, result: Result<Value>, inner: Option<&Arc<Inner>>) {
        let reply = self.replies.remove(&token);
        if self.replies.is_empty() {
            // Nothing waits: an idle session keeps no empty table.
            self.replies = HashMap::new();
        }
        match reply {
            Some(ReplyTo::Value(tx)) => {
                let _ = tx.send(result);
            }
            Some(ReplyTo::Chat(tx)) => {
                let r = result.and_then(|v| {
                    let id = v
                        .get("sessionId")
                        .and_then(Value::as_str)
                        .map(EngagementId::from)
                        .ok_or_else(|| Error::protocol(V, "chat.create result", "no session id"))?;
                    self.new_engagement(inner, id)
                });
                let _ = tx.send(r);
            }
            None => {}
        }
    }

    /// A call TVox created: the driver now applies its signalling to its media and relays
    /// the media's events (through a weak handle, so a call never keeps the session alive).
    fn register_call(&mut self, inner: Option<&Arc<Inner>>, id: Arc<str>, parts: CallParts) {
        let Some(inner) = inner else { return };
        let mut rx = parts.media.events();
        let cmd = inner.cmd.downgrade();
        let call = id.clone();
        let watcher = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        let Some(cmd) = cmd.upgrade() else { return };
                        if cmd
                            .send(Box::new(Cmd::MediaEvent(call.clone(), ev)))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        self.calls.insert(id, DriverCall { parts, watcher });
    }

    /// Does the media work the engine asked for.
    async fn media_op(&mut self, call: Arc<str>, op: MediaOp, token: Option<u64>) {
        let inner = self.inner.upgrade();
        let Some(c) = self.calls.get(&call) else {
            if let Some(t) = token {
                self.answer(t, Err(Error::closed(V, "call")), inner.as_ref());
            }
            return;
        };
        let media = c.parts.media.clone();
        let bus = c.parts.bus.clone();
        let done = |r: Result<()>| r.map(|()| Value::Bool(true));
        match op {
            MediaOp::ApplyAnswer(sdp) => {
                let r = media.apply_answer(&sdp);
                match token {
                    Some(t) => self.answer(t, done(r), inner.as_ref()),
                    None => {
                        if let Err(e) = r {
                            self.engine.on_media_failed(
                                now(),
                                &call,
                                &format!("answer refused: {e}"),
                            );
                        }
                    }
                }
            }
            MediaOp::AcceptOffer(sdp) => {
                let r = media.accept_offer(&sdp);
                self.engine.on_local_answer(now(), &call, r);
            }
            MediaOp::AddCandidate(line) => {
                if let Err(e) = media.add_remote_candidate(&line) {
                    let ev = Event::error(e);
                    bus.emit(ev.clone());
                    self.bus.emit(ev);
                }
            }
            MediaOp::SetAudioMuted(on) => {
                media.set_audio_muted(on);
                if let Some(t) = token {
                    self.answer(t, Ok(Value::Bool(true)), inner.as_ref());
                }
            }
            MediaOp::SetVideoMuted(on) => {
                media.set_video_muted(on);
                if let Some(t) = token {
                    self.answer(t, Ok(Value::Bool(true)), inner.as_ref());
                }
            }
            MediaOp::HoldOffer(on) => {
                let r = media.hold_offer(on);
                self.engine.on_local_offer(now(), &call, r, token);
            }
            MediaOp::Dtmf(digits) => {
                let r = media.send_dtmf(&digits);
                if let Some(t) = token {
                    self.answer(t, done(r), inner.as_ref());
                }
            }
            MediaOp::Close => {
                if let Some(c) = self.calls.remove(&call) {
                    c.watcher.abort();
                    c.parts.media.close().await;
                }
            }
        }
    }

    fn new_engagement(
        &self,
        inner: Option<&Arc<Inner>>,
        id: EngagementId,
    ) -> Result<Arc<TvoxEngagement>> {
        let inner = inner.ok_or_else(|| Error::closed(V, "session"))?;
        let view = self.engine.chat_view(&id).unwrap_or(ChatView {
            state: EngagementState::Starting,
            participants: vec![Participant::new(Role::Customer)],
            transcript: SharedTranscript::default(),
        });
        let eng = Arc::new(TvoxEngagement {
            id,
            cmd: inner.cmd.clone(),
            bus: inner.bus.clone(),
            timeout: Duration::from_millis(inner.config.request_timeout_ms),
            view: Mutex::new(view),
        });
        lock(&inner.chats).push(eng.clone());
        Ok(eng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_a_service_and_optionally_a_channel() {
        let cfg = TvoxConfig::new("x").with_service(MultiChannelType::Chat, "s1");
        assert_eq!(
            parse_queue(&cfg, None).unwrap(),
            (MultiChannelType::Chat, "s1".to_owned())
        );
        assert_eq!(
            parse_queue(&cfg, Some("VIDEO:s2")).unwrap(),
            (MultiChannelType::Video, "s2".to_owned())
        );
        assert!(parse_queue(&cfg, Some("FAX:s2")).is_err());
        assert!(parse_queue(&TvoxConfig::new("x"), None).is_err());
    }

    #[test]
    fn customer_from_request_over_config_and_anonymous_without_a_name() {
        let mut cfg = TvoxConfig::new("x");
        assert_eq!(customer_info(&cfg, &Customer::default()), None);
        cfg.customer = Some(crate::config::CustomerConfig {
            display_name: Some("Config Name".into()),
            company: Some("ACME".into()),
            ..Default::default()
        });
        let c = Customer {
            first_name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            ..Customer::default()
        };
        let info = customer_info(&cfg, &c).unwrap();
        assert_eq!(info.customer_display_name, "Ada");
        assert_eq!(info.customer_value.as_deref(), Some("ada@example.com"));
        assert_eq!(info.customer_company.as_deref(), Some("ACME"));
        let info = customer_info(&cfg, &Customer::default()).unwrap();
        assert_eq!(info.customer_display_name, "Config Name");
    }
}
