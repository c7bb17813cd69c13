//! The client: [`TetherfiSession`] and [`TetherfiEngagement`] on top of the [`Engine`], the
//! DWR link (`dwr.rs`) or the chat-proxy link (`ws.rs`), and `cc-transport`.
//!
//! One lock guards the engine, the push index and the waiters; events are emitted under it,
//! so they leave in the order the server's pushes were applied. The lock is never held
//! across an `await`. A pump task hands the outbox's messages to the link one at a time, in
//! order; the link's own task (the DWR poll loop, the WebSocket event loop) feeds pushes in.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cc_chat::{OutboxConfig, sent_message};
use cc_core::{
    Availability, BotTurn, CallRequest, CallSession, Capabilities, ChatRequest, ConnectionState,
    Content, Customer, Engagement, EngagementId, EngagementState, Error, Event, EventBus,
    EventStream, Message, Notice, Participant, Result, Role, Secret, SentMessage, ServiceStatus,
    Session, StatusQuery, TlsSettings, Upload, Vendor,
};
use cc_transport::{HttpClient, HttpConfig, Method, Multipart, TlsConfig};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use url::Url;

use crate::call::{CallHub, TetherfiCall};
use crate::config::{TetherfiConfig, Transport};
use crate::dwr::DwrLink;
use crate::engine::{Clock, Engine, EngineConfig, Output, SendOp};
use crate::wire::av::AvSignal;
use crate::wire::{Call, Push, SessionDetails};
use crate::ws::WsLink;

const V: Vendor = Vendor::Tetherfi;

/// The customer details of a `Start`: an object of strings, or a string the app's backend
/// already encrypted (`eCustDetails`).
#[derive(Clone, PartialEq, Eq)]
pub enum CustomerDetails {
    /// The details object (§2.2 `CustomerDetails`; deployments add their own keys).
    Map(BTreeMap<String, String>),
    /// An already encrypted details string.
    Encrypted(Secret),
}

impl fmt::Debug for CustomerDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerDetails::Map(m) => f.debug_tuple("Map").field(&m.keys()).finish(),
            CustomerDetails::Encrypted(_) => f.write_str("Encrypted([REDACTED])"),
        }
    }
}

impl CustomerDetails {
    /// The details object for a customer (§2.2 names): `eCustName`, `eEmail`, `eMobileNo`,
    /// `eCin` (the app's id), `pLang`, plus the customer's attributes as given.
    pub fn from_customer(c: &Customer) -> CustomerDetails {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("eCustName", c.display_name());
        put("eEmail", c.email.clone());
        put("eMobileNo", c.phone.clone());
        put("eCin", c.id.clone());
        put("pLang", c.preferences.language.clone());
        for (k, v) in &c.attributes {
            m.insert(k.clone(), v.clone());
        }
        CustomerDetails::Map(m)
    }
}

/// Everything `Start` takes (the extension form of [`Session::start_chat`]).
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The customer details.
    pub details: CustomerDetails,
    /// The virtual-assistant conversation to hand over (sent as the `VaSession` JSON array).
    pub bot_history: Vec<BotTurn>,
    /// The virtual-assistant chat id (`vachatid` = `pKaiSid`).
    pub va_chat_id: Option<String>,
    /// The captcha text the user entered (`eEnteredCaptcha`).
    pub captcha: Option<String>,
    /// A first message sent once the chat starts.
    pub first_message: Option<String>,
}

impl StartOptions {
    /// The options for a [`ChatRequest`]: the customer's details (or the configured encrypted
    /// ones), `subject` as `pTopic`, routing target as `pChannel`, context entries as extra
    /// details, except `captcha` (→ `eEnteredCaptcha`) and `pKaiSid` (→ `vachatid`).
    pub fn from_request(request: &ChatRequest, encrypted: Option<&Secret>) -> StartOptions {
        let mut ctx = request.context.clone();
        let captcha = ctx.remove("captcha");
        let va_chat_id = ctx.get("pKaiSid").cloned();
        let details = match encrypted {
            Some(s) => CustomerDetails::Encrypted(s.clone()),
            None => {
                let CustomerDetails::Map(mut m) = CustomerDetails::from_customer(&request.customer)
                else {
                    unreachable!("from_customer gives a map")
                };
                if let Some(s) = &request.subject {
                    m.insert("pTopic".into(), s.clone());
                }
                if let Some(t) = &request.routing.target {
                    m.insert("pChannel".into(), t.clone());
                }
                m.extend(ctx);
                CustomerDetails::Map(m)
            }
        };
        StartOptions {
            details,
            bot_history: request.bot_history.clone(),
            va_chat_id,
            captcha,
            first_message: request.first_message.clone(),
        }
    }
}

/// The answer of the status endpoint (§3.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveChatStatus {
    /// `ONLINE`.
    Online,
    /// `OFFLINE (<message>)`: technically unable to take chats.
    Offline(String),
    /// A 4xx/5xx answer: the web app is down or unreachable through proxies.
    Unavailable(u16),
}

impl LiveChatStatus {
    /// Parses the endpoint's body.
    pub fn parse(body: &str) -> LiveChatStatus {
        let b = body.trim();
        if b.eq_ignore_ascii_case("ONLINE") {
            return LiveChatStatus::Online;
        }
        let msg = b
            .strip_prefix("OFFLINE")
            .map(|r| {
                r.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .trim()
            })
            .unwrap_or(b);
        LiveChatStatus::Offline(msg.to_owned())
    }

    /// As a [`ServiceStatus`].
    pub fn to_service_status(&self) -> ServiceStatus {
        ServiceStatus {
            availability: match self {
                LiveChatStatus::Online => Availability::Open,
                LiveChatStatus::Offline(_) | LiveChatStatus::Unavailable(_) => {
                    Availability::OutOfService
                }
            },
            ..ServiceStatus::UNKNOWN
        }
    }
}

/// The link to the server: one of the two transports.
pub(crate) enum Link {
    Dwr(Arc<DwrLink>),
    Ws(WsLink),
}

#[derive(Default)]
struct Waiters {
    /// Pending `Start`s, oldest first, by `clientId` (multichat).
    start: Vec<(Option<String>, oneshot::Sender<Result<EngagementId>>)>,
    open: Vec<oneshot::Sender<Result<Vec<EngagementId>>>>,
    token: Vec<oneshot::Sender<String>>,
    campaign: Vec<oneshot::Sender<Value>>,
}

pub(crate) struct State {
    pub(crate) engine: Engine,
    /// DWR: the next reverse-AJAX index expected.
    pub(crate) next_index: u64,
    waiters: Waiters,
    /// The chat proxy's browser-session token.
    pub(crate) ws_token: Option<String>,
    /// Background calls (acks) not made yet, oldest first.
    background: VecDeque<Call>,
    /// Whether the background task runs (started with the first background call).
    background_started: bool,
}

pub(crate) struct Inner {
    pub(crate) cfg: TetherfiConfig,
    caps: Capabilities,
    pub(crate) bus: EventBus,
    state: Mutex<State>,
    pub(crate) link: std::sync::OnceLock<Link>,
    /// The REST client (DWR calls, uploads, the status endpoint), made on first use.
    http: std::sync::OnceLock<HttpClient>,
    tls: TlsConfig,
    /// Wakes the pump.
    pub(crate) wake: Notify,
    /// Whether the pump runs (started with the app's first message).
    pump_started: AtomicBool,
    pub(crate) closed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    customer: Participant,
    /// Wakes the background task when a call is queued.
    background_wake: Notify,
    /// This client's page id (DWR `scriptSessionId` suffix, chat-proxy `open.page`).
    pub(crate) page_id: String,
    /// The audio/video calls, by chat.
    pub(crate) calls: CallHub,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The REST client, made on first use (a chat-proxy session may never need it).
    pub(crate) fn http(&self) -> Result<&HttpClient> {
        if let Some(h) = self.http.get() {
            return Ok(h);
        }
        let h = HttpClient::new(
            HttpConfig::new(V, self.cfg.base()?)
                .with_tls(self.tls.clone())
                .with_timeout(self.cfg.request_timeout()),
        )?;
        Ok(self.http.get_or_init(|| h))
    }

    fn link(&self) -> Result<&Link> {
        self.link.get().ok_or_else(|| Error::closed(V, "session"))
    }

    pub(crate) fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(fut);
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    /// Applies engine outputs (under the state lock, so events keep their order).
    pub(crate) fn apply(self: &Arc<Self>, st: &mut State, outs: Vec<Output>) {
        let mut wake = false;
        for o in outs {
            match o {
                Output::Event(e) => {
                    wake |= matches!(e, Event::Connection(ConnectionState::Connected));
                    if let Event::EngagementEnded {
                        engagement,
                        initiator,
                        ..
                    } = &e
                    {
                        self.calls.route(
                            engagement,
                            crate::call::Inbound::ChatEnded {
                                by_customer: *initiator == cc_core::Initiator::Customer,
                            },
                        );
                    }
                    self.bus.emit(e);
                }
                Output::Call(call) => {
                    // One at a time, in order (acks), on the background task.
                    st.background.push_back(call);
                    if st.background_started {
                        self.background_wake.notify_one();
                    } else {
                        st.background_started = true;
                        self.spawn(self.clone().background());
                    }
                }
                Output::Started { client_id, result } => {
                    wake = true;
                    // By clientId; else (a single chat, or the doc's `Sid` on
                    // OnStartFailed, which no pending Start knows) the oldest pending one.
                    let w = &mut st.waiters.start;
                    let at = w
                        .iter()
                        .position(|(c, _)| c.is_some() && *c == client_id)
                        .or_else(|| (!w.is_empty()).then_some(0));
                    if let Some(i) = at {
                        let (_, tx) = w.remove(i);
                        let _ = tx.send(result);
                    }
                    if w.is_empty() {
                        // An idle session keeps no room for waiters.
                        *w = Vec::new();
                    }
                }
                Output::Opened(result) => {
                    if let (Ok(_), Some(Link::Ws(_))) = (&result, self.link.get()) {
                        wake = true;
                    }
                    if let Err(e) = &result {
                        self.bus.emit(Event::Vendor {
                            vendor: V,
                            name: Arc::from("OnOpenFailed"),
                            payload: Arc::new(json!({"code": e.vendor_code()})),
                        });
                    }
                    for tx in std::mem::take(&mut st.waiters.open) {
                        let _ = tx.send(match &result {
                            Ok(ids) => Ok(ids.clone()),
                            Err(e) => Err(crate::error::open_failed(
                                e.vendor_code().unwrap_or("OpenFailed"),
                            )),
                        });
                    }
                }
                Output::AccessToken(t) => {
                    for tx in std::mem::take(&mut st.waiters.token) {
                        let _ = tx.send(t.clone());
                    }
                }
                Output::CampaignContact(v) => {
                    for tx in std::mem::take(&mut st.waiters.campaign) {
                        let _ = tx.send(v.clone());
                    }
                }
                Output::AvSignal {
                    engagement,
                    agent,
                    message,
                } => match AvSignal::decode(&message) {
                    Ok(Some(sig)) if self.calls.has(&engagement) => {
                        self.calls
                            .route(&engagement, crate::call::Inbound::Signal(sig));
                    }
                    Ok(other) => {
                        if let Some(AvSignal::Configs(c)) = other {
                            // Pushed before any call (at agent connect): kept for the next.
                            self.calls.keep_configs(&engagement, c);
                        }
                        self.bus.emit(Event::Vendor {
                            vendor: V,
                            name: Arc::from("OnAppMessageReceived"),
                            payload: Arc::new(json!({
                                "sid": engagement,
                                "agent": agent,
                                "message": crate::wire::av::redact(message),
                            })),
                        });
                    }
                    Err(reason) => self.bus.emit(Event::error(Error::protocol(
                        V,
                        "audio/video app message",
                        reason,
                    ))),
                },
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Decodes-and-applies pushes (an error per malformed one; the rest go on).
    pub(crate) fn on_pushes(self: &Arc<Self>, st: &mut State, pushes: Vec<Result<Push, String>>) {
        let clk = Clock::system();
        for p in pushes {
            match p {
                Ok(push) => {
                    let outs = st.engine.handle_push(clk, push);
                    self.apply(st, outs);
                }
                Err(reason) => {
                    let frame = match self.link.get() {
                        Some(Link::Ws(_)) => "chat-proxy frame",
                        _ => "reverse-AJAX push",
                    };
                    self.bus
                        .emit(Event::error(Error::protocol(V, frame, reason)));
                }
            }
        }
    }

    /// Makes a call; the DWR callback's value (`null` over the chat proxy).
    pub(crate) async fn call(self: &Arc<Self>, call: &Call) -> Result<Value> {
        match self.link()? {
            Link::Dwr(d) => {
                // Boxed: an HTTP request's future is large, and every task that may make a
                // call (idle most of the time) would otherwise be sized for it.
                let (value, pushes) = Box::pin(d.call(call)).await?;
                if !pushes.is_empty() {
                    let mut st = self.lock();
                    let decoded = DwrLink::filter_pushes(&mut st.next_index, pushes);
                    self.on_pushes(&mut st, decoded);
                }
                Ok(value)
            }
            Link::Ws(w) => {
                w.send(call).await?;
                Ok(Value::Null)
            }
        }
    }

    pub(crate) fn set_online(self: &Arc<Self>, online: bool, attempt: u32, delay: Duration) {
        let mut st = self.lock();
        let outs = st.engine.set_online(online, attempt, delay);
        self.apply(&mut st, outs);
    }

    pub(crate) fn session_lost(self: &Arc<Self>) {
        let mut st = self.lock();
        let outs = st.engine.session_lost();
        self.apply(&mut st, outs);
    }

    /// Waits for the answer to an `Open` sent with `send`.
    pub(crate) async fn open(self: &Arc<Self>) -> Result<Vec<EngagementId>> {
        let (tx, rx) = oneshot::channel();
        self.lock().waiters.open.push(tx);
        let token = self.lock().ws_token.clone();
        self.call(&Call::Open {
            cookie_enabled: true,
            token,
            page: Some(self.page_id.clone()),
        })
        .await?;
        self.wait(rx, "Open").await?
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<T>, what: &'static str) -> Result<T> {
        let after = self.cfg.request_timeout();
        match tokio::time::timeout(after, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Error::closed(V, "session")),
            Err(_) => Err(Error::Timeout {
                vendor: V,
                operation: what,
                after,
            }),
        }
    }

    /// `uploadFiles`: a multipart POST to the upload servlet for chat `engagement`.
    async fn upload(&self, engagement: &EngagementId, file: Upload) -> Result<Value> {
        let url = self.cfg.dwr_url("/upload")?;
        let mut req = self.http()?.request(Method::POST, url.as_str()).multipart(
            Multipart::new().text("sid", engagement.as_str()).file(
                "file",
                file.name.clone(),
                &file.mime_type,
                file.bytes.to_vec(),
            ),
        );
        if let Some(Link::Dwr(d)) = self.link.get()
            && let Some(c) = d.cookie_header()
        {
            req = req.header("cookie", &c);
        }
        req.send_json().await
    }

    /// The transport gave up: pending messages fail.
    pub(crate) fn give_up(self: &Arc<Self>, reason: &str) {
        let mut st = self.lock();
        let outs = st.engine.give_up(reason);
        self.apply(&mut st, outs);
    }

    /// The background task: makes the queued background calls one at a time, in order.
    async fn background(self: Arc<Self>) {
        loop {
            let next = self.lock().background.pop_front();
            match next {
                Some(call) => {
                    if let Err(e) = self.call(&call).await {
                        tracing::debug!(vendor = %V, error = %e, "background call failed");
                    }
                }
                // Started after the session closed (its tasks were stopped already).
                None if self.closed.load(Ordering::SeqCst) => return,
                None => self.background_wake.notified().await,
            }
        }
    }

    /// Wakes the pump, starting it with the first message: until then no outbox has
    /// anything to send.
    fn wake_pump(self: &Arc<Self>) {
        if self.pump_started.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
        } else {
            self.spawn(self.clone().pump());
        }
    }

    /// The pump: hands the outboxes' messages to the link, one at a time, in order.
    async fn pump(self: Arc<Self>) {
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let (sends, wake_at) = {
                let mut st = self.lock();
                let (sends, outs, wake) = st.engine.poll_sends(Clock::system());
                self.apply(&mut st, outs);
                (sends, wake)
            };
            for s in sends {
                let (result, acked) = match &s.op {
                    SendOp::Call(call) => (
                        self.call(call).await,
                        matches!(self.link.get(), Some(Link::Dwr(_))),
                    ),
                    SendOp::Upload(file) => (
                        Box::pin(self.upload(&s.engagement, file.clone()))
                            .await
                            .map(|_| Value::Null),
                        true,
                    ),
                };
                let mut st = self.lock();
                let clk = Clock::system();
                let outs = match (result, acked) {
                    (Ok(v), true) => {
                        let mid = match v {
                            Value::String(s) => Some(s),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        };
                        st.engine.on_send_ok(&s.engagement, s.client_id, mid, clk)
                    }
                    (Ok(_), false) => {
                        st.engine.on_written(&s.engagement, s.client_id, clk);
                        Vec::new()
                    }
                    (Err(e), _) => st.engine.on_send_error(&s.engagement, s.client_id, e, clk),
                };
                self.apply(&mut st, outs);
            }
            let wait = wake_at.map(|t| t.saturating_duration_since(std::time::Instant::now()));
            match wait {
                Some(d) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(d) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

/// A Tetherfi session: one browser session (cookies, or the chat proxy's token) with its
/// chat(s). Cheap to clone.
#[derive(Clone)]
pub struct TetherfiSession {
    inner: Arc<Inner>,
    guard: Arc<Guard>,
}

/// Held by every session and engagement handle: when the last one goes, the session's tasks
/// stop (a session dropped without `shutdown` does not poll on forever).
pub(crate) struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.calls.stop_all("session dropped");
        for h in self
            .0
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }
}

impl fmt::Debug for TetherfiSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TetherfiSession")
            .field("transport", &self.inner.cfg.transport)
            .field("multichat", &self.inner.cfg.multichat)
            .finish_non_exhaustive()
    }
}

impl TetherfiSession {
    /// Connects: bootstraps the transport, re-attaches the browser session's chats (`Open`),
    /// and starts polling (DWR) or listening (chat proxy).
    pub async fn connect(cfg: TetherfiConfig, tls: &TlsSettings) -> Result<TetherfiSession> {
        cfg.validate()?;
        let tls = TlsConfig::from_settings(V, tls)?;
        let customer = Participant::new(Role::Customer);
        let outbox = OutboxConfig {
            max_attempts: 10,
            retry_backoff: cfg.poll_retry(),
            ack_timeout: (cfg.transport == Transport::Ws).then_some(cfg.request_timeout()),
            ..OutboxConfig::default()
        };
        let engine = Engine::new(EngineConfig {
            sid_on_calls: cfg.multichat || cfg.transport == Transport::Ws,
            customer: customer.clone(),
            outbox,
        });
        let ws_token = match cfg.transport {
            Transport::Ws => cfg.resume_token.as_ref().map(|t| t.expose().to_owned()),
            Transport::Dwr => None,
        };
        let inner = Arc::new(Inner {
            page_id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
            calls: CallHub::default(),
            background_wake: Notify::new(),
            caps: crate::capabilities_for(&cfg),
            bus: EventBus::default(),
            state: Mutex::new(State {
                engine,
                next_index: 0,
                waiters: Waiters::default(),
                ws_token,
                background: VecDeque::new(),
                background_started: false,
            }),
            link: std::sync::OnceLock::new(),
            http: std::sync::OnceLock::new(),
            tls: tls.clone(),
            wake: Notify::new(),
            pump_started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            customer,
            cfg,
        });
        inner
            .bus
            .emit(Event::Connection(ConnectionState::Connecting));
        // Made first, so that a failed connect stops the tasks it started.
        let guard = Arc::new(Guard(inner.clone()));
        match inner.cfg.transport {
            Transport::Dwr => crate::dwr::start(&inner).await?,
            Transport::Ws => crate::ws::start(&inner, tls).await?,
        }
        Ok(TetherfiSession { inner, guard })
    }

    /// The browser-session state to resume with after an app restart (set it as
    /// `resume_token` in the next configuration): the cookies for DWR, the session token for
    /// the chat proxy.
    pub fn resume_token(&self) -> Option<Secret> {
        match self.inner.link.get()? {
            Link::Dwr(d) => d.cookie_header().map(Secret::new),
            Link::Ws(_) => self.inner.lock().ws_token.clone().map(Secret::new),
        }
    }

    fn handle(&self, id: EngagementId) -> TetherfiEngagement {
        TetherfiEngagement {
            inner: self.inner.clone(),
            _guard: self.guard.clone(),
            id,
        }
    }

    /// The handle of a known chat.
    pub fn engagement(&self, id: &EngagementId) -> Option<TetherfiEngagement> {
        self.inner.lock().engine.chat(id)?;
        Some(self.handle(id.clone()))
    }

    /// Starts a chat with every `Start` option (customer details object or encrypted string,
    /// bot history, captcha).
    pub async fn start_chat_with(&self, options: StartOptions) -> Result<TetherfiEngagement> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err(Error::closed(V, "session"));
        }
        let mut details = match &options.details {
            CustomerDetails::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<Map<String, Value>>(),
            ),
            CustomerDetails::Encrypted(s) => Value::String(s.expose().to_owned()),
        };
        if inner.cfg.use_access_token {
            let token = self.access_token().await?;
            if let Value::Object(m) = &mut details {
                m.insert("pAccessToken".into(), json!(token.expose()));
            }
        }
        let now = time_of_day();
        let sd = SessionDetails {
            cust_details: details,
            lib: inner.cfg.lib.clone(),
            comm_path: inner.cfg.comm_path.clone(),
            vachatid: options.va_chat_id.clone(),
            enable_autocb: inner.cfg.enable_autocb,
            client_time: now,
            entered_captcha: options.captcha.clone(),
        };
        let details = serde_json::to_string(&sd)
            .map_err(|e| Error::invalid(V, "customer details", e.to_string()))?;
        let va_session = va_session(&options.bot_history);
        let client_id = inner
            .cfg
            .multichat
            .then(|| uuid::Uuid::new_v4().simple().to_string());
        let (tx, rx) = oneshot::channel();
        inner.lock().waiters.start.push((client_id.clone(), tx));
        let sent = inner
            .call(&Call::Start {
                details,
                va_session,
                client_id: client_id.clone(),
            })
            .await;
        if let Err(e) = sent {
            inner
                .lock()
                .waiters
                .start
                .retain(|(c, tx)| *c != client_id && !tx.is_closed());
            return Err(e);
        }
        let id = match inner.wait(rx, "Start").await {
            Ok(r) => r?,
            Err(e) => {
                inner
                    .lock()
                    .waiters
                    .start
                    .retain(|(c, tx)| *c != client_id && !tx.is_closed());
                return Err(e);
            }
        };
        let eng = self.handle(id);
        if let Some(first) = options.first_message {
            eng.send(Content::Text(first)).await?;
        }
        Ok(eng)
    }

    /// `Open`: re-attaches the browser session's chats (after `leave`, or to pick up a chat
    /// another page started); the chats attached.
    pub async fn reopen(&self) -> Result<Vec<TetherfiEngagement>> {
        let ids = self.inner.open().await?;
        Ok(ids.into_iter().map(|id| self.handle(id)).collect())
    }

    /// `StartAvCall`: an audio or video call on the newest chat with an agent connected
    /// (or the chat `request.context["engagement"]` names); see [`crate::call`].
    pub async fn start_av_call(&self, request: CallRequest) -> Result<TetherfiCall> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::closed(V, "session"));
        }
        crate::call::start(self.inner.clone(), self.guard.clone(), request).await
    }

    /// `GetAccessToken`: the per-session anti-XSRF token (`pAccessToken`).
    pub async fn access_token(&self) -> Result<Secret> {
        let inner = &self.inner;
        match inner.link()? {
            Link::Dwr(_) => match inner.call(&Call::GetAccessToken).await? {
                Value::String(s) => Ok(Secret::new(s)),
                other => Err(Error::protocol(
                    V,
                    "GetAccessToken callback",
                    format!("expected a string, got {other}"),
                )),
            },
            Link::Ws(_) => {
                let (tx, rx) = oneshot::channel();
                inner.lock().waiters.token.push(tx);
                inner.call(&Call::GetAccessToken).await?;
                inner.wait(rx, "GetAccessToken").await.map(Secret::new)
            }
        }
    }

    /// `CreateCampaignContact(data)`: the `{resultCode, resultMessage}` of
    /// `OnCampaignContactCreated`.
    pub async fn create_campaign_contact(&self, data: Value) -> Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.inner.lock().waiters.campaign.push(tx);
        self.inner
            .call(&Call::CreateCampaignContact {
                data: data.to_string(),
            })
            .await?;
        self.inner.wait(rx, "CreateCampaignContact").await
    }

    /// `slog(type, unit, msg)`: a log line on the server; `level` is `info`, `warn` or `error`.
    pub async fn slog(&self, level: &str, unit: &str, msg: &str) -> Result<()> {
        if !matches!(level, "info" | "warn" | "error") {
            return Err(Error::invalid(
                V,
                "level",
                format!("`{level}`: expected info, warn or error"),
            ));
        }
        self.inner
            .call(&Call::Log {
                level: level.to_owned(),
                unit: unit.to_owned(),
                msg: msg.to_owned(),
            })
            .await
            .map(drop)
    }

    /// The status endpoint's answer (`GET <host>/tetherfi/livechat/status`).
    pub async fn live_chat_status(&self) -> Result<LiveChatStatus> {
        let url = self.inner.cfg.dwr_url("/status")?;
        match self
            .inner
            .http()?
            .request(Method::GET, url.as_str())
            .header("accept", "text/plain")
            .send()
            .await
        {
            Ok(r) => Ok(LiveChatStatus::parse(&String::from_utf8_lossy(&r.body))),
            Err(Error::Rejected { code, .. }) if code.parse::<u16>().is_ok() => {
                Ok(LiveChatStatus::Unavailable(code.parse().unwrap_or(0)))
            }
            Err(e) => Err(e),
        }
    }

    /// The captcha image URL (`reset=true` asks for a new one).
    pub fn captcha_url(&self, reset: bool) -> Result<Url> {
        let mut u = self.inner.cfg.dwr_url("/CaptchaImageServlet")?;
        u.query_pairs_mut()
            .append_pair("reset", if reset { "true" } else { "false" });
        Ok(u)
    }

    /// The download URL of a file the agent shared (`prepareDownloadURL`).
    pub fn download_url(&self, file_name: &str) -> Result<Url> {
        let mut u = self.inner.cfg.dwr_url("/download")?;
        u.query_pairs_mut().append_pair("file", file_name);
        Ok(u)
    }

    /// Uploads a file (`uploadFiles`): the server's `{fileName, fileSize, fileType}`; the server
    /// also pushes `OnUploadComplete` (an `Event::Vendor`).
    pub async fn upload_file(&self, engagement: &EngagementId, file: Upload) -> Result<Value> {
        self.inner.upload(engagement, file).await
    }
}

fn time_of_day() -> String {
    let ms = cc_core::Timestamp::now().unix_ms().rem_euclid(86_400_000);
    format!(
        "{}:{}:{}:{}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The `VaSession` JSON array text for a bot conversation (PROPOSED record shape
/// `{by: "bot"|"customer", msg, time}`).
pub fn va_session(turns: &[BotTurn]) -> String {
    let v: Vec<Value> = turns
        .iter()
        .map(|t| {
            json!({
                "by": match t.role { Role::Customer => "customer", Role::Agent => "agent", _ => "bot" },
                "msg": t.text,
                "time": t.time.unix_ms(),
            })
        })
        .collect();
    Value::Array(v).to_string()
}

#[cc_core::async_trait]
impl Session for TetherfiSession {
    fn resume_settings(&self) -> Option<Secret> {
        let token = self.resume_token()?;
        Some(Secret::new(
            json!({ "resume_token": token.expose() }).to_string(),
        ))
    }

    fn vendor(&self) -> Vendor {
        V
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.caps
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe()
    }

    async fn start_chat(&self, request: ChatRequest) -> Result<Arc<dyn Engagement>> {
        let opts = StartOptions::from_request(
            &request,
            self.inner.cfg.encrypted_customer_details.as_ref(),
        );
        Ok(Arc::new(self.start_chat_with(opts).await?))
    }

    async fn engagements(&self) -> Result<Vec<Arc<dyn Engagement>>> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::closed(V, "session"));
        }
        let detached = self
            .inner
            .lock()
            .engine
            .chats()
            .iter()
            .any(|c| c.state == EngagementState::Detached);
        if detached {
            // The floating-chat flow: Open re-attaches what this page closed.
            self.inner.open().await?;
        }
        let st = self.inner.lock();
        Ok(st
            .engine
            .chats()
            .iter()
            .filter(|c| c.state != EngagementState::Ended)
            .map(|c| Arc::new(self.handle(c.id.clone())) as Arc<dyn Engagement>)
            .collect())
    }

    async fn service_status(&self, _query: StatusQuery) -> Result<ServiceStatus> {
        Ok(self.live_chat_status().await?.to_service_status())
    }

    async fn start_call(&self, request: CallRequest) -> Result<Arc<dyn CallSession>> {
        Ok(Arc::new(self.start_av_call(request).await?))
    }

    async fn shutdown(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        inner.calls.stop_all("session shut down");
        let open = inner
            .lock()
            .engine
            .chats()
            .iter()
            .any(|c| !matches!(c.state, EngagementState::Ended | EngagementState::Detached));
        // Detach, never end: a later session resumes the chat.
        if open {
            let _ = inner.call(&Call::Close).await;
        }
        if let Ok(Link::Dwr(_)) = inner.link() {
            let _ = inner.call(&Call::PageUnloaded).await;
        }
        if let Ok(Link::Ws(w)) = inner.link() {
            w.close().await;
        }
        for h in inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
        inner
            .bus
            .emit(Event::Connection(ConnectionState::Disconnected {
                reason: Arc::from("shut down"),
            }));
        inner.bus.emit(Event::ShutDown {
            reason: Arc::from("shut down by the app"),
        });
        Ok(())
    }
}

/// One Tetherfi chat. Cheap to clone.
#[derive(Clone)]
pub struct TetherfiEngagement {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
    id: EngagementId,
}

impl fmt::Debug for TetherfiEngagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TetherfiEngagement")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TetherfiEngagement {
    /// The chat service's id (`tchatid`).
    pub fn tchat_id(&self) -> Option<String> {
        let st = self.inner.lock();
        st.engine
            .chat(&self.id)
            .map(|c| c.tchatid.clone())
            .filter(|t| !t.is_empty())
    }

    /// `SendAppMessage(type, obj)`: an application object for TMAC (the same as sending
    /// `Content::Notice`).
    pub async fn send_app_message(&self, kind: &str, payload: Value) -> Result<SentMessage> {
        if kind.is_empty() {
            return Err(Error::invalid(V, "kind", "empty app-message type"));
        }
        self.send(Content::Notice(Notice {
            kind: kind.to_owned(),
            payload,
        }))
        .await
    }

    /// `RequestCallback(contact)`: the result comes as `Event::Vendor` `OnCallbackRequestStatus`.
    pub async fn request_callback(&self, contact: &str) -> Result<()> {
        let contact = contact.trim();
        if contact.is_empty()
            || !contact
                .chars()
                .all(|c| c.is_ascii_digit() || "+-() ".contains(c))
        {
            return Err(Error::invalid(V, "contact", "expected a phone number"));
        }
        let sid = self.inner.lock().engine.call_sid(&self.id);
        self.inner
            .call(&Call::RequestCallback {
                contact: contact.to_owned(),
                sid,
            })
            .await
            .map(drop)
    }

    fn chat_state(&self) -> Result<EngagementState> {
        self.inner
            .lock()
            .engine
            .chat(&self.id)
            .map(|c| c.state)
            .ok_or_else(|| Error::closed(V, "engagement"))
    }
}

#[cc_core::async_trait]
impl Engagement for TetherfiEngagement {
    fn vendor(&self) -> Vendor {
        V
    }

    fn id(&self) -> EngagementId {
        self.id.clone()
    }

    fn state(&self) -> EngagementState {
        self.chat_state().unwrap_or(EngagementState::Ended)
    }

    fn participants(&self) -> Vec<Participant> {
        let st = self.inner.lock();
        st.engine
            .chat(&self.id)
            .map(|c| c.participants(&self.inner.customer))
            .unwrap_or_default()
    }

    fn events(&self) -> EventStream {
        self.inner.bus.subscribe_engagement(self.id.clone())
    }

    fn transcript(&self) -> Vec<Message> {
        let st = self.inner.lock();
        st.engine
            .chat(&self.id)
            .map(|c| c.transcript.visible())
            .unwrap_or_default()
    }

    async fn send(&self, content: Content) -> Result<SentMessage> {
        if let Content::Notice(n) = &content
            && self.inner.cfg.transport == Transport::Ws
            && crate::wire::ws::RESERVED_TYPES.contains(&n.kind.as_str())
        {
            return Err(Error::invalid(
                V,
                "content.kind",
                format!("`{}` is a chat-proxy frame type", n.kind),
            ));
        }
        let m = {
            let mut st = self.inner.lock();
            st.engine.push_message(&self.id, content, Clock::system())?
        };
        self.inner.wake_pump();
        Ok(sent_message(&m))
    }

    async fn upload(&self, file: Upload) -> Result<SentMessage> {
        let m = {
            let mut st = self.inner.lock();
            st.engine.push_upload(&self.id, file, Clock::system())?
        };
        self.inner.wake_pump();
        Ok(sent_message(&m))
    }

    async fn typing(&self, on: bool) -> Result<()> {
        match self.chat_state()? {
            EngagementState::Ended => return Err(Error::closed(V, "engagement")),
            EngagementState::Detached => {
                return Err(Error::invalid(V, "engagement", "detached with leave()"));
            }
            _ => {}
        }
        let sid = self.inner.lock().engine.call_sid(&self.id);
        self.inner
            .call(&Call::Typing {
                state: if on { 0 } else { 1 },
                sid,
            })
            .await
            .map(drop)
    }

    async fn end(&self, reason: Option<String>) -> Result<()> {
        if self.chat_state()? == EngagementState::Ended {
            return Err(Error::closed(V, "engagement"));
        }
        let sid = self.inner.lock().engine.call_sid(&self.id);
        self.inner
            .call(&Call::End {
                reason: reason.unwrap_or_default(),
                sid,
            })
            .await
            .map(drop)
    }

    async fn leave(&self) -> Result<()> {
        if self.chat_state()? == EngagementState::Ended {
            return Err(Error::closed(V, "engagement"));
        }
        self.inner.call(&Call::Close).await?;
        let mut st = self.inner.lock();
        let ids: Vec<EngagementId> = st.engine.chats().iter().map(|c| c.id.clone()).collect();
        // `Close` detaches the page: every chat of it.
        for id in ids {
            st.engine.detach(&id);
        }
        Ok(())
    }
}
